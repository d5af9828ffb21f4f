"""Pairing a run with its baseline: per-scorer paired statistics, regressions, improvements,
flaky items, new and removed items.

Works on lists of :class:`~evalrun.records.Record`, so a baseline may come from a run
directory, a results file, an accepted-baseline file or Langfuse alike.

Units and rules:

- Records pair by ``(item_id, trial)``; statistics pair by item. With repeats, each item's
  trials are averaged first, so n is the number of items, never of trials. Pass/fail data get
  the Agresti-Min paired interval, other scores the paired t (both cluster-robust with
  ``cluster:``); see :mod:`evalrun.stats`.
- For pass/fail, an item's *state* under a scorer is ``pass`` (every judged trial passed),
  ``fail`` (none did) or ``flaky`` (some did). A regression is pass -> fail, an improvement
  fail -> pass; an item flaky in the candidate is listed as flaky, not as a regression.
  McNemar's exact test runs on those discordant items.
- An error is a failure: a record whose target call failed scores 0.0 and fails under every
  scorer (it gave no answer), a scorer error scores 0.0 and fails under that scorer, as in
  summary.json, so the numbers agree (``exclude_errors`` leaves both out, everywhere).
- An item that errored in the baseline (its target call, or the scorer) is left out of that
  scorer's paired statistics, regressions and improvements: the candidate did not fix anything
  there. Those items are listed (:attr:`ScorerComparison.unpaired`); a gate that loses a material
  share of its pairs this way is incomplete (:mod:`evalrun.gates`).
"""

from __future__ import annotations

import functools
import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from evalrun import stats
from evalrun.records import Record
from evalrun.runs import RunMetrics, rounded_p
from evalrun.runs import rounded as _num
from evalrun.summary import SummaryBuilder, cluster_label

#: per-item statistics a gate or a report can ask for; pass@k / pass^k take k from the name
ITEM_STATS = ("mean", "pass_rate")


@dataclass(slots=True)
class Side:
    """One item's trials under one scorer in one run."""

    values: list[float] = field(default_factory=list)
    passed: int = 0
    judged: int = 0
    trials: int = 0  # every trial, a scorer error included (pass@k / pass^k count it as failed)
    errors: int = 0  # trials whose target call or scorer failed

    @property
    def mean(self) -> float | None:
        # sorted: the same trials in any order give the same number
        v = self.values
        if len(v) < 2:
            return v[0] if v else None
        return math.fsum(sorted(v)) / len(v)

    @property
    def pass_rate(self) -> float | None:
        return self.passed / self.judged if self.judged else None

    @property
    def state(self) -> str | None:
        if not self.judged:
            return None
        if self.passed == self.judged:
            return "pass"
        return "fail" if self.passed == 0 else "flaky"

    def stat(self, name: str) -> float | None:
        if name == "mean":
            return self.mean
        if name == "pass_rate":
            return self.pass_rate
        kind, k = parse_k_stat(name)
        # a trial whose scorer failed gave no pass: it counts as failed, so an item never
        # drops out of pass@k / pass^k because one of its trials could not be scored
        trials = max(self.trials, self.judged)
        if not self.judged or k > trials:
            return None
        fn = stats.pass_at_k if kind == "pass@" else stats.pass_hat_k
        return fn(trials, self.passed, k)


def parse_k_stat(name: str) -> tuple[str, int]:
    """``pass@3`` -> ("pass@", 3); ``pass^2`` -> ("pass^", 2); ValueError otherwise."""
    for kind in ("pass@", "pass^"):
        if name.startswith(kind) and name[len(kind):].isdigit() and int(name[len(kind):]) >= 1:
            return kind, int(name[len(kind):])
    raise ValueError(name)


def informational_names(records: list[Record]) -> set[str]:
    """The scorers (and item assertions) the records mark informational: reported, never blocking."""
    return {name for r in records for name, s in r.scores.items() if s.informational}


def _error_trial(side: Side, verdicts: bool, exclude: bool) -> None:
    """A trial whose target call or scorer failed: a failure (0.0, failed), or nothing at all
    when the eval file excludes errors (then it counts only in ``errors``)."""
    side.errors += 1
    if exclude:
        return
    side.trials += 1
    side.values.append(0.0)
    if verdicts:
        side.judged += 1


def _collect(records: list[Record], names: list[str], exclude_errors: bool = False) -> dict[str, dict[str, Side]]:
    """Per scorer, per item: the values and verdicts of its trials (one pass over the records)."""
    judged: set[str] = set()  # scorers that gave a verdict
    scored: set[str] = set()  # scorers that gave anything but an error
    for r in records:
        for name, s in r.scores.items():
            if s.error is None:
                scored.add(name)
                if s.passed is not None:
                    judged.add(name)
    # as summary.json decides: a scorer that scored nothing (all errors) counts as giving verdicts
    verdicts = {name for name in names if name in judged or name not in scored}
    out: dict[str, dict[str, Side]] = {name: {} for name in names}
    for r in records:
        iid = r.item_id
        if r.error:
            for name, sides in out.items():  # no answer: a failure under every scorer
                # (a scorer scoped away from this item, or a check it does not carry, is not its)
                if name in r.not_applicable:
                    continue
                side = sides.get(iid)
                if side is None:
                    side = sides[iid] = Side()
                _error_trial(side, name in verdicts, exclude_errors)
            continue
        for name, s in r.scores.items():
            per = out.get(name)
            if per is None:
                continue
            side = per.get(iid)
            if side is None:
                side = per[iid] = Side()
            if s.error is not None:
                _error_trial(side, name in verdicts, exclude_errors)
                continue
            side.trials += 1
            if s.value is not None:
                side.values.append(float(s.value))
            if s.passed is not None:
                side.judged += 1
                side.passed += bool(s.passed)
    return out


@dataclass
class Paired:
    """A paired comparison of one per-item statistic."""

    stat: str
    diff: stats.PairedDifference

    @functools.cached_property
    def mde(self) -> float:
        """The drop a ``>= baseline`` gate (default policy) catches 80% of the time here.
        Computed when asked (a bisection over exact sums: slices, for one, never ask)."""
        return stats.detectable_drop(self.diff, 0.0, "significant")

    @property
    def mde_basis(self) -> str:
        """"paired": this set's spread / discordance; "drop": nothing changed, so the
        discordance the drop itself brings; "none": no basis (n/a)."""
        return "none" if math.isnan(self.mde) else ("drop" if self.diff.discordant == 0 else "paired")

    def to_dict(self) -> dict[str, Any]:
        d = self.diff
        out = {"stat": self.stat, "n": d.n, "candidate": _num(d.candidate_mean), "baseline": _num(d.baseline_mean),
               "diff": _num(d.diff), "ci95": [_num(d.lo), _num(d.hi)], "ci_method": d.method,
               "p_value": rounded_p(d.p_value), "mde": _num(self.mde), "mde_basis": self.mde_basis}
        if d.clusters is not None:
            out["clusters"] = d.clusters
        if d.note:
            out["note"] = d.note
        return out


def paired_stat(cand: dict[str, Side], base: dict[str, Side], stat: str, *, binary: bool,
                clusters: dict[str, object] | None = None) -> Paired | None:
    """Candidate minus baseline of one per-item statistic on the items both sides have; an item
    that errored in the baseline is left out (its failure there says nothing of the candidate)."""
    ids: list[str] = []
    c: list[float] = []
    b: list[float] = []
    for i, s in sorted(cand.items()):
        bs = base.get(i)
        if bs is None or bs.errors:
            continue
        cv, bv = s.stat(stat), bs.stat(stat)
        if cv is not None and bv is not None:
            ids.append(i)
            c.append(cv)
            b.append(bv)
    labels = [clusters.get(i, ("item", i)) for i in ids] if clusters is not None else None
    return Paired(stat, stats.paired_difference(c, b, binary=binary, clusters=labels))


@dataclass
class ScorerComparison:
    name: str
    candidate: dict[str, Any]  # n, mean, pass_rate, passed, failed, errors: as summary.json has them
    baseline: dict[str, Any] | None
    cand_items: dict[str, Side]
    base_items: dict[str, Side] | None
    regressions: list[str] = field(default_factory=list)
    improvements: list[str] = field(default_factory=list)
    flaky: list[str] = field(default_factory=list)
    mcnemar_p: float | None = None
    binary: bool = False  # every value of this scorer (both runs) is 0 or 1
    #: reported, never blocking: its failures and regressions do not fail or regress an item
    informational: bool = False
    clusters: dict[str, object] | None = None  # item -> cluster label (eval file's `cluster:`)
    _paired: dict[str, Paired | None] = field(default_factory=dict, repr=False)

    @property
    def unpaired(self) -> list[str]:
        """Candidate items left out of the paired statistics because they errored in the baseline."""
        if self.base_items is None:
            return []
        return sorted(i for i in self.cand_items if (b := self.base_items.get(i)) is not None and b.errors)

    def value(self, stat: str) -> float | None:
        """The candidate's number for a stat: mean / pass_rate as summary.json has them (over
        items), pass@k / pass^k averaged over items."""
        if stat in ITEM_STATS:
            return self.candidate.get(stat)
        vals = [v for v in (s.stat(stat) for i, s in sorted(self.cand_items.items())) if v is not None]
        return math.fsum(vals) / len(vals) if vals else None

    def k_interval(self, stat: str) -> stats.Interval:
        """pass@k / pass^k over items with its 95% interval: each item's unbiased estimate is one
        value in [0, 1] (items the unit, cluster-robust with ``cluster:``), as a score's mean."""
        ids = [i for i, s in sorted(self.cand_items.items()) if s.stat(stat) is not None]
        vals = [v for v in (self.cand_items[i].stat(stat) for i in ids) if v is not None]
        labels = [self.clusters.get(i, ("item", i)) for i in ids] if self.clusters is not None else None
        return stats.item_interval(vals, clusters=labels)

    def paired(self, stat: str) -> Paired | None:
        """Candidate minus baseline on the items both runs have a value for (None without a baseline).
        Pass/fail statistics (pass_rate, pass@k, pass^k, and the mean of a 0/1 scorer) get the
        Agresti-Min interval; other means the paired t."""
        if stat in self._paired:
            return self._paired[stat]
        result = None
        if self.base_items is not None:
            result = paired_stat(self.cand_items, self.base_items, stat,
                                 binary=stat != "mean" or self.binary, clusters=self.clusters)
        self._paired[stat] = result
        return result

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"candidate": self.candidate, "baseline": self.baseline}
        if self.base_items is not None:
            d["paired"] = {s: p.to_dict() for s in ITEM_STATS if (p := self.paired(s)) is not None and p.diff.n}
            d["regressions"] = self.regressions
            d["improvements"] = self.improvements
            d["mcnemar_p"] = rounded_p(self.mcnemar_p)
            d["baseline_errored"] = self.unpaired
        d["flaky"] = self.flaky
        if self.informational:
            d["informational"] = True
        k = max((s.judged for s in self.cand_items.values()), default=0)
        if k > 1:
            for stat in (f"pass@{k}", f"pass^{k}"):
                iv = self.k_interval(stat)
                d[stat] = _num(iv.estimate)
                d[f"{stat}_ci95"] = [_num(iv.lo), _num(iv.hi)]
        return d


@dataclass
class ItemDiff:
    """One item across the two runs."""

    item_id: str
    status: str  # regressed | improved | flaky | unchanged | new | removed
    candidate: list[Record]
    baseline: list[Record]
    regressed: list[str] = field(default_factory=list)  # scorers that went pass -> fail
    improved: list[str] = field(default_factory=list)
    flaky: list[str] = field(default_factory=list)  # scorers flaky in the candidate
    failed: list[str] = field(default_factory=list)  # scorers the candidate fails (every trial)
    #: informational scorers this item fails or regressed under (reported, never blocking)
    informational: list[str] = field(default_factory=list)
    delta: float = 0.0  # sum over scorers of the change in item mean (ranks the worst first)

    @property
    def first(self) -> Record:
        return (self.candidate or self.baseline)[0]

    @property
    def tags(self) -> list[str]:
        meta = self.first.metadata or {}
        tags = meta.get("tags") or []
        return [str(t) for t in tags] if isinstance(tags, list) else [str(tags)]

    @property
    def errored(self) -> bool:
        return any(r.error for r in self.candidate)

    def to_dict(self) -> dict[str, Any]:
        def rec(r: Record) -> dict[str, Any]:
            return {"trial": r.trial, "output": r.output, "error": r.error, "latency_ms": r.latency_ms,
                    "scores": {k: s.to_dict() for k, s in r.scores.items()}}

        first = self.first
        return {"item_id": self.item_id, "status": self.status, "tags": self.tags, "input": first.input,
                "expected_output": first.expected_output, "regressed": self.regressed,
                "improved": self.improved, "flaky": self.flaky, "failed": self.failed,
                **({"informational": self.informational} if self.informational else {}),
                "delta": _num(self.delta), "candidate": [rec(r) for r in self.candidate],
                "baseline": [rec(r) for r in self.baseline]}


@dataclass
class Comparison:
    """A run, paired with its baseline when it has one."""

    run: dict[str, Any]  # run_id, eval
    baseline_info: dict[str, Any] | None  # source, run_id, eval
    scorers: dict[str, ScorerComparison]
    items: list[ItemDiff]
    metrics: dict[str, Any]  # run-level numbers of the candidate (errors, latency, cost)
    baseline_metrics: dict[str, Any] | None
    trials: int
    exclude_errors: bool = False  # the eval file leaves errors out of every number
    #: the first distinct error messages of the candidate: {"target": [...], "scorers": {name: [...]}}
    error_samples: dict[str, Any] = field(default_factory=dict)
    #: the error budgets the run was held to (its summary's), None when unknown
    error_budget: dict[str, Any] | None = None

    @property
    def baseline_errored(self) -> list[str]:
        """Items left out of some scorer's paired statistics because they errored in the baseline."""
        return sorted({i for sc in self.scorers.values() for i in sc.unpaired})

    @property
    def has_baseline(self) -> bool:
        return self.baseline_info is not None

    def by_status(self, status: str) -> list[ItemDiff]:
        return [i for i in self.items if i.status == status]

    @property
    def regressed(self) -> list[ItemDiff]:
        """Regressed items, worst first."""
        return sorted(self.by_status("regressed"), key=lambda i: (-len(i.regressed), i.delta, i.item_id))

    @property
    def new_items(self) -> list[str]:
        return [i.item_id for i in self.items if i.status == "new"]

    @property
    def removed_items(self) -> list[str]:
        return [i.item_id for i in self.items if i.status == "removed"]

    @property
    def paired_items(self) -> int:
        return sum(1 for i in self.items if i.candidate and i.baseline)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "baseline": self.baseline_info,
            "trials": self.trials,
            "paired_items": self.paired_items if self.has_baseline else None,
            "metrics": self.metrics,
            "baseline_metrics": self.baseline_metrics,
            "scorers": {n: s.to_dict() for n, s in self.scorers.items()},
            "counts": {s: len(self.by_status(s)) for s in
                       ("regressed", "improved", "flaky", "unchanged", "new", "removed")},
            "new_items": self.new_items,
            "removed_items": self.removed_items,
            "exclude_errors": self.exclude_errors,
            "error_samples": self.error_samples,
            "baseline_errored": self.baseline_errored if self.has_baseline else None,
            "items": [i.to_dict() for i in self.items],
        }



_NUMBER_KEYS = ("n", "trials", "mean", "ci95", "ci_method", "ci_note", "clusters", "pass_rate", "pass_ci95",
                "passed", "failed", "errors", "target_errors", "error_failures")


def _numbers_builder(records: list[Record], names: list[str], cluster: str | None,
                     exclude_errors: bool) -> SummaryBuilder:
    builder = SummaryBuilder(names, cluster=cluster, exclude_errors=exclude_errors)
    for r in records:
        builder.add(r)
    return builder


def _numbers(built: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: {k: s[k] for k in _NUMBER_KEYS if k in s} for name, s in built["scorers"].items()}


def scorer_numbers(records: list[Record], names: list[str], cluster: str | None = None,
                   exclude_errors: bool = False) -> dict[str, dict[str, Any]]:
    """Per scorer n, mean, ci95, pass_rate, passed, failed, errors (and clusters): exactly as
    summary.json counts them (the same builder), so a report never disagrees with the run's summary."""
    return _numbers(_numbers_builder(records, names, cluster, exclude_errors).build())


def run_metrics(records: list[Record], summary: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Run-level numbers gates can use: errors, latency percentiles, cost (see :class:`RunMetrics`)."""
    return RunMetrics.of(records, summary).to_dict()


def _by_item(records: list[Record]) -> dict[str, list[Record]]:
    out: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        out[r.item_id].append(r)
    for rs in out.values():
        rs.sort(key=lambda r: r.trial)
    return dict(out)


def scorer_names(records: list[Record], preferred: list[str] | None = None) -> list[str]:
    names = list(preferred or [])
    for r in records:
        for n in r.scores:
            if n not in names:
                names.append(n)
    return names


def compare(candidate: list[Record], baseline: list[Record] | None, *, run: dict[str, Any] | None = None,
            baseline_info: dict[str, Any] | None = None, scorers: list[str] | None = None,
            summary: Mapping[str, Any] | None = None, baseline_metrics: dict[str, Any] | None = None,
            cluster: str | None = None, exclude_errors: bool = False) -> Comparison:
    """Pair ``candidate`` with ``baseline`` (None: the candidate alone, for gates and reports).

    ``scorers`` fixes the order (the eval file's); scorers that only one run has are compared
    as far as they can be (a scorer new in this run has no baseline numbers). ``cluster`` is the
    eval file's metadata key grouping items (cluster-robust intervals); ``exclude_errors`` (the
    eval file's) leaves errors out of every number instead of counting them as failures.
    """
    has_base = baseline is not None
    base = baseline or []
    names = scorer_names(candidate, scorers)
    cand_by, base_by = _by_item(candidate), _by_item(base)
    comps: dict[str, ScorerComparison] = {}
    cand_sides, base_sides = _collect(candidate, names, exclude_errors), _collect(base, names, exclude_errors)
    built = _numbers_builder(candidate, names, cluster, exclude_errors).build()
    cand_numbers, base_numbers = _numbers(built), scorer_numbers(base, scorer_names(base), cluster, exclude_errors)
    labels = None
    if cluster:
        labels = {r.item_id: cluster_label(r.metadata, cluster, r.item_id) for r in base}
        labels.update({r.item_id: cluster_label(r.metadata, cluster, r.item_id) for r in candidate})
    info = informational_names(candidate)
    for name in names:
        base_has = has_base and name in base_numbers
        binary = all(v in (0.0, 1.0) for sides in (cand_sides[name], base_sides.get(name) or {})
                     for side in sides.values() for v in side.values)
        sc = ScorerComparison(name, cand_numbers[name],
                              base_numbers[name] if base_has else None,
                              cand_sides[name], base_sides[name] if base_has else None,
                              binary=binary, clusters=labels, informational=name in info)
        for iid, side in sc.cand_items.items():
            if side.state == "flaky":
                sc.flaky.append(iid)
            if sc.base_items is None or iid not in sc.base_items or sc.base_items[iid].errors:
                continue  # (an item that errored in the baseline neither regresses nor improves)
            before, after = sc.base_items[iid].state, side.state
            if before == "pass" and after == "fail":
                sc.regressions.append(iid)
            elif before == "fail" and after == "pass":
                sc.improvements.append(iid)
        if sc.base_items is not None:
            sc.mcnemar_p = stats.mcnemar_exact(len(sc.regressions), len(sc.improvements))
        comps[name] = sc

    items: list[ItemDiff] = []
    order = list(cand_by) + [i for i in base_by if i not in cand_by]
    regressed = {name: set(sc.regressions) for name, sc in comps.items()}
    improved = {name: set(sc.improvements) for name, sc in comps.items()}
    for iid in order:
        c, b = cand_by.get(iid, []), base_by.get(iid, [])
        it = ItemDiff(iid, "unchanged", c, b)
        for name, sc in comps.items():
            cs = sc.cand_items.get(iid)
            bs = sc.base_items.get(iid) if sc.base_items is not None else None
            if sc.informational:
                if (cs is not None and cs.state in ("fail", "flaky")) or iid in regressed[name]:
                    it.informational.append(name)
                continue
            if cs is not None and cs.state == "fail":
                it.failed.append(name)
            if cs is not None and cs.state == "flaky":
                it.flaky.append(name)
            if iid in regressed[name]:
                it.regressed.append(name)
            if iid in improved[name]:
                it.improved.append(name)
            if cs is not None and bs is not None and cs.mean is not None and bs.mean is not None:
                it.delta += cs.mean - bs.mean
        if has_base and not b:
            it.status = "new"
        elif not c:
            it.status = "removed"
        elif it.regressed:
            it.status = "regressed"
        elif it.flaky:
            it.status = "flaky"
        elif it.improved:
            it.status = "improved"
        items.append(it)
    trials = max((len(rs) for rs in cand_by.values()), default=0)
    return Comparison(
        run=run or {},
        baseline_info=(baseline_info or {}) if has_base else None,
        scorers=comps,
        items=items,
        metrics=run_metrics(candidate, summary),
        baseline_metrics=(baseline_metrics or run_metrics(base)) if has_base else None,
        trials=trials,
        exclude_errors=exclude_errors,
        error_samples=built["error_samples"],
        error_budget=(summary or {}).get("error_budget"),
    )
