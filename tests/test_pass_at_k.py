"""pass@k gets an interval (items the unit, each item's unbiased estimate one value), and its
relative gates say how little they can catch."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.proportion import proportion_confint

from evalrun import stats
from evalrun.compare import compare
from evalrun.gates import evaluate, parse_gates
from evalrun.records import Record, Score


def runs(n: int, k: int, seed: int, drop: float = 0.0) -> list[Record]:
    rng = np.random.default_rng(seed)
    probs = np.random.default_rng(0).beta(2, 2, n) - drop
    out = []
    for i, p in enumerate(probs):
        for t in range(k):
            ok = bool(rng.random() < p)
            out.append(Record(f"i{i:03d}", t, "x", scores={"em": Score(float(ok), ok)}))
    return out


@pytest.mark.parametrize("n", [40, 150])
def test_pass_at_k_has_an_interval_over_items(n):
    recs = runs(n, 3, n)
    data = compare(recs, None).scorers["em"].to_dict()
    per_item = []
    for i in range(n):
        c = sum(r.scores["em"].passed for r in recs if r.item_id == f"i{i:03d}")
        per_item.append(stats.pass_at_k(3, c, 3))
    x = np.array(per_item)
    m, se = x.mean(), x.std(ddof=1) / math.sqrt(n)
    assert data["pass@3"] == pytest.approx(m, abs=1e-6)
    lo, hi = data["pass@3_ci95"]
    if n < stats.SMALL_N:  # a [0, 1] value per item: the effective-n Clopper-Pearson below 100 items
        n_eff = m * (1 - m) / se**2 * (sps.norm.ppf(0.975) / sps.t.ppf(0.975, n - 1)) ** 2
        ref = proportion_confint(m * n_eff, n_eff, method="beta")
    else:
        ref = sps.t.interval(0.95, n - 1, loc=m, scale=se)
    assert (lo, hi) == (pytest.approx(ref[0], abs=1e-6), pytest.approx(ref[1], abs=1e-6))
    assert data["pass^3_ci95"][0] < data["pass^3"] < data["pass^3_ci95"][1]


def test_a_relative_pass_at_k_gate_says_it_is_nearly_powerless():
    base, cand = runs(60, 3, 1), runs(60, 3, 2, drop=0.1)
    res = evaluate(parse_gates(["em.pass@3 >= baseline - 2%", "em.pass^3 >= baseline - 2%"], scorers=["em"],
                               repeat=3), compare(cand, base, baseline_info={"source": "b"}))
    assert "pass@3 barely moves when items get worse" in res[0].note
    assert "barely moves" not in res[1].note
