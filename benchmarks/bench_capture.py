"""Span capture overhead: 10,000 instant python calls with ``capture_spans`` off and on.

The target is a sync function that emits two OpenTelemetry spans per call (an agent span and a
tool span with GenAI attributes) on an SDK tracer provider it sets itself, so both arms pay
for making the spans and only the capture differs: evalrun's span processor, the per-record
bookkeeping, the context hand-over to the worker thread and the trajectory written to each
record. A second pair of arms runs a target that emits no span (what capture costs a pipeline
that is not instrumented). The goal (issue 26): capture adds at most 10%.

Wall time and CPU time (user + system: steadier than wall time on a busy shared machine) of
the whole ``evalrun run`` (a child process, byte-code cached), medians of --runs runs per arm,
arms interleaved (off, on, on, off, ...) so load on the machine hits both alike.

Usage: python benchmarks/bench_capture.py [--runs 5] [--items 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

TARGET = '''
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

if not hasattr(trace.get_tracer_provider(), "add_span_processor"):
    trace.set_tracer_provider(TracerProvider())
tracer = trace.get_tracer("bench")


def spans(x):
    with tracer.start_as_current_span("agent"):
        with tracer.start_as_current_span("lookup_order") as s:
            s.set_attribute("gen_ai.operation.name", "execute_tool")
            s.set_attribute("gen_ai.tool.name", "lookup_order")
            s.set_attribute("gen_ai.tool.call.arguments", '{"order_id": "A-1"}')
    return x


def plain(x):
    return x
'''


def write_case(root: Path, fn: str, capture: bool, items: int) -> Path:
    d = root / f"{fn}-{'on' if capture else 'off'}"
    d.mkdir()
    (d / "bench_target.py").write_text(TARGET)
    (d / "golden.jsonl").write_text("".join(json.dumps({"id": f"i{i}", "input": f"q{i}", "expected_output": f"q{i}"})
                                            + "\n" for i in range(items)))
    cfg = {"name": "capture", "dataset": "golden.jsonl", "concurrency": 8, "scorers": ["exact_match"],
           "target": {"python": f"bench_target:{fn}", "capture_spans": capture}}
    (d / "eval.yaml").write_text(json.dumps(cfg))
    return d


def run(d: Path, env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds: user + system) of one ``evalrun run``."""
    shutil.rmtree(d / "out", ignore_errors=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "evalrun", "run", "eval.yaml", "-q", "--output-dir", str(d / "out")],
                       cwd=d, env=env, capture_output=True, text=True)
    took = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise SystemExit(f"{d.name}: exit {r.returncode}\n{r.stderr[-2000:]}")
    return took, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--items", type=int, default=10_000)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env.update(PYTHONPATH=str(REPO), PYTHONPYCACHEPREFIX=str(root / "pycache"))
        for fn in ("spans", "plain"):
            off, on = write_case(root, fn, False, a.items), write_case(root, fn, True, a.items)
            run(off, env)  # warm the byte-code cache, untimed
            times: dict[str, list[tuple[float, float]]] = {"off": [], "on": []}
            for i in range(a.runs):
                order = [("off", off), ("on", on)] if i % 2 == 0 else [("on", on), ("off", off)]
                for label, d in order:
                    times[label].append(run(d, env))
            for what, k in (("wall", 0), ("cpu", 1)):
                m_off = statistics.median(t[k] for t in times["off"])
                m_on = statistics.median(t[k] for t in times["on"])
                print(f"{fn:6s} {a.items} items, {what}: capture off {m_off:.2f} s, on {m_on:.2f} s (medians of "
                      f"{a.runs}): overhead {100 * (m_on / m_off - 1):+.1f}%  [off "
                      f"{', '.join(f'{t[k]:.2f}' for t in times['off'])}; on {', '.join(f'{t[k]:.2f}' for t in times['on'])}]",
                      flush=True)


if __name__ == "__main__":
    main()
