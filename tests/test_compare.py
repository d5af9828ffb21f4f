"""compare(): pairing by (item, trial), regressions, improvements, flaky, new/removed, numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from evalrun.compare import compare, run_metrics
from evalrun.records import Record, Score


def rec(item: str, ok: bool | None, *, trial: int = 0, value: float | None = None, scorer: str = "em",
        error: bool = False, tags: list[str] | None = None, output: str = "out", latency: float = 10.0,
        cost: float | None = None) -> Record:
    scores = {} if error else {scorer: Score(value if value is not None else (None if ok is None else float(ok)), ok)}
    return Record(item, trial, f"in-{item}", f"exp-{item}", None if error else output,
                  {"type": "Timeout", "message": "t"} if error else None, latency,
                  {"cost_usd": cost} if cost is not None else None, scores,
                  {"tags": tags} if tags else {})


def test_regressions_improvements_new_removed():
    base = [rec("a", True), rec("b", True), rec("c", False), rec("d", True), rec("gone", True)]
    cand = [rec("a", True), rec("b", False), rec("c", True), rec("d", True), rec("fresh", False)]
    cmp = compare(cand, base)
    sc = cmp.scorers["em"]
    assert sc.regressions == ["b"] and sc.improvements == ["c"]
    assert cmp.new_items == ["fresh"] and cmp.removed_items == ["gone"]
    status = {i.item_id: i.status for i in cmp.items}
    assert status == {"a": "unchanged", "b": "regressed", "c": "improved", "d": "unchanged",
                      "fresh": "new", "gone": "removed"}
    assert cmp.paired_items == 4
    assert sc.mcnemar_p == pytest.approx(sps.binomtest(1, 2, 0.5).pvalue)
    # the paired numbers use only the items both runs have
    p = sc.paired("pass_rate")
    assert p.diff.n == 4 and p.diff.diff == pytest.approx(0.0)
    # the plain numbers are each run's own, over all its records (as summary.json has them)
    assert sc.candidate["pass_rate"] == pytest.approx(3 / 5) and sc.baseline["pass_rate"] == pytest.approx(4 / 5)


def test_pairs_by_item_and_trial_not_by_order():
    base = [rec("x", True, trial=1), rec("y", False), rec("x", False, trial=0)]
    cand = [rec("y", False), rec("x", False, trial=0), rec("x", True, trial=1)]
    cmp = compare(cand, base)
    assert {i.item_id: i.status for i in cmp.items} == {"y": "unchanged", "x": "flaky"}
    x = cmp.items[1]
    # trial t of the candidate sits next to trial t of the baseline
    assert [r.trial for r in x.candidate] == [r.trial for r in x.baseline] == [0, 1]
    assert [r.scores["em"].passed for r in x.candidate] == [r.scores["em"].passed for r in x.baseline]
    assert cmp.scorers["em"].regressions == [] and cmp.scorers["em"].flaky == ["x"]


def test_paired_mean_difference_against_scipy():
    rng = np.random.default_rng(3)
    n = 50
    b_vals, c_vals = rng.uniform(0.3, 1, n), rng.uniform(0.2, 1, n)
    base = [rec(f"i{k}", None, value=float(v), scorer="sim") for k, v in enumerate(b_vals)]
    cand = [rec(f"i{k}", None, value=float(v), scorer="sim") for k, v in enumerate(c_vals)]
    p = compare(cand, base).scorers["sim"].paired("mean")
    lo, hi = sps.ttest_rel(c_vals, b_vals).confidence_interval(0.95)
    assert p.diff.diff == pytest.approx(float((c_vals - b_vals).mean()))
    assert (p.diff.lo, p.diff.hi) == pytest.approx((lo, hi))
    assert p.diff.lo < p.diff.diff < p.diff.hi and p.diff.method == "t"
    assert p.diff.p_value == pytest.approx(sps.ttest_rel(c_vals, b_vals).pvalue, rel=1e-6)
    assert p.mde > 0 and p.mde_basis == "paired"


def test_repeats_average_per_item_and_flaky_items_are_separate():
    base, cand = [], []
    for t in range(3):
        base += [rec("steady", True, trial=t), rec("broke", True, trial=t), rec("wobbly", True, trial=t)]
        cand += [rec("steady", True, trial=t), rec("broke", False, trial=t), rec("wobbly", t != 1, trial=t)]
    cmp = compare(cand, base)
    sc = cmp.scorers["em"]
    assert cmp.trials == 3
    assert sc.regressions == ["broke"] and sc.flaky == ["wobbly"]
    assert [i.item_id for i in cmp.regressed] == ["broke"]
    assert [i.item_id for i in cmp.by_status("flaky")] == ["wobbly"]
    p = sc.paired("pass_rate")
    assert p.diff.n == 3  # items, not 9 trials
    assert p.diff.diff == pytest.approx(((1 - 1) + (0 - 1) + (2 / 3 - 1)) / 3)
    # pass@3: any trial passes; pass^3: every trial passes
    assert sc.value("pass@3") == pytest.approx(2 / 3)
    assert sc.value("pass^3") == pytest.approx(1 / 3)
    assert sc.value("pass@2") == pytest.approx((1 + 0 + 1) / 3)
    d = sc.to_dict()
    assert d["pass@3"] == pytest.approx(2 / 3) and d["flaky"] == ["wobbly"]


def test_target_error_is_a_failure_and_scores_zero():
    base = [rec("a", True), rec("b", True)]
    cand = [rec("a", True), rec("b", None, error=True)]
    cmp = compare(cand, base)
    sc = cmp.scorers["em"]
    assert sc.regressions == ["b"]
    # an error is a failure in every number (issue 21): n counts it, the mean takes it as 0
    assert sc.candidate["n"] == 2 and sc.candidate["mean"] == 0.5 and sc.candidate["target_errors"] == 1
    assert sc.paired("mean").diff.n == 2 and sc.paired("mean").diff.diff == -0.5
    assert cmp.items[1].errored
    assert cmp.metrics["errors"] == 1 and cmp.metrics["error_rate"] == 0.5


def test_without_baseline():
    cmp = compare([rec("a", True), rec("b", False)], None)
    assert not cmp.has_baseline
    sc = cmp.scorers["em"]
    assert sc.paired("mean") is None and sc.baseline is None
    assert sc.value("pass_rate") == 0.5
    assert [i.status for i in cmp.items] == ["unchanged", "unchanged"]
    assert cmp.to_dict()["baseline"] is None


def test_identical_runs_fall_back_to_the_drops_own_discordance_for_mde():
    """Nothing changed, so the set's churn is zero: the detectable drop comes from the
    discordance the drop itself would bring (never 0, never a blank)."""
    recs = [rec(f"i{k}", k % 3 != 0) for k in range(30)]
    p = compare(recs, recs).scorers["em"].paired("pass_rate")
    assert p.diff.diff == 0 and p.mde_basis == "drop"
    assert 0 < p.mde < 1
    # the interval of "no change" on 30 pass/fail items is not a point
    assert p.diff.lo < 0 < p.diff.hi and p.diff.method == "agresti-min"


def test_scorer_only_in_candidate_has_no_baseline_numbers():
    base = [rec("a", True)]
    cand = [Record("a", 0, "i", "e", "o", scores={"em": Score(1.0, True), "new": Score(0.5, None)})]
    cmp = compare(cand, base)
    assert cmp.scorers["new"].baseline is None and cmp.scorers["new"].paired("mean") is None
    assert cmp.scorers["em"].paired("mean").diff.diff == 0


def test_run_metrics():
    recs = [rec(str(i), True, latency=float(i), cost=0.01) for i in range(1, 101)]
    m = run_metrics(recs, {"scorer_usage": {"judge": {"cost_usd": 0.5}}})
    assert m["latency_p95_ms"] == pytest.approx(np.percentile(np.arange(1, 101), 95))
    assert m["cost_usd"] == pytest.approx(1.5)
    assert run_metrics([rec("a", True)])["cost_usd"] is None
    assert math.isclose(m["latency_mean_ms"], 50.5)


def test_summary_latency_and_gate_metrics_are_one_computation():
    """summary.json's latency_ms block and the gate metrics come from one RunMetrics."""
    import random

    from evalrun.summary import SummaryBuilder

    lat = [random.Random(7).uniform(1, 900) for _ in range(57)]
    recs = [rec(str(i), True, latency=v) for i, v in enumerate(lat)]
    b = SummaryBuilder(["em"])
    for r in reversed(recs):
        b.add(r)
    block = b.build()["latency_ms"]
    m = run_metrics(recs)
    assert block == {"mean": m["latency_mean_ms"], "p50": m["latency_p50_ms"], "p95": m["latency_p95_ms"],
                     "max": m["latency_max_ms"]}
    assert block["p95"] == pytest.approx(np.percentile(lat, 95), abs=1e-5)
    assert SummaryBuilder(["em"]).build()["latency_ms"] is None


@pytest.mark.parametrize("cluster", [None, "doc"])
def test_summary_groups_trials_by_item_whatever_the_record_order(cluster):
    """The builder keeps one (item, value) pair per trial and groups them only when it builds:
    each scorer's numbers are the interval of the item means (an item's pass rate is its passes
    over its judged trials), in any record order, with or without repeats and clusters."""
    import random

    from evalrun import stats
    from evalrun.summary import SummaryBuilder

    rng = random.Random(5)
    recs = []
    for i in range(80):
        for t in range(3 if i % 4 == 0 else 1):  # a quarter of the items repeated
            v = round(rng.random(), 3) if i % 2 else float(rng.random() < 0.6)
            recs.append(Record(f"i{i:02d}", t, "x", metadata={"doc": f"d{i % 9}"},
                               scores={"s": Score(v, v >= 0.5)}))
    summaries = []
    for order in (recs, recs[::-1], rng.sample(recs, len(recs))):
        b = SummaryBuilder(["s"], cluster=cluster)
        for r in order:
            b.add(r)
        summaries.append(b.build()["scorers"]["s"])
    assert summaries[0] == summaries[1] == summaries[2]

    by_item: dict[str, list] = {}
    for r in recs:
        by_item.setdefault(r.item_id, []).append(r.scores["s"])
    ids = sorted(by_item)
    labels = [f"d{int(i[1:]) % 9}" for i in ids] if cluster else None
    means = [math.fsum(sc.value for sc in by_item[i]) / len(by_item[i]) for i in ids]
    rates = [sum(sc.passed for sc in by_item[i]) / len(by_item[i]) for i in ids]
    iv = stats.item_interval(means, binary=False, clusters=labels, trials=len(recs))
    pr = stats.item_interval(rates, binary=True, clusters=labels, trials=len(recs))
    got = summaries[0]
    assert (got["n"], got["trials"]) == (80, len(recs))
    assert got["mean"] == pytest.approx(iv.estimate, abs=1e-6)
    assert got["ci95"] == pytest.approx([iv.lo, iv.hi], abs=1e-6)
    assert got["pass_rate"] == pytest.approx(pr.estimate, abs=1e-6)
    assert got["pass_ci95"] == pytest.approx([pr.lo, pr.hi], abs=1e-6)
    assert got["passed"] + got["failed"] == len(recs)
