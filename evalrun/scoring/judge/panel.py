"""The ``judge_panel`` scorer: several judge models grade each output on one rubric, and the
panel's verdict is their majority (or mean, min, unanimity).

Each member is an ``llm_judge`` of its own (own cache keys, usage and cost); the panel's
fields (``rubric``, ``mode``, ``samples``, ``base_url``...) are every member's defaults, and a
member's entry overrides them. A member that errors on a record makes the panel's score an
error: a panel never passes on the votes it happened to get. The summary reports how much the
members agree (Fleiss' kappa, the share of unanimous records) and lists the records they split
on, for human review.

    - name: panel
      type: judge_panel
      rubric: correctness
      base_url: http://localhost:4000/v1
      reduce: majority
      judges:
        - {model: gpt-4o-mini}
        - {model: claude-3-5-haiku}
        - {model: llama-3.1-70b, base_url: http://vllm:8000/v1}
"""

from __future__ import annotations

import asyncio
from collections import Counter
from statistics import mean
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from evalrun.agreement import fleiss_kappa
from evalrun.records import Record, Score
from evalrun.scoring.base import Scorer
from evalrun.scoring.judge.scorer import CALL_FIELDS, JudgeConfig, JudgeParams, LLMJudge
from evalrun.scoring.judge.verdict import majority

MAX_LISTED = 50


class Member(BaseModel):
    """One panel judge: its model, and any call field that differs from the panel's."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    name: str | None = None


class PanelConfig(JudgeParams):
    judges: list[Member] = Field(min_length=2, max_length=15)
    reduce: Literal["majority", "mean", "min", "unanimous"] = "majority"


class JudgePanel(Scorer):
    """A rubric graded by several judge models; their majority (or mean, min, unanimity) decides."""

    type = "judge_panel"
    langfuse_data_type = "NUMERIC"
    uses_cache = True
    Config = PanelConfig
    batch_size = 64

    config: PanelConfig

    async def setup(self) -> None:
        cfg = self.config
        names = [m.name or m.model for m in cfg.judges]
        dup = next((n for n, c in Counter(names).items() if c > 1), None)
        if dup is not None:
            raise self.ctx.error(f"two panel judges are both named {dup!r}: give one a name:", "judges")
        self.members: list[LLMJudge] = []
        for i, (m, name) in enumerate(zip(cfg.judges, names, strict=True)):
            own = m.model_dump(exclude={"name"})
            unknown = [k for k in own if k != "model" and k not in CALL_FIELDS]
            if unknown:
                raise self.ctx.error(f"judges[{i}]: unknown key {unknown[0]!r} (a panel judge takes model, name and "
                                     f"{', '.join(CALL_FIELDS)})", "judges", i)
            fields = {**{k: getattr(cfg, k) for k in CALL_FIELDS}, **own}
            try:
                jc = JudgeConfig(type="llm_judge", name=f"{self.name}/{name}", rubric=cfg.rubric,
                                 threshold=cfg.threshold, **fields)
            except ValueError as e:
                raise self.ctx.error(f"judges[{i}]: {' '.join(str(e).split())[:300]}", "judges", i) from None
            judge = LLMJudge(jc, self.ctx)
            judge.certify = False  # the panel is what gates; its members carry no certificate
            await judge.setup()
            self.members.append(judge)
        first = self.members[0]
        self.rubric, self.shape, self.threshold = first.rubric, first.shape, first.threshold
        self.names = names
        self.ratings: list[list[str]] = []  # per record: each member's verdict
        self.split: list[dict[str, Any]] = []  # records the members did not agree on
        self.split_count = 0

    async def close(self) -> None:
        for m in getattr(self, "members", []):
            await m.close()

    async def score_batch(self, records: list[Record]) -> list[Score]:
        per_member = await asyncio.gather(*(m.score_batch(records) for m in self.members))
        return [self._reduce(rec, [scores[i] for scores in per_member]) for i, rec in enumerate(records)]

    def _reduce(self, rec: Record, scores: list[Score]) -> Score:
        failed = [(n, s) for n, s in zip(self.names, scores, strict=True) if s.error is not None]
        if failed:
            name, s = failed[0]
            return Score.failed(f"panel judge {name}: {s.error}")
        skipped = [s for s in scores if s.value is None]
        if skipped:
            return Score(None, None, skipped[0].reason)
        values = [float(s.value) for s in scores if s.value is not None]
        verdicts = [(s.extra or {}).get("verdict") for s in scores]
        labels = [str(v) for v in verdicts]
        how = self.config.reduce
        if how == "majority":
            worth = {lab: val for lab, val in zip(labels, values, strict=True)}
            agg = majority(labels, worth)
            value = worth[agg.verdict]
            verdict: Any = verdicts[labels.index(agg.verdict)]
            passed = value >= self.threshold
        elif how == "mean":
            value, verdict = mean(values), None
            passed = value >= self.threshold
        else:  # min and unanimous: the panel is as strict as its strictest member
            value = min(values)
            verdict = verdicts[values.index(value)]
            passed = all(bool(s.passed) for s in scores) if how == "unanimous" else value >= self.threshold
        self.ratings.append(labels)
        agreeing = Counter(labels).most_common(1)[0][1]
        if agreeing < len(labels):
            self.split_count += 1
            if len(self.split) < MAX_LISTED:
                self.split.append({"item_id": rec.item_id, "trial": rec.trial,
                                   "verdicts": dict(zip(self.names, labels, strict=True))})
        reason = next((s.reason for s in scores if (s.extra or {}).get("verdict") == verdict and s.reason), None)
        extra = {"verdict": verdict if verdict is not None else round(value, 4),
                 "judges": dict(zip(self.names, verdicts, strict=True)),
                 "agreement": round(agreeing / len(labels), 4)}
        usage = [s.usage for s in scores if s.usage]
        score = Score(round(value, 6), passed, reason, None, extra)
        if usage:
            score.usage = {"calls": sum(u.get("calls", 0) for u in usage),
                           "prompt_tokens": sum(u.get("prompt_tokens", 0) for u in usage),
                           "completion_tokens": sum(u.get("completion_tokens", 0) for u in usage),
                           **({"cost_usd": sum(u["cost_usd"] for u in usage if "cost_usd" in u)}
                              if any("cost_usd" in u for u in usage) else {})}
        return score

    def summary_extra(self) -> dict[str, Any]:
        if not hasattr(self, "members"):
            return {}
        fk = fleiss_kappa(self.ratings)
        n = len(self.ratings)
        return {"rubric": self.rubric.name, "panel": {
            "reduce": self.config.reduce,
            "judges": {name: {"model": m.config.model, **(m.summary_extra().get("judge_calls") or {})}
                       for name, m in zip(self.names, self.members, strict=True)},
            "fleiss_kappa": fk.to_dict(),
            "unanimous": round((n - self.split_count) / n, 4) if n else None,
            "split": self.split_count,
            "split_records": self.split,  # for human review: the first MAX_LISTED
        }}
