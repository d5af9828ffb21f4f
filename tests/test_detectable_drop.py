"""The printed detectable drop is computed for the drop users face (a share of items, or of
whole clusters, breaking), and holds up in simulation (a seeded cell of
benchmarks/bench_verdicts.detectable_drop_alternatives)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from benchmarks import bench_verdicts as bench
from evalrun import stats


def test_the_alternative_adds_what_breaking_units_bring_to_the_variance():
    rng = np.random.default_rng(1)
    base = rng.beta(7, 3, 80)
    cand = np.clip(base + rng.normal(0, 0.05, 80), 0, 1)
    d = stats.paired_difference(cand.tolist(), base.tolist())
    assert d.bounded and d.units == 80
    assert d.break_size == pytest.approx(float(np.mean(base**2) / np.mean(base)))
    drop = 0.05
    # a share drop / size of the items falls to 0 from their baseline: the variance it adds
    assert stats._alt_se(drop, d) == pytest.approx(math.sqrt(d.se**2 + drop * (d.break_size - drop) / 80))
    # with clusters: the effective number of clusters, 1 / sum of squared shares
    labels = bench.unequal_labels(80, 8)
    dc = stats.paired_difference(cand.tolist(), base.tolist(), clusters=labels.tolist())
    shares = np.bincount(labels) / 80
    assert dc.units == pytest.approx(1 / float(np.sum(shares**2)))
    # unbounded scores: no floor to break to, the observed SE
    du = stats.paired_difference((cand * 10).tolist(), (base * 10).tolist())
    assert not du.bounded and stats._alt_se(drop, du) == du.se
    # the noncentral-t power at the printed drop is 80% with that SE (scipy's noncentral t)
    dd = stats.detectable_drop(d, 0.0, "point")
    assert sps.norm.cdf(dd / stats._alt_se(dd, d)) == pytest.approx(0.80, abs=1e-3)


def test_printed_drop_is_within_ten_points_of_measured_power():
    cells = bench.detectable_drop_alternatives(np.random.default_rng(8), reps=250)
    for name, (drop, power) in cells.items():
        assert drop > 0 and 0.72 <= power <= 0.95, (name, drop, power)


def test_items_needed_is_the_smallest_set_that_catches_the_drop():
    rng = np.random.default_rng(5)
    base = (rng.random(200) < 0.8).astype(float)
    cand = np.where(rng.random(200) < 0.05, 1 - base, base)
    d = stats.paired_difference(cand.tolist(), base.tolist(), binary=True)
    need = stats.items_needed(d, 0.05, -0.02, "significant")
    assert 50 < need < 5000
    assert stats.gate_fail_probability(0.05, stats.scaled(d, int(need)), -0.02, "significant") >= 0.80
    assert stats.gate_fail_probability(0.05, stats.scaled(d, int(need * 0.8)), -0.02, "significant") < 0.80
    # the drop it catches at that size is the drop asked for
    assert stats.detectable_drop(stats.scaled(d, int(need)), -0.02, "significant") <= 0.05 + 1e-3
    assert math.isnan(stats.items_needed(d, 0.01, -0.02, "significant"))  # within the margin: never


def test_evalrun_plan_from_a_previous_run(tmp_path):
    import json

    from tests.conftest import invoke_cli
    from tests.test_slices import project

    root = project(tmp_path / "p", ["exact_match.mean >= baseline - 0.02"])
    assert invoke_cli("run", "eval.yaml", cwd=root, env={"VARIANT": "good"}).returncode == 0
    assert invoke_cli("baseline", "set", "latest", cwd=root).returncode == 0
    assert invoke_cli("run", "eval.yaml", cwd=root, env={"VARIANT": "bad"}).returncode in (0, 1)
    res = invoke_cli("plan", "latest", "--drop", "0.05", "--margin", "0.02", "--json", cwd=root)
    assert res.returncode == 0, res.stdout + res.stderr
    data = json.loads(res.stdout)
    row = data["scorers"][0]
    assert row["scorer"] == "exact_match" and row["n"] == 120 and row["churn"] == pytest.approx(0.05)
    assert row["detectable_drop_now"] > 0.05 and row["items_needed"] > 120
    text = invoke_cli("plan", "--drop", "0.05", "--margin", "0.02", cwd=root)
    assert text.returncode == 0 and f"needs about {int(row['items_needed'])} items" in text.stdout
    bad = invoke_cli("plan", "--policy", "lenient", cwd=root)
    assert bad.returncode == 2 and "gate_policy must be" in bad.stdout + bad.stderr
