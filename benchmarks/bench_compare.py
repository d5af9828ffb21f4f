"""Comparison benchmark: pairing, statistics, gates and every report on a large run.

Data: a candidate and a baseline of N items x R trials with three scorers (a 0/1 match, a
continuous similarity with a threshold, a judge pass/fail), ~10% of items flipped between
runs, 1% target errors. Records are built in memory, so the numbers are the comparison's
own cost, not JSON parsing.

The ideal is one pass over both runs' records that groups them by item (a dict append per
record): nothing that pairs runs can do less. The report shows each phase and its ratio to
that floor, and the peak memory the comparison added (tracemalloc).

Usage: python benchmarks/bench_compare.py [--items 20000] [--trials 1]
"""

from __future__ import annotations

import argparse
import random
import time
import tracemalloc
from collections import defaultdict

from evalrun.compare import compare
from evalrun.gates import evaluate, parse_gates
from evalrun.records import Record, Score
from evalrun.report import render
from evalrun.verdict import Verdict

SCORERS = ["em", "sim", "judge"]
GATES = ["em.mean >= 0.5", "sim.mean >= baseline - 0.02", "judge.pass_rate >= baseline", "errors <= 2%",
         "latency_p95_ms <= baseline + 10%", {"no_regressions": {"tag": "critical"}}]


def make_run(items: int, trials: int, seed: int, flip: float) -> list[Record]:
    rng = random.Random(seed)
    base_rng = random.Random(0)  # item difficulty is shared by both runs
    out = []
    for i in range(items):
        p = base_rng.random()
        for t in range(trials):
            if rng.random() < 0.01:
                out.append(Record(f"item{i:07d}", t, f"q{i}", f"a{i}", None, {"type": "Timeout", "message": "t"},
                                  float(rng.randint(50, 500))))
                continue
            ok = (rng.random() < p) != (rng.random() < flip)
            sim = min(1.0, max(0.0, p + rng.gauss(0, 0.1)))
            out.append(Record(f"item{i:07d}", t, f"q{i}", f"a{i}", f"answer {i} {'ok' if ok else 'no'}", None,
                              float(rng.randint(50, 500)), {"cost_usd": 1e-5},
                              {"em": Score(float(ok), ok), "sim": Score(sim, sim >= 0.7),
                               "judge": Score(float(ok), ok, "judged")},
                              {"tags": ["critical"] if i % 50 == 0 else []}))
    return out


def timed(fn):
    t0 = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=20_000)
    ap.add_argument("--trials", type=int, default=1)
    a = ap.parse_args()
    base = make_run(a.items, a.trials, 1, 0.0)
    cand = make_run(a.items, a.trials, 2, 0.1)
    n = len(base) + len(cand)

    def floor() -> int:
        groups: dict[str, list[Record]] = defaultdict(list)
        for r in base:
            groups[r.item_id].append(r)
        for r in cand:
            groups[r.item_id].append(r)
        return len(groups)

    _, t_floor = timed(floor)

    def run_compare():
        return compare(cand, base, run={"run_id": "cand", "eval": "bench"}, baseline_info={"source": "base"},
                       scorers=SCORERS)

    gates = parse_gates(GATES, scorers=SCORERS, repeat=a.trials)
    cmp, t_cmp = timed(run_compare)
    results, t_gates = timed(lambda: evaluate(gates, cmp, "significant"))
    # memory in a second pass: tracemalloc slows allocation down too much to time under it
    tracemalloc.start()
    evaluate(gates, run_compare(), "significant")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    verdict = Verdict(cmp, results, "significant")
    print(f"{a.items} items x {a.trials} trials, {n} records in both runs, {len(cmp.regressed)} regressed")
    print(f"{'phase':<22}{'seconds':>10}{'x ideal':>10}")
    print(f"{'ideal (group by item)':<22}{t_floor:>10.3f}{1.0:>10.1f}")
    print(f"{'compare':<22}{t_cmp:>10.3f}{t_cmp / t_floor:>10.1f}")
    print(f"{'gates (+bootstrap)':<22}{t_gates:>10.3f}{t_gates / t_floor:>10.1f}")
    for fmt in ("console", "md", "junit", "html", "json"):
        text, t = timed(lambda fmt=fmt: render(verdict, fmt))
        print(f"{'report ' + fmt:<22}{t:>10.3f}{t / t_floor:>10.1f}   {len(text) / 1e6:.1f} MB")
    print(f"peak memory added by compare + gates: {peak / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
