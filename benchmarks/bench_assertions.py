"""Per-item assertions: what 5 checks per item add to a run, against the same run with one
exact_match scorer (issue 25: at most 10% more wall time for 10,000 items).

Both suites run the same 10,000 items through the same target, interleaved (exact, assert,
assert, exact, ...: a busy shared machine slows both alike), as children of this process
with byte-code caching (see bench_engine.py). Cases:

  instant  a target that answers at once: nothing hides the scoring cost (the hard case)
  model    a target taking 50 ms per call at concurrency 16 (bench_engine.py's async case; a
           hosted model takes 10-100 times longer): the scoring runs while calls wait

The five checks of every item: contains (two phrases), not_contains (two phrases), regex,
numeric and json_path (on the one JSON field of the answer), so both text and JSON parsing are
paid. Prints the median wall and CPU seconds of each suite and the ratio of the medians.

Usage: python benchmarks/bench_assertions.py [--runs 5] [--items 10000] [--only instant,async]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_engine import CHILD_ENV, timed  # noqa: E402

TARGET = '''
import asyncio, json

def _answer(q):
    n = int(q.split()[-1])
    return json.dumps({"answer": f"Refunds are possible within 30 days of purchase, ref {n}.", "days": 30})

async def instant(q):
    return _answer(q)

async def slow(q):
    await asyncio.sleep(0.05)
    return _answer(q)
'''

def checks(i: int) -> list[dict]:
    """Five checks, each item its own phrases and numbers (as in a real golden set), the regex a
    format check all items share: compiling a pattern costs about 0.2 ms with the ``regex``
    module, paid once per distinct pattern (2 s more for 10,000 distinct ones)."""
    return [
        {"type": "contains", "value": [f"ref {i}.", "30 days"]},
        {"type": "not_contains", "value": [f"CompetitorX {i}", "guarantee"]},
        {"type": "regex", "pattern": r"ref \d+\."},
        {"type": "numeric", "value": 30 + i % 2, "tolerance": 1, "output": "days"},
        {"type": "json_path", "path": "answer"},
    ]


def write_suites(root: Path, n: int, target: str, concurrency: int) -> tuple[Path, Path]:
    (root / "bench_targets.py").write_text(TARGET)
    with open(root / "exact.jsonl", "w") as f, open(root / "assert.jsonl", "w") as g:
        for i in range(n):
            item = {"id": f"item-{i}", "input": f"question {i}",
                    "expected_output": json.dumps({"answer": f"Refunds are possible within 30 days of purchase, "
                                                             f"ref {i}.", "days": 30})}
            f.write(json.dumps(item) + "\n")
            g.write(json.dumps({"id": item["id"], "input": item["input"], "assert": checks(i)}) + "\n")
    head = f"target:\n  python: bench_targets:{target}\nconcurrency: {concurrency}\n"
    (root / "exact.yaml").write_text(f"name: exact\ndataset: exact.jsonl\n{head}scorers: [exact_match]\n")
    (root / "assert.yaml").write_text(f"name: asserts\ndataset: assert.jsonl\n{head}scorers: [assert]\n")
    return root / "exact.yaml", root / "assert.yaml"


def bench(name: str, n: int, target: str, concurrency: int, runs: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        suites = dict(zip(("exact_match", "5 assertions"), write_suites(root, n, target, concurrency), strict=True))

        def cmd(label: str) -> list[str]:
            return [sys.executable, "-m", "evalrun", "run", str(suites[label]), "--quiet",
                    "--output-dir", str(root / ".evalrun")]

        for label in suites:
            timed(cmd(label), root)  # warm-up: .pyc files
        walls: dict[str, list[float]] = {label: [] for label in suites}
        cpus: dict[str, list[float]] = {label: [] for label in suites}
        for i in range(runs):
            for label in (list(suites) if i % 2 == 0 else list(suites)[::-1]):
                wall, _, cpu = timed(cmd(label), root)
                walls[label].append(wall)
                cpus[label].append(cpu)
        for label in suites:
            print(f"{name:8} {label:13} n={n}  median {statistics.median(walls[label]):6.2f} s  "
                  f"cpu {statistics.median(cpus[label]):6.2f} s  (runs: {', '.join(f'{w:.2f}' for w in walls[label])})",
                  flush=True)
        ratio = statistics.median(walls["5 assertions"]) / statistics.median(walls["exact_match"])
        cpu_ratio = statistics.median(cpus["5 assertions"]) / statistics.median(cpus["exact_match"])
        print(f"{name:8} 5 assertions / exact_match: wall {ratio:.3f}x, cpu {cpu_ratio:.3f}x  goal: <= 1.10x wall",
              flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--items", type=int, default=10_000)
    ap.add_argument("--only", default="instant,model")
    a = ap.parse_args()
    pycache = tempfile.TemporaryDirectory()
    CHILD_ENV["PYTHONPYCACHEPREFIX"] = pycache.name
    only = set(a.only.split(","))
    if "instant" in only:
        bench("instant", a.items, "instant", 16, a.runs)
    if "model" in only:
        bench("model", a.items, "slow", 16, a.runs)


if __name__ == "__main__":
    main()
