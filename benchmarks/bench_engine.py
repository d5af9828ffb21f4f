"""Engine benchmarks: the whole `evalrun run` command, measured against the ideal.

Cases (from the core runner issue):
  async   1,000 items, async target sleeping 50 ms, concurrency 16, exact_match; ideal 3.1 s
  sync    the same with time.sleep in a sync target (threads)
  instant 100,000 items, a target that returns at once: items/s through the engine, peak RSS
  one     1 item, instant target: the start-up cost a short run pays (goal <= 0.35 s)
  1k      1,000 instant items (goal <= 0.5 s)
  floor   what any run pays before evalrun's code: `python -c pass`, `import typer`

Wall times are medians of --runs runs (5 by default). Children run as an installed package
does: with byte-code caching (PYTHONDONTWRITEBYTECODE dropped, the .pyc files kept in a
temporary PYTHONPYCACHEPREFIX, warmed by one untimed run), so module compilation, which an
installed package never repeats, is not counted.

With ``--against PATH`` (another checkout, e.g. ``git worktree add /tmp/old aa54f4d``) every case
runs both trees interleaved (this one, PATH, PATH, this one, ...: a busy shared machine slows
both alike), each child with PYTHONPATH set to its tree, and prints the ratio of the medians.

Peers measured on this machine for the async case (from the issue): promptfoo 0.123.1
6.2 s (JS provider) / 10.0 s (Python provider); Inspect AI 0.3.285 about 15 s.

Usage: python benchmarks/bench_engine.py [--runs 5] [--only help,floor,one,1k,async,sync,instant] [--against PATH]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGETS = '''
import asyncio, time

async def async_sleep(x):
    await asyncio.sleep(0.05)
    return x

def sync_sleep(x):
    time.sleep(0.05)
    return x

async def instant(x):
    return x
'''


#: the environment every timed child runs in (see the module docstring)
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
REPO = Path(__file__).resolve().parent.parent
#: the trees a run case measures: label -> the environment of its children (--against adds one)
TREES: dict[str, dict[str, str]] = {"": CHILD_ENV}


def write_suite(root: Path, n: int, target: str, concurrency: int) -> Path:
    (root / "bench_targets.py").write_text(TARGETS)
    with open(root / "data.jsonl", "w") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"item-{i}", "input": f"answer {i}", "expected_output": f"answer {i}"}) + "\n")
    cfg = root / "eval.yaml"
    cfg.write_text(f"name: bench\ndataset: data.jsonl\ntarget:\n  python: bench_targets:{target}\n"
                   f"concurrency: {concurrency}\nscorers: [exact_match]\n")
    return cfg


def timed(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, float, float]:
    """Wall seconds, the peak RSS (MB) and the CPU seconds (user + system) of the child: on a
    busy machine the CPU time shows what the wall time would be without the wait for a core."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    before, cpu0 = usage.ru_maxrss, usage.ru_utime + usage.ru_stime
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                       env=env or CHILD_ENV)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"command failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr[-2000:]}")
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, max(usage.ru_maxrss, before) / 1024, usage.ru_utime + usage.ru_stime - cpu0


def bench_run(name: str, n: int, target: str, concurrency: int, runs: int, ideal: float | None,
              goal: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        cfg = write_suite(root, n, target, concurrency)

        def cmd(label: str) -> list[str]:
            return [sys.executable, "-m", "evalrun", "run", str(cfg), "--quiet",
                    "--output-dir", str(root / f".evalrun{label}")]

        for label, env in TREES.items():
            timed(cmd(label), root, env)  # warm-up: .pyc files, disk cache
        walls: dict[str, list[float]] = {label: [] for label in TREES}
        cpus: dict[str, list[float]] = {label: [] for label in TREES}
        for i in range(runs):
            for label in (list(TREES) if i % 2 == 0 else list(TREES)[::-1]):
                wall, _, cpu = timed(cmd(label), root, TREES[label])
                walls[label].append(wall)
                cpus[label].append(cpu)
        for label, env in TREES.items():
            # peak memory: one more run under /usr/bin/time when present (RUSAGE_CHILDREN keeps the max of all)
            peak = measure_rss(cmd(label), root, env)
            med = statistics.median(walls[label])
            line = (f"{name + (' ' + label if label else ''):8} n={n:<7} median {med:6.2f} s  "
                    f"(runs: {', '.join(f'{w:.2f}' for w in walls[label])})")
            if ideal:
                line += f"  ideal {ideal:.2f} s  ratio {med / ideal:.3f}x"
            line += (f"  cpu {statistics.median(cpus[label]):.2f} s  throughput {n / med:,.0f} items/s"
                     f"  peak RSS {peak:.0f} MB")
            if label and label != "this":
                line += f"  this/{label} {statistics.median(walls['this']) / med:.3f}"
            print(line + f"  goal: {goal}", flush=True)


def measure_rss(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    if os.path.exists("/usr/bin/time"):
        r = subprocess.run(["/usr/bin/time", "-v", *cmd], cwd=cwd, stdout=subprocess.DEVNULL, env=env or CHILD_ENV,
                           stderr=subprocess.PIPE, text=True)
        for line in r.stderr.splitlines():
            if "Maximum resident set size" in line:
                return int(line.split(":")[1]) / 1024
    return timed(cmd, cwd, env)[1]


def bench_help(runs: int) -> None:
    walls = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "evalrun", "--help"], stdout=subprocess.DEVNULL, check=True, env=CHILD_ENV)
        walls.append(time.perf_counter() - t0)
    print(f"help     median {statistics.median(walls):6.3f} s  goal: < 0.3 s", flush=True)
    probe = ("import sys, runpy; sys.argv=['evalrun','--help']\n"
             "try:\n runpy.run_module('evalrun', run_name='__main__')\nexcept SystemExit: pass\n"
             "heavy=[m for m in ('torch','sentence_transformers','langfuse','openai') if m in sys.modules]\n"
             "print('heavy modules imported by --help:', heavy or 'none', file=sys.stderr)")
    subprocess.run([sys.executable, "-c", probe], stdout=subprocess.DEVNULL, env=CHILD_ENV)


def bench_floor(runs: int) -> None:
    """What a run pays before evalrun's own work: the interpreter, typer, and typer parsing one
    command (``evalrun show`` of a missing run: typer builds a pydantic TypeAdapter per option
    it parses, so pydantic is loaded by typer itself), then fails at the first lookup."""
    with tempfile.TemporaryDirectory() as d:
        cases = (("python", ["-c", "pass"]), ("typer", ["-c", "import typer"]),
                 ("parse", ["-m", "evalrun", "show", "no-such-run", "--output-dir", d]))
        for label, args in cases:
            walls = []
            for _ in range(runs):
                t0 = time.perf_counter()
                subprocess.run([sys.executable, *args], stderr=subprocess.DEVNULL, env=CHILD_ENV)
                walls.append(time.perf_counter() - t0)
            print(f"floor    {label:7} median {statistics.median(walls):6.3f} s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--only", default="help,floor,one,1k,async,sync,instant")
    ap.add_argument("--against", type=Path, help="another checkout to measure interleaved with this one")
    a = ap.parse_args()
    only = set(a.only.split(","))
    pycache = tempfile.TemporaryDirectory()
    CHILD_ENV["PYTHONPYCACHEPREFIX"] = pycache.name
    if a.against is not None:
        # each tree its own PYTHONPATH and .pyc cache
        TREES.clear()
        for label, tree in (("this", REPO), (a.against.name, a.against.resolve())):
            cache = tempfile.mkdtemp(dir=pycache.name)
            TREES[label] = {**CHILD_ENV, "PYTHONPATH": str(tree), "PYTHONPYCACHEPREFIX": cache}
    subprocess.run([sys.executable, "-m", "evalrun", "--help"], stdout=subprocess.DEVNULL, env=CHILD_ENV)
    ideal = math.ceil(1000 / 16) * 0.05
    if "help" in only:
        bench_help(a.runs)
    if "floor" in only:
        bench_floor(a.runs)
    if "one" in only:
        bench_run("one", 1, "instant", 16, a.runs, None, "<= 0.35 s")
    if "1k" in only:
        bench_run("1k", 1000, "instant", 16, a.runs, None, "<= 0.5 s")
    if "async" in only:
        bench_run("async", 1000, "async_sleep", 16, a.runs, ideal, f"<= 1.10x ideal ({1.10 * ideal:.2f} s)")
    if "sync" in only:
        bench_run("sync", 1000, "sync_sleep", 16, a.runs, ideal, f"<= 1.2x ideal ({1.2 * ideal:.2f} s)")
    if "instant" in only:
        bench_run("instant", 100_000, "instant", 16, max(1, a.runs // 2), None,
                  ">= 10,000 items/s, peak RSS < 300 MB (promptfoo: 985 MB for 10,000)")


if __name__ == "__main__":
    main()
