"""summary.json: per-scorer statistics, errors, latency and usage of one run, built as
records stream in so a 100,000-record run never holds its records in memory."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from evalrun.records import Record
from evalrun.stats import mean_ci, percentile


class _ScorerAcc:
    __slots__ = ("values", "passed", "failed", "errors", "skipped")

    def __init__(self) -> None:
        self.values: list[float] = []
        self.passed = 0
        self.failed = 0
        self.errors = 0
        self.skipped = 0


def _num(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), 6)


class SummaryBuilder:
    def __init__(self, scorer_names: list[str]) -> None:
        self.scorers = {n: _ScorerAcc() for n in scorer_names}
        self.records = 0
        self.items: set[str] = set()
        self.errors = 0
        self.error_types: Counter[str] = Counter()
        self.latencies: list[float] = []
        self.usage: Counter[str] = Counter()

    def add(self, rec: Record) -> None:
        self.records += 1
        self.items.add(rec.item_id)
        if rec.latency_ms is not None:
            self.latencies.append(rec.latency_ms)
        if rec.usage:
            for k, v in rec.usage.items():
                if isinstance(v, int | float) and not isinstance(v, bool):
                    self.usage[k] += v
        if rec.error:
            self.errors += 1
            self.error_types[rec.error.get("type", "Error")] += 1
            return
        for name, score in rec.scores.items():
            acc = self.scorers.get(name)
            if acc is None:
                acc = self.scorers[name] = _ScorerAcc()
            if score.error is not None:
                acc.errors += 1
                continue
            if score.value is None:
                acc.skipped += 1
            else:
                acc.values.append(float(score.value))
            if score.passed is True:
                acc.passed += 1
            elif score.passed is False:
                acc.failed += 1

    def over_budget(self, budget: float | None) -> bool:
        """Whether failed target calls exceed ``error_budget`` (a fraction); with no budget,
        only a run where every call failed does. The rule for runs and merged runs alike."""
        if self.records == 0:
            return False
        if budget is None:
            return self.errors == self.records
        return self.errors / self.records > budget

    def build(self, **head: Any) -> dict[str, Any]:
        scorers: dict[str, Any] = {}
        for name, acc in self.scorers.items():
            # sorted: floating-point sums depend on order, and records arrive in completion
            # order; the same records must give the same summary (a merge of shards does)
            mean, lo, hi = mean_ci(sorted(acc.values))
            if acc.values and 0.0 <= min(acc.values) and max(acc.values) <= 1.0:
                # scores live in [0, 1]; a t interval on near-constant data can poke outside
                lo, hi = max(lo, 0.0), min(hi, 1.0)
            judged = acc.passed + acc.failed
            scorers[name] = {
                "n": len(acc.values),
                "mean": _num(mean),
                "ci95": [_num(lo), _num(hi)],
                "pass_rate": _num(acc.passed / judged) if judged else None,
                "passed": acc.passed,
                "failed": acc.failed,
                "errors": acc.errors,
                "skipped": acc.skipped,
            }
        lat = sorted(self.latencies)  # sorted: the mean must not depend on completion order
        return {
            **head,
            "records": self.records,
            "items": len(self.items),
            "errors": self.errors,
            "error_rate": _num(self.errors / self.records) if self.records else 0.0,
            "error_types": dict(self.error_types.most_common()),
            "scorers": scorers,
            "latency_ms": None if not lat else {
                "mean": _num(math.fsum(lat) / len(lat)), "p50": _num(percentile(lat, 50)),
                "p95": _num(percentile(lat, 95)), "max": _num(lat[-1])},
            "usage": {k: _num(v) for k, v in sorted(self.usage.items())},
        }
