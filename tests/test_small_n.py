"""Small samples of scores in [0, 1] (judge grades, similarities): the effective-n Clopper-Pearson
interval against statsmodels' beta interval on the same effective counts, and a seeded cell of
benchmarks/bench_verdicts.py (skewed 5-point grades at n = 20)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.proportion import proportion_confint

from benchmarks import bench_verdicts as bench
from evalrun import stats


@pytest.mark.parametrize("n", [5, 12, 20, 29, 60])
def test_small_bounded_means_get_the_effective_n_clopper_pearson(n):
    rng = np.random.default_rng(n)
    x = rng.choice([0.0, 0.25, 0.5, 0.75, 1.0], n, p=[0.02, 0.03, 0.05, 0.2, 0.7])
    x[0], x[1] = 0.5, 1.0  # never constant
    iv = stats.item_interval(x.tolist())
    m, se = x.mean(), x.std(ddof=1) / math.sqrt(n)
    n_eff = m * (1 - m) / se**2 * (sps.norm.ppf(0.975) / sps.t.ppf(0.975, n - 1)) ** 2
    ref = proportion_confint(m * n_eff, n_eff, method="beta")
    assert iv.method == "effective-n-clopper-pearson" and iv.n == n
    assert (iv.lo, iv.hi) == pytest.approx(ref, abs=1e-9)
    # skewed towards the top: the interval is asymmetric, longer below the mean
    assert m - iv.lo > iv.hi - m


def test_large_unbounded_or_clustered_scores_keep_the_t():
    rng = np.random.default_rng(3)
    assert stats.item_interval(rng.uniform(0, 1, stats.SMALL_N).tolist()).method == "t"
    assert stats.item_interval(rng.normal(3, 1, 20).tolist()).method == "t"  # not a [0, 1] score
    clustered = stats.item_interval(rng.uniform(0, 1, 20).tolist(), clusters=[i % 5 for i in range(20)])
    assert clustered.method == "cluster-t"
    same = stats.item_interval([0.5] * 8)
    assert same.lo == same.hi == 0.5 and "same value" in same.note


def test_skewed_grades_at_n_20_are_covered():
    """Seeded cell of the benchmark (1000 runs; the benchmark runs 2000 per cell and more shapes):
    the t interval covered 0.88 here."""
    ours, plain = bench.likert_coverage(np.random.default_rng(11), 20, "top-heavy (70% top grade)", reps=1000)
    assert ours >= 0.935 and plain < 0.91
