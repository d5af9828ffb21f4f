"""Judge throughput under rate limits: 1,000 records, a judge server with 200 ms latency that
answers 10% of prompts with 429 + Retry-After: 1 on their first try, judge concurrency 16.

Ideal: every slot busy all the time, each 429 costing its 1 s wait in a slot:
(1000 x 0.2 s + 100 x 1 s) / 16 = 18.75 s. Target: within 1.3x of it.

Measured twice: the scorer alone (score_batch over all records) and a whole
``python -m evalrun run`` (target, engine batching, results and summary written), each with
an empty cache. The server (tests/openai_server.py) runs in its own process.

    python benchmarks/bench_judge.py [--records 1000] [--latency 0.2] [--rate-429 0.1] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def start_server(latency: float, rate_429: float, retry_after: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "tests.openai_server", "--latency", str(latency),
                             "--rate-429", str(rate_429), "--retry-after", str(retry_after)],
                            cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    port = int(line.split()[1])
    return proc, f"http://127.0.0.1:{port}/v1"


def stats(url: str) -> dict:
    with urllib.request.urlopen(url + "/stats") as r:
        return json.loads(r.read())


def server_arguments(doc: str | None) -> argparse.ArgumentParser:
    """The options of a benchmark against the local OpenAI-compatible server (judge, chat)."""
    ap = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    ap.add_argument("--records", type=int, default=1000)
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--rate-429", type=float, default=0.1)
    ap.add_argument("--retry-after", type=float, default=1.0)
    ap.add_argument("--concurrency", type=int, default=16)
    return ap


def run_evalrun(project: Path) -> tuple[float, dict]:
    """``evalrun run eval.yaml --json`` in ``project`` (a fresh process, as a user runs it):
    (wall seconds, the summary)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "evalrun", "run", "eval.yaml", "--output-dir", str(project / "home"),
                        "--json", "--quiet"], cwd=project, env=env, capture_output=True, text=True)
    took = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"evalrun run failed ({r.returncode}): {r.stderr[-2000:]}")
    return took, json.loads(r.stdout)


def bench_scorer(url: str, n: int, concurrency: int) -> tuple[float, dict]:
    from evalrun.records import Record
    from evalrun.scoring.base import ScorerContext
    from evalrun.scoring.judge import JudgeConfig, LLMJudge
    from evalrun.store import Cache

    with tempfile.TemporaryDirectory() as d:
        cfg = JudgeConfig(type="llm_judge", rubric="relevance", model="gpt-4o-mini", base_url=url,
                          concurrency=concurrency)
        judge = LLMJudge(cfg, ScorerContext(base_dir=Path(d), cache=Cache(Path(d) / "c.sqlite")))
        records = [Record(item_id=f"s{i}", trial=0, input=f"scorer question {i}?", output=f"answer {i} [[judge:4]]")
                   for i in range(n)]

        async def go() -> float:
            await judge.setup()
            t0 = time.perf_counter()
            scores = await judge.score_batch(records)
            took = time.perf_counter() - t0
            await judge.close()
            bad = [s for s in scores if s.value != 0.75]
            assert not bad, bad[:3]
            return took

        took = asyncio.run(go())
        return took, judge.summary_extra()


EVAL = """\
name: bench-judge
dataset: data.jsonl
target:
  python: tgt:answer
concurrency: 64
scorers:
  - name: judge
    type: llm_judge
    rubric: relevance
    model: gpt-4o-mini
    base_url: {url}
    concurrency: {concurrency}
"""


def bench_cli(url: str, n: int, concurrency: int) -> tuple[float, dict]:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d)
        (p / "tgt.py").write_text("def answer(q):\n    return q.replace('question', 'answer') + ' [[judge:4]]'\n")
        (p / "data.jsonl").write_text("".join(json.dumps({"id": f"c{i}", "input": f"cli question {i}?"}) + "\n"
                                              for i in range(n)))
        (p / "eval.yaml").write_text(EVAL.format(url=url, concurrency=concurrency))
        took, summary = run_evalrun(p)
        judge = summary["scorers"]["judge"]
        assert judge["n"] == n and judge["errors"] == 0, judge
        return took, judge


def main() -> None:
    a = server_arguments(__doc__).parse_args()
    ideal_nominal = (a.records * a.latency + a.records * a.rate_429 * a.retry_after) / a.concurrency
    print(f"judge benchmark: {a.records} records, latency {a.latency * 1000:.0f} ms, "
          f"{a.rate_429:.0%} 429s with Retry-After {a.retry_after:g}s, concurrency {a.concurrency}")
    print(f"ideal: ({a.records} x {a.latency:g} + {a.records * a.rate_429:g} x {a.retry_after:g}) / "
          f"{a.concurrency} = {ideal_nominal:.2f} s (target <= {1.3 * ideal_nominal:.2f} s)")
    proc, url = start_server(a.latency, a.rate_429, a.retry_after)
    try:
        for label, fn in (("scorer.score_batch", bench_scorer), ("evalrun run (CLI)", bench_cli)):
            before = stats(url)
            took, extra = fn(url, a.records, a.concurrency)
            after = stats(url)
            n429 = after["statuses"].get("429", 0) - before["statuses"].get("429", 0)
            n200 = after["statuses"].get("200", 0) - before["statuses"].get("200", 0)
            ideal = (n200 * a.latency + n429 * a.retry_after) / a.concurrency
            calls = extra["judge_calls"]
            print(f"{label:20s} {took:6.2f} s  = {took / ideal_nominal:.2f}x nominal ideal, "
                  f"{took / ideal:.2f}x ideal for the {n429} 429s actually sent ({ideal:.2f} s); "
                  f"calls {calls['calls']}, retries {calls['retries']}, 429s {calls['rate_limited']}, "
                  f"concurrency lowest {extra.get('judge_concurrency', {}).get('lowest')}, "
                  f"server peak in flight {after['max_in_flight']}")
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
