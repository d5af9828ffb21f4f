"""summary.json: per-scorer statistics, errors, latency and usage of one run, built as
records stream in so a 100,000-record run never holds its records in memory.

Per scorer: ``n`` items (each item's trials averaged first), ``trials`` values behind them, the
mean over items with a 95% ``ci95`` (Clopper-Pearson for pass/fail values, t on item means otherwise;
cluster-robust with ``cluster:``), and the pass rate over items with its Clopper-Pearson ``pass_ci95``.

An error is a failure: a trial whose target call failed (after retries) scores 0.0 and fails under
every scorer, and a trial whose scorer failed scores 0.0 and fails under that scorer, so ``n``, the
mean and the pass rate count it (``error_failures`` says how many trials were such errors). An eval
file with ``exclude_errors: true`` leaves them out instead (``exclude_errors`` in the summary, and
every report says so). The first distinct error messages per target and scorer are kept
(``error_samples``), and :meth:`SummaryBuilder.failure` says when errors are beyond the error
budgets: the run could not complete (exit 3)."""

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
                 "binary", "error_ids", "target_errors", "seen")

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
        self.error_ids: list[str] = []  # one item id per trial that counts as a failure: an error
        self.target_errors = 0  # trials of this scorer's whose target call failed
        self.seen = 0  # records this scorer was given (answered, and in its scope): scored or failed

    @property
    def gives_verdicts(self) -> bool:
        """Whether the scorer gives pass/fail verdicts (so an error is a failed verdict too); a
        scorer that scored nothing (every trial an error) counts as one, so its pass rate is 0."""
        return bool(self.verdicts) or not (self.values or self.skipped)


#: the share of target calls, or of one scorer's records, that may fail before the run counts as
#: failed (exit 3) when the eval file sets no ``error_budget``
DEFAULT_ERROR_BUDGET = 0.05
#: distinct error messages kept per target and per scorer, and how much of each
ERROR_SAMPLES = 3
ERROR_TEXT = 300


def error_text(kind: str, message: str) -> str:
    """One line of an error for a report: ``Type: message``, cut to size."""
    text = " ".join(f"{kind}: {message}".split()) if kind else " ".join(message.split())
    return text if len(text) <= ERROR_TEXT else text[:ERROR_TEXT] + "…"


class ErrorSamples:
    """The first distinct error messages of one source (the target, or one scorer), counted."""

    __slots__ = ("counts", "others")

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.others = 0  # errors whose message is not among the first distinct ones

    def add(self, text: str) -> None:
        if text in self.counts:
            self.counts[text] += 1
        elif len(self.counts) < ERROR_SAMPLES:
            self.counts[text] = 1
        else:
            self.others += 1

    def to_list(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [{"message": m, "count": c} for m, c in self.counts.items()]
        if self.others:
            out.append({"message": "(other messages)", "count": self.others})
        return out


def _share(k: int, n: int) -> str:
    return f"{k} of {n} ({100 * k / n:.1f}%)"


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

    def __init__(self, scorer_names: list[str], cluster: str | None = None, exclude_errors: bool = False,
                 budget: float | None = None, scorer_budgets: dict[str, float | None] | None = None) -> None:
        self.scorers = {n: _ScorerAcc() for n in scorer_names}
        self.cluster = cluster
        self.exclude_errors = exclude_errors
        # the error budgets (None: DEFAULT_ERROR_BUDGET): the target's, and each scorer's own
        self.budget = budget
        self.scorer_budgets = dict(scorer_budgets or {})
        self.target_samples = ErrorSamples()
        self.scorer_samples: dict[str, ErrorSamples] = {}
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
        item_id = rec.item_id
        if rec.error:
            kind = str(rec.error.get("type", "Error"))
            self.error_types[kind] += 1
            self.target_samples.add(error_text(kind, str(rec.error.get("message", ""))))
            for name, each in self.scorers.items():  # no answer: a failure under every scorer
                if name in rec.not_applicable:
                    continue  # (a scorer scoped away from this item, or a check it does not carry)
                each.target_errors += 1
                if not self.exclude_errors:
                    each.error_ids.append(item_id)
            return
        for name, score in rec.scores.items():
            acc = self.scorers.get(name)
            if acc is None:
                acc = self.scorers[name] = _ScorerAcc()
            acc.seen += 1
            if score.error is not None:
                acc.errors += 1
                samples = self.scorer_samples.get(name)
                if samples is None:
                    samples = self.scorer_samples[name] = ErrorSamples()
                samples.add(error_text("", str(score.error)))
                if not self.exclude_errors:
                    acc.error_ids.append(item_id)
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

    def budgets(self) -> dict[str, Any]:
        """The error budgets this run is held to (summary.json's ``error_budget``)."""
        return {"target": self.budget if self.budget is not None else DEFAULT_ERROR_BUDGET,
                "scorers": {n: (self.scorer_budgets.get(n) if self.scorer_budgets.get(n) is not None
                                else DEFAULT_ERROR_BUDGET) for n in self.scorers}}

    def failure(self) -> str | None:
        """Why the run could not complete, or None: every target call failed, or more than the
        target's error budget (the eval file's ``error_budget``; default
        :data:`DEFAULT_ERROR_BUDGET`) of them did, or a scorer failed on every record it was given
        or on more than its own ``error_budget``. One rule for runs and merged runs."""
        budget, scorer_budgets = self.budget, self.scorer_budgets
        n = self.records
        if n == 0:
            return None
        first = self.target_samples.to_list()
        said = f": {first[0]['message']}" if first else ""
        if self.errors == n:
            return f"every target call failed ({n} of {n}){said}"
        limit = DEFAULT_ERROR_BUDGET if budget is None else budget
        if self.errors / n > limit:
            return (f"{_share(self.errors, n)} target calls failed, over the error budget of {100 * limit:g}% "
                    f"(error_budget){said}")
        for name, acc in self.scorers.items():
            given = acc.seen  # the records the scorer was asked to score
            if not acc.errors or not given:
                continue
            samples = self.scorer_samples.get(name)
            said = f": {samples.to_list()[0]['message']}" if samples is not None else ""
            if acc.errors >= given:
                return f"scorer {name} failed on every record ({given} of {given}){said}"
            own = scorer_budgets.get(name)
            limit = DEFAULT_ERROR_BUDGET if own is None else own
            if acc.errors / given > limit:
                return (f"scorer {name} failed on {_share(acc.errors, given)} records, over its error budget "
                        f"of {100 * limit:g}%{said}")
        return None

    def error_samples(self) -> dict[str, Any]:
        """The first distinct error messages of the target and of each scorer, counted."""
        return {"target": self.target_samples.to_list(),
                "scorers": {n: s.to_list() for n, s in self.scorer_samples.items()}}

    def build(self, **head: Any) -> Summary:
        scorers: dict[str, Any] = {}
        clusters = self.clusters if self.cluster else None
        for name, acc in self.scorers.items():
            # an error is a trial that scored 0.0 and failed (unless the eval file excludes errors)
            k = len(acc.error_ids)
            value_ids, values = (acc.value_ids + acc.error_ids, acc.values + [0.0] * k) if k else \
                (acc.value_ids, acc.values)
            iv = _per_trial_stats(value_ids, values, acc.binary, clusters, len(values))
            entry: dict[str, Any] = {"n": iv.n, "trials": len(values), "mean": _num(iv.estimate),
                                     **interval_fields(iv)}
            if iv.clusters is not None:
                entry["clusters"] = iv.clusters
            judged_ids, verdicts = acc.judged_ids, acc.verdicts
            if k and acc.gives_verdicts:
                judged_ids, verdicts = judged_ids + acc.error_ids, verdicts + [0.0] * k
            # an item's pass rate is its passes over its judged trials
            pr = (_per_trial_stats(judged_ids, verdicts, True, clusters, len(verdicts))
                  if verdicts else None)
            entry.update({
                "pass_rate": _num(pr.estimate) if pr is not None else None,
                "pass_ci95": [_num(pr.lo), _num(pr.hi)] if pr is not None else None,
                "passed": acc.passed,
                "failed": acc.failed,
                "errors": acc.errors,
                "target_errors": acc.target_errors,
                "error_failures": k,  # trials counted as failures because of an error (0 when excluded)
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
            "scorer_errors": self.metrics.scorer_errors,
            "exclude_errors": self.exclude_errors,
            "error_budget": self.budgets(),
            "error_samples": self.error_samples(),
            "scorers": scorers,
            "latency_ms": self.metrics.build().latency_block(),
            "usage": {k: _num(v) for k, v in sorted(self.usage.items())},
        })
