"""Slices: a comparison cut by item metadata (``tags``, ``metadata.category``, ...).

A slice is the items sharing one value of one key; an item with several tags sits in each of
their slices. Per slice and scorer this module gives n (items), the item-level mean and pass
rate with their intervals, and against a baseline the paired difference with its interval,
the regressions and the improvements.

Units are items, as in :mod:`evalrun.compare`: with repeats an item's trials are averaged
first. Slice membership comes from the candidate's records (the baseline's for an item the
candidate lacks), so a baseline file that kept only tags still pairs by item id.

The interval math lives in :mod:`evalrun.stats`: a slice's own numbers come from the same
item-level function summary.json uses (:func:`evalrun.summary.item_stats`), its paired
differences from the scorer comparison restricted to the slice's items.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from evalrun import stats
from evalrun.compare import ScorerComparison, Side, scorer_numbers
from evalrun.runs import rounded_p

# the slice key syntax (tags, metadata.KEY) is shared with gates and scoped scorers
from evalrun.selectors import SLICE_METADATA as METADATA
from evalrun.selectors import SLICE_TAGS as TAGS
from evalrun.selectors import normalize_key, values_of
from evalrun.summary import item_stats

if TYPE_CHECKING:
    from evalrun.compare import Comparison, ItemDiff

#: a slice with fewer items than this is shown, but marked: its interval is wide or missing
TINY = 10
#: the family-wise level of the table's drop / gain labels (Holm over every row, as slice gates)
FAMILY_LEVEL = 0.05


# --- the statistics adapter (one place to follow evalrun.stats) ----------------------------

def _interval(sides: dict[str, Side], stat: str, binary: bool,
              clusters: dict[str, object] | None) -> tuple[float, float, float] | None:
    """A slice's item-level number and its 95% interval, as summary.json computes a run's (the
    item is the unit, trials averaged; Clopper-Pearson for pass/fail, t otherwise; cluster-robust
    with the eval file's ``cluster:``); None when no item has a value, nan bounds without one."""
    values: dict[str, list[float]] = {}
    for item_id, side in sides.items():
        if stat == "mean" and side.values:
            values[item_id] = side.values
        elif stat == "pass_rate" and side.judged:
            values[item_id] = [1.0] * side.passed + [0.0] * (side.judged - side.passed)
    if not values:
        return None
    iv = item_stats(values, binary, clusters)
    return iv.estimate, iv.lo, iv.hi


# --- keys and membership --------------------------------------------------------------------

def _item_metadata(it: ItemDiff) -> dict[str, Any]:
    return (it.candidate[0].metadata if it.candidate else it.baseline[0].metadata) or {}


def members(cmp: Comparison, key: str) -> dict[str, set[str]]:
    """slice value -> the ids of its items (candidate items; removed ones are not in a slice)."""
    out: dict[str, set[str]] = {}
    for it in cmp.items:
        if not it.candidate:
            continue
        for v in values_of(_item_metadata(it), key):
            out.setdefault(v, set()).add(it.item_id)
    return out


def restrict(cmp: Comparison, scorer: str, ids: set[str], *, numbers: bool = True) -> ScorerComparison:
    """The comparison of one scorer on the items ``ids`` only: what a slice gate is judged on.
    ``numbers=False`` skips the record-level numbers (summary.json's way) the table does not show."""
    sc = cmp.scorers[scorer]
    cand_numbers: dict[str, Any] = {}
    base_numbers = None
    if numbers:
        cand = [r for it in cmp.items if it.item_id in ids for r in it.candidate]
        cand_numbers = scorer_numbers(cand, [scorer], exclude_errors=cmp.exclude_errors)[scorer]
        base = [r for it in cmp.items if it.item_id in ids for r in it.baseline]
        base_numbers = scorer_numbers(base, [scorer], exclude_errors=cmp.exclude_errors).get(scorer) if base else None
    base_items = None
    if sc.base_items is not None:
        base_items = {i: s for i, s in sc.base_items.items() if i in ids}
    regressions = [i for i in sc.regressions if i in ids]
    improvements = [i for i in sc.improvements if i in ids]
    # replace(): whatever else the scorer's comparison carries (how it computes intervals) is kept
    return replace(sc, candidate=cand_numbers, baseline=base_numbers if sc.baseline is not None else None,
                   cand_items={i: s for i, s in sc.cand_items.items() if i in ids}, base_items=base_items,
                   regressions=regressions, improvements=improvements, flaky=[i for i in sc.flaky if i in ids],
                   mcnemar_p=stats.mcnemar_exact(len(regressions), len(improvements))
                   if base_items is not None else None, _paired={})


# --- the slice table ------------------------------------------------------------------------

@dataclass
class SliceRow:
    key: str
    value: str
    scorer: str
    n: int  # items with a value for this scorer
    mean: float
    lo: float
    hi: float
    pass_rate: float | None
    pass_lo: float | None
    pass_hi: float | None
    diff: stats.PairedDifference | None  # paired, of the item means (None without a baseline)
    pass_diff: stats.PairedDifference | None
    regressions: int | None
    improvements: int | None
    p_adjusted: float | None = None  # Holm-adjusted over the table's rows (see slice_report)

    @property
    def label(self) -> str:
        return f"tag={self.value}" if self.key == TAGS else f"{self.key}={self.value}"

    @property
    def tiny(self) -> bool:
        return self.n < TINY

    @property
    def test_p(self) -> float:
        """Two-sided p of "the slice changed" by the default gate policy's rule (the interval
        excludes zero and the paired test rejects); nan without an interval."""
        d = self.diff
        if d is None or not d.has_interval:
            return math.nan
        return min(d.worse_p(0.0), d.worse_p(0.0, lower_is_better=True))

    @property
    def change(self) -> str:
        """``drop`` / ``gain`` when the change is significant after Holm's correction over every
        row of the table (``p_adjusted`` below 0.05), else ``''``: the rule the slice gates use,
        so noise alone labels any row of the table at most 5% of the time."""
        d = self.diff
        p = self.p_adjusted if self.p_adjusted is not None else self.test_p
        if d is None or math.isnan(p) or not p < FAMILY_LEVEL:
            return ""
        if d.diff < 0:
            return "drop"
        if d.diff > 0:
            return "gain"
        return ""

    @property
    def harm(self) -> int:
        """How much this row says something got worse: 0 a drop the interval is sure of, 1 a
        regressed item or a negative point estimate, 2 nothing worse (no change, or a gain).
        Without a baseline every row is 0 and only the candidate's own numbers rank it."""
        d = self.diff
        if d is None or not d.n:
            # no baseline: only the candidate's own numbers rank it; a baseline but no pair
            # (the slice's items are all new): nothing says it got worse
            return 0 if self.regressions is None else 2
        if self.change == "drop":
            return 0
        if (self.regressions or 0) > 0 or d.diff < 0:
            return 1
        return 2

    def sort_key(self) -> tuple[int, float, float, int, str, str, str]:
        # evidence of harm first (see ``harm``); within a group by the upper bound of the
        # interval, the slice that is surely lowest, so a tiny slice with a wide interval does
        # not crowd out a clear, well-measured drop; a slice with no interval (one item) has no
        # known bound and comes after those that have, and so does a tiny slice's zero-width
        # interval (its few items moved by the same amount: the t interval of a sample without
        # spread says nothing of how sure the drop is). A zero-width interval at 0 (nothing
        # changed) is in the last group: it never ranks above a real drop
        if self.diff is not None and self.diff.n:
            d = self.diff
            top = d.hi if d.has_interval and (d.hi > d.lo or not self.tiny) else math.inf
            point = self.diff.diff
        else:
            top = self.hi
            point = self.mean
        return (self.harm, _nan_last(top), _nan_last(point), -(self.regressions or 0), self.key, self.value,
                self.scorer)

    def to_dict(self) -> dict[str, Any]:
        def pd(d: stats.PairedDifference | None) -> dict[str, Any] | None:
            if d is None or not d.n:
                return None
            return {"n": d.n, "candidate": _r(d.candidate_mean), "baseline": _r(d.baseline_mean), "diff": _r(d.diff),
                    "ci95": [_r(d.lo), _r(d.hi)], "p_value": rounded_p(d.p_value)}

        return {"key": self.key, "value": self.value, "selector": self.label, "scorer": self.scorer, "n": self.n,
                "tiny": self.tiny, "mean": _r(self.mean), "ci95": [_r(self.lo), _r(self.hi)],
                "pass_rate": _r(self.pass_rate), "pass_rate_ci95": [_r(self.pass_lo), _r(self.pass_hi)],
                "paired_mean": pd(self.diff), "paired_pass_rate": pd(self.pass_diff),
                "regressions": self.regressions, "improvements": self.improvements, "change": self.change,
                "p_holm": rounded_p(self.p_adjusted)}


def _nan_last(x: float) -> float:
    return math.inf if x is None or math.isnan(x) else x


def _r(x: float | None) -> float | None:
    return None if x is None or math.isnan(x) else round(float(x), 6)


@dataclass
class SliceReport:
    keys: list[str]
    rows: list[SliceRow]  # by evidence of harm, worst first (SliceRow.sort_key)
    has_baseline: bool

    def to_dict(self) -> dict[str, Any]:
        return {"keys": self.keys, "tiny_below": TINY, "rows": [r.to_dict() for r in self.rows]}


def _row(cmp: Comparison, key: str, value: str, scorer: str, ids: set[str]) -> SliceRow | None:
    sc = restrict(cmp, scorer, ids, numbers=False)
    mi = _interval(sc.cand_items, "mean", sc.binary, sc.clusters)
    pr = _interval(sc.cand_items, "pass_rate", True, sc.clusters)
    if mi is None and pr is None:
        return None
    mean, lo, hi = mi or (math.nan, math.nan, math.nan)
    n = sum(1 for s in sc.cand_items.values() if s.values) or sum(1 for s in sc.cand_items.values() if s.judged)
    pm = sc.paired("mean") if sc.base_items is not None else None
    pp = sc.paired("pass_rate") if sc.base_items is not None and pr is not None else None
    return SliceRow(key, value, scorer, n, mean, lo, hi,
                    pr[0] if pr else None, pr[1] if pr else None, pr[2] if pr else None,
                    pm.diff if pm is not None and pm.diff.n else None,
                    pp.diff if pp is not None and pp.diff.n else None,
                    len(sc.regressions) if sc.base_items is not None else None,
                    len(sc.improvements) if sc.base_items is not None else None)


def slice_report(cmp: Comparison, keys: Iterable[str]) -> SliceReport | None:
    """Every slice of every key, per scorer, by evidence of harm (None when no key is asked for)."""
    keys = list(dict.fromkeys(k for k in (normalize_key(k) for k in keys) if k))
    if not keys:
        return None
    rows: list[SliceRow] = []
    for key in keys:
        for value, ids in sorted(members(cmp, key).items()):
            for scorer in cmp.scorers:
                row = _row(cmp, key, value, scorer, ids)
                if row is not None:
                    rows.append(row)
    for row, adj in zip(rows, stats.holm([r.test_p for r in rows]), strict=True):
        row.p_adjusted = None if math.isnan(adj) else adj
    rows.sort(key=SliceRow.sort_key)
    return SliceReport(keys, rows, cmp.has_baseline)


def check_selector(cmp: Comparison, key: str, value: str) -> str | None:
    """Why a gate's ``[key=value]`` selects nothing in this comparison (None when it selects items)."""
    return check_in((_item_metadata(it) for it in cmp.items if it.candidate), key, value)


def check_in(metadatas: Iterable[dict[str, Any] | None], key: str, value: str | None) -> str | None:
    """Why ``[key=value]`` selects none of the items with these metadata (None when it selects some),
    with a "did you mean" among the keys or values that exist. ``value`` None: why no item has
    ``key`` at all (a ``--slice`` key), or None when some does."""
    from evalrun.errors import suggest

    found: set[str] = set()
    keys: set[str] = set()
    for meta in metadatas:
        found.update(values_of(meta, key))
        keys.update(k for k, v in (meta or {}).items() if v not in (None, ""))
    if value in found or (value is None and found):
        return None
    name = "tag" if key == TAGS else key
    if not found:
        known = ([TAGS] if TAGS in keys else []) + [METADATA + k for k in sorted(keys - {TAGS})]
        return (f"no item has {name}{suggest(key, known)}; slice keys here: "
                f"{', '.join(known) if known else '(the items have no metadata)'}")
    shown = sorted(found)
    listing = ", ".join(shown[:20]) + (f" (+{len(shown) - 20} more)" if len(shown) > 20 else "")
    return f"no item has {name}={value}{suggest(str(value), shown)}; values: {listing}"
