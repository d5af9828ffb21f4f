"""evalrun.agreement against statsmodels and scipy, and the kappa interval's coverage by
simulation."""

from __future__ import annotations

import random

import numpy as np
import pytest
from scipy.stats import spearmanr
from statsmodels.stats.inter_rater import aggregate_raters, cohens_kappa
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss

from evalrun.agreement import binary_agreement, cohen_kappa, fleiss_kappa, spearman


def _pairs(seed: int, n: int, k: int, agree: float) -> tuple[list[int], list[int]]:
    rng = random.Random(seed)
    y1 = [rng.randrange(k) for _ in range(n)]
    y2 = [v if rng.random() < agree else rng.randrange(k) for v in y1]
    return y1, y2


@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
@pytest.mark.parametrize("seed,n,k,agree", [(1, 200, 4, 0.6), (2, 40, 3, 0.3), (3, 1000, 5, 0.9), (4, 25, 2, 0.5)])
def test_kappa_and_its_standard_error_match_statsmodels(weights, seed, n, k, agree):
    y1, y2 = _pairs(seed, n, k, agree)
    table = np.zeros((k, k))
    for a, b in zip(y1, y2, strict=True):
        table[a, b] += 1
    ref = cohens_kappa(table, wt=weights) if weights else cohens_kappa(table)
    ours = cohen_kappa(y1, y2, labels=list(range(k)), weights=weights)
    assert ours.value == pytest.approx(ref.kappa, abs=1e-12)
    assert ours.se == pytest.approx(ref.std_kappa, rel=1e-9)
    assert ours.ci[0] == pytest.approx(max(-1, ref.kappa - 1.959963984540054 * ref.std_kappa), abs=1e-9)


def test_undefined_kappa_is_none_with_a_reason_never_one():
    k = cohen_kappa(["a"] * 10, ["a"] * 10)
    assert k.value is None and k.ci is None and "chance agreement is 1" in k.reason
    assert k.observed == 1.0
    assert cohen_kappa([], []).value is None
    f = fleiss_kappa([["x", "x"], ["x", "x"]])
    assert f.value is None and f.reason


def test_binary_agreement_counts_and_rates():
    judge = [True, True, False, False, True, False]
    human = [True, False, False, True, True, False]
    b = binary_agreement(judge, human)
    assert (b.tp, b.fp, b.fn, b.tn) == (2, 1, 1, 2)
    d = b.to_dict()
    assert d["tpr"]["value"] == round(2 / 3, 4) and d["tnr"]["value"] == round(2 / 3, 4)
    assert d["precision"]["value"] == round(2 / 3, 4) and d["base_rate"] == 0.5
    assert d["kappa"]["kappa"] == pytest.approx(1 / 3, abs=1e-4)


def test_fleiss_and_spearman_match_references():
    rng = random.Random(5)
    ratings = [[rng.choice("abc") if rng.random() < 0.5 else "a" for _ in range(4)] for _ in range(80)]
    table = aggregate_raters(np.array(ratings))[0]
    assert fleiss_kappa(ratings).value == pytest.approx(sm_fleiss(table), abs=1e-12)
    x = [rng.random() for _ in range(50)]
    y = [round(v * 4 + rng.random()) for v in x]  # ties
    assert spearman(x, y) == pytest.approx(spearmanr(x, y).statistic, abs=1e-12)
    assert spearman([1, 1, 1], [1, 2, 3]) is None


@pytest.mark.parametrize("n,error", [(100, 0.2), (300, 0.1)])
def test_kappa_interval_covers_the_population_kappa(n, error):
    """Two balanced pass/fail raters, the second flipping a share ``error`` of the first's
    labels at random: the population kappa is 1 - 2*error. Over 600 seeded samples the 95%
    interval covers it 93-97% of the time."""
    truth = 1 - 2 * error
    rng = random.Random(n)
    covered = 0
    reps = 600
    for _ in range(reps):
        y1 = [rng.random() < 0.5 for _ in range(n)]
        y2 = [v if rng.random() >= error else not v for v in y1]
        k = cohen_kappa(y1, y2, labels=[False, True])
        covered += k.ci[0] <= truth <= k.ci[1]
    assert 0.93 <= covered / reps <= 0.97, covered / reps
