"""evalrun.stats against scipy on generated data, and interval coverage by simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from scipy.special import comb

from evalrun import stats


@pytest.mark.parametrize("df", [1, 2, 3, 5, 9, 29, 30, 31, 50, 120, 1000, 100_000])
def test_t_quantiles_match_scipy(df):
    for p in (0.6, 0.8, 0.9, 0.975, 0.995):
        assert stats.t_ppf(p, df) == pytest.approx(sps.t.ppf(p, df), rel=1e-8)
        assert stats.t_ppf(1 - p, df) == pytest.approx(sps.t.ppf(1 - p, df), rel=1e-8)
    assert stats.t_quantile_975(df) == pytest.approx(sps.t.ppf(0.975, df), rel=1e-8)


def test_t_cdf_matches_scipy():
    rng = np.random.default_rng(1)
    for t, df in zip(rng.normal(0, 3, 200), rng.integers(1, 300, 200), strict=True):
        assert stats.t_cdf(float(t), int(df)) == pytest.approx(sps.t.cdf(t, df), abs=1e-12)


def test_mean_ci_matches_scipy():
    rng = np.random.default_rng(2)
    for n in (2, 3, 10, 57, 400):
        x = rng.normal(0.6, 0.2, n)
        m, lo, hi = stats.mean_ci(x)
        ref = sps.t.interval(0.95, n - 1, loc=x.mean(), scale=sps.sem(x))
        assert m == pytest.approx(x.mean())
        assert (lo, hi) == pytest.approx(ref, rel=1e-9)
    assert stats.mean_ci([0.5]) == (0.5, 0.5, 0.5)
    assert all(math.isnan(v) for v in stats.mean_ci([]))


@pytest.mark.parametrize("n", [2, 5, 30, 200])
def test_paired_difference_matches_scipy(n):
    rng = np.random.default_rng(n)
    base = rng.uniform(0, 1, n)
    cand = np.clip(base + rng.normal(-0.05, 0.1, n), 0, 1)
    pd = stats.paired_difference(cand, base)
    d = cand - base
    ref = sps.ttest_rel(cand, base)
    lo, hi = ref.confidence_interval(0.95)
    assert pd.n == n
    assert pd.diff == pytest.approx(d.mean())
    assert pd.sd == pytest.approx(d.std(ddof=1))
    assert (pd.lo, pd.hi) == pytest.approx((lo, hi), rel=1e-8)
    assert pd.p_value == pytest.approx(ref.pvalue, rel=1e-6, abs=1e-12)
    assert pd.candidate_mean == pytest.approx(cand.mean()) and pd.baseline_mean == pytest.approx(base.mean())


def test_paired_difference_degenerate():
    one = stats.paired_difference([1.0], [0.0])
    assert one.diff == 1.0 and not one.has_interval
    same = stats.paired_difference([1, 0, 1], [1, 0, 1])
    assert same.diff == 0 and (same.lo, same.hi) == (0, 0) and same.p_value == 1.0
    with pytest.raises(ValueError):
        stats.paired_difference([1, 2], [1])


def test_bootstrap_is_seeded_and_close_to_scipy():
    rng = np.random.default_rng(7)
    base = rng.binomial(1, 0.8, 150).astype(float)
    cand = np.where(rng.uniform(size=150) < 0.1, 1 - base, base)
    a = stats.paired_bootstrap_ci(cand, base)
    assert a == stats.paired_bootstrap_ci(cand, base)  # fixed seed: same runs, same interval
    ref = sps.bootstrap((cand - base,), np.mean, confidence_level=0.95, n_resamples=20_000,
                        method="percentile", random_state=3).confidence_interval
    assert a[0] == pytest.approx(ref.low, abs=0.01)
    assert a[1] == pytest.approx(ref.high, abs=0.01)
    assert math.isnan(stats.paired_bootstrap_ci([1.0], [0.0])[0])


def test_bootstrap_chunks_large_inputs():
    rng = np.random.default_rng(8)
    d = rng.normal(0.01, 0.2, 50_000)
    lo, hi = stats.paired_bootstrap_ci(d, np.zeros_like(d), n_boot=400)
    se = d.std(ddof=1) / math.sqrt(d.size)
    assert lo == pytest.approx(d.mean() - 1.96 * se, abs=0.3 * se)
    assert hi == pytest.approx(d.mean() + 1.96 * se, abs=0.3 * se)


@pytest.mark.parametrize(("b", "c"), [(0, 0), (1, 0), (0, 5), (3, 3), (7, 2), (12, 30), (400, 330), (2500, 2400)])
def test_mcnemar_exact_matches_scipy_binomtest(b, c):
    expected = 1.0 if b + c == 0 else sps.binomtest(b, b + c, 0.5).pvalue
    assert stats.mcnemar_exact(b, c) == pytest.approx(expected, rel=1e-9, abs=1e-300)


@pytest.mark.parametrize(("sd", "n"), [(0.3, 10), (0.3, 20), (0.5, 100), (0.1, 1000)])
def test_mde_has_80_percent_power(sd, n):
    mde = stats.min_detectable_difference(sd, n)
    # power of the two-sided paired t test at effect size mde/sd, via the noncentral t
    df, nc = n - 1, mde / sd * math.sqrt(n)
    crit = sps.t.ppf(0.975, df)
    power = sps.nct.sf(crit, df, nc) + sps.nct.cdf(-crit, df, nc)
    # the formula is the usual approximation; from 10 items on, exact power is within two points
    assert power == pytest.approx(0.80, abs=0.02)
    assert mde == pytest.approx((sps.t.ppf(0.975, df) + sps.t.ppf(0.8, df)) * sd / math.sqrt(n))
    assert math.isnan(stats.min_detectable_difference(0.2, 1))


def test_pass_at_k_and_pass_hat_k():
    for n in range(1, 9):
        for c in range(n + 1):
            for k in range(1, n + 1):
                assert stats.pass_at_k(n, c, k) == pytest.approx(1 - comb(n - c, k) / comb(n, k))
                assert stats.pass_hat_k(n, c, k) == pytest.approx(comb(c, k) / comb(n, k))
    # with one trial both are the pass rate
    assert stats.pass_at_k(1, 1, 1) == stats.pass_hat_k(1, 1, 1) == 1.0
    # k = n: pass@n is "any passed", pass^n is "all passed"
    assert stats.pass_at_k(4, 1, 4) == 1.0 and stats.pass_hat_k(4, 3, 4) == 0.0
    with pytest.raises(ValueError):
        stats.pass_at_k(3, 1, 4)


def _simulate(rng: np.random.Generator, n_items: int, repeats: int) -> tuple[np.ndarray, np.ndarray, float]:
    """One comparison on a fresh sample of items. Each item has a pass probability; the
    candidate loses a tenth of it. The population's true difference is known exactly."""
    a, b = 4.0, 1.5
    p_base = rng.beta(a, b, n_items)
    p_cand = 0.9 * p_base
    true_diff = -0.1 * a / (a + b)
    base = rng.binomial(repeats, p_base) / repeats
    cand = rng.binomial(repeats, p_cand) / repeats
    return cand, base, true_diff


@pytest.mark.parametrize(("n_items", "repeats"), [(40, 1), (60, 3)])
def test_t_interval_coverage(n_items, repeats):
    rng = np.random.default_rng(12345 + n_items)
    covered = 0
    for _ in range(500):
        cand, base, true_diff = _simulate(rng, n_items, repeats)
        pd = stats.paired_difference(cand, base)
        covered += pd.lo <= true_diff <= pd.hi
    assert covered / 500 >= 0.93, covered / 500


def test_trials_as_units_would_undercover():
    """Why items, not trials, are the unit: when the change helps some items and hurts others,
    an item's trials move together, and an interval that treats them as independent is too narrow."""
    rng = np.random.default_rng(99)
    covered_items = covered_trials = 0
    n_items, repeats = 40, 5
    for _ in range(500):
        p_base = rng.uniform(0.3, 0.6, n_items)
        p_cand = p_base + rng.choice([-0.3, 0.3], n_items)  # true mean difference: exactly 0
        base = rng.binomial(1, np.repeat(p_base, repeats)).astype(float)
        cand = rng.binomial(1, np.repeat(p_cand, repeats)).astype(float)
        by_item = stats.paired_difference(cand.reshape(n_items, repeats).mean(1),
                                          base.reshape(n_items, repeats).mean(1))
        by_trial = stats.paired_difference(cand, base)
        covered_items += by_item.lo <= 0.0 <= by_item.hi
        covered_trials += by_trial.lo <= 0.0 <= by_trial.hi
    assert covered_items / 500 >= 0.93, covered_items / 500
    assert covered_trials / 500 < 0.90, covered_trials / 500


def test_bootstrap_coverage():
    """The percentile bootstrap runs a little under nominal at small n (about 94% here), so it
    gets more simulations than the t interval for a tight estimate, and a 92.5% floor."""
    rng = np.random.default_rng(777)
    covered = 0
    sims = 2000
    for i in range(sims):
        cand, base, true_diff = _simulate(rng, 80, 1)
        lo, hi = stats.paired_bootstrap_ci(cand, base, n_boot=1000, seed=i)
        covered += lo <= true_diff <= hi
    assert covered / sims >= 0.925, covered / sims


def test_one_repeated_pass_fail_item_has_no_interval_rather_than_a_crash():
    """One item whose trials were averaged (0.5 vs 1.0): too few items for an interval. Found
    by the type checker: this path read a standard error it had not computed yet."""
    d = stats.paired_difference([1.0], [0.5], binary=True)
    assert d.diff == 0.5 and math.isnan(d.lo) and math.isnan(d.se) and d.note == "too few items for an interval"
