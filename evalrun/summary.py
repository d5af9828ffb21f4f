"""summary.json: per-scorer statistics, errors, latency and usage of one run, built as
records stream in so a 100,000-record run never holds its records in memory.

Per scorer: ``n`` items (each item's trials averaged first), ``trials`` values behind them, the
mean over items with a 95% ``ci95`` (Clopper-Pearson for pass/fail values, t on item means otherwise;
cluster-robust with ``cluster:``), and the pass rate over items with its Clopper-Pearson ``pass_ci95``."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Any, cast

from evalrun import stats
from evalrun.records import Record
from evalrun.runs import MetricsBuilder, Summary
from evalrun.runs import rounded as _num


class _ScorerAcc:
    """One scorer's values as they stream in: one (item id, value) pair per trial in flat lists,
    grouped by item only when the summary is built (no object per item on the hot path)."""

    __slots__ = ("value_ids", "values", "judged_ids", "verdicts", "passed", "failed", "errors", "skipped",
                 "binary")

    def __init__(self) -> None:
        self.value_ids: list[str] = []
        self.values: list[float] = []
        self.judged_ids: list[str] = []
        self.verdicts: list[float] = []  # 1.0 passed, 0.0 failed
        self.passed = 0
        self.failed = 0
        self.errors = 0
        self.skipped = 0
        self.binary = True  # every value seen is 0 or 1


def cluster_label(metadata: dict[str, Any] | None, key: str | None, item_id: str) -> object:
    """An item's cluster under the eval file's ``cluster: KEY``: its metadata value (lists and
    mappings by their JSON text); an item without the key is a cluster of its own."""
    value = (metadata or {}).get(key) if key else None
    if value is None:
        return ("item", item_id)
    if isinstance(value, dict | list):
        import json

        return ("value", json.dumps(value, sort_keys=True))
    return ("value", str(value))


def item_stats(items: dict[str, list[float]], binary: bool, clusters: dict[str, object] | None,
               trials: int | None = None) -> stats.Interval:
    """The interval of one statistic over items (ids sorted: any record order, same numbers);
    ``items`` holds each item's values (averaged), ``trials`` how many trials are behind them."""
    ids = sorted(items)
    means = [v[0] if len(v) == 1 else math.fsum(sorted(v)) / len(v) for v in (items[i] for i in ids)]
    return _interval(ids, means, binary, clusters,
                     trials if trials is not None else sum(len(v) for v in items.values()))


def _per_trial_stats(ids: list[str], values: list[float], binary: bool, clusters: dict[str, object] | None,
                     trials: int) -> stats.Interval:
    """:func:`item_stats` of one (item id, value) pair per trial: the same numbers."""
    if len(set(ids)) != len(ids):  # repeats: average each item's trials first
        grouped: dict[str, list[float]] = {}
        for i, v in zip(ids, values, strict=True):
            grouped.setdefault(i, []).append(v)
        return item_stats(grouped, binary, clusters, trials)
    if clusters is None:  # one value per item, and without clusters the order changes no number
        return _interval(ids, values, binary, None, trials)
    order = sorted(range(len(ids)), key=ids.__getitem__)
    return _interval([ids[k] for k in order], [values[k] for k in order], binary, clusters, trials)


def _interval(ids: list[str], means: list[float], binary: bool, clusters: dict[str, object] | None,
              trials: int) -> stats.Interval:
    labels = [clusters[i] for i in ids] if clusters is not None else None
    return stats.item_interval(means, binary=binary, clusters=labels, trials=trials)


def interval_fields(iv: stats.Interval, prefix: str = "") -> dict[str, Any]:
    d: dict[str, Any] = {f"{prefix}ci95": [_num(iv.lo), _num(iv.hi)], f"{prefix}ci_method": iv.method}
    if iv.note:
        d[f"{prefix}ci_note"] = iv.note
    return d


class SummaryBuilder:
    """Per-scorer numbers of a run. The unit is the item: each item's trials are averaged first,
    and ``n`` counts items (``trials`` the values behind them). With ``cluster`` (a metadata key)
    intervals are cluster-robust and ``clusters`` says how many there were."""

    def __init__(self, scorer_names: list[str], cluster: str | None = None) -> None:
        self.scorers = {n: _ScorerAcc() for n in scorer_names}
        self.cluster = cluster
        self.clusters: dict[str, object] = {}
        self.items: set[str] = set()
        self.error_types: Counter[str] = Counter()
        self.metrics = MetricsBuilder()  # errors, latency and cost: the run-level metrics
        self.usage: defaultdict[str, float] = defaultdict(float)

    @property
    def records(self) -> int:
        return self.metrics.records

    @property
    def errors(self) -> int:
        return self.metrics.errors

    def add(self, rec: Record) -> None:
        self.items.add(rec.item_id)
        if self.cluster:
            self.clusters[rec.item_id] = cluster_label(rec.metadata, self.cluster, rec.item_id)
        self.metrics.add(rec)
        if rec.usage:
            for k, v in rec.usage.items():
                if isinstance(v, int | float) and not isinstance(v, bool):
                    self.usage[k] += v
        if rec.error:
            self.error_types[rec.error.get("type", "Error")] += 1
            return
        item_id = rec.item_id
        for name, score in rec.scores.items():
            acc = self.scorers.get(name)
            if acc is None:
                acc = self.scorers[name] = _ScorerAcc()
            if score.error is not None:
                acc.errors += 1
                continue
            value, passed = score.value, score.passed
            if value is None:
                acc.skipped += 1
            else:
                v = float(value)
                acc.value_ids.append(item_id)
                acc.values.append(v)
                if v != 0.0 and v != 1.0:
                    acc.binary = False
            if passed is not None:
                acc.judged_ids.append(item_id)
                acc.verdicts.append(1.0 if passed else 0.0)
                if passed:
                    acc.passed += 1
                else:
                    acc.failed += 1

    def over_budget(self, budget: float | None) -> bool:
        """Whether failed target calls exceed ``error_budget`` (a fraction); with no budget,
        only a run where every call failed does. The rule for runs and merged runs alike."""
        if self.records == 0:
            return False
        if budget is None:
            return self.errors == self.records
        return self.errors / self.records > budget

    def build(self, **head: Any) -> Summary:
        scorers: dict[str, Any] = {}
        clusters = self.clusters if self.cluster else None
        for name, acc in self.scorers.items():
            iv = _per_trial_stats(acc.value_ids, acc.values, acc.binary, clusters, len(acc.values))
            entry: dict[str, Any] = {"n": iv.n, "trials": len(acc.values), "mean": _num(iv.estimate),
                                     **interval_fields(iv)}
            if iv.clusters is not None:
                entry["clusters"] = iv.clusters
            # an item's pass rate is its passes over its judged trials
            pr = (_per_trial_stats(acc.judged_ids, acc.verdicts, True, clusters, acc.passed + acc.failed)
                  if acc.verdicts else None)
            entry.update({
                "pass_rate": _num(pr.estimate) if pr is not None else None,
                "pass_ci95": [_num(pr.lo), _num(pr.hi)] if pr is not None else None,
                "passed": acc.passed,
                "failed": acc.failed,
                "errors": acc.errors,
                "skipped": acc.skipped,
            })
            scorers[name] = entry
        # head: run_id, eval, status... (Summary's first keys)
        return cast(Summary, {
            **head,
            "records": self.records,
            "items": len(self.items),
            "errors": self.errors,
            "error_rate": _num(self.errors / self.records) if self.records else 0.0,
            "error_types": dict(self.error_types.most_common()),
            "scorers": scorers,
            "latency_ms": self.metrics.build().latency_block(),
            "usage": {k: _num(v) for k, v in sorted(self.usage.items())},
        })
