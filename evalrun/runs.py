"""The shape of a run's data: ``manifest.json`` (:class:`Manifest`), ``summary.json``
(:class:`Summary`) and the run-level numbers gates and reports use (:class:`RunMetrics`).

The files stay plain JSON objects (``Manifest`` and ``Summary`` type them for the checker);
:class:`RunDir <evalrun.store.RunDir>` is the one place they are read and written.
:class:`RunMetrics` is computed in one place, :class:`MetricsBuilder`, from records as they
stream in: ``summary.json``'s ``latency_ms`` block and the gate metrics (``latency_p95_ms``,
``cost_usd``...) are two views of the same numbers."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypedDict

from evalrun.errors import RunStatus
from evalrun.records import Record
from evalrun.stats import percentile_of_sorted as percentile

__all__ = ["RUN_METRICS", "Manifest", "MetricsBuilder", "RunMetrics", "RunStatus", "Summary"]


class Manifest(TypedDict, total=False):
    """``manifest.json``: what was run (config, dataset, options, scorers, target), where
    (git, versions) and how it went (times, status; ``running`` while it runs)."""

    run_id: str
    eval: str
    description: str | None
    config: dict[str, Any]
    config_path: str
    config_fingerprint: str
    dataset: dict[str, Any]
    options: dict[str, Any]
    planned: dict[str, Any]
    scorers: list[str]  # every statistic a scorer gives (an assert scorer: each item check's too)
    informational: list[str]  # the scorers and item checks that are reported, never blocking
    target: str
    overrides: dict[str, Any]
    git: dict[str, Any] | None
    evalrun_version: str
    python: str
    started_at: str | None
    started_ts: float
    finished_at: str
    resumed_at: list[str]
    status: str  # a RunStatus, or "running" while it runs
    prompt: dict[str, Any]  # a resolved Langfuse prompt (name, version, label)
    merged_from: list[Any]
    group: dict[str, Any]  # a variant's run: its group id, variant name and reference


class Summary(TypedDict, total=False):
    """``summary.json``: per-scorer statistics, errors, latency and usage of one run."""

    run_id: str
    eval: str
    status: RunStatus
    started_at: str | None
    finished_at: str
    planned: int
    records: int
    items: int
    errors: int
    error_rate: float | None
    error_types: dict[str, int]
    scorer_errors: int  # records answered whose scoring failed on some scorer
    exclude_errors: bool  # the eval file left errors out of the numbers (default: counted as failures)
    error_budget: dict[str, Any]  # the shares of failed calls the run may have: target, and per scorer
    error_samples: dict[str, Any]  # the first distinct error messages: target, and per scorer
    failure: str  # why a failed run could not complete
    scorers: dict[str, dict[str, Any]]
    latency_ms: dict[str, float | None] | None
    usage: dict[str, float | None]
    scorer_usage: dict[str, dict[str, Any]]
    prompt: dict[str, Any]
    verdict: dict[str, Any]
    attempt: dict[str, Any]  # re-runs of one experiment (evalrun.attempts): number, verdict, pooled run ids


# the run-level metrics a gate can name (``latency_p95_ms <= 800``), in RunMetrics' order
RUN_METRICS = ("errors", "error_rate", "cost_usd", "latency_mean_ms", "latency_p50_ms", "latency_p95_ms",
               "latency_p99_ms", "latency_max_ms")


def rounded(x: float | None) -> float | None:
    """A number as run files store it: six decimals, NaN as None."""
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else round(x, 6)


_num = rounded


def rounded_p(x: float | None) -> float | None:
    """A p-value as run files and reports store it: six significant digits (six decimals would
    turn 1e-25 into 0, and a p-value is never 0), NaN as None."""
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else float(f"{x:.6g}")


def _money(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class RunMetrics:
    """Run-level numbers of a run: errors, latency percentiles, cost (target calls and judge)."""

    records: int = 0
    errors: int = 0  # records that failed: a target error, or a scorer error on any scorer
    error_rate: float | None = 0.0
    latency_mean_ms: float | None = None
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    latency_p99_ms: float | None = None
    latency_max_ms: float | None = None
    cost_usd: float | None = None
    target_errors: int = 0  # records whose target call failed (after retries)
    scorer_errors: int = 0  # records answered whose scoring failed on some scorer

    def to_dict(self) -> dict[str, Any]:
        """The metrics as gates and reports read them (and a baseline file stores them)."""
        return {"records": self.records, **{k: getattr(self, k) for k in RUN_METRICS},
                "target_errors": self.target_errors, "scorer_errors": self.scorer_errors}

    def latency_block(self) -> dict[str, float | None] | None:
        """``summary.json``'s ``latency_ms``: mean, p50, p95, max (None without latencies)."""
        if self.latency_max_ms is None:
            return None
        return {"mean": self.latency_mean_ms, "p50": self.latency_p50_ms, "p95": self.latency_p95_ms,
                "max": self.latency_max_ms}

    @classmethod
    def of(cls, records: Iterable[Record], summary: Mapping[str, Any] | None = None) -> RunMetrics:
        b = MetricsBuilder()
        for r in records:
            b.add(r)
        return b.build((summary or {}).get("scorer_usage"))


class MetricsBuilder:
    """Accumulates :class:`RunMetrics` record by record (the summary builder feeds it too)."""

    def __init__(self) -> None:
        self.records = 0
        self.errors = 0  # target errors
        self.scorer_errors = 0
        self.latencies: list[float] = []
        self.cost = 0.0
        self.priced = False

    def add(self, rec: Record) -> None:
        self.records += 1
        if rec.error:
            self.errors += 1
        elif any(s.error is not None for s in rec.scores.values()):
            self.scorer_errors += 1
        if rec.latency_ms is not None:
            self.latencies.append(rec.latency_ms)
        cost = _money((rec.usage or {}).get("cost_usd"))
        if cost is not None:
            self.cost += cost
            self.priced = True

    def build(self, scorer_usage: Mapping[str, Any] | None = None) -> RunMetrics:
        """The metrics so far; ``scorer_usage`` (summary.json's) adds what scorers spent (judge calls)."""
        cost, priced = self.cost, self.priced
        for u in (scorer_usage or {}).values():
            c = _money(u.get("cost_usd")) if isinstance(u, dict) else None
            if c is not None:
                cost += c
                priced = True
        # sorted once (for every percentile): the numbers must not depend on completion order
        lat = sorted(map(float, self.latencies))
        n = self.records
        failed = self.errors + self.scorer_errors  # what an `errors` gate counts: any failed record
        return RunMetrics(
            records=n, errors=failed, error_rate=_num(failed / n) if n else 0.0,
            target_errors=self.errors, scorer_errors=self.scorer_errors,
            latency_mean_ms=_num(math.fsum(lat) / len(lat)) if lat else None,
            latency_p50_ms=_num(percentile(lat, 50)), latency_p95_ms=_num(percentile(lat, 95)),
            latency_p99_ms=_num(percentile(lat, 99)), latency_max_ms=_num(lat[-1]) if lat else None,
            cost_usd=_num(cost) if priced else None)
