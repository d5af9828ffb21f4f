"""Verdicts you can trust: the audit's cases, every interval formula against scipy/statsmodels,
and a few seeded simulation cells of benchmarks/bench_verdicts.py pinned (coverage >= 0.93,
false alarms <= 2.5%, power, the printed detectable drop)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats as sps
from statsmodels.stats.proportion import proportion_confint

from benchmarks import bench_verdicts as bench
from evalrun import stats
from evalrun.compare import compare
from evalrun.gates import evaluate, evaluate_gate, parse_gates
from evalrun.records import Record, Score
from evalrun.summary import SummaryBuilder

SCORERS = ["em", "sim"]


def rec(item: str, value: float | None, *, trial: int = 0, passed: bool | None = None, scorer: str = "em",
        meta: dict | None = None, error: str | None = None) -> Record:
    if passed is None and value in (0.0, 1.0) and scorer == "em":
        passed = bool(value)
    return Record(item, trial, "in", "exp", "out", scores={scorer: Score(value, passed, error=error)},
                  metadata=meta or {})


def summary_of(records: list[Record], cluster: str | None = None) -> dict:
    b = SummaryBuilder(["em"], cluster=cluster)
    for r in records:
        b.add(r)
    return b.build()["scorers"]


def one(text):
    return parse_gates([text], scorers=SCORERS)[0]


# --- the audit's cases --------------------------------------------------------------------

def test_repeats_make_items_the_unit_of_the_run_interval():
    """5 always-pass + 5 always-fail items x 5 trials: n is 10 items, and the interval is as
    wide as 10 items allow (the trial-level one was [0.356, 0.644])."""
    recs = [rec(f"i{i}", 1.0 if i < 5 else 0.0, trial=t) for i in range(10) for t in range(5)]
    s = summary_of(recs)["em"]
    assert s["n"] == 10 and s["trials"] == 50
    lo, hi = s["ci95"]
    assert lo < 0.2 and hi > 0.8
    assert s["pass_ci95"] == s["ci95"] and s["pass_rate"] == 0.5


def test_all_passing_interval_is_not_a_point():
    s = summary_of([rec(f"i{i}", 1.0) for i in range(10)])["em"]
    assert s["mean"] == 1.0 and s["ci_method"] == "clopper-pearson"
    assert s["ci95"] == [pytest.approx(0.025 ** (1 / 10), abs=1e-6), 1.0]  # CP lower bound at 10/10
    lo, hi = proportion_confint(10, 10, method="beta")
    assert s["ci95"] == [pytest.approx(lo, abs=1e-6), pytest.approx(hi, abs=1e-6)]


def test_constant_continuous_scorer_says_so():
    recs = [rec(f"i{i}", 0.5, scorer="em", passed=None) for i in range(8)]
    s = summary_of(recs)["em"]
    assert s["ci95"] == [0.5, 0.5] and "same value" in s["ci_note"]


def test_two_regressions_are_not_significant():
    """2 items, both pass -> fail: the t interval was [-1, -1] with p 0.0; McNemar says 0.5."""
    d = stats.paired_difference([0.0, 0.0], [1.0, 1.0], binary=True)
    assert d.method == "agresti-min" and d.lo < 0 < d.hi
    assert d.p_value == pytest.approx(sps.binomtest(0, 2, 0.5).pvalue)
    base = [rec("a", 1.0), rec("b", 1.0)]
    cand = [rec("a", 0.0), rec("b", 0.0)]
    res = evaluate_gate(one("em.pass_rate >= baseline"), compare(cand, base), "significant")
    assert res.verdict == "pass" and "not significant" in res.note


def test_few_discordant_items_never_give_a_zero_width_interval():
    for worse, better in ((0, 0), (1, 0), (0, 1), (3, 0)):
        n = 20
        c = [0.0] * worse + [1.0] * better + [1.0] * (n - worse - better)
        b = [1.0] * worse + [0.0] * better + [1.0] * (n - worse - better)
        d = stats.paired_difference(c, b, binary=True)
        assert d.hi - d.lo > 0.05, (worse, better, d)


def test_detectable_drop_is_not_zero_when_every_item_passes_in_both_runs():
    recs = [rec(f"i{k}", 1.0) for k in range(50)]
    p = compare(recs, recs).scorers["em"].paired("pass_rate")
    assert p.diff.diff == 0 and p.diff.lo < 0 < p.diff.hi
    assert 0.02 < p.mde < 0.5 and p.mde_basis == "drop"
    res = evaluate_gate(one("em.pass_rate >= baseline - 5%"), compare(recs, recs), "significant")
    assert res.verdict == "pass" and res.mde is not None and res.mde > 0.05


def test_non_finite_score_is_a_scorer_error():
    for bad in (math.nan, math.inf, -math.inf):
        s = Score(bad, True)
        assert s.value is None and s.passed is None and "not a finite number" in s.error
    recs = [rec("a", 1.0), rec("b", math.nan), rec("c", 0.0)]
    s = summary_of(recs)["em"]
    # a scorer error is a failure of that scorer (issue 21): n counts it, the mean takes it as 0
    assert s["errors"] == 1 and s["n"] == 3 and s["mean"] == round(1 / 3, 6) and s["error_failures"] == 1
    assert Score.from_dict({"value": math.nan, "passed": None}).error


def test_p_values_do_not_underflow():
    rng = np.random.default_rng(6)
    base = rng.uniform(0.2, 0.6, 50)
    cand = base + 0.3 + rng.normal(0, 0.1, 50)  # t about 20: p about 1e-25, which 1 - cdf makes 0
    d = stats.paired_difference(cand, base)
    ref = sps.ttest_rel(cand, base)
    assert 0.0 < ref.pvalue < 1e-20
    assert 0.0 < d.p_value and d.p_value == pytest.approx(ref.pvalue, rel=1e-6)
    assert stats.t_sf(40.0, 10) == pytest.approx(sps.t.sf(40.0, 10), rel=1e-9) and stats.t_sf(40.0, 10) > 0
    assert stats.norm_sf(30.0) == pytest.approx(sps.norm.sf(30.0), rel=1e-9)


def test_zero_variance_paired_difference_says_so():
    same = stats.paired_difference([0.5, 0.6, 0.7], [0.5, 0.6, 0.7])
    assert same.note == "no item changed" and same.p_value == 1.0
    shifted = stats.paired_difference([0.4, 0.5, 0.6], [0.5, 0.6, 0.7])
    assert "same amount" in shifted.note and math.isnan(shifted.p_value)
    base = [rec(f"i{k}", 0.5 + k / 100, scorer="sim") for k in range(5)]
    cand = [rec(f"i{k}", 0.4 + k / 100, scorer="sim") for k in range(5)]
    res = evaluate_gate(one("sim.mean >= baseline - 0.02"), compare(cand, base), "significant")
    assert res.verdict == "fail" and "same amount" in res.note and "significant" not in res.note


def test_pass_hat_k_counts_a_scorer_error_as_a_failed_trial():
    """An always-failing item with a scorer error in one trial used to vanish (pass^3 = 1.0)."""
    recs = []
    for t in range(3):
        recs.append(rec("good", 1.0, trial=t))
        recs.append(rec("bad", None, trial=t, error="judge timed out") if t == 1 else rec("bad", 0.0, trial=t))
    sc = compare(recs, None).scorers["em"]
    assert sc.value("pass^3") == pytest.approx(0.5)
    assert sc.value("pass@3") == pytest.approx(0.5)


def test_mcnemar_rejects_negative_or_fractional_counts():
    with pytest.raises(ValueError):
        stats.mcnemar_exact(-1, 3)
    with pytest.raises(ValueError):
        stats.mcnemar_exact(1.5, 3)


def test_no_regressions_tolerance():
    base = [rec(f"i{k}", 1.0) for k in range(6)]
    cand = [rec(f"i{k}", 0.0 if k < 2 else 1.0) for k in range(6)]
    cmp = compare(cand, base)
    strict, tolerant, tight = evaluate(parse_gates([{"no_regressions": {}}, {"no_regressions": {"max": 2}},
                                                    {"no_regressions": {"max": 1}}], scorers=SCORERS), cmp)
    assert strict.verdict == "fail" and tolerant.verdict == "pass" and tight.verdict == "fail"
    assert "allowed: 2" in tolerant.numbers() and tolerant.items == ["i0", "i1"]
    from evalrun.errors import UsageError

    for bad in (-1, "two", True):
        with pytest.raises(UsageError, match="max must be a whole number"):
            parse_gates([{"no_regressions": {"max": bad}}], scorers=SCORERS)


def test_bootstrap_does_not_depend_on_record_order():
    rng = np.random.default_rng(4)
    c, b = rng.uniform(0, 1, 60), rng.uniform(0, 1, 60)
    perm = rng.permutation(60)
    assert stats.paired_bootstrap_ci(c, b) == stats.paired_bootstrap_ci(c[perm], b[perm])
    recs_b = [rec(f"i{k}", float(v), scorer="sim") for k, v in enumerate(b)]
    recs_c = [rec(f"i{k}", float(v), scorer="sim") for k, v in enumerate(c)]
    one_way = compare(recs_c, recs_b).scorers["sim"].paired("mean").to_dict()
    other = compare(list(reversed(recs_c)), recs_b[::2] + recs_b[1::2]).scorers["sim"].paired("mean").to_dict()
    assert one_way == other


# --- policies -----------------------------------------------------------------------------

def _binary_runs(n: int, worse: int, better: int, churn_pairs: int = 0) -> tuple[list[Record], list[Record]]:
    base, cand = [], []
    for k in range(n):
        if k < worse:
            b, c = 1.0, 0.0
        elif k < worse + better:
            b, c = 0.0, 1.0
        elif k < worse + better + churn_pairs:
            b, c = (1.0, 0.0) if k % 2 else (0.0, 1.0)
        else:
            b = c = 1.0 if k % 5 else 0.0
        base.append(rec(f"i{k}", b))
        cand.append(rec(f"i{k}", c))
    return cand, base


def test_policies_on_a_clear_drop_and_on_noise():
    gate = one("em.pass_rate >= baseline - 2%")
    cand, base = _binary_runs(300, worse=18, better=3)  # -5 points, clearly significant
    cmp = compare(cand, base)
    sig, pt, strict = (evaluate_gate(gate, cmp, p) for p in ("significant", "point", "strict"))
    assert sig.verdict == pt.verdict == strict.verdict == "fail"
    assert sig.note.startswith("significant")
    assert sig.mde is not None and 0 < sig.mde < 0.1 and "detectable drop" in sig.numbers()
    cand, base = _binary_runs(300, worse=6, better=3, churn_pairs=0)  # -1 point: within the margin
    cmp = compare(cand, base)
    sig, pt, strict = (evaluate_gate(gate, cmp, p) for p in ("significant", "point", "strict"))
    assert sig.verdict == "pass" and pt.verdict == "pass"
    # strict needs the interval to show the drop is within 2 points; 300 items cannot
    assert strict.verdict == "fail" and "does not show" in strict.note


def test_strict_passes_when_the_interval_is_within_the_margin():
    cand, base = _binary_runs(2000, worse=2, better=2)
    res = evaluate_gate(one("em.pass_rate >= baseline - 2%"), compare(cand, base), "strict")
    assert res.verdict == "pass" and res.ci[0] > -0.02


def test_lower_is_better_gate_is_mirrored():
    base = [rec(f"i{k}", 0.2 + 0.001 * k, scorer="sim") for k in range(50)]
    cand = [rec(f"i{k}", 0.4 + 0.001 * k + 0.01 * ((k * 7) % 3), scorer="sim") for k in range(50)]
    res = evaluate_gate(one("sim.mean <= baseline + 0.05"), compare(cand, base), "significant")
    assert res.verdict == "fail" and res.note.startswith("significant")


def test_small_set_warns_that_it_is_too_small_for_the_margin():
    cand, base = _binary_runs(40, worse=1, better=0)
    res = evaluate_gate(one("em.pass_rate >= baseline - 2%"), compare(cand, base), "significant")
    assert res.verdict == "pass" and "too small for this margin" in res.note


def test_policy_names_are_checked():
    from evalrun.errors import UsageError
    from evalrun.gates import check_policy

    assert [check_policy(p) for p in ("significant", "point", "strict")] == ["significant", "point", "strict"]
    with pytest.raises(UsageError, match="significant, point or strict"):
        check_policy("lenient")


# --- clusters -----------------------------------------------------------------------------

def test_cluster_key_gives_cluster_robust_numbers():
    rng = np.random.default_rng(8)
    recs = []
    for doc in range(10):
        p = rng.uniform(0.2, 0.9)
        for q in range(10):
            recs.append(rec(f"d{doc}q{q}", float(rng.random() < p), meta={"doc": f"doc{doc}"}))
    plain, clustered = summary_of(recs)["em"], summary_of(recs, cluster="doc")["em"]
    assert "clusters" not in plain and clustered["clusters"] == 10 and clustered["n"] == 100
    assert clustered["mean"] == plain["mean"]
    assert clustered["ci_method"] == "clopper-pearson-adjusted"
    # compare() with the key: paired intervals are cluster-robust and report G
    base = recs
    cand = [rec(r.item_id, 1.0 - r.scores["em"].value if r.item_id.endswith("q0") else r.scores["em"].value,
                meta=r.metadata) for r in recs]
    p = compare(cand, base, cluster="doc").scorers["em"].paired("pass_rate")
    assert p.diff.clusters == 10 and p.diff.method == "agresti-min-cluster-t" and p.diff.df == 9
    assert p.to_dict()["clusters"] == 10


def test_cluster_robust_se_matches_statsmodels():
    rng = np.random.default_rng(11)
    for g, size in ((5, 4), (12, 7), (40, 3)):
        y = rng.normal(size=g * size) + np.repeat(rng.normal(size=g), size)
        labels = np.repeat(np.arange(g), size)
        iv = stats.item_interval(y.tolist(), clusters=labels.tolist())
        fit = sm.OLS(y, np.ones_like(y)).fit(cov_type="cluster", cov_kwds={"groups": labels, "use_correction": True,
                                                                            "df_correction": True})
        # statsmodels' CR1 has the extra (n - 1) / (n - k) factor, 1 for a mean (k = 1)
        assert iv.se == pytest.approx(float(fit.bse[0]), rel=1e-9)
        q = sps.t.ppf(0.975, g - 1)
        assert (iv.lo, iv.hi) == pytest.approx((y.mean() - q * iv.se, y.mean() + q * iv.se), rel=1e-9)
        assert iv.clusters == g and iv.df == g - 1
        d = stats.paired_difference((y + 1).tolist(), np.ones_like(y).tolist(), clusters=labels.tolist())
        assert d.se == pytest.approx(float(fit.bse[0]), rel=1e-9) and d.p_value == pytest.approx(
            2 * sps.t.sf(abs(y.mean()) / d.se, g - 1), rel=1e-6)


# --- formulas against scipy / statsmodels -------------------------------------------------

@pytest.mark.parametrize(("k", "n"), [(0, 10), (10, 10), (3, 17), (50, 100), (499, 500), (1, 3)])
def test_clopper_pearson_and_wilson_match_statsmodels(k, n):
    assert stats.clopper_pearson_interval(k, n) == pytest.approx(proportion_confint(k, n, method="beta"), abs=1e-9)
    assert stats.wilson_interval(k, n) == pytest.approx(proportion_confint(k, n, method="wilson"), abs=1e-9)


def test_beta_and_normal_quantiles_match_scipy():
    for q, a, b in ((0.025, 3, 8), (0.975, 0.5, 12.5), (0.5, 40, 2), (0.01, 1.7, 1.2)):
        assert stats.beta_ppf(q, a, b) == pytest.approx(sps.beta.ppf(q, a, b), abs=1e-10)
    for p in (0.6, 0.8, 0.975, 0.999):
        assert stats.norm_ppf(p) == pytest.approx(sps.norm.ppf(p), rel=1e-10)
    assert stats.Z975 == pytest.approx(sps.norm.ppf(0.975), rel=1e-14)


def test_agresti_min_matches_the_papers_formula():
    """Agresti & Min (2005): add 1/2 to each cell of the paired 2x2 table, then the Wald
    interval of p12 - p21 with variance [(p12 + p21) - (p12 - p21)^2] / n."""
    for n11, n12, n21, n22 in ((30, 5, 1, 4), (90, 0, 0, 10), (5, 0, 2, 13), (400, 12, 30, 58)):
        n = n11 + n12 + n21 + n22
        a12, a21, an = n12 + 0.5, n21 + 0.5, n + 2
        p12, p21 = a12 / an, a21 / an
        centre = p21 - p12  # candidate - baseline: 21 = fail -> pass
        half = sps.norm.ppf(0.975) * math.sqrt(((p12 + p21) - (p12 - p21) ** 2) / an)
        base = [1.0] * (n11 + n12) + [0.0] * (n21 + n22)
        cand = [1.0] * n11 + [0.0] * n12 + [1.0] * n21 + [0.0] * n22
        d = stats.paired_difference(cand, base, binary=True)
        assert (d.lo, d.hi) == pytest.approx((max(-1, centre - half), min(1, centre + half)), abs=1e-12)
        assert d.p_value == pytest.approx(sps.binomtest(n12, n12 + n21, 0.5).pvalue if n12 + n21 else 1.0)


def test_gate_power_is_the_noncentral_t():
    """Without a margin, P(significant gate fails) = P(T' < -t_crit) with T' noncentral t."""
    rng = np.random.default_rng(5)
    for n in (5, 20, 200):
        d = stats.paired_difference(rng.normal(-0.03, 0.1, n), np.zeros(n))
        q = sps.t.ppf(0.975, n - 1)
        for drop in (0.0, 0.02, 0.05):
            ref = sps.nct.cdf(-q, n - 1, -drop / d.se)
            assert stats.gate_fail_probability(drop, d, 0.0, "significant") == pytest.approx(ref, abs=2e-4)
            assert stats.gate_fail_probability(drop, d, -0.01, "point") == pytest.approx(
                sps.norm.cdf((-0.01 + drop) / d.se), abs=1e-12)


def test_binary_gate_power_matches_brute_force_enumeration():
    n, churn, margin = 30, 0.1, -0.05
    d = stats.paired_difference([1.0] * n, [1.0] * n, binary=True)
    d = stats.PairedDifference(**{**{f: getattr(d, f) for f in d.__slots__}, "discordant": churn})
    for policy in ("significant", "point", "strict"):
        drop = 0.1
        p_b, p_c = churn / 2 + drop, churn / 2
        total = 0.0
        for b in range(n + 1):
            for c in range(n + 1 - b):
                prob = sps.multinomial.pmf([b, c, n - b - c], n, [p_b, p_c, 1 - p_b - p_c])
                _, _, lo, hi = stats.agresti_min(b, c, n)
                total += prob * stats.gate_fails((c - b) / n, lo, hi, margin, policy, stats.mcnemar_exact(b, c))
        assert stats.gate_fail_probability(drop, d, margin, policy) == pytest.approx(total, abs=1e-9)


# --- simulation cells (benchmarks/bench_verdicts.py) ---------------------------------------

def test_pass_rate_interval_coverage_exact():
    for n in (20, 50, 100):
        for p in bench.RATES:
            assert bench.exact_coverage(n, p) >= 0.95


@pytest.mark.parametrize(("n", "p", "repeats", "cluster_size"),
                         [(20, 0.95, 5, 0), (100, 0.5, 5, 0), (100, 0.05, 1, 10), (200, 0.8, 1, 10)])
def test_pass_rate_coverage_with_repeats_and_clusters(n, p, repeats, cluster_size):
    rng = np.random.default_rng(1000 + n)
    cov = bench.pass_rate_coverage(rng, n, p, repeats=repeats, cluster_size=cluster_size, reps=600)
    assert cov >= 0.93, cov


@pytest.mark.parametrize(("n", "p", "churn", "repeats", "cluster_size"),
                         [(20, 0.8, 0.01, 1, 0), (20, 0.95, 0.05, 1, 0), (100, 0.8, 0.2, 1, 0),
                          (50, 0.8, 0.05, 3, 0), (200, 0.8, 0.2, 1, 10)])
def test_paired_coverage_cells(n, p, churn, repeats, cluster_size):
    rng = np.random.default_rng(2000 + n)
    cov = bench.paired_coverage(rng, n, p, churn=churn, repeats=repeats, cluster_size=cluster_size, reps=600)
    assert cov >= 0.93, cov


def test_paired_t_and_mean_coverage_with_clusters():
    rng = np.random.default_rng(3)
    assert bench.paired_t_coverage(rng, 100, cluster_size=10, reps=600) >= 0.93
    assert bench.mean_coverage(rng, 100, cluster_size=10, reps=600) >= 0.93


def test_unclustered_intervals_undercover_clustered_data():
    """Why the key exists: 10 documents x 10 questions, pass rates shared within a document."""
    plain, clustered = bench.ignored_cluster_coverage(np.random.default_rng(9), reps=600)
    assert plain < 0.85 and clustered >= 0.93, (plain, clustered)


def test_default_gate_false_alarms_and_power():
    rng = np.random.default_rng(21)
    for n, churn in ((100, 0.04), (500, 0.08)):
        assert bench.gate_fail_rate(rng, n, policy="significant", margin=0.02, drop=0.0, churn=churn,
                                    reps=1500) <= 0.025
    # a true drop of 2.5x the margin on 300 items with 2% churn: caught at least 80% of the time
    assert bench.gate_fail_rate(rng, 300, policy="significant", margin=0.02, drop=0.05, churn=0.02,
                                reps=600) >= 0.8
    # point: noise alone fails small sets often, which is why it is not the default
    assert bench.gate_fail_rate(rng, 20, policy="point", margin=0.02, drop=0.0, churn=0.04, reps=600) > 0.1


def test_printed_detectable_drop_predicts_power():
    rng = np.random.default_rng(31)
    drop, power = bench.detectable_drop_check(rng, 300, policy="significant", margin=0.02, churn=0.04, reps=500)
    assert 0.02 < drop < 0.1 and abs(power - 0.8) <= 0.1, (drop, power)


# --- through the real CLI -----------------------------------------------------------------

def test_cluster_key_end_to_end(tmp_path):
    """`cluster: doc` in the eval file: summary.json and the run table show the clusters next to
    n; a compare gives cluster-robust paired intervals; an unknown policy is exit 2."""
    import json

    import yaml

    from tests.conftest import invoke_cli

    (tmp_path / "tgt.py").write_text("import os\n\ndef answer(x):\n"
                                     "    n = int(x)\n"
                                     "    return str(n + 1 if os.environ.get('BAD') and n % 10 == 3 else n)\n")
    items = [{"id": f"q{n:02d}", "input": str(n), "expected_output": str(n) if n % 7 else "x",
              "metadata": {"doc": f"doc{n // 10}"}} for n in range(60)]
    (tmp_path / "data.yaml").write_text(yaml.safe_dump({"items": items}))
    (tmp_path / "eval.yaml").write_text("name: clustered\ndataset: data.yaml\ntarget:\n  python: tgt:answer\n"
                                        "scorers:\n  - exact_match\ncluster: doc\n"
                                        "gates:\n  - exact_match.pass_rate >= baseline - 2%\n")
    r = invoke_cli("run", "eval.yaml", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)["scorers"]["exact_match"]
    assert s["n"] == 60 and s["clusters"] == 6 and s["ci_method"] == "clopper-pearson-adjusted"
    shown = invoke_cli("run", "eval.yaml", "--baseline", "latest", cwd=tmp_path, env={"BAD": "1"})
    assert "60 (6 clusters)" in shown.stdout, shown.stdout
    assert "6 clusters" in shown.stdout and "detectable drop" in shown.stdout
    (tmp_path / "eval.yaml").write_text((tmp_path / "eval.yaml").read_text() + "gate_policy: lenient\n")
    bad = invoke_cli("run", "eval.yaml", cwd=tmp_path)
    assert bad.returncode == 2 and "gate_policy" in bad.stderr and "Traceback" not in bad.stderr
