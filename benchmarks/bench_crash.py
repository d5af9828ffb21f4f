"""What a crash costs: SIGKILL at random moments of a 2,000-item run whose scorers (an LLM
judge with 50 ms latency, the bundled embedding model) are slower than the target, then
``evalrun run --resume``; repeated 10 times (each kill lands uniformly within ``--max-wait``
seconds of the moment the process starts working, i.e. calls the target or writes a scored
record: so kills land during target calls and during scoring, never in model loading), then the last resume finishes.

Measured per kill: target calls re-executed by the next process (calls of inputs an earlier
process had already started). Ideal: at most ``concurrency`` (the calls in flight when the
kill landed). Checked after every process: results.jsonl never holds a (item, trial) twice;
at the end it holds exactly one line per (item, trial).

Baseline: the same harness against another checkout of evalrun (``--baseline-package``,
e.g. the commit before write-before-score), which kept finished calls in memory until a
whole scoring batch was scored.

    python benchmarks/bench_crash.py [--items 2000] [--kills 10] [--concurrency 8] [--max-wait 10] [--target-sleep 0.05]
                                     [--baseline-package /path/to/old/checkout]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.crash_harness import make_suite, run_with_kills  # noqa: E402


def start_server(latency: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "tests.openai_server", "--latency", str(latency)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    port = int(proc.stdout.readline().split()[1])
    return proc, f"http://127.0.0.1:{port}/v1"


def measure(package: Path, args: argparse.Namespace, url: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        make_suite(root, args.items, args.concurrency, embedding=not args.no_embedding)
        t0 = time.perf_counter()
        rep = run_with_kills(root, url, args.kills, args.max_wait, seed=args.seed, package_root=package,
                             target_sleep=args.target_sleep)
        took = time.perf_counter() - t0
    per_kill = rep.reexecuted_per_kill
    print(f"package {package}")
    print(f"  kills {rep.kills}, final exit {rep.final_exit}, {took:.0f} s in all")
    print(f"  re-executed calls per kill: {per_kill}")
    if per_kill:
        print(f"  max {max(per_kill)}, median {statistics.median(per_kill)} (ideal <= concurrency = {args.concurrency})")
    print(f"  results.jsonl lines after each process: {rep.lines_after_each_process}")
    print(f"  seconds from start to kill: {rep.killed_after_s}")
    print(f"  target calls per process: {rep.calls_per_process}")
    print(f"  most duplicate lines seen: {rep.duplicate_lines}")
    print(f"  final: {rep.final_records} lines, {rep.final_unique} distinct (item, trial); "
          f"{rep.total_calls} target calls for {args.items} items")
    if rep.final_exit != 0:
        print(rep.final_stderr[-2000:])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--max-wait", type=float, default=10.0, help="kill within this many seconds of a process starting work")
    ap.add_argument("--latency", type=float, default=0.05, help="judge latency, seconds")
    ap.add_argument("--target-sleep", type=float, default=0.05, help="target call time, seconds")
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--no-embedding", action="store_true")
    ap.add_argument("--baseline-package", type=Path)
    args = ap.parse_args()
    server, url = start_server(args.latency)
    try:
        measure(REPO, args, url)
        if args.baseline_package:
            measure(args.baseline_package, args, url)
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
