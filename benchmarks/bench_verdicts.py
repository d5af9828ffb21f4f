"""Verdict benchmark: do evalrun's 95% intervals cover, and do its gates fail when they should?

Simulates runs with a known truth and counts:

- **coverage** of every interval kind evalrun prints: a run's pass rate (Clopper-Pearson; exact, by
  enumerating every outcome), pass rates with repeats and with clusters (Korn-Graubard
  effective-n Clopper-Pearson), continuous means (t on item means, cluster-robust), paired pass/fail differences
  (Agresti-Min, with repeats, with clusters) and paired continuous differences (paired t);
- **false alarms and power** of a relative gate (``pass_rate >= baseline - margin``) under each
  policy (significant, point, strict): how often it fails when nothing changed and when the
  true drop is a multiple of its margin;
- whether the printed **detectable drop** predicts the power measured at that drop.

Items are heterogeneous (each has its own pass probability, Beta-distributed), so some items
always pass and some always fail, as in real golden sets. Clusters are documents: items of one
document share a pass probability and how likely a change is to flip them.

Usage: python benchmarks/bench_verdicts.py [--reps 2000] [--seed 1] [--quick]
The functions are imported by tests/test_verdicts.py, which pins a few cells.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable

import numpy as np

from evalrun import stats

SIZES = (10, 20, 50, 100, 500)
GATE_SIZES = (10, 20, 50, 100, 300, 500)
RATES = (0.05, 0.2, 0.5, 0.8, 0.95)
POLICIES = stats.POLICIES


# --- data ---------------------------------------------------------------------------------

def item_probs(rng: np.random.Generator, n: int, p: float, *, spread: float = 2.0, cluster_size: int = 0
               ) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-item pass probabilities with mean ``p`` (Beta with concentration ``spread``; small
    means items are mostly always-pass or always-fail). With ``cluster_size``, items come in
    clusters sharing a Beta-distributed cluster probability (mean p) first."""
    if cluster_size:
        g = math.ceil(n / cluster_size)
        pg = rng.beta(p * spread, (1 - p) * spread, g)
        pg = np.clip(pg, 1e-6, 1 - 1e-6)
        labels = np.repeat(np.arange(g), cluster_size)[:n]
        return rng.beta(pg[labels] * 8, (1 - pg[labels]) * 8), labels
    return rng.beta(p * spread, (1 - p) * spread, n), None


def trials_mean(rng: np.random.Generator, probs: np.ndarray, repeats: int) -> np.ndarray:
    return rng.binomial(repeats, probs) / repeats


# --- one run: coverage of the pass-rate and mean intervals --------------------------------

def exact_coverage(n: int, p: float) -> float:
    """Exact coverage of the pass-rate interval (Clopper-Pearson) on n single-trial items."""
    total = 0.0
    for k in range(n + 1):
        iv = stats.item_interval([1.0] * k + [0.0] * (n - k), binary=True)
        lo, hi = iv.lo, iv.hi
        if lo <= p <= hi:
            total += math.exp(stats._log_binom_pmf(k, n, p))
    return total


def pass_rate_coverage(rng: np.random.Generator, n: int, p: float, *, repeats: int = 1, cluster_size: int = 0,
                       reps: int = 1000) -> float:
    """Simulated coverage of a run's pass-rate interval (items averaged over their trials)."""
    hit = 0
    for _ in range(reps):
        probs, labels = item_probs(rng, n, p, cluster_size=cluster_size)
        values = trials_mean(rng, probs, repeats)
        iv = stats.item_interval(values.tolist(), binary=True, clusters=None if labels is None else labels.tolist(),
                                 trials=n * repeats)
        hit += iv.lo <= p <= iv.hi
    return hit / reps


def ignored_cluster_coverage(rng: np.random.Generator, n: int = 100, p: float = 0.5, *, cluster_size: int = 10,
                             reps: int = 1000) -> tuple[float, float]:
    """Pass-rate coverage on clustered items (documents x questions) without and with the key."""
    plain = clustered = 0
    for _ in range(reps):
        probs, labels = item_probs(rng, n, p, cluster_size=cluster_size)
        values = (rng.random(n) < probs).astype(float).tolist()
        a = stats.item_interval(values, binary=True)
        b = stats.item_interval(values, binary=True, clusters=labels.tolist())
        plain += a.lo <= p <= a.hi
        clustered += b.lo <= p <= b.hi
    return plain / reps, clustered / reps


def mean_coverage(rng: np.random.Generator, n: int, *, cluster_size: int = 0, reps: int = 1000) -> float:
    """Simulated coverage of a continuous scorer's mean interval (skewed scores in [0, 1])."""
    hit = 0
    true = 0.7  # mean of Beta(7, 3)
    for _ in range(reps):
        if cluster_size:
            g = math.ceil(n / cluster_size)
            labels = np.repeat(np.arange(g), cluster_size)[:n]
            shift = rng.normal(0, 0.1, g)[labels]
            values = rng.beta(7, 3, n) + shift
        else:
            labels, values = None, rng.beta(7, 3, n)
        iv = stats.item_interval(values.tolist(), clusters=None if labels is None else labels.tolist())
        hit += iv.lo <= true <= iv.hi
    return hit / reps


# --- a run against its baseline -----------------------------------------------------------

def paired_runs(rng: np.random.Generator, n: int, p: float, *, churn: float, drop: float = 0.0,
                repeats: int = 1, cluster_size: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, float]:
    """Baseline and candidate pass rates per item. ``churn``: share of items that would flip
    with no real change (half each way, relative to a pass rate of 1/2); ``drop``: the true
    loss in pass rate on top. Returns candidate, baseline, cluster labels, the true difference."""
    probs, labels = item_probs(rng, n, p, cluster_size=cluster_size)
    # a passing item fails with probability f_down, a failing one passes with f_up
    f_up = min(1.0, (churn / 2) / max(1 - p, 1e-9))
    f_down = min(1.0, (churn / 2 + drop) / max(p, 1e-9))
    if cluster_size:
        # documents differ in how fragile they are: half flip three times as often as the other half
        g = int(labels.max()) + 1
        w = rng.choice([0.5, 1.5], g)[labels]
    else:
        w = np.ones(n)
    up, down = np.minimum(1.0, f_up * w), np.minimum(1.0, f_down * w)
    cand_probs = probs * (1 - down) + (1 - probs) * up
    # the population difference (the fragility weights average 1 and are independent of probs)
    true = -p * f_down + (1 - p) * f_up
    if repeats == 1:
        # single trials: each item passes or fails in the baseline, then flips or not
        base = (rng.random(n) < probs).astype(float)
        flip = rng.random(n)
        cand = np.where(base == 1.0, (flip >= down).astype(float), (flip < up).astype(float))
    else:
        base = trials_mean(rng, probs, repeats)
        cand = trials_mean(rng, cand_probs, repeats)
    return cand, base, labels, true


def paired_coverage(rng: np.random.Generator, n: int, p: float, *, churn: float, repeats: int = 1,
                    cluster_size: int = 0, reps: int = 1000) -> float:
    hit = 0
    for _ in range(reps):
        cand, base, labels, true = paired_runs(rng, n, p, churn=churn, repeats=repeats, cluster_size=cluster_size)
        d = stats.paired_difference(cand, base, binary=True, clusters=None if labels is None else labels.tolist())
        hit += d.lo <= true <= d.hi
    return hit / reps


def paired_t_coverage(rng: np.random.Generator, n: int, *, cluster_size: int = 0, reps: int = 1000) -> float:
    """Coverage of the paired t (continuous scores: differences skewed, true mean -0.02)."""
    hit = 0
    for _ in range(reps):
        d = rng.gamma(2.0, 0.05, n) - 0.12  # mean 0.1 - 0.12 = -0.02, right-skewed
        labels = None
        if cluster_size:
            g = math.ceil(n / cluster_size)
            labels = np.repeat(np.arange(g), cluster_size)[:n]
            d = d + rng.normal(0, 0.05, g)[labels]
        base = rng.uniform(0.5, 0.9, n)
        pd = stats.paired_difference(base + d, base, clusters=None if labels is None else labels.tolist())
        hit += pd.lo <= -0.02 <= pd.hi
    return hit / reps


# --- gates --------------------------------------------------------------------------------

def gate_fail_rate(rng: np.random.Generator, n: int, *, policy: str, margin: float, drop: float, churn: float,
                   p: float = 0.8, repeats: int = 1, cluster_size: int = 0, reps: int = 1000,
                   printed: list[float] | None = None) -> float:
    """How often ``pass_rate >= baseline - margin`` fails under ``policy`` at a true ``drop``;
    ``printed`` collects the detectable drop each run would print."""
    fails = 0
    for _ in range(reps):
        cand, base, labels, _ = paired_runs(rng, n, p, churn=churn, drop=drop, repeats=repeats,
                                            cluster_size=cluster_size)
        d = stats.paired_difference(cand, base, binary=True, clusters=None if labels is None else labels.tolist())
        fails += stats.gate_fails(d.diff, d.lo, d.hi, -margin, policy, d.p_value)
        if printed is not None:
            printed.append(stats.detectable_drop(d, -margin, policy))
    return fails / reps


def detectable_drop_check(rng: np.random.Generator, n: int, *, policy: str, margin: float, churn: float,
                          reps: int = 1000) -> tuple[float, float]:
    """(median printed detectable drop on unchanged runs, measured fail rate at that drop)."""
    printed: list[float] = []
    gate_fail_rate(rng, n, policy=policy, margin=margin, drop=0.0, churn=churn, reps=min(reps, 200),
                   printed=printed)
    drop = float(np.nanmedian(printed))
    return drop, gate_fail_rate(rng, n, policy=policy, margin=margin, drop=drop, churn=churn, reps=reps)


def no_regressions_fail_rate(n: int, churn: float, most: int = 0) -> float:
    """P(more than ``most`` of n items go pass -> fail) when a share ``churn`` flips, half each
    way, with no real change: the regressions are Binomial(n, churn / 2)."""
    return 1.0 - math.fsum(math.exp(stats._log_binom_pmf(k, n, churn / 2)) for k in range(min(most, n) + 1))


# --- unequal clusters (issue 21, item 5) ----------------------------------------------------

def unequal_labels(n: int, g: int, top: float = 0.5) -> np.ndarray:
    """Cluster labels of n items in g clusters: cluster 0 holds ``top`` of the items, the rest
    share the remainder equally."""
    big = round(n * top)
    rest = np.arange(n - big) % (g - 1) + 1
    return np.concatenate([np.zeros(big, dtype=int), np.sort(rest)])


def unequal_paired(rng: np.random.Generator, labels: np.ndarray, *, p: float = 0.8, churn: float = 0.1,
                   drop: float = 0.0) -> tuple[np.ndarray, np.ndarray, float]:
    """Single-trial pass/fail baseline and candidate on clustered items: a cluster shares its pass
    probability (Beta around p) and its fragility (how many of its items flip: churn times a
    cluster factor of mean 1). Returns candidate, baseline and the true mean difference, which
    weights each cluster by its size (the dominant one by half)."""
    g = int(labels.max()) + 1
    pg = np.clip(rng.beta(p * 4, (1 - p) * 4, g), 0.02, 0.98)
    probs = pg[labels]
    frag = rng.choice([0.5, 1.5], g)[labels]
    f_up = np.minimum(1.0, frag * (churn / 2) / (1 - p))
    f_down = np.minimum(1.0, frag * (churn / 2 + drop) / p)
    base = (rng.random(labels.size) < probs).astype(float)
    flip = rng.random(labels.size)
    cand = np.where(base == 1.0, (flip >= f_down).astype(float), (flip < f_up).astype(float))
    # the truth: the expectation over the cluster draws is the same for every cluster
    true = float(np.mean(-p * np.minimum(1.0, np.array([0.5, 1.5]) * (churn / 2 + drop) / p)
                         + (1 - p) * np.minimum(1.0, np.array([0.5, 1.5]) * (churn / 2) / (1 - p))))
    return cand, base, true


def unequal_cluster_cells(rng: np.random.Generator, g: int, *, n: int = 200, reps: int = 1000
                          ) -> dict[str, float]:
    """One cluster of ``g`` holds half the n items. Coverage of the run's pass-rate interval
    (Korn-Graubard on CR2), of a continuous mean (cluster t), of the paired pass/fail and continuous
    differences, and the default gate's false alarms (``pass_rate >= baseline - 2%`` and
    ``score.mean >= baseline - 0.02``, both unchanged). Truths are population values: the expectation
    over the draw of the clusters, so a dominant cluster's own luck is variance, as it should be."""
    labels = unequal_labels(n, g)
    lab = labels.tolist()
    hits = {"pass rate": 0, "mean": 0, "paired pass/fail": 0, "paired mean": 0}
    alarms = {"pass/fail gate": 0, "mean gate": 0}
    p = 0.7
    for _ in range(reps):
        pg = np.clip(rng.beta(p * 4, (1 - p) * 4, g), 0.0, 1.0)
        values = (rng.random(n) < pg[labels]).astype(float)
        iv = stats.item_interval(values.tolist(), binary=True, clusters=lab)
        hits["pass rate"] += iv.lo <= p <= iv.hi
        # continuous scores: skewed item noise around a cluster effect
        scores = rng.beta(7, 3, n) + rng.normal(0, 0.1, g)[labels]
        iv = stats.item_interval(scores.tolist(), clusters=lab)
        hits["mean"] += iv.lo <= 0.7 <= iv.hi
        cand, base, true = unequal_paired(rng, labels)
        d = stats.paired_difference(cand.tolist(), base.tolist(), binary=True, clusters=lab)
        hits["paired pass/fail"] += d.lo <= true <= d.hi
        alarms["pass/fail gate"] += stats.gate_fails(d.diff, d.lo, d.hi, -0.02, "significant", d.p_value)
        base_s = rng.uniform(0.4, 0.9, n)
        shift = rng.normal(0, 0.05, g)[labels] + rng.gamma(2.0, 0.05, n) - 0.1  # mean 0
        dm = stats.paired_difference((base_s + shift).tolist(), base_s.tolist(), clusters=lab)
        hits["paired mean"] += dm.lo <= 0.0 <= dm.hi
        alarms["mean gate"] += stats.gate_fails(dm.diff, dm.lo, dm.hi, -0.02, "significant", dm.p_value)
    out = {f"coverage {k}": v / reps for k, v in hits.items()}
    out.update({f"false alarms {k}": v / reps for k, v in alarms.items()})
    return out


# --- a family of slice gates (issue 21, item 7) ---------------------------------------------

def slice_family_alarms(rng: np.random.Generator, slices: int, *, per_slice: int = 100, churn: float = 0.1,
                        p: float = 0.8, policy: str = "significant", reps: int = 500) -> dict[str, float]:
    """Unchanged runs (churn only) of ``slices`` tagged slices, each gated by
    ``em.pass_rate[tag=sK] >= baseline - 2%``, judged through the real compare / gates / slices code.
    Returns the share of runs in which at least one slice gate fails (family-wise false alarms),
    the same without Holm's correction (each gate at its own 5%), and the share in which the
    slice table labels some row a significant drop."""
    from evalrun.gates import parse_gates

    gates = parse_gates([f"em.pass_rate[tag=s{k}] >= baseline - 2%" for k in range(slices)], scorers=["em"])
    counts = {"family-wise false alarms (Holm)": 0, "uncorrected": 0, "slice table labels a drop": 0}
    # the printed detectable drop (a bisection over exact sums per gate) decides no verdict: the
    # benchmark skips it, or 20 gates x 1000 runs would take half an hour
    saved = stats.detectable_drop
    stats.detectable_drop = lambda *a, **k: math.nan  # type: ignore[assignment]
    try:
        _slice_family_runs(rng, gates, slices, per_slice, churn, p, policy, reps, counts)
    finally:
        stats.detectable_drop = saved  # type: ignore[assignment]
    return {k: v / reps for k, v in counts.items()}


def _slice_family_runs(rng: np.random.Generator, gates: list, slices: int, per_slice: int, churn: float, p: float,
                       policy: str, reps: int, counts: dict[str, int]) -> None:
    from evalrun.compare import compare
    from evalrun.gates import evaluate
    from evalrun.records import Record, Score
    from evalrun.slices import slice_report

    n = slices * per_slice
    tags = [{"tags": [f"s{i // per_slice}"]} for i in range(n)]
    for _ in range(reps):
        cand, base, _, _ = paired_runs(rng, n, p, churn=churn)

        def records(values: np.ndarray) -> list[Record]:
            return [Record(f"i{i}", 0, "x", "y", "o", scores={"em": Score(float(v), bool(v))}, metadata=tags[i])
                    for i, v in enumerate(values)]

        cmp = compare(records(cand), records(base), baseline_info={"source": "bench"})
        results = evaluate(gates, cmp, policy)
        counts["family-wise false alarms (Holm)"] += any(r.failed for r in results)
        counts["uncorrected"] += any(
            (r.test_p is not None and r.test_p < 0.05 and r.misses) if policy == "significant" else r.failed
            for r in results)
        counts["slice table labels a drop"] += any(row.change == "drop" for row in slice_report(cmp, ["tags"]).rows)


# --- re-running until green (issue 21, item 6) ----------------------------------------------

def rerun_miss_rates(rng: np.random.Generator, *, n: int = 300, churn: float = 0.05, drop: float = 0.05,
                     margin: float = 0.02, p: float = 0.8, attempts: int = 5, reps: int = 1000
                     ) -> dict[str, list[float]]:
    """A developer re-runs CI on one commit until the gate ``pass_rate >= baseline - margin``
    passes, at most ``attempts`` times; each attempt draws the candidate afresh against the same
    baseline run. Returns, per rule, the share of runs merged (passed) within 1..attempts
    attempts: ``alone`` (each attempt judged by itself: what evalrun did), ``pooled`` (every
    attempt so far judged together), ``evalrun`` (pooled, and after a failed attempt the
    ``strict`` rule: evalrun.attempts). At ``drop`` 0 the same numbers are the share of unchanged
    commits that pass, so 1 minus the first is the false alarm and the rest show how fast re-runs
    clear one."""
    out = {rule: [0.0] * attempts for rule in ("alone", "pooled", "evalrun")}
    for _ in range(reps):
        probs, _ = item_probs(rng, n, p)
        base = (rng.random(n) < probs).astype(float)
        f_up = (churn / 2) / (1 - p)
        f_down = (churn / 2 + drop) / p
        draws = np.array([np.where(base == 1.0, rng.random(n) >= f_down, rng.random(n) < f_up).astype(float)
                          for _ in range(attempts)])
        merged = dict.fromkeys(out, False)
        failed_before = False
        for k in range(attempts):
            d1 = stats.paired_difference(draws[k].tolist(), base.tolist(), binary=True)
            merged["alone"] = merged["alone"] or not stats.gate_fails(d1.diff, d1.lo, d1.hi, -margin, "significant",
                                                                      d1.p_value)
            pooled = draws[:k + 1].mean(axis=0)
            dk = stats.paired_difference(pooled.tolist(), base.tolist(), binary=True)
            fails_sig = stats.gate_fails(dk.diff, dk.lo, dk.hi, -margin, "significant", dk.p_value)
            merged["pooled"] = merged["pooled"] or not fails_sig
            policy = "strict" if failed_before else "significant"
            fails = stats.gate_fails(dk.diff, dk.lo, dk.hi, -margin, policy, dk.p_value)
            if not merged["evalrun"]:
                merged["evalrun"] = not fails
                failed_before = failed_before or fails
            for rule in out:
                out[rule][k] += merged[rule]
    return {rule: [v / reps for v in vals] for rule, vals in out.items()}


# --- the detectable drop under the alternatives users face (issue 21, item 8) ----------------

def _continuous_pair(rng: np.random.Generator, n: int, drop: float) -> tuple[np.ndarray, np.ndarray]:
    """Judge-like scores in [0, 1]: a baseline, a candidate with run-to-run noise, and a true
    mean drop ``drop`` made of a share of items breaking to 0 (not every item shifting)."""
    base = rng.beta(7, 3, n)
    cand = np.clip(base + rng.normal(0, 0.05, n), 0, 1)
    broken = rng.random(n) < drop / 0.7  # an item at the mean 0.7 that breaks loses 0.7
    return np.where(broken, 0.0, cand), base


def _clustered_pair(rng: np.random.Generator, labels: np.ndarray, drop: float, p: float = 0.8,
                    churn: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Single-trial pass/fail on clustered items, and a true drop ``drop`` confined to whole
    clusters: each cluster breaks (every item fails) with probability drop / p."""
    g = int(labels.max()) + 1
    probs = np.clip(rng.beta(p * 4, (1 - p) * 4, g), 0.02, 0.98)[labels]
    base = (rng.random(labels.size) < probs).astype(float)
    flip = rng.random(labels.size)
    cand = np.where(base == 1.0, (flip >= churn / 2 / p).astype(float), (flip < churn / 2 / (1 - p)).astype(float))
    broken = (rng.random(g) < drop / p)[labels]
    return np.where(broken, 0.0, cand), base


def _repeats_pair(rng: np.random.Generator, n: int, drop: float) -> tuple[np.ndarray, np.ndarray]:
    """Pass/fail with 3 trials per item (pass rate 0.8, churn 4%), and a true drop ``drop`` made
    of items breaking (every trial fails)."""
    cand, base, _, _ = paired_runs(rng, n, 0.8, churn=0.04, repeats=3)
    broken = rng.random(n) < drop / 0.8
    return np.where(broken, 0.0, cand), base


def detectable_drop_alternatives(rng: np.random.Generator, *, reps: int = 1000, margin: float = 0.02
                                 ) -> dict[str, tuple[float, float]]:
    """For `x >= baseline - margin` under the default policy: (the median detectable drop
    printed on unchanged runs, the share of runs that fail at that true drop) when the drop is
    a share of items breaking (continuous scores, 100 items) and when it sits in whole clusters
    (pass/fail, 20 clusters of 10, and one cluster holding half of 200 items). Target: the
    measured share within 10 points of 0.80, and not below it by more (the printed figure is
    the conservative one)."""
    cases: dict[str, Callable[[float], tuple[np.ndarray, np.ndarray, list | None, bool]]] = {
        "continuous, items break (n=100)": lambda d: (*_continuous_pair(rng, 100, d), None, False),
        "pass/fail, whole clusters break (20 x 10)": lambda d: (
            *_clustered_pair(rng, np.repeat(np.arange(20), 10), d), np.repeat(np.arange(20), 10).tolist(), True),
        "pass/fail, clusters break, one at 50% (G=20)": lambda d: (
            *_clustered_pair(rng, unequal_labels(200, 20), d), unequal_labels(200, 20).tolist(), True),
        "pass/fail, 3 trials, items break (n=100)": lambda d: (*_repeats_pair(rng, 100, d), None, True),
    }
    out = {}
    for name, make in cases.items():
        printed = []
        for _ in range(min(reps, 200)):
            cand, base, labels, binary = make(0.0)
            d = stats.paired_difference(cand.tolist(), base.tolist(), binary=binary, clusters=labels)
            printed.append(stats.detectable_drop(d, -margin, "significant"))
        drop = float(np.nanmedian(printed))
        fails = 0
        for _ in range(reps):
            cand, base, labels, binary = make(drop)
            d = stats.paired_difference(cand.tolist(), base.tolist(), binary=binary, clusters=labels)
            fails += stats.gate_fails(d.diff, d.lo, d.hi, -margin, "significant", d.p_value)
        out[name] = (drop, fails / reps)
    return out


# --- small samples of skewed grades (issue 21, item 9) --------------------------------------

#: 5-point judge grades scaled to [0, 1]: (grade values, probabilities)
LIKERT = {
    "top-heavy (70% top grade)": ((0.0, 0.25, 0.5, 0.75, 1.0), (0.02, 0.03, 0.05, 0.2, 0.7)),
    "very top-heavy (85%)": ((0.0, 0.25, 0.5, 0.75, 1.0), (0.03, 0.02, 0.03, 0.07, 0.85)),
    "bottom-heavy (60% lowest)": ((0.0, 0.25, 0.5, 0.75, 1.0), (0.6, 0.25, 0.08, 0.05, 0.02)),
    "middle": ((0.0, 0.25, 0.5, 0.75, 1.0), (0.05, 0.15, 0.2, 0.4, 0.2)),
}


def likert_coverage(rng: np.random.Generator, n: int, shape: str, *, reps: int = 1000) -> tuple[float, float]:
    """Coverage of a run's mean interval on n skewed grades: (evalrun's interval, the plain t
    interval cut to [0, 1] that evalrun printed before). A sample whose grades are all 0 or 1 is
    pass/fail data to evalrun (Clopper-Pearson), as the summary treats it."""
    values, probs = (np.array(x) for x in LIKERT[shape])
    true = float(values @ probs)
    ours = plain = 0
    for _ in range(reps):
        x = rng.choice(values, n, p=probs).tolist()
        iv = stats.item_interval(x, binary=all(v in (0.0, 1.0) for v in x))
        ours += iv.lo - 1e-12 <= true <= iv.hi + 1e-12
        m, lo, hi = stats.mean_ci(x)
        plain += max(lo, 0.0) - 1e-12 <= true <= min(hi, 1.0) + 1e-12
    return ours / reps, plain / reps


# --- errors in the candidate and the baseline (issue 21) -----------------------------------

#: a gate that loses more than this share of its pairs to baseline errors is incomplete (gates.py)
MATERIAL_LOSS = 0.05


def error_runs(rng: np.random.Generator, n: int, *, p: float = 0.8, churn: float = 0.04, drop: float = 0.0,
               cand_errors: float = 0.0, base_errors: float = 0.0
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Single-trial baseline and candidate pass/fail per item (:func:`paired_runs`), then errors:
    the candidate's pipeline crashes on a share ``cand_errors`` of the items (a real defect: those
    items get no answer), the baseline had transient errors on a share ``base_errors`` (its answer
    there is unknown). Returns candidate, baseline, and the two error masks."""
    cand, base, _, _ = paired_runs(rng, n, p, churn=churn, drop=drop)
    return cand, base, rng.random(n) < cand_errors, rng.random(n) < base_errors


def error_gate_outcome(cand: np.ndarray, base: np.ndarray, cand_err: np.ndarray, base_err: np.ndarray, *,
                       rule: str, margin: float = 0.02) -> str:
    """``pass`` | ``fail`` | ``incomplete`` of ``pass_rate >= baseline - margin`` (significant).

    ``rule`` ``old``: as evalrun judged before issue 21 for a mean gate: an errored candidate item
    has no value and leaves the pairs, an errored baseline item counts as a failure the candidate
    "fixes". ``new``: an error is a failure in the candidate; an item that errored in the baseline
    leaves the pairs, and losing more than MATERIAL_LOSS of them makes the gate incomplete."""
    if rule == "old":
        keep = ~cand_err
        c, b = cand[keep], np.where(base_err[keep], 0.0, base[keep])
    else:
        keep = ~base_err
        c, b = np.where(cand_err[keep], 0.0, cand[keep]), base[keep]
    d = stats.paired_difference(c.tolist(), b.tolist(), binary=True)
    if stats.gate_fails(d.diff, d.lo, d.hi, -margin, "significant", d.p_value):
        return "fail"
    if rule == "new" and (base_err.mean() > MATERIAL_LOSS or not d.has_interval):
        return "incomplete"
    return "pass"


def error_pass_rates(rng: np.random.Generator, n: int, *, reps: int = 1000, **kw: float) -> dict[str, float]:
    """Share of runs each rule lets pass (a silent pass when the truth is a drop)."""
    passes = {"old": 0, "new": 0}
    for _ in range(reps):
        runs = error_runs(rng, n, **kw)
        for rule in passes:
            passes[rule] += error_gate_outcome(*runs, rule=rule) == "pass"
    return {k: v / reps for k, v in passes.items()}


ERROR_SCENARIOS = (
    ("candidate crashes on 15% (truth: -0.15 or worse)", {"cand_errors": 0.15}),
    ("candidate crashes on 5%", {"cand_errors": 0.05}),
    ("baseline 10% transient errors, true drop 0.08", {"base_errors": 0.10, "drop": 0.08}),
    ("baseline 10% transient errors, no change", {"base_errors": 0.10}),
    ("baseline 3% transient errors, true drop 0.08", {"base_errors": 0.03, "drop": 0.08}),
    ("baseline 3% transient errors, no change", {"base_errors": 0.03}),
)


def print_error_table(rng: np.random.Generator, reps: int) -> None:
    print("\nErrors in candidate and baseline: gate `pass_rate >= baseline - 2%` (significant, pass rate 0.8, "
          "churn 0.04): share of runs that PASS, before issue 21 (errored candidate items dropped, baseline "
          "errors counted as failures) and now (errors are failures; baseline-errored items left out, "
          "incomplete past 5%)")
    print("  " + " " * 50 + "".join(f"{f'n={n} {rule}':>14}" for n in (100, 300) for rule in ("old", "new")))
    for label, kw in ERROR_SCENARIOS:
        vals = [error_pass_rates(rng, n, reps=reps, **kw) for n in (100, 300)]
        print(f"  {label:<50}" + "".join(f"{v[rule]:14.3f}" for v in vals for rule in ("old", "new")))


# --- report -------------------------------------------------------------------------------

def _table(title: str, rows: list[str], cols: list[str], cell: Callable[[str, str], float]) -> float:
    """Print a table; return its worst cell for n >= 20."""
    print(f"\n{title}")
    print("  " + " " * 14 + "".join(f"{c:>10}" for c in cols))
    worst = 1.0
    for r in rows:
        vals = [cell(r, c) for c in cols]
        if int(r.split("=")[1]) >= 20:
            worst = min(worst, *(v for v in vals if not math.isnan(v)))
        print(f"  {r:<14}" + "".join(f"{v:10.3f}" for v in vals))
    return worst


def report_issue21_statistics(rng: np.random.Generator, reps: int, *, quick: bool) -> None:
    """Unequal clusters (CR2, Bell-McCaffrey df), slice-gate families (Holm), small samples of
    skewed grades (effective-n Clopper-Pearson)."""
    print("\nDetectable drop printed on unchanged runs (default policy, margin 2 points) vs the share of runs that "
          "fail at that true drop, under the alternative named (target: 0.80 to 0.90)")
    for name, (drop, power) in detectable_drop_alternatives(rng, reps=max(reps, 1000)).items():
        print(f"  {name:<47} detectable drop {drop:.3f} -> fails {power:.3f}")
    print("\nRe-running one commit until `pass_rate >= baseline - 2%` passes (300 items, pass rate 0.8, churn 5%): "
          "share merged within 1..5 attempts")
    for drop in (0.05, 0.02, 0.0):
        rates = rerun_miss_rates(rng, drop=drop, reps=max(reps, 1000))
        for rule, vals in rates.items():
            print(f"  true drop {drop:<5} {rule:<8}" + "".join(f"{v:8.3f}" for v in vals))
    print("\nMean of skewed 5-point grades, small n: coverage of evalrun's interval (effective-n Clopper-Pearson "
          "below 30 items) / the t interval (target >= 0.93)")
    print("  " + " " * 27 + "".join(f"{f'n={n}':>14}" for n in (10, 20, 30)))
    for shape in LIKERT:
        cells = [likert_coverage(rng, n, shape, reps=max(reps, 2000)) for n in (10, 20, 30)]
        print(f"  {shape:<27}" + "".join(f"{a:7.3f}/{b:.3f}" for a, b in cells))
    print("\nOne cluster holds half of 200 items (CR2 with Bell-McCaffrey df; targets: coverage >= 0.93, "
          "default-gate false alarms <= 0.025)")
    for g in (10, 20):
        cells = unequal_cluster_cells(rng, g, reps=max(reps, 2000))
        print(f"  G={g:<3} " + ", ".join(f"{k} {v:.3f}" for k, v in cells.items()))
    print("\nSlice gates `em.pass_rate[tag=sK] >= baseline - 2%` on unchanged runs (100 items per slice, "
          "churn 0.1), through compare/gates/slices: share of runs with at least one failure (target <= 0.05)")
    family_reps = 100 if quick else 400
    for policy in ("significant", "point"):
        for slices in (10, 20):
            cells = slice_family_alarms(rng, slices, policy=policy, reps=family_reps if policy == "significant"
                                        else family_reps // 4)
            print(f"  {policy:<11} {slices} slices: " + ", ".join(f"{k} {v:.3f}" for k, v in cells.items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="500 repetitions, for a look")
    args = ap.parse_args()
    reps = 500 if args.quick else args.reps
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    cols = [f"p={p}" for p in RATES]
    rows = [f"n={n}" for n in SIZES]

    def n_of(r: str) -> int:
        return int(r.split("=")[1])

    def p_of(c: str) -> float:
        return float(c.split("=")[1])

    print(f"Coverage of 95% intervals (share of simulated runs whose interval holds the truth; {reps} runs "
          "per cell unless exact)")
    worst = {}
    worst["cp"] = _table("pass rate, 1 trial per item (Clopper-Pearson; exact coverage)", rows, cols,
                             lambda r, c: exact_coverage(n_of(r), p_of(c)))
    worst["cp-rep"] = _table("pass rate, 5 trials per item (Korn-Graubard Clopper-Pearson)", rows, cols,
                                 lambda r, c: pass_rate_coverage(rng, n_of(r), p_of(c), repeats=5, reps=reps))
    worst["cp-clu"] = _table("pass rate, clusters of 10 items (Korn-Graubard, cluster-robust, G-1 df)",
                                 rows[1:], cols,
                                 lambda r, c: pass_rate_coverage(rng, n_of(r), p_of(c), cluster_size=10,
                                                                 reps=reps))
    worst["t"] = _table("continuous mean (t on item means; clusters of 10: cluster-robust)", rows,
                        ["plain", "clusters"],
                        lambda r, c: mean_coverage(rng, n_of(r), cluster_size=10 if c == "clusters" else 0,
                                                   reps=reps) if c == "plain" or n_of(r) >= 20 else math.nan)
    churn_cols = [f"churn={c}" for c in (0.01, 0.05, 0.2)]
    worst["am"] = _table("paired pass/fail difference, 1 trial (Agresti-Min), p=0.8", rows, churn_cols,
                         lambda r, c: paired_coverage(rng, n_of(r), 0.8, churn=p_of(c), reps=reps))
    worst["am-p"] = _table("paired pass/fail difference, 1 trial (Agresti-Min), churn 0.05", rows, cols,
                           lambda r, c: paired_coverage(rng, n_of(r), p_of(c), churn=0.05, reps=reps))
    worst["am-rep"] = _table("paired pass/fail difference, 3 trials (Agresti-Min on item means, t)", rows,
                             churn_cols,
                             lambda r, c: paired_coverage(rng, n_of(r), 0.8, churn=p_of(c), repeats=3, reps=reps))
    worst["am-clu"] = _table("paired pass/fail difference, clusters of 10 (cluster-robust Agresti-Min, G-1 df)",
                             rows[1:], churn_cols,
                             lambda r, c: paired_coverage(rng, n_of(r), 0.8, churn=p_of(c), cluster_size=10,
                                                          reps=reps))
    worst["pt"] = _table("paired continuous difference (paired t; clusters of 10: cluster-robust)", rows,
                         ["plain", "clusters"],
                         lambda r, c: paired_t_coverage(rng, n_of(r), cluster_size=10 if c == "clusters" else 0,
                                                        reps=reps) if c == "plain" or n_of(r) >= 20 else math.nan)
    print("\nworst cell per kind (n >= 20): " + ", ".join(f"{k} {v:.3f}" for k, v in worst.items()))

    print("\nGate `pass_rate >= baseline - 2%` (pass rate 0.8, 1 trial): share of runs that fail")
    for churn in (0.02, 0.04, 0.08):
        print(f"\n  churn {churn} (share of items that flip with no real change)")
        print("  " + " " * 29 + "".join(f"{f'n={n}':>9}" for n in GATE_SIZES))
        for policy in POLICIES:
            for label, drop in (("no change", 0.0), ("drop 2.5x margin", 0.05)):
                vals = [gate_fail_rate(rng, n, policy=policy, margin=0.02, drop=drop, churn=churn, reps=reps)
                        for n in GATE_SIZES]
                print(f"  {policy:<11} {label:<17}" + "".join(f"{v:9.3f}" for v in vals))

    print("\n`no_regressions` on unchanged single-trial runs: share that fails (exact binomial), by churn")
    print("  " + " " * 21 + "".join(f"{f'n={n}':>9}" for n in SIZES))
    for churn in (0.01, 0.02, 0.04):
        for most in (0, 2):
            vals = [no_regressions_fail_rate(n, churn, most) for n in SIZES]
            print(f"  churn {churn:<5} max {most:<6}" + "".join(f"{v:9.3f}" for v in vals))

    print("\nDetectable drop printed on unchanged runs vs the fail rate measured at that drop (target 0.80)")
    for policy in ("significant", "point"):
        for n in (100, 300, 500):
            drop, power = detectable_drop_check(rng, n, policy=policy, margin=0.02, churn=0.04, reps=reps)
            print(f"  {policy:<11} n={n:<4} churn 0.04: detectable drop {drop:.3f} -> fails {power:.3f}")
    print_error_table(rng, reps)
    plain, clustered = ignored_cluster_coverage(rng, reps=reps)
    print(f"\n10 documents x 10 questions, pass rate 0.5: coverage {plain:.3f} without `cluster:`, "
          f"{clustered:.3f} with it")
    report_issue21_statistics(rng, reps, quick=args.quick)
    print(f"\n({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
