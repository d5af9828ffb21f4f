"""Chat-target throughput under rate limits: 1,000 items through ``evalrun run`` with a ``chat``
target against an OpenAI-compatible server with 200 ms latency that answers 10% of prompts
with 429 + Retry-After: 1 on their first try, concurrency 16.

Ideal: every slot busy all the time, each 429 costing its 1 s wait in a slot:
(1000 x 0.2 s + 100 x 1 s) / 16 = 18.75 s.
Fair peer: the same kind of requests (same messages, model and size) through an ``http``
target, which posts a prepared body and reads ``choices.0.message.content``: no prompt
rendering, no chat client. The chat target should cost no more than the peer.

Each (run, target) uses fresh prompts (a nonce), so each meets ~10% first-try 429s (the server
picks them by a hash of the prompt; the counts are printed); the two targets alternate, and
the medians of ``--runs`` runs are compared. The server (tests/openai_server.py) runs in its
own process.

Measured (2 shared cores, 3 runs): chat 21.58 s median = 1.15x ideal; http peer 22.04 s =
1.18x; chat / peer 0.98x.

    python benchmarks/bench_chat.py [--records 1000] [--latency 0.2] [--rate-429 0.1] [--concurrency 16] [--runs 3]
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.bench_judge import run_evalrun, server_arguments, start_server, stats  # noqa: E402

SYSTEM = "You answer with the capital city only."


def run_once(kind: str, url: str, n: int, concurrency: int, nonce: str) -> float:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d)
        questions = [f"{nonce} question {i}? [[say:answer {i}]]" for i in range(n)]
        if kind == "chat":
            items = [{"id": f"q{i}", "input": {"q": q}, "expected_output": f"answer {i}"} for i, q in enumerate(questions)]
            target = {"chat": {"model": "gpt-4o-mini", "base_url": url,
                               "messages": [{"role": "system", "content": SYSTEM},
                                            {"role": "user", "content": "{{ input.q }}"}]}}
        else:
            items = [{"id": f"q{i}", "expected_output": f"answer {i}",
                      "input": {"model": "gpt-4o-mini", "messages": [{"role": "system", "content": SYSTEM},
                                                                     {"role": "user", "content": q}]}}
                     for i, q in enumerate(questions)]
            target = {"http": {"url": url + "/chat/completions", "output_path": "choices.0.message.content",
                               "usage_path": "usage"}}
        target.update(retries=5, timeout=30)
        (p / "data.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
        (p / "eval.yaml").write_text(json.dumps({"name": f"bench-{kind}", "dataset": "data.jsonl", "target": target,
                                                 "concurrency": concurrency, "scorers": ["exact_match"]}))
        took, s = run_evalrun(p)
        assert s["errors"] == 0 and s["scorers"]["exact_match"]["mean"] == 1.0, s
        return took


def main() -> None:
    ap = server_arguments(__doc__)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    ideal = (a.records * a.latency + a.records * a.rate_429 * a.retry_after) / a.concurrency
    print(f"chat target benchmark: {a.records} items, latency {a.latency * 1000:.0f} ms, {a.rate_429:.0%} 429s "
          f"with Retry-After {a.retry_after:g}s, concurrency {a.concurrency}; ideal {ideal:.2f} s")
    proc, url = start_server(a.latency, a.rate_429, a.retry_after)
    times: dict[str, list[float]] = {"chat": [], "http": []}
    try:
        for r in range(a.runs):
            for kind in ("chat", "http"):  # interleaved, so drift in the machine's load hits both
                before = stats(url)
                took = run_once(kind, url, a.records, a.concurrency, f"run{r}-{kind}")
                after = stats(url)
                n429 = after["statuses"].get("429", 0) - before["statuses"].get("429", 0)
                times[kind].append(took)
                print(f"  run {r + 1} {kind:4s} {took:6.2f} s ({n429} 429s)")
    finally:
        proc.terminate()
        proc.wait(10)
    for kind, ts in times.items():
        med = statistics.median(ts)
        print(f"{kind:4s} median {med:6.2f} s = {med / ideal:.2f}x ideal")
    print(f"chat / http peer: {statistics.median(times['chat']) / statistics.median(times['http']):.2f}x")


if __name__ == "__main__":
    main()
