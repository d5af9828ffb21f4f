"""Statistics for one run and for a run against its baseline (numpy only, no scipy at runtime).

- ``mean_ci``: a mean and its 95% t interval (summary.json)
- ``paired_difference``: candidate minus baseline on paired units with a t interval; the
  caller passes one value per *item* (trials already averaged), so repeats never inflate n
- ``paired_bootstrap_ci``: a percentile bootstrap of the same mean difference, fixed seed
- ``mcnemar_exact``: the exact (binomial) McNemar test on discordant pass/fail pairs
- ``min_detectable_difference``: what a paired t test on n items can detect at 80% power
- ``pass_at_k`` / ``pass_hat_k``: per-item estimators from n trials with c passes
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
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


_T975_CACHE: dict[int, float] = {}


def t_quantile_975(df: int) -> float:
    """The 97.5% quantile of Student's t: the multiplier of a two-sided 95% interval."""
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
    a = sorted(float(v) for v in values)
    if not a:
        return None
    pos = (len(a) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(a) - 1)
    return a[lo] + (a[hi] - a[lo]) * (pos - lo)


# --- paired comparison --------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PairedDifference:
    """Candidate minus baseline over ``n`` paired units (items)."""

    n: int
    candidate_mean: float
    baseline_mean: float
    diff: float
    sd: float  # SD of the per-unit differences
    lo: float  # 95% t interval of the mean difference (nan when n < 2)
    hi: float
    p_value: float  # two-sided paired t test of "no difference" (nan when undefined)

    @property
    def has_interval(self) -> bool:
        return not (math.isnan(self.lo) or math.isnan(self.hi))


def paired_difference(candidate: ArrayLike, baseline: ArrayLike) -> PairedDifference:
    """Mean paired difference and its t interval.

    ``candidate[i]`` and ``baseline[i]`` belong to the same item. With repeats, pass each
    item's mean over its trials: trials of one item are correlated, so treating them as
    independent units would make the interval too narrow.
    """
    import numpy as np

    c = np.asarray(candidate, dtype=float)
    b = np.asarray(baseline, dtype=float)
    if c.shape != b.shape:
        raise ValueError("paired arrays differ in length")
    n = int(c.size)
    if n == 0:
        nan = math.nan
        return PairedDifference(0, nan, nan, nan, nan, nan, nan, nan)
    d = c - b
    mean_d = float(d.mean())
    if n < 2:
        return PairedDifference(n, float(c.mean()), float(b.mean()), mean_d, math.nan, math.nan, math.nan,
                                math.nan)
    sd = float(d.std(ddof=1))
    se = sd / math.sqrt(n)
    h = t_quantile_975(n - 1) * se
    if se > 0:
        t = mean_d / se
        p = 2.0 * (1.0 - t_cdf(abs(t), n - 1))
    else:
        p = 1.0 if mean_d == 0 else 0.0
    return PairedDifference(n, float(c.mean()), float(b.mean()), mean_d, sd, mean_d - h, mean_d + h, p)


def paired_bootstrap_ci(candidate: ArrayLike, baseline: ArrayLike, *, n_boot: int = 2000, seed: int = 20240601,
                        level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean paired difference (items resampled with their pair).

    The seed is fixed so the same two runs always give the same interval.
    """
    import numpy as np

    d = np.asarray(candidate, dtype=float) - np.asarray(baseline, dtype=float)
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


def _binom_half_cdf(k: int, n: int) -> float:
    """P(X <= k) for X ~ Binomial(n, 1/2), summed in log space so large n does not overflow."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    log_half_n = -n * math.log(2.0)
    lg_n1 = math.lgamma(n + 1)
    terms = [lg_n1 - math.lgamma(i + 1) - math.lgamma(n - i + 1) + log_half_n for i in range(k + 1)]
    top = max(terms)
    return math.exp(top) * math.fsum(math.exp(t - top) for t in terms)


def mcnemar_exact(regressions: int, improvements: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pairs (passed->failed, failed->passed).

    Under "no change" each discordant pair is equally likely to go either way, so the count
    of one kind is Binomial(b + c, 1/2).
    """
    b, c = int(regressions), int(improvements)
    n = b + c
    if n == 0:
        return 1.0
    return min(1.0, 2.0 * _binom_half_cdf(min(b, c), n))


def min_detectable_difference(sd: float, n: int, *, alpha: float = 0.05, power: float = 0.80) -> float:
    """The smallest true mean difference a two-sided paired t test on ``n`` items with per-item
    difference SD ``sd`` detects with the given power: (t_{1-a/2} + t_{power}) * sd / sqrt(n)."""
    if n < 2 or math.isnan(sd):
        return math.nan
    df = n - 1
    return (t_ppf(1.0 - alpha / 2.0, df) + t_ppf(power, df)) * sd / math.sqrt(n)


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
