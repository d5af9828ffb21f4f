"""The ``embedding_similarity`` scorer: cosine similarity of sentence embeddings.

``value`` is the best cosine between the output and any expected output; ``passed`` is
``value >= threshold``. Texts are what :func:`evalrun._json.as_text` makes of a value (JSON
for non-strings), stripped of surrounding whitespace. Rules for the edges:

- an item without expected output scores ``value=None`` with a reason (like the match
  scorers): there is nothing to compare with, which is not the pipeline's fault;
- an empty or missing output scores 0.0 and fails (an empty expected output matches it: 1.0);
- an output equal to an expected output scores 1.0 without embedding anything.

Owns the work per batch: identical texts are embedded once, embeddings come from an
in-process LRU, then the disk cache (namespace per model fingerprint, float32 bytes,
checked for size and norm), and only the rest is encoded by the library's
``SentenceTransformer.encode``, on one worker thread off the event loop (batches take turns
on it, so a text two batches share is embedded once). The model is loaded on the first text
that needs encoding, on that thread, so a fully cached run never imports torch and targets
keep running while it loads. (A direct forward path, several CPU streams and cross-batch
grouping once stood here: about 10% faster than ``encode`` of the de-duplicated texts, not
worth their code; ``benchmarks/bench_embedding.py`` keeps the comparison.)
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from pydantic import Field, field_validator

from evalrun import _json
from evalrun.records import Record, Score
from evalrun.scoring import _embed_model as em
from evalrun.scoring.base import Scorer, ScorerConfig, ScorerContext
from evalrun.scoring.match import NO_EXPECTED


class EmbeddingConfig(ScorerConfig):
    #: passed = cosine >= threshold
    threshold: float = Field(0.8, ge=-1.0, le=1.0)
    #: a sentence-transformers name (the bundled all-MiniLM-L6-v2 by default, else looked up in
    #: the local Hugging Face cache) or a model folder, relative to the eval file
    model: str = Field(em.DEFAULT_MODEL, min_length=1)
    #: texts per forward pass
    batch_size: int = Field(64, ge=1, le=4096)
    device: str = "auto"

    @field_validator("threshold", "batch_size", mode="before")
    @classmethod
    def _not_bool(cls, v: Any) -> Any:
        # YAML's true/false would otherwise pass as 1/0
        if isinstance(v, bool):
            raise ValueError("must be a number, not true/false")
        return v

    @field_validator("device")
    @classmethod
    def _known_device(cls, v: str) -> str:
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", v):
            raise ValueError("must be auto, cpu, mps, cuda or cuda:N")
        return v


_META_NS = "embedding-model-dim"
_MEMORY_ENTRIES = 20_000  # ~30 MB of 384-d vectors: enough for the repeats of a large golden set
_CHUNK_PASSES = 8  # forward passes per chunk stored at once
# All model work of the process happens on this one thread: torch already spreads one batch
# over every core, so two encodes at once would only contend; a single thread also keeps one
# malloc arena and one OpenMP team instead of one per pool thread.
_worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="evalrun-embed")


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class EmbeddingSimilarity(Scorer):
    """Cosine similarity between the output's embedding and each expected output's; best wins."""

    type = "embedding_similarity"
    langfuse_data_type = "NUMERIC"
    uses_cache = True  # embeddings by text, and the model's fingerprint
    Config = EmbeddingConfig
    #: records per call: more records per batch means more duplicates removed and less padding
    batch_size = 512

    config: EmbeddingConfig

    def __init__(self, config: EmbeddingConfig, ctx: ScorerContext) -> None:
        super().__init__(config, ctx)
        self._memory: OrderedDict[str, np.ndarray] = OrderedDict()  # touched on the embedding thread only
        self.model: Any = None
        self._load_error: Exception | None = None
        self.device: str | None = None
        self.dim: int | None = None
        self.stats = {"texts_embedded": 0, "cache_hits": 0, "memory_hits": 0, "corrupt_entries": 0,
                      "exact_matches": 0}

    async def setup(self) -> None:
        import importlib.util

        # found now (cheaply, without importing torch) rather than as an error on every record
        missing = [m for m in ("sentence_transformers", "huggingface_hub") if importlib.util.find_spec(m) is None]
        if missing:
            from evalrun._version import DISTRIBUTION, TORCH_CPU_INDEX

            raise self.ctx.error(f"embedding_similarity needs {', '.join(missing)}: pip install torch --index-url "
                                 f'{TORCH_CPU_INDEX} && pip install "{DISTRIBUTION}[embeddings]"', "type", "__value__")
        try:
            self.model_path = em.resolve_model(self.config.model, self.ctx.base_dir)
        except em.ModelNotFound as e:
            raise self.ctx.error(str(e), "model", "__value__") from None
        if self.config.device not in ("auto", "cpu"):
            # checked now, not on the first batch, so a wrong device is bad input (exit 2)
            try:
                await asyncio.to_thread(em.pick_device, self.config.device)
            except RuntimeError as e:
                raise self.ctx.error(str(e), "device", "__value__") from None
        self.fingerprint = await asyncio.to_thread(em.model_fingerprint, self.model_path, self.ctx.cache)
        self.namespace = f"embedding:{self.fingerprint[:32]}"
        if self.ctx.cache is not None:
            stored = self.ctx.cache.get(_META_NS, self.fingerprint)
            if stored is not None and stored.isdigit():
                self.dim = int(stored)

    # -- embeddings ----------------------------------------------------------------------

    def _load(self) -> Any:
        if self._load_error is not None:  # a broken model fails each batch at once, not slowly
            raise self._load_error
        if self.model is None:
            try:
                self.model, self.device = em.load_model(self.model_path, self.config.device)
            except Exception as e:
                self._load_error = RuntimeError(f"cannot load embedding model {self.config.model!r}: "
                                                f"{type(e).__name__}: {e}")
                raise self._load_error from e
            if self.dim is None:
                get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
                self.dim = int(get_dim())
                if self.ctx.cache is not None:
                    self.ctx.cache.put(_META_NS, self.fingerprint, str(self.dim).encode())
        return self.model

    def _valid(self, blob: bytes) -> np.ndarray | None:
        """The vector in a cache entry, or None when it cannot be one this model wrote."""
        vec = np.frombuffer(blob, dtype=np.float32) if self.dim is not None and len(blob) == self.dim * 4 else None
        ok = vec is not None and np.isfinite(vec).all() and abs(float(vec @ vec) - 1.0) <= 1e-3
        return vec if ok else None

    def _from_disk(self, texts: list[str]) -> dict[str, np.ndarray]:
        cache = self.ctx.cache
        if cache is None or not texts:
            return {}
        keys = {text_key(t): t for t in texts}
        found = cache.get_many(self.namespace, list(keys))
        out = {keys[k]: vec for k, blob in found.items() if (vec := self._valid(blob)) is not None}
        self._count("corrupt_entries", len(found) - len(out))
        return out

    def _encode(self, texts: list[str]) -> dict[str, np.ndarray]:
        """Embed ``texts`` (distinct) and store them, :data:`_CHUNK_PASSES` forward passes at a
        time, shortest texts first: Ctrl-C stops soon and a resumed run keeps what was done."""
        texts = sorted(texts, key=len)
        step = self.config.batch_size * _CHUNK_PASSES
        got: dict[str, np.ndarray] = {}
        for i in range(0, len(texts), step):
            if self.ctx.cancelled:
                raise RuntimeError("cancelled")
            part = texts[i:i + step]
            fresh = dict(zip(part, em.encode(self._load(), part, self.config.batch_size), strict=True))
            if self.ctx.cache is not None:
                self.ctx.cache.put_many(self.namespace, {text_key(t): v.tobytes() for t, v in fresh.items()})
            self._count("texts_embedded", len(fresh))
            got.update(fresh)
        return got

    def _embed_blocking(self, texts: list[str]) -> dict[str, np.ndarray]:
        """Memory, then the disk cache, then the model. Runs on the embedding thread, one
        batch after another, so a text two batches share is embedded once."""
        got = {t: self._memory[t] for t in texts if t in self._memory}
        self._count("memory_hits", len(got))
        todo = [t for t in texts if t not in got]
        if todo and self.dim is None and self.ctx.cache is not None:
            self._load()  # an unknown size means nothing on disk can be checked yet
        disk = self._from_disk(todo)
        self._count("cache_hits", len(disk))
        got.update(disk)
        got.update(self._encode([t for t in todo if t not in disk]))
        for t in texts:  # most recently used last
            self._memory[t] = got[t]
            self._memory.move_to_end(t)
        while len(self._memory) > _MEMORY_ENTRIES:
            self._memory.popitem(last=False)
        return got

    def _count(self, key: str, n: int) -> None:
        """This scorer's counter (summary_extra) and the run's, shared by every embedding scorer
        (``scorer_usage.embedding`` in summary.json; sums correctly when shards are merged)."""
        self.stats[key] += n
        run = self.ctx.usage.setdefault("embedding", dict.fromkeys(self.stats, 0))
        run[key] = run.get(key, 0) + n

    async def embed(self, texts: list[str]) -> dict[str, np.ndarray]:
        """Unit-length float32 embeddings of ``texts`` (duplicates are embedded once), computed
        on the embedding thread so targets keep running."""
        return await asyncio.get_running_loop().run_in_executor(_worker, self._embed_blocking,
                                                                list(dict.fromkeys(texts)))

    # -- scoring -------------------------------------------------------------------------

    async def score_batch(self, records: list[Record]) -> list[Score]:
        threshold = self.config.threshold
        scores: list[Score | None] = []
        pairs: list[tuple[int, str, list[str]]] = []
        needed: list[str] = []
        for r in records:
            expected = r.expected_list
            if not expected:
                scores.append(NO_EXPECTED)
                continue
            out = _json.as_text(r.output).strip()
            exp = [_json.as_text(e).strip() for e in expected]
            if out in exp:
                self._count("exact_matches", 1)
                scores.append(Score(1.0, 1.0 >= threshold, None if out else "output and an expected output are empty"))
                continue
            if not out:
                scores.append(Score(0.0, False, "empty output"))
                continue
            if not any(exp):
                scores.append(Score(0.0, False, "every expected output is empty"))
                continue
            pairs.append((len(scores), out, exp))
            scores.append(None)
            needed.append(out)
            needed.extend(e for e in exp if e)
        if pairs:
            vecs = await self.embed(needed)
            for i, out, exp in pairs:
                # an empty alternative has no meaning to embed: it scores 0 against a non-empty output
                sims = np.array([float(vecs[e] @ vecs[out]) if e else 0.0 for e in exp])
                best = int(np.argmax(sims))
                value = round(min(1.0, max(-1.0, float(sims[best]))), 6)
                passed = value >= threshold
                reason = None if passed else f"cosine {value:.3f} < threshold {threshold:g}"
                extra = {"best_expected": best} if len(exp) > 1 else None
                scores[i] = Score(value, passed, reason, extra=extra)
        return [s for s in scores if s is not None]

    def summary_extra(self) -> dict[str, Any]:
        return {"model": self.config.model, "model_fingerprint": getattr(self, "fingerprint", "")[:16],
                "device": self.device, **self.stats}
