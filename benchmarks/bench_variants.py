"""Variant groups: three variants of one eval run in one `evalrun run`, under one shared
concurrency limit, measured against the ideal and against running them one after another.

Cases:
  even   3 variants x 1,000 items, async target sleeping 50 ms, concurrency 16.
         ideal = 3 x ceil(1000/16) x 50 ms = 9.45 s; goal: whole command <= 1.15 x ideal
  slow   the same, one variant sleeping 200 ms: ideal = total sleep / 16 = 18.75 s (the slow
         variant must not serialise the others: slots taken first come first served)
Fair baselines: the three variants as three separate `evalrun run` commands, one after another
(what a user without variants does); and one plain run of all 3 x 1,000 calls in one eval
at the same concurrency (the same target work without variants: what the group adds on top
is its setup and the side-by-side comparison).

Starvation is read from the records: each record's start and end times (started_at, latency).
  share at half   per variant, the fraction of its records finished when half of all records
                  are; 0.5 each when slots are shared evenly (a starved variant shows ~0)
  finish spread   (last variant's end - first variant's end) / group span; ~0 when even

Usage: python benchmarks/bench_variants.py [--runs 5] [--only even,slow]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGETS = '''
import asyncio

async def fast(x):
    await asyncio.sleep(0.05)
    return x

async def fast2(x):
    await asyncio.sleep(0.05)
    return x

async def slow(x):
    await asyncio.sleep(0.2)
    return x
'''

N = 1000
CONCURRENCY = 16


def write_suite(root: Path, variants: dict[str, str]) -> Path:
    (root / "bench_vtargets.py").write_text(TARGETS)
    with open(root / "data.jsonl", "w") as f:
        for i in range(N):
            f.write(json.dumps({"id": f"item-{i}", "input": f"answer {i}", "expected_output": f"answer {i}"}) + "\n")
    lines = [f"  {name}: {{target.python: 'bench_vtargets:{fn}'}}" for name, fn in variants.items()]
    cfg = root / "eval.yaml"
    cfg.write_text("name: bench\ndataset: data.jsonl\ntarget:\n  python: bench_vtargets:fast\n"
                   f"concurrency: {CONCURRENCY}\nscorers: [exact_match]\nvariants:\n" + "\n".join(lines) + "\n")
    with open(root / "data3.jsonl", "w") as f:
        for i in range(len(variants) * N):
            f.write(json.dumps({"id": f"item-{i}", "input": f"answer {i}", "expected_output": f"answer {i}"}) + "\n")
    (root / "all.yaml").write_text("name: bench-all\ndataset: data3.jsonl\ntarget:\n  python: bench_vtargets:fast\n"
                                   f"concurrency: {CONCURRENCY}\nscorers: [exact_match]\n")
    for fn in set(variants.values()):
        (root / f"single-{fn}.yaml").write_text(f"name: bench-{fn}\ndataset: data.jsonl\ntarget:\n"
                                                f"  python: bench_vtargets:{fn}\nconcurrency: {CONCURRENCY}\n"
                                                "scorers: [exact_match]\n")
    return cfg


def run(cmd: list[str], cwd: Path) -> tuple[float, str]:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"command failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr[-2000:]}")
    return wall, r.stdout


def fairness(home: Path, group_id: str) -> tuple[float, dict[str, float], float]:
    """(group span s, per-variant share finished at half time, finish spread / span)."""
    group = json.loads((home / "groups" / group_id / "group.json").read_text())
    ends: dict[str, list[float]] = {}
    starts = []
    for name, run_id in group["variants"].items():
        ends[name] = []
        for line in (home / "runs" / run_id / "results.jsonl").read_text().splitlines():
            r = json.loads(line)
            starts.append(r["started_at"])
            ends[name].append(r["started_at"] + r["latency_ms"] / 1000)
    everything = sorted(e for v in ends.values() for e in v)
    t0, t_end = min(starts), everything[-1]
    half = everything[len(everything) // 2]
    share = {n: sum(1 for e in v if e <= half) / len(v) for n, v in ends.items()}
    last = [max(v) for v in ends.values()]
    return t_end - t0, share, (max(last) - min(last)) / (t_end - t0)


def bench(case: str, variants: dict[str, str], ideal: float, runs: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        cfg = write_suite(root, variants)
        walls, spans, shares, spreads = [], [], [], []
        for i in range(runs):
            home = root / f".evalrun{i}"
            wall, out = run([sys.executable, "-m", "evalrun", "run", str(cfg), "--quiet", "--json",
                             "--output-dir", str(home)], root)
            span, share, spread = fairness(home, json.loads(out)["group_id"])
            walls.append(wall)
            spans.append(span)
            shares.append(share)
            spreads.append(spread)
        # fair baselines: the same calls as one plain run; each variant as its own command
        one = [run([sys.executable, "-m", "evalrun", "run", "all.yaml", "--quiet", "--output-dir",
                    str(root / f".all{i}")], root)[0] for i in range(runs)] if set(variants.values()) <= {
            "fast", "fast2"} else []
        seq = []
        for i in range(max(1, runs // 2)):
            t = 0.0
            for fn in variants.values():
                w, _ = run([sys.executable, "-m", "evalrun", "run", f"single-{fn}.yaml", "--quiet",
                            "--output-dir", str(root / f".seq{i}")], root)
                t += w
            seq.append(t)
    med = statistics.median(walls)
    print(f"\n[{case}] {len(variants)} variants x {N} items, concurrency {CONCURRENCY} (shared), {runs} runs")
    print(f"  whole command  median {med:.2f} s  (runs: {', '.join(f'{w:.2f}' for w in walls)})")
    print(f"  target span    median {statistics.median(spans):.2f} s  (first call start .. last call end)")
    print(f"  ideal          {ideal:.2f} s   ratio command/ideal {med / ideal:.3f}   "
          f"span/ideal {statistics.median(spans) / ideal:.3f}")
    print(f"  one after another (3 commands)  median {statistics.median(seq):.2f} s")
    if one:
        print(f"  one plain run of all {len(variants) * N} calls  median {statistics.median(one):.2f} s "
              f"({statistics.median(one) / ideal:.3f} x ideal)")
    names = list(variants)
    print("  share of each variant's records finished at the group's half time (median): "
          + ", ".join(f"{n} {statistics.median(s[n] for s in shares):.2f}" for n in names))
    print(f"  finish spread (last variant end - first variant end) / span: median {statistics.median(spreads):.3f}")
    if case == "even":
        goal = 1.15 * ideal
        print(f"  goal: command <= 1.15 x ideal = {goal:.2f} s -> {'MET' if med <= goal else 'NOT MET'}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--only", default="even,slow")
    a = ap.parse_args()
    only = set(a.only.split(","))
    batches = math.ceil(N / CONCURRENCY)
    if "even" in only:
        bench("even", {"a": "fast", "b": "fast2", "c": "fast"}, 3 * batches * 0.05, a.runs)
    if "slow" in only:
        bench("slow", {"a": "fast", "b": "fast2", "slow": "slow"}, N * (0.05 + 0.05 + 0.2) / CONCURRENCY, a.runs)


if __name__ == "__main__":
    main()
