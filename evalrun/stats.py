"""Statistics for one run and for a run against its baseline (plain Python and numpy; no scipy
at run time). The unit is always the *item*: with repeats, callers average each item's trials
first, so trials of one item are never counted as independent observations.

Public functions (what reports, gates and history call):

- ``item_interval(values, binary=..., clusters=...)``: a 95% interval for a run's mean over
  items. Pass/fail data get a Clopper-Pearson interval (Korn-Graubard's effective-n version
  with repeats or clusters), which never collapses at 0% or 100%; other scores a t interval on
  item means. With
  ``clusters`` (one label per item) the standard error is cluster-robust: CR2 with Bell-McCaffrey
  degrees of freedom (:func:`cluster_se`), which hold with clusters of unequal size (G - 1 df
  when they are equal; about 3 when one cluster of ten holds half the items), with a warning
  when one cluster dominates or there are few.
- ``paired_difference(candidate, baseline, binary=..., clusters=...)``: candidate minus
  baseline per item. Pass/fail data get an Agresti-Min interval (a half pseudo-count in each
  cell of the paired 2x2 table), generalised to repeats and clusters; other scores the paired
  t interval (cluster-robust with clusters).
- ``gate_fail_probability`` / ``detectable_drop``: how often a relative gate under a policy
  fails at a given true drop, and the drop it catches with 80% power on this set.
- ``holm``: Holm's step-down adjusted p-values (slice gates and the slice table are one family each;
  a gate's p-value is :meth:`PairedDifference.worse_p`).
- ``clopper_pearson_interval``, ``wilson_interval``, ``mcnemar_exact``, ``pass_at_k`` / ``pass_hat_k``, ``mean_ci``,
  ``min_detectable_difference``, ``paired_bootstrap_ci``: the building blocks.
- ``t_cdf`` / ``t_sf`` / ``t_ppf``, ``norm_cdf`` / ``norm_sf`` / ``norm_ppf``: distributions,
  tails computed directly so small p-values never underflow to 0 through ``1 - cdf``.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    ArrayLike = Sequence[float] | np.ndarray

# numpy is imported by the paired functions only: a run's summary (mean_ci, percentile) is
# plain Python, so a run without a baseline does not pay for importing numpy


# --- Student's t distribution -------------------------------------------------------------

def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz evaluation)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        step = d * c
        h *= step
        if abs(step - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    # the continued fraction converges fast only on one side of the mean; use symmetry
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom."""
    if df <= 0:
        return math.nan
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_sf(t: float, df: float) -> float:
    """P(T > t), from the incomplete beta directly: tiny tails stay tiny instead of 1 - 1 = 0."""
    return t_cdf(-t, df)


def norm_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def norm_sf(x: float) -> float:
    return 0.5 * math.erfc(x / math.sqrt(2.0))


def norm_ppf(p: float) -> float:
    """The p-quantile of the standard normal (bisection on ``norm_cdf``; p in (0, 1))."""
    if not 0.0 < p < 1.0:
        return math.nan
    if p < 0.5:
        return -norm_ppf(1.0 - p)
    lo, hi = 0.0, 40.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if norm_sf(mid) > 1.0 - p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-15:
            break
    return 0.5 * (lo + hi)


Z975 = 1.959963984540054  # norm_ppf(0.975)


def t_ppf(p: float, df: float) -> float:
    """The p-quantile of Student's t (inverse of :func:`t_cdf`), by bracketing and bisection."""
    if df <= 0 or not 0.0 < p < 1.0:
        return math.nan
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_ppf(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        lo, hi = hi, hi * 2.0
        if hi > 1e12:
            return math.inf
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


_T975_CACHE: dict[float, float] = {}


def t_quantile_975(df: float) -> float:
    """The 97.5% quantile of Student's t (``df`` may be fractional: Bell-McCaffrey's): the
    multiplier of a two-sided 95% interval."""
    if df <= 0:
        return math.nan
    q = _T975_CACHE.get(df)
    if q is None:
        q = _T975_CACHE[df] = t_ppf(0.975, df)
    return q


# --- one sample ---------------------------------------------------------------------------

def mean_ci(values: ArrayLike) -> tuple[float, float, float]:
    """Mean and a 95% t interval. With fewer than two values the interval is the mean itself."""
    a = [float(v) for v in values]
    n = len(a)
    if n == 0:
        return (math.nan, math.nan, math.nan)
    m = math.fsum(a) / n
    if n < 2:
        return (m, m, m)
    se = math.sqrt(math.fsum((x - m) ** 2 for x in a) / (n - 1)) / math.sqrt(n)
    h = t_quantile_975(n - 1) * se
    return (m, m - h, m + h)


def percentile(values: ArrayLike, q: float) -> float | None:
    """The q-th percentile with linear interpolation between closest ranks (numpy's default)."""
    return percentile_of_sorted(sorted(float(v) for v in values), q)


def percentile_of_sorted(a: Sequence[float], q: float) -> float | None:
    """:func:`percentile` of floats already in ascending order (several percentiles, one sort)."""
    if not a:
        return None
    pos = (len(a) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(a) - 1)
    return a[lo] + (a[hi] - a[lo]) * (pos - lo)


def wilson_interval(successes: float, n: float, z: float = Z975) -> tuple[float, float]:
    """Wilson score interval for a proportion (``successes`` may be fractional: an effective
    count). Never zero width: 10/10 gives [0.72, 1], not [1, 1]."""
    if n <= 0:
        return (math.nan, math.nan)
    p = min(1.0, max(0.0, successes / n))
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    lo, hi = centre - half, centre + half
    # at p = 0 or 1 one end is exactly 0 or 1; rounding must not move it off
    return (0.0 if p == 0.0 else max(0.0, lo), 1.0 if p == 1.0 else min(1.0, hi))


def beta_ppf(q: float, a: float, b: float) -> float:
    """The q-quantile of Beta(a, b), by bisection on the regularized incomplete beta."""
    lo, hi = 0.0, 1.0
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if _betainc(a, b, mid) < q:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-14:
            break
    return 0.5 * (lo + hi)


def clopper_pearson_interval(successes: float, n: float, level: float = 0.95) -> tuple[float, float]:
    """Clopper-Pearson ("exact") interval for a proportion: covers at least ``level`` for every
    true rate and n, never zero width (10/10 gives [0.69, 1]). ``successes`` and ``n`` may be
    fractional (an effective count, as Korn and Graubard use it for clustered data)."""
    if n <= 0:
        return (math.nan, math.nan)
    x = min(max(successes, 0.0), n)
    alpha = 1.0 - level
    lo = 0.0 if x <= 0 else beta_ppf(alpha / 2, x, n - x + 1)
    hi = 1.0 if x >= n else beta_ppf(1 - alpha / 2, x + 1, n - x)
    return (lo, hi)


@dataclass(frozen=True, slots=True)
class Interval:
    """A run's number over items with its 95% interval.

    ``n`` items; ``clusters`` the number of clusters when the interval is cluster-robust (else
    None); ``method`` one of ``clopper-pearson``, ``clopper-pearson-adjusted`` (repeats or
    clusters: the design's effective n), ``effective-n-clopper-pearson`` (fewer than 30 scores
    in [0, 1]), ``t``, ``cluster-t``; ``note`` says plainly when the
    interval is a point (constant data) or missing (too few items or clusters).
    """

    estimate: float
    lo: float
    hi: float
    n: int
    clusters: int | None = None
    method: str = "t"
    se: float = math.nan
    df: float = math.nan
    note: str = ""


@dataclass(frozen=True, slots=True)
class ClusterSE:
    """A cluster-robust standard error of a (weighted) mean: CR2 (Bell and McCaffrey 2002), its
    Bell-McCaffrey degrees of freedom, G and the largest cluster's share of the weight."""

    se: float
    clusters: int
    df: float
    top_share: float
    units: float = math.nan  # 1 / sum of squared cluster shares: how many independent units a drop sits in

    @property
    def note(self) -> str:
        """A warning when the interval rests on few independent units: few clusters, or one
        cluster holding a large share of the items (the df then fall well below G - 1)."""
        if self.clusters < 2:
            return ""
        parts = []
        if self.top_share >= DOMINANT_SHARE:
            parts.append(f"one cluster holds {100 * self.top_share:.0f}% of the items")
        if self.clusters < FEW_CLUSTERS:
            parts.append(f"only {self.clusters} clusters")
        if not parts:
            return ""
        return (f"{' and '.join(parts)}: the interval rests on about {self.df:.1f} degrees of freedom "
                "(Bell-McCaffrey), so it is wide and a small change cannot show")


#: a cluster holding this share of the items, or fewer clusters than this, is warned about
DOMINANT_SHARE = 0.25
FEW_CLUSTERS = 10


def cluster_se(dev: Sequence[float], labels: Sequence[object], weights: Sequence[float] | None = None,
               real: Sequence[bool] | None = None) -> ClusterSE:
    """CR2 cluster-robust standard error of a weighted mean from per-unit deviations from it,
    with Bell-McCaffrey degrees of freedom (working model: independent units).

    For a mean (the regression on a constant, weights w) the CR2 adjustment has a closed form:
    cluster g's leverage is h_g = W_g / W, so V = sum_g S_g^2 / (1 - h_g) / W^2 with S_g the
    cluster's weighted sum of deviations; with equal clusters this is CR1 exactly (G / (G - 1)).
    The df are (tr M)^2 / tr(M^2) for M = Q (diag(h) - h h') Q, Q = diag(1 / sqrt(1 - h_g)):
    1 / (sum h_g^2 + (sum r_g)^2 - sum r_g^2), r_g = h_g^2 / (1 - h_g); G - 1 for equal clusters,
    about 3 when one cluster of ten holds half the items. ``real`` (one flag per unit): units
    that are pseudo-counts (Agresti-Min's) enter the SE but not the df or G."""
    w = weights if weights is not None else [1.0] * len(dev)
    flags = real if real is not None else [True] * len(dev)
    totals: dict[object, float] = {}
    wsum: dict[object, float] = {}
    real_w: dict[object, float] = {}
    for d, g, wi, is_real in zip(dev, labels, w, flags, strict=True):
        totals[g] = totals.get(g, 0.0) + wi * d
        wsum[g] = wsum.get(g, 0.0) + wi
        if is_real:
            real_w[g] = real_w.get(g, 0.0) + wi
    g_count = len(real_w)
    if g_count < 2 or len(totals) < 2:
        return ClusterSE(math.nan, g_count, math.nan, 1.0 if g_count == 1 else math.nan)
    total_w = math.fsum(w)
    ss = math.fsum(sorted(totals[g] ** 2 / (1.0 - wsum[g] / total_w) for g in totals))
    real_total = math.fsum(real_w.values())
    h = [x / real_total for x in real_w.values()]
    r = [x * x / (1.0 - x) for x in h]
    inv = math.fsum(x * x for x in h) + math.fsum(r) ** 2 - math.fsum(x * x for x in r)
    df = min(float(g_count - 1), 1.0 / inv) if inv > 0 else float(g_count - 1)
    if g_count - 1 - df < 1e-9 * g_count:
        df = float(g_count - 1)  # equal clusters: exactly G - 1, not G - 1 less rounding
    return ClusterSE(math.sqrt(ss) / total_w, g_count, df, max(h), 1.0 / math.fsum(x * x for x in h))


#: the smallest p-value reported: the smallest normal double. A true tail probability below it
#: (McNemar's with a million discordant items all one way is 10^-301030) is not representable;
#: it is reported as this bound, never as 0 (a p-value of 0 would claim certainty)
P_FLOOR = sys.float_info.min


def p_value_of(p: float) -> float:
    """A computed p-value as reported: at most 1, at least :data:`P_FLOOR` (nan stays nan)."""
    return p if math.isnan(p) else min(1.0, max(P_FLOOR, p))


def join_notes(*notes: str) -> str:
    return "; ".join(n for n in notes if n)


def _noise(values: Sequence[float]) -> float:
    """A standard error this small is rounding error of constant data (0.4 + 0.01 - 0.51 is not
    exactly -0.1), not spread: treat it as zero."""
    return 1e-12 * max(1.0, max((abs(v) for v in values), default=0.0))


def _finite(values: ArrayLike, what: str) -> list[float]:
    """``values`` as floats; a NaN or infinite one is the caller's error, said as such (not
    mistaken downstream for "too few items")."""
    out = [float(v) for v in values]
    for i, v in enumerate(out):
        if not math.isfinite(v):
            raise ValueError(f"{what}[{i}] is {v}: every value must be a finite number")
    return out


def item_interval(values: ArrayLike, *, binary: bool = False, clusters: Sequence[object] | None = None,
                  trials: int | None = None) -> Interval:
    """A 95% interval for the mean over items; ``values`` holds one number per item (its trials
    averaged), ``clusters`` one label per item (items sharing a document, conversation...),
    ``trials`` how many trials are behind the values (default: one per item).

    ``binary`` (every trial is 0 or 1, so item values are pass rates): Clopper-Pearson. With
    single trials and no clusters, the exact interval on passes / items; with repeats or
    clusters Korn and Graubard's version: the effective n is p(1 - p) / SE^2 (SE from the item
    means, cluster-robust with clusters; at most the number of trials; the number of items, or of
    clusters, when every item has the same value), scaled by (z / t_df)^2 for the df of the design.
    Otherwise: t interval on item means (cluster-robust when clustered: CR2, Bell-McCaffrey df);
    fewer than :data:`SMALL_N` unclustered scores in [0, 1] get the effective-n Clopper-Pearson
    interval (:func:`_small_bounded`), which holds its coverage on skewed grades where the t does not.
    """
    a = _finite(values, "values")
    n = len(a)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0, note="no values")
    mean = math.fsum(sorted(a)) / n
    dev = [x - mean for x in a]
    g_count: int | None = None
    warn = ""
    if clusters is not None:
        if len(clusters) != n:
            raise ValueError("one cluster label per item")
        cse = cluster_se(dev, clusters)
        se, g_count, df, warn = cse.se, cse.clusters, cse.df, cse.note
    else:
        se = math.sqrt(math.fsum(d * d for d in dev) / (n - 1) / n) if n > 1 else math.nan
        df = float(n - 1)
    few = f"too few {'clusters' if clusters is not None else 'items'} for an interval"
    if binary:
        plain = clusters is None and all(x in (0.0, 1.0) for x in a)
        if plain:
            lo, hi = clopper_pearson_interval(mean * n, n)
            return Interval(mean, lo, hi, n, None, "clopper-pearson", se, math.inf)
        if not df >= 1:
            return Interval(mean, math.nan, math.nan, n, g_count, "clopper-pearson-adjusted", se, df, note=few)
        var_srs = mean * (1.0 - mean)
        if se > 0 and var_srs > 0:
            n_eff = min(float(trials or n), var_srs / (se * se))
        else:
            n_eff = float(g_count or n)  # every item the same: only the units (items, clusters) count
        n_eff *= (Z975 / t_quantile_975(df)) ** 2 if df < 1e6 else 1.0
        lo, hi = clopper_pearson_interval(mean * n_eff, n_eff)
        return Interval(mean, lo, hi, n, g_count, "clopper-pearson-adjusted", se, df, note=warn)
    method = "cluster-t" if clusters is not None else "t"
    if not df >= 1 or math.isnan(se):
        return Interval(mean, math.nan, math.nan, n, g_count, method, se, df, note=few)
    if se <= _noise(a):
        return Interval(mean, mean, mean, n, g_count, method, 0.0, df,
                        note="every item has the same value: no spread, so the interval is that value")
    bounded = 0.0 <= min(a) and max(a) <= 1.0
    if bounded and clusters is None and n < SMALL_N and 0.0 < mean < 1.0:
        return _small_bounded(a, mean, se, df)
    h = t_quantile_975(df) * se
    lo, hi = mean - h, mean + h
    if bounded:
        # a score that stays in [0, 1] (similarities, judge grades) cannot average outside it;
        # cutting the interval there only removes impossible values, so coverage is unchanged
        lo, hi = max(lo, 0.0), min(hi, 1.0)
    return Interval(mean, lo, hi, n, g_count, method, se, df, note=warn)


#: below this many items a score in [0, 1] gets the effective-n Clopper-Pearson interval instead
#: of the t: on skewed judge grades (most items at the top of the scale) the t covered 0.87-0.90
SMALL_N = 100


def _small_bounded(a: list[float], mean: float, se: float, df: float) -> Interval:
    """A small sample of scores in [0, 1] (judge grades, similarities): Korn and Graubard's
    effective-n Clopper-Pearson, as for pass rates with repeats. The effective n is
    mean (1 - mean) / SE^2 (at least n: no score in [0, 1] spreads more than a pass/fail one),
    scaled by (z / t_df)^2; the beta quantiles make the interval asymmetric where the data are
    skewed against a bound, which the t cannot be. Coverage measured in
    benchmarks/bench_verdicts.py (skewed 5-point grades, n = 10-30: at least 0.93)."""
    n_eff = mean * (1.0 - mean) / (se * se) * (Z975 / t_quantile_975(df)) ** 2
    lo, hi = clopper_pearson_interval(mean * n_eff, n_eff)
    return Interval(mean, lo, hi, len(a), None, "effective-n-clopper-pearson", se, df)


# --- paired comparison --------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PairedDifference:
    """Candidate minus baseline over ``n`` paired units (items).

    ``method``: ``t`` (paired t), ``cluster-t``, ``agresti-min`` (pass/fail, single trials),
    ``agresti-min-t`` (pass/fail with repeats or clusters: pseudo-counts, item-level or
    cluster-robust SE, t quantile). ``note`` says plainly when there is no spread to test.
    """

    n: int
    candidate_mean: float
    baseline_mean: float
    diff: float
    sd: float  # SD of the per-unit differences
    lo: float  # 95% interval of the mean difference (nan when it cannot be computed)
    hi: float
    p_value: float  # two-sided: McNemar's exact for agresti-min, else from the interval's statistic
    se: float = math.nan  # standard error behind the interval
    df: float = math.nan  # its degrees of freedom (inf: normal quantile)
    method: str = "t"
    clusters: int | None = None
    discordant: float = math.nan  # share of units whose value changed (pass/fail data)
    note: str = ""
    # for the detectable drop: how many independent units a drop can sit in (n items, or about G
    # clusters: 1 / sum of squared cluster shares), and whether every value lies in [0, 1]
    units: float = math.nan
    bounded: bool = False
    break_size: float = 1.0  # what a unit that breaks loses on average: E[unit's baseline^2] / baseline mean

    @property
    def has_interval(self) -> bool:
        return not (math.isnan(self.lo) or math.isnan(self.hi))

    @property
    def centre(self) -> float:
        """The centre of the interval: the difference, or Agresti-Min's shrunken one (the
        pseudo-counts add two units and nothing to the sum)."""
        if self.method.startswith("agresti-min"):
            return self.diff * self.n / (self.n + 2.0)
        return self.diff

    def worse_p(self, bound: float = 0.0, lower_is_better: bool = False) -> float:
        """The p-value of the default policy's test that the change is worse than ``bound`` (on
        the gate's side, mirrored for a lower-is-better gate): the
        smallest two-sided level at which the interval lies entirely below ``bound`` (above, for
        a lower-is-better gate) *and* the reported test (McNemar's exact one, for single-trial
        pass/fail) rejects. At level 0.05 this is exactly the ``significant`` rule of
        :func:`gate_fails`; Holm's correction of a family of gates compares it with smaller levels."""
        if not self.has_interval or math.isnan(self.p_value):
            return math.nan
        # ``bound`` is on the gate's side: for a lower-is-better gate the difference is mirrored
        gap = bound - (-self.centre if lower_is_better else self.centre)
        if self.se > 0:
            z = gap / self.se
            p_int = 2.0 * (norm_sf(z) if math.isinf(self.df) else t_sf(z, self.df))
        else:
            p_int = 0.0 if gap > 0 else 1.0
        return min(1.0, max(p_int, self.p_value))


def paired_difference(candidate: ArrayLike, baseline: ArrayLike, *, binary: bool = False,
                      clusters: Sequence[object] | None = None) -> PairedDifference:
    """Mean paired difference (candidate - baseline) and its 95% interval.

    ``candidate[i]`` and ``baseline[i]`` belong to the same item; with repeats, pass each item's
    mean over its trials (trials of one item are correlated). ``binary``: the trials are pass/fail
    (0/1), so the interval is Agresti-Min's (a half pseudo-count in each cell of the 2x2 table,
    which keeps it from collapsing when few items change); otherwise the paired t. ``clusters``:
    one label per item; the SE becomes cluster-robust (CR2, Bell-McCaffrey df).
    """
    # plain floats: a few list passes, and no numpy import on a run's path
    c = _finite(candidate, "candidate")
    b = _finite(baseline, "baseline")
    if len(c) != len(b):
        raise ValueError("paired arrays differ in length")
    n = len(c)
    nan = math.nan
    if n == 0:
        return PairedDifference(0, nan, nan, nan, nan, nan, nan, nan, note="no paired items")
    if clusters is not None and len(clusters) != n:
        raise ValueError("one cluster label per item")
    d = [x - y for x, y in zip(c, b, strict=True)]
    # sums over sorted values: the same items in any order give bit-identical numbers
    mean_d = math.fsum(sorted(d)) / n
    cm, bm = math.fsum(sorted(c)) / n, math.fsum(sorted(b)) / n
    sd = math.sqrt(math.fsum(sorted((x - mean_d) ** 2 for x in d)) / (n - 1)) if n > 1 else nan
    disc = sum(1 for x in d if x != 0) / n
    if binary:
        return replace(_paired_binary(d, n, cm, bm, mean_d, sd, disc, clusters), break_size=_break_size(b, clusters))
    warn = ""
    units = float(n)
    if clusters is not None:
        cse = cluster_se([x - mean_d for x in d], clusters)
        se, g, df, method, warn, units = cse.se, cse.clusters, cse.df, "cluster-t", cse.note, cse.units
    else:
        se, g = (sd / math.sqrt(n) if n > 1 else nan), None
        df, method = float(n - 1), "t"
    bounded = min(min(c), min(b)) >= 0.0 and max(max(c), max(b)) <= 1.0
    size = _break_size(b, clusters)

    def result(lo: float, hi: float, p: float, se: float = se, note: str = "") -> PairedDifference:
        return PairedDifference(n, cm, bm, mean_d, sd, lo, hi, p, se=se, df=df, method=method, clusters=g,
                                discordant=disc, note=join_notes(note, warn), units=units, bounded=bounded,
                                break_size=size)

    if not df >= 1 or math.isnan(se):
        return result(nan, nan, nan,
                      note=f"too few {'clusters' if clusters is not None else 'items'} for an interval")
    noise = _noise(c + b)
    if se <= noise:
        same = abs(mean_d) <= noise
        note = "no item changed" if same else "every item changed by exactly the same amount: no spread, so no test"
        return result(mean_d, mean_d, 1.0 if same else nan, se=0.0, note=note)
    h = t_quantile_975(df) * se
    p = p_value_of(2.0 * t_sf(abs(mean_d) / se, df))
    return result(mean_d - h, mean_d + h, p)


def _break_size(baseline: list[float], clusters: Sequence[object] | None) -> float:
    """What a unit (item, or cluster) loses on average when it breaks to 0, weighted as breaks
    fall: E[b_u^2] / E[b_u] over units u with baseline mean b_u (1 for single pass/fail items,
    about the pass rate for clusters, about the mean for scores)."""
    if clusters is None:
        units = baseline
        weights = [1.0] * len(baseline)
    else:
        sums: dict[object, list[float]] = {}
        for x, g in zip(baseline, clusters, strict=True):
            acc = sums.setdefault(g, [0.0, 0.0])
            acc[0] += x
            acc[1] += 1.0
        units = [t / k for t, k in sums.values()]
        weights = [k for _, k in sums.values()]
    first = math.fsum(w * u for w, u in zip(weights, units, strict=True))
    second = math.fsum(w * u * u for w, u in zip(weights, units, strict=True))
    return second / first if first > 0 else 1.0


#: Agresti-Min pseudo-observations: half a count in each discordant cell (+1, -1), one in total
#: in the concordant cells (0); they add two units
_PSEUDO = ((1.0, 0.5), (-1.0, 0.5), (0.0, 1.0))


def agresti_min(worse: int, better: int, n: int) -> tuple[float, float, float, float]:
    """Agresti & Min (2005) interval for a paired difference of proportions from the 2x2 table:
    ``worse`` items went pass -> fail, ``better`` fail -> pass, of ``n``. Half a count is added
    to each cell, then the Wald interval. Returns (centre, se, lo, hi)."""
    big_n = n + 2.0
    centre = (better - worse) / big_n
    second = (better + worse + 1.0) / big_n
    se = math.sqrt(max(0.0, second - centre * centre) / big_n)
    return centre, se, max(-1.0, centre - Z975 * se), min(1.0, centre + Z975 * se)


def _paired_binary(dl: list[float], n: int, cm: float, bm: float, mean_d: float, sd: float, disc: float,
                   clusters: Sequence[object] | None) -> PairedDifference:
    plain = clusters is None and all(x in (-1.0, 0.0, 1.0) for x in dl)
    big_n = n + 2.0
    centre = math.fsum(sorted(dl)) / big_n  # the pseudo-counts add +0.5 - 0.5 + 0 = 0
    warn = ""
    units = float(n)
    if plain:
        worse, better = dl.count(-1.0), dl.count(1.0)
        centre, se, lo, hi = agresti_min(worse, better, n)
        df, method, g = math.inf, "agresti-min", None
    else:
        vals = dl + [v for v, _ in _PSEUDO]
        wts = [1.0] * n + [w for _, w in _PSEUDO]
        if clusters is not None:
            labels: list[object] = [("c", x) for x in clusters]
            labels += [("pseudo", i) for i in range(len(_PSEUDO))]
            g = len(set(clusters))
            method = "agresti-min-cluster-t"
        else:
            labels, g = list(range(n + len(_PSEUDO))), None
            method = "agresti-min-t"
        units = g if g is not None else n
        if units < 2:
            # (no standard error either: there is nothing to compute one from)
            return PairedDifference(n, cm, bm, mean_d, sd, math.nan, math.nan, math.nan, math.nan, float(units - 1),
                                    method, g, disc,
                                    note=f"too few {'clusters' if clusters is not None else 'items'} for an interval")
        dev = [v - centre for v in vals]
        if clusters is not None:
            # CR2: every cluster (and pseudo-count) its own leverage; the df count the real clusters
            cse = cluster_se(dev, labels, wts, real=[True] * n + [False] * len(_PSEUDO))
            se, df, warn, units = cse.se, cse.df, cse.note, cse.units
        else:
            # items as units: the usual variance of a weighted mean, n / (n - 1) for the n real items
            total_w = math.fsum(wts)
            se = math.sqrt(units / (units - 1) * math.fsum(sorted((wi * x) ** 2 for wi, x in zip(wts, dev, strict=True))))
            se /= total_w
            df = float(units - 1)
        q = t_quantile_975(df)
        lo, hi = max(-1.0, centre - q * se), min(1.0, centre + q * se)
    if plain:
        p = mcnemar_exact(worse, better)
    else:
        stat = centre / se if se > 0 else 0.0
        p = p_value_of(2.0 * t_sf(abs(stat), df))
    note = join_notes("no item changed" if disc == 0 else "", warn)
    return PairedDifference(n, cm, bm, mean_d, sd, lo, hi, p, se, df, method, g, disc, note, units, True)


def paired_bootstrap_ci(candidate: ArrayLike, baseline: ArrayLike, *, n_boot: int = 2000, seed: int = 20240601,
                        level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean paired difference (items resampled with their pair).

    The seed is fixed and the differences are sorted first, so the same items in any order give
    the same interval. Not printed by evalrun: at small n its coverage is poor for pass/fail
    data (see benchmarks/bench_verdicts.py); kept as a building block.
    """
    import numpy as np

    d = np.sort(np.asarray(candidate, dtype=float) - np.asarray(baseline, dtype=float))
    n = d.size
    if n < 2:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    values, counts = np.unique(d, return_counts=True)
    if values.size <= 64:
        # few distinct differences (pass/fail scorers: -1, 0, +1): drawing how often each is
        # resampled is the same distribution as drawing n indexes, at a fraction of the cost
        means = rng.multinomial(n, counts / n, size=n_boot) @ values / n
    else:
        means = np.empty(n_boot)
        # resample in chunks so a 100,000-item run does not allocate n_boot * n indexes at once
        rows = max(1, min(n_boot, 4_000_000 // n))
        for start in range(0, n_boot, rows):
            k = min(rows, n_boot - start)
            idx = rng.integers(0, n, size=(k, n))
            means[start:start + k] = d[idx].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return (float(lo), float(hi))


def _log_binom_pmf(k: int, n: int, p: float) -> float:
    if p <= 0.0:
        return 0.0 if k == 0 else -math.inf
    if p >= 1.0:
        return 0.0 if k == n else -math.inf
    return (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
            + k * math.log(p) + (n - k) * math.log1p(-p))


def _binom_half_cdf(k: int, n: int) -> float:
    """P(X <= k) for X ~ Binomial(n, 1/2), summed in log space so large n does not overflow."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    terms = [_log_binom_pmf(i, n, 0.5) for i in range(k + 1)]
    top = max(terms)
    return math.exp(top) * math.fsum(math.exp(t - top) for t in terms)


def mcnemar_exact(regressions: int, improvements: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pairs (passed->failed, failed->passed).

    Under "no change" each discordant pair is equally likely to go either way, so the count
    of one kind is Binomial(b + c, 1/2).
    """
    b, c = int(regressions), int(improvements)
    if b < 0 or c < 0 or b != regressions or c != improvements:
        raise ValueError(f"McNemar needs non-negative whole counts (got {regressions}, {improvements})")
    n = b + c
    if n == 0:
        return 1.0
    return p_value_of(2.0 * _binom_half_cdf(min(b, c), n))


def min_detectable_difference(sd: float, n: int, *, alpha: float = 0.05, power: float = 0.80) -> float:
    """The smallest true mean difference a two-sided paired t test on ``n`` items with per-item
    difference SD ``sd`` detects with the given power: (t_{1-a/2} + t_{power}) * sd / sqrt(n)
    (the usual approximation; :func:`detectable_drop` is exact for a gate)."""
    if n < 2 or math.isnan(sd):
        return math.nan
    df = n - 1
    return (t_ppf(1.0 - alpha / 2.0, df) + t_ppf(power, df)) * sd / math.sqrt(n)


# --- gate power ---------------------------------------------------------------------------

#: gate policies (see gates.py): ``significant`` fails when the drop is significantly worse than
#: the baseline and the point estimate is beyond the margin; ``point`` when the point estimate is
#: beyond the margin; ``strict`` unless the interval shows the drop is within the margin
POLICIES = ("significant", "point", "strict")


def gate_fails(diff: float, lo: float, hi: float, margin: float, policy: str, p_value: float = math.nan) -> bool:
    """Whether a ``>= baseline + margin`` gate fails on a paired difference with interval [lo, hi].
    Under ``significant``, a ``p_value`` (two-sided; McNemar's exact one for single-trial
    pass/fail data) must also be below 0.05, so at most 2.5% of unchanged runs fail."""
    eps = 1e-12
    misses = diff < margin - eps
    if policy == "point":
        return misses
    if policy == "strict":
        return not lo >= margin - eps
    return misses and hi < max(0.0, margin) - eps and not p_value >= 0.05


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (nan stays nan and is not counted in the family): a
    hypothesis is rejected at family-wise level a when its adjusted p is below a."""
    idx = sorted((i for i, p in enumerate(p_values) if not math.isnan(p)), key=lambda i: p_values[i])
    m = len(idx)
    out = [math.nan] * len(p_values)
    running = 0.0
    for rank, i in enumerate(idx):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        out[i] = running
    return out


def _chi_nodes(df: float, points: int = 161) -> list[tuple[float, float]]:
    """Quadrature nodes (u, weight) for u = sqrt(V / df), V ~ chi-square(df): Simpson's rule on
    the density of u, renormalised so the weights sum to one."""
    if math.isinf(df) or df > 5e4:
        return [(1.0, 1.0)]
    spread = 12.0 / math.sqrt(2.0 * df)
    lo, hi = max(1e-9, 1.0 - spread), 1.0 + spread + (6.0 if df < 3 else 0.0)
    h = (hi - lo) / (points - 1)
    k = df / 2.0
    log_c = math.log(2.0) + k * math.log(k) - math.lgamma(k)
    nodes = []
    for i in range(points):
        u = lo + i * h
        w = 1.0 if i in (0, points - 1) else (4.0 if i % 2 else 2.0)
        nodes.append((u, w * math.exp(log_c + (df - 1.0) * math.log(u) - k * u * u)))
    total = math.fsum(w for _, w in nodes)
    return [(u, w / total) for u, w in nodes]


def _fail_probability_t(drop: float, se: float, df: float, margin: float, policy: str) -> float:
    """P(gate fails) when the estimate is Normal(-drop, se^2) and its estimated SE is
    se * sqrt(chi2_df / df), independent (normal data); exact noncentral-t power by quadrature."""
    if policy == "point":
        return norm_cdf((margin + drop) / se)
    q = t_quantile_975(df) if not math.isinf(df) and df < 1e6 else Z975
    total = 0.0
    for u, w in _chi_nodes(df):
        s = se * u
        if policy == "strict":  # fails unless diff - q s >= margin
            total += w * norm_cdf((margin + q * s + drop) / se)
        else:  # diff < margin and diff + q s < max(0, margin)
            total += w * norm_cdf((min(margin, max(0.0, margin) - q * s) + drop) / se)
    return min(1.0, total)


def _fail_probability_binary(drop: float, n: int, churn: float, margin: float, policy: str) -> float:
    """Exact P(gate fails) for n single-trial pass/fail items: a share ``churn`` of items changes
    state with no real change (half each way) and a share ``drop`` more goes pass -> fail."""
    q = min(1.0, churn + drop)
    if q <= 0:
        return 1.0 if gate_fails(0.0, 0.0, 0.0, margin, policy) else 0.0
    theta = min(1.0, (churn / 2.0 + drop) / q)  # share of the changed items that regressed
    mu, sd = n * q, math.sqrt(n * q * (1 - q)) if q < 1 else 0.0
    m_lo, m_hi = max(0, int(mu - 9 * sd - 2)), min(n, int(mu + 9 * sd + 3))
    total = 0.0
    for m in range(m_lo, m_hi + 1):
        pm = math.exp(_log_binom_pmf(m, n, q))
        if pm < 1e-15:
            continue
        b_star = _first_failing_b(n, m, margin, policy)
        if b_star is None:
            continue
        # P(Binomial(m, theta) >= b_star) = I_theta(b_star, m - b_star + 1)
        total += pm * (1.0 if b_star == 0 else _betainc(b_star, m - b_star + 1, theta))
    return min(1.0, total)


#: up to this many single-trial pass/fail items the power is summed exactly; beyond, the normal
#: limit is used (within a point of the exact sum there, and thousands of times faster)
_EXACT_POWER_MAX_N = 1000

_B_STAR: dict[tuple[int, int, float, str], int | None] = {}


def _first_failing_b(n: int, m: int, margin: float, policy: str) -> int | None:
    """The smallest number of regressions (of m discordant items) that fails the gate, by
    bisection: failing is monotone in it (more regressions, fewer improvements: a lower
    difference, a lower interval and a smaller McNemar p on the worse side)."""
    key = (n, m, margin, policy)
    if key not in _B_STAR:
        def fails(b: int) -> bool:
            _, _, lo, hi = agresti_min(b, m - b, n)
            p = mcnemar_exact(b, m - b) if policy == "significant" else math.nan
            return gate_fails((m - 2 * b) / n, lo, hi, margin, policy, p)

        found = _first_true(fails, -1, m) if fails(m) else None
        if len(_B_STAR) > 200_000:
            _B_STAR.clear()
        _B_STAR[key] = found
    return _B_STAR[key]


def gate_fail_probability(drop: float, paired: PairedDifference, margin: float, policy: str) -> float:
    """How often a ``>= baseline + margin`` gate under ``policy`` fails when the true difference
    is ``-drop``, on a set like this one (same n, clusters and spread or discordance)."""
    if paired.method == "agresti-min":
        churn = _churn(paired)
        if paired.n <= _EXACT_POWER_MAX_N:
            return _fail_probability_binary(drop, paired.n, churn, margin, policy)
        # many items: the normal limit (the difference of n multinomial changes)
        q = min(1.0, churn + drop)
        se = math.sqrt(max(q - drop * drop, 1e-12) / paired.n)
        return _fail_probability_t(drop, se, math.inf, margin, policy)
    se = _alt_se(drop, paired)
    if not se > 0 or math.isnan(paired.df):
        return math.nan
    return _fail_probability_t(drop, se, paired.df, margin, policy)


def _churn(paired: PairedDifference) -> float:
    """The share of items that change with no real change: all the discordance the set shows,
    less the difference when that is significant (a real change explains part of it)."""
    if math.isnan(paired.discordant):
        return 0.0
    if paired.p_value < 0.05:
        return max(0.0, paired.discordant - abs(paired.diff))
    return paired.discordant


def _alt_se(drop: float, paired: PairedDifference) -> float:
    """The SE of the difference under the alternative users face: a drop of ``drop`` that is a
    share of the units breaking (items, or whole clusters when the drop sits in some of them),
    not every item shifting a little. For scores in [0, 1] (pass/fail included) units break to
    0, losing ``break_size`` on average (1 for a passing item; about the pass rate for a cluster,
    the mean for a score): that adds drop (break_size - drop) / units to the variance, units
    being the items or the effective number of clusters (1 / sum of squared cluster shares).
    For other scores there is no floor to break to: the observed SE (every item shifting)."""
    if paired.method.startswith("agresti-min") or paired.bounded:
        units = paired.units if paired.units > 0 else float(paired.n)
        return math.sqrt(paired.se ** 2 + max(drop * (paired.break_size - drop), 0.0) / units)
    return paired.se


def detectable_drop(paired: PairedDifference, margin: float, policy: str, power: float = 0.80) -> float:
    """The true drop a ``>= baseline + margin`` gate under ``policy`` catches with ``power`` on
    this set (nan when the set gives no basis: no spread, too few items)."""
    if paired.n < 2 or not paired.has_interval:
        return math.nan
    if paired.method != "agresti-min" and not (paired.se > 0):
        return math.nan

    def prob(x: float) -> float:
        return gate_fail_probability(x, paired, margin, policy)

    if prob(0.0) >= power:
        return 0.0
    # bracket the answer from below (large drops are costly to evaluate on pass/fail data)
    limit = 1.0 if paired.method.startswith("agresti-min") else abs(margin) * 4 + 40 * paired.se + 1e-6
    lo, hi = 0.0, min(limit, max(abs(margin), 2.0 / max(paired.n, 1), paired.se if paired.se > 0 else 0.0, 1e-6))
    while not prob(hi) >= power:
        if hi >= limit:
            return math.nan
        lo, hi = hi, min(limit, 2.0 * hi)
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        if prob(mid) >= power:
            hi = mid
        else:
            lo = mid
        if hi - lo < 1e-5:
            break
    return hi


def scaled(paired: PairedDifference, n: int) -> PairedDifference:
    """The same set at ``n`` items: the same churn, spread and cluster sizes, the standard error
    and the units scaled with n (what :func:`items_needed` searches over)."""
    factor = paired.n / n
    df = paired.df if math.isinf(paired.df) else max(1.0, (paired.df + 1.0) / factor - 1.0)
    return replace(paired, n=n, se=paired.se * math.sqrt(factor), df=df,
                   units=paired.units / factor if paired.units > 0 else float(n))


def items_needed(paired: PairedDifference, drop: float, margin: float, policy: str, power: float = 0.80,
                 limit: int = 1_000_000) -> float:
    """How many items a ``>= baseline + margin`` gate under ``policy`` needs to catch a true
    ``drop`` with ``power``, on sets like this one (its churn or spread, its cluster sizes);
    nan when even ``limit`` items would not (a drop within the margin, say)."""
    if paired.n < 2 or (paired.method != "agresti-min" and not paired.se > 0):
        return math.nan

    def enough(n: int) -> bool:
        return gate_fail_probability(drop, scaled(paired, n), margin, policy) >= power

    if not enough(limit):
        return math.nan
    return float(_first_true(enough, 1, limit))  # one item tells nothing


def _first_true(pred: Callable[[int], bool], lo: int, hi: int) -> int:
    """The smallest k in (lo, hi] with ``pred(k)``, by bisection, for a predicate monotone in k
    that holds at ``hi`` (and is taken not to hold at ``lo``)."""
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if pred(mid):
            hi = mid
        else:
            lo = mid
    return hi


# --- repeats ------------------------------------------------------------------------------

def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimate of P(at least one of k trials passes) from n trials with c passes."""
    if k < 1 or k > n or c < 0 or c > n:
        raise ValueError(f"pass@k needs 1 <= k <= n and 0 <= c <= n (n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def pass_hat_k(n: int, c: int, k: int) -> float:
    """Unbiased estimate of P(all k trials pass) (pass^k) from n trials with c passes."""
    if k < 1 or k > n or c < 0 or c > n:
        raise ValueError(f"pass^k needs 1 <= k <= n and 0 <= c <= n (n={n}, c={c}, k={k})")
    return math.comb(c, k) / math.comb(n, k)
