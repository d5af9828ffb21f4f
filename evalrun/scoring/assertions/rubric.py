"""``rubric``: an LLM judge grades the answer against criteria written for this item
(``{type: rubric, value: "Apologises and offers the 30-day refund"}``). The judge is the
``llm_judge`` scorer itself (same client, retries, cache, cost accounting), configured by the
``assert`` scorer's ``judge:`` section; its verdict is pass / fail (threshold 1.0), or a check's
own ``threshold`` on the judge's value."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from evalrun.records import Item, Record, Score
from evalrun.scoring.assertions.registry import Check, CheckConfig
from evalrun.scoring.base import ScorerContext

RUBRICS = Path(__file__).with_name("rubrics")
#: where a view record carries its check's criteria to the judge (never saved)
_CRITERIA = "\x00assert_criteria"


async def make_judge(ctx: ScorerContext, options: dict[str, Any], rubric: str) -> Any:
    """An ``llm_judge`` scorer for item checks, from the assert scorer's ``judge:`` section."""
    from evalrun.scoring.judge.scorer import JudgeConfig, LLMJudge

    class ItemJudge(LLMJudge):
        def _vars(self, r: Record) -> dict[str, Any]:
            v = super()._vars(r)
            meta = r.metadata or {}
            if _CRITERIA in meta:
                v["criteria"] = meta[_CRITERIA]
                v["metadata"] = {k: x for k, x in meta.items() if k != _CRITERIA}
            return v

    raw = {**(options.get("judge") or {}), "type": "llm_judge", "rubric": str(RUBRICS / f"{rubric}.yaml")}
    try:
        cfg = JudgeConfig.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        raise ctx.error(f"judge: {where}: {str(err['msg']).removeprefix('Value error, ')}", "judge") from None

    def locate(message: str, *field: str | int) -> Any:
        return ctx.error(f"judge: {message}", "judge")

    judge = ItemJudge(cfg, ScorerContext(base_dir=ctx.base_dir, cache=ctx.cache, usage=ctx.usage,
                                         locate=locate, secrets=ctx.secrets))
    await judge.setup()
    return judge


async def ask_judge(judge: Any, jobs: list[tuple[str | None, Any, Record]]) -> list[Score]:
    """The judge's Score of each (criteria, output, record)."""
    views = [replace(rec, output=out, scores={},
                     metadata={**(rec.metadata or {}), _CRITERIA: c} if c is not None else rec.metadata)
             for c, out, rec in jobs]
    return list(await judge.score_batch(views))


class RubricConfig(CheckConfig):
    #: the criteria, written for this item
    value: str = Field(min_length=1)
    #: passed = the judge's value >= threshold (default: the verdict pass)
    threshold: float | None = Field(None, ge=0, le=1)


class RubricCheck(Check):
    """An LLM judge grades the answer against this item's criteria."""

    type = "rubric"
    Config = RubricConfig
    uses_cache = True

    def validate(self, cfg: RubricConfig, item: Item) -> None:  # type: ignore[override]  # (its own Config)
        if not self.options.get("judge"):
            raise ValueError("rubric checks need a judge: section on the assert scorer (model, base_url...)")

    async def setup(self, configs: list[Any]) -> None:
        self.judge = await make_judge(self.ctx, self.options, "item_rubric")

    async def check_batch(self, jobs: list[tuple[Any, Any, Record]]) -> list[Score]:
        scores = await ask_judge(self.judge, [(cfg.value, out, rec) for cfg, out, rec in jobs])
        out = []
        for (cfg, _, _), s in zip(jobs, scores, strict=True):
            if cfg.threshold is not None and s.error is None and s.value is not None:
                s = replace(s, passed=s.value >= cfg.threshold)
            out.append(s)
        return out

    async def close(self) -> None:
        judge = self.__dict__.get("judge")
        if judge is not None:
            await judge.close()
