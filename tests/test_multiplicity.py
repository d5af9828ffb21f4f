"""The slice gates of one verdict are one family (Holm), and the slice table labels drops by the
same rule: Holm's adjustment against statsmodels, the per-gate p-value against the default
policy's rule, and seeded simulations of the family-wise false alarms."""

from __future__ import annotations

import math

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from benchmarks import bench_verdicts as bench
from evalrun import stats
from evalrun.compare import compare
from evalrun.gates import evaluate, parse_gates
from evalrun.records import Record, Score
from evalrun.slices import slice_report


def test_holm_matches_statsmodels():
    rng = np.random.default_rng(5)
    for m in (1, 2, 7, 20):
        p = rng.uniform(0, 0.2, m) ** 2
        ref = multipletests(p, method="holm")[1]
        assert stats.holm(p.tolist()) == pytest.approx(ref.tolist(), rel=1e-12)
    # nan (a gate with no test) is not a member of the family
    got = stats.holm([0.01, math.nan, 0.02])
    assert got[0] == pytest.approx(0.02) and math.isnan(got[1]) and got[2] == pytest.approx(0.02)


@pytest.mark.parametrize("kind", ["plain", "repeats", "clusters", "continuous"])
def test_worse_p_below_005_is_exactly_the_default_policys_rule(kind):
    """At level 0.05 the gate's p-value reproduces gate_fails(significant) on every side and margin,
    so Holm over a family of one changes nothing."""
    rng = np.random.default_rng(len(kind))
    for _ in range(300):
        n = int(rng.integers(5, 80))
        base = (rng.random(n) < 0.7).astype(float)
        flips = rng.random(n) < rng.uniform(0.0, 0.4)
        cand = np.where(flips, (rng.random(n) < 0.4).astype(float), base)
        clusters = None
        binary = kind != "continuous"
        if kind == "repeats":
            cand, base = (cand + (rng.random(n) < 0.7)) / 2, (base + (rng.random(n) < 0.7)) / 2
        if kind == "continuous":
            cand, base = cand + rng.normal(0, 0.2, n), base + rng.normal(0, 0.2, n)
        if kind == "clusters":
            clusters = (np.arange(n) % 6).tolist()
        d = stats.paired_difference(cand.tolist(), base.tolist(), binary=binary, clusters=clusters)
        if not d.has_interval or not d.se > 0:
            continue
        for margin in (-0.05, 0.0, 0.03):
            for up in (True, False):
                diff, lo, hi = (d.diff, d.lo, d.hi) if up else (-d.diff, -d.hi, -d.lo)
                expected = stats.gate_fails(diff, lo, hi, margin, "significant", d.p_value)
                p = d.worse_p(max(0.0, margin), lower_is_better=not up)
                got = diff < margin - 1e-12 and p < 0.05
                assert got == expected, (kind, n, margin, up, p, d)


def records(values: list[float], tags: list[str]) -> list[Record]:
    return [Record(f"i{i:03d}", 0, "x", "y", "o", scores={"em": Score(v, bool(v))}, metadata={"tags": [t]})
            for i, (v, t) in enumerate(zip(values, tags, strict=True))]


def ten_slices(drop_in_s0: int) -> tuple[list[Record], list[Record]]:
    """Ten slices of 40 items, each with one item flipping each way; slice s0 also has
    ``drop_in_s0`` items going pass -> fail."""
    base, cand, tags = [], [], []
    for s in range(10):
        for i in range(40):
            b = 1.0 if i >= 8 else 0.0
            c = b
            if i == 0:
                c = 1.0  # one improvement
            elif i == 8 or (s == 0 and 9 <= i < 9 + drop_in_s0):
                c = 0.0  # one regression, and the drop in s0
            base.append(b)
            cand.append(c)
            tags.append(f"s{s}")
    return records(cand, tags), records(base, tags)


GATES = [f"em.pass_rate[tag=s{s}] >= baseline - 2%" for s in range(10)] + ["em.pass_rate >= baseline - 5%"]


def test_a_drop_significant_alone_is_not_a_failure_of_the_family():
    cand, base = ten_slices(7)  # s0: 8 regressions and 1 improvement of 40: McNemar p 0.039
    cmp = compare(cand, base, baseline_info={"source": "b"})
    res = evaluate(parse_gates(GATES, scorers=["em"]), cmp, "significant")
    s0 = res[0]
    assert s0.test_p is not None and s0.test_p < 0.05 < s0.p_adjusted  # significant alone only
    assert s0.verdict == "pass" and "not after Holm's correction for the 10 slice gates" in s0.note
    assert "significant: the 95% interval" not in s0.note
    assert s0.to_dict()["p_holm"] == pytest.approx(s0.p_adjusted, abs=1e-6)
    assert all(r.verdict == "pass" for r in res)
    assert res[-1].p_adjusted is None  # the pooled gate is not a member of the slice family
    row = next(r for r in slice_report(cmp, ["tags"]).rows if r.value == "s0")
    assert row.diff.hi < 0 and row.change == ""  # the 95% interval alone would have said "drop"


def test_a_clear_drop_still_fails_after_the_correction():
    cand, base = ten_slices(14)
    cmp = compare(cand, base, baseline_info={"source": "b"})
    res = evaluate(parse_gates(GATES, scorers=["em"]), cmp, "significant")
    assert res[0].verdict == "fail" and "still significant after Holm's correction for 10 slice gates" in res[0].note
    assert [r.verdict for r in res[1:]] == ["pass"] * 10
    rows = slice_report(cmp, ["tags"]).rows
    assert rows[0].value == "s0" and rows[0].change == "drop" and rows[0].to_dict()["p_holm"] < 0.05
    assert all(r.change == "" for r in rows[1:])


def test_point_slice_gates_say_how_often_noise_fails_one_of_them():
    cand, base = ten_slices(0)
    res = evaluate(parse_gates(GATES, scorers=["em"]), compare(cand, base, baseline_info={"source": "b"}), "point")
    assert all("10 point slice gates: noise alone fails at least one of them about" in r.note for r in res[:10])
    assert "point slice gates" not in res[-1].note


def test_family_wise_false_alarms_of_ten_slice_gates_by_simulation():
    """Seeded: 300 unchanged runs of 10 slices x 100 items (the default rule on each slice's paired
    difference, as correct_slice_family applies it). Each gate alone at its own level fails some
    slice in about 10% of runs; the family stays within 5%. The benchmark does this through the
    real compare / gates / slices code (bench_verdicts.slice_family_alarms)."""
    rng = np.random.default_rng(7)
    alone = family = 0
    reps = 300
    for _ in range(reps):
        ps, misses = [], []
        for _s in range(10):
            cand, base, _, _ = bench.paired_runs(rng, 100, 0.8, churn=0.1)
            d = stats.paired_difference(cand.tolist(), base.tolist(), binary=True)
            ps.append(d.worse_p(0.0))
            misses.append(d.diff < -0.02)
        alone += any(m and p < 0.05 for m, p in zip(misses, ps, strict=True))
        family += any(m and p < 0.05 for m, p in zip(misses, stats.holm(ps), strict=True))
    assert alone / reps > 0.07 and family / reps <= 0.03
