"""``similar``: the answer means about the same as a reference text: the cosine of their
sentence embeddings (the embedding scorer's model, cache and thread: the bundled
all-MiniLM-L6-v2 by default; the ``assert`` scorer's ``embedding:`` section picks another)
is at least ``threshold``. ``evalrun show RUN --suggest-thresholds`` shows where to put it."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from evalrun import _json
from evalrun.records import Item, Record, Score
from evalrun.scoring.assertions.registry import Check, CheckConfig


class SimilarConfig(CheckConfig):
    #: the reference text (one, or several: the best counts)
    value: str | list[str]
    threshold: float = Field(0.75, ge=-1.0, le=1.0)


class Similar(Check):
    """Cosine similarity of the answer's embedding and the reference's, against a threshold."""

    type = "similar"
    Config = SimilarConfig
    uses_cache = True

    def validate(self, cfg: SimilarConfig, item: Item) -> None:  # type: ignore[override]  # (its own Config)
        refs = [cfg.value] if isinstance(cfg.value, str) else cfg.value
        if not refs or not all(r.strip() for r in refs):
            raise ValueError("value needs a non-empty reference text")

    async def setup(self, configs: list[Any]) -> None:
        from pydantic import ValidationError

        from evalrun.scoring.embedding import EmbeddingConfig, EmbeddingSimilarity

        raw = {**(self.options.get("embedding") or {}), "type": "embedding_similarity"}
        try:
            cfg = EmbeddingConfig.model_validate(raw)
        except ValidationError as e:
            err = e.errors()[0]
            raise self.ctx.error(f"embedding: {'.'.join(map(str, err['loc']))}: {err['msg']}", "embedding") from None
        self.model = EmbeddingSimilarity(cfg, self.ctx)
        await self.model.setup()

    async def check_batch(self, jobs: list[tuple[Any, Any, Record]]) -> list[Score]:
        rows: list[tuple[str, list[str]]] = []
        needed: list[str] = []
        for cfg, out, _ in jobs:
            text = _json.as_text(out).strip()
            refs = [r.strip() for r in ([cfg.value] if isinstance(cfg.value, str) else cfg.value)]
            rows.append((text, refs))
            if text:
                needed.append(text)
                needed.extend(refs)
        vecs = await self.model.embed(needed) if needed else {}
        scores = []
        for (cfg, _, _), (text, refs) in zip(jobs, rows, strict=True):
            if not text:
                scores.append(Score(0.0, False, "empty output"))
                continue
            value = round(max(min(1.0, max(-1.0, float(vecs[r] @ vecs[text]))) for r in refs), 6)
            ok = value >= cfg.threshold
            scores.append(Score(value, ok, None if ok else f"cosine {value:.3f} < threshold {cfg.threshold:g}"))
        return scores
