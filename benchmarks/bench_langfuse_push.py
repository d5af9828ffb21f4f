"""Push 10,000 records with 3 scores each (and the target's usage and cost, so every record is
a generation too) to a Langfuse-compatible server on 127.0.0.1, and check nothing is lost.

Target: at most 10 s (median of the runs). The server is the test server (tests/langfuse_server.py): it validates each
request and answer against the langfuse SDK's generated API types and decodes every OTLP span, in this
process, on the same cores, so the number is an upper bound on evalrun's own cost. The ideal
printed beside it is the same requests answered by a server that only reads the body.

    python benchmarks/bench_langfuse_push.py [--records 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from evalrun.records import Record, Score  # noqa: E402
from evalrun.store import ResultsWriter, RunDir  # noqa: E402
from tests.langfuse_server import FakeLangfuse  # noqa: E402


def make_run(root: Path, n: int) -> RunDir:
    rd = RunDir(root / "runs" / "20260101-000000-bench0")
    rd.write_manifest({"run_id": rd.id, "eval": "bench", "config": {"scorers": [
        "exact_match", {"name": "similarity", "type": "embedding_similarity"}, {"name": "judge", "type": "llm_judge"}]}, "config_fingerprint": "sha256:x",
                       "dataset": {"source": "data.jsonl", "fingerprint": "sha256:y"},
                       "started_at": "2026-01-01T00:00:00+00:00", "status": "finished", "evalrun_version": "bench"})
    rng = random.Random(0)
    w = ResultsWriter(rd.results_path)
    recs = []
    for i in range(n):
        sim = rng.random()
        recs.append(Record(item_id=f"item-{i:05d}", trial=0, input={"question": f"What is {i} doubled?"},
                           expected_output=str(2 * i), output=str(2 * i if i % 7 else 2 * i + 1),
                           latency_ms=rng.uniform(50, 900), started_at=1767225600.0 + i * 0.01,
                           usage={"input_tokens": 40 + i % 13, "output_tokens": 7, "cost_usd": 0.0001},
                           target_metadata={"model": "bench-model", "prompt": {"name": "p", "version": 3}},
                           scores={"exact_match": Score(float(i % 7 != 0), i % 7 != 0),
                                   "similarity": Score(sim, sim >= 0.5),
                                   "judge": Score(rng.choice([0.0, 0.5, 1.0]), None, "graded by rubric")}))
    w.write(recs)
    w.close()
    rd.write_summary({"status": "finished", "records": n, "errors": 0, "error_rate": 0.0,
                      "scorers": {"exact_match": {"n": n, "mean": 0.86, "pass_rate": 0.86, "ci95": [0.8, 0.9]}}})
    return rd


class _Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *a: object) -> None:
        pass

    def do_GET(self) -> None:
        self._answer(200, b'{"data": [], "meta": {}}')

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.startswith("/api/public/scores"):
            self._answer(202, b'{"message": "Accepted"}')
        else:
            self._answer(200, b"{}")

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def timed_push(rd: RunDir, env: dict[str, str]) -> tuple[float, object, float]:
    """(wall seconds, result, CPU seconds of this process: the push and, for the test server,
    the server's threads too). On a shared machine the wall time mostly measures the load."""
    from evalrun.langfuse.push import push_run

    (rd.path / "push_state.json").unlink(missing_ok=True)
    os.environ.update(env)
    c0, t0 = time.process_time(), time.perf_counter()
    result = push_run(rd)
    return time.perf_counter() - t0, result, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=10000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-lf-"))
    try:
        rd = make_run(tmp, args.records)
        t0 = time.perf_counter()
        import langfuse.api  # noqa: F401  (first use pays the SDK import; reported apart)
        import opentelemetry.exporter.otlp.proto.common.trace_encoder  # noqa: F401
        import_s = time.perf_counter() - t0

        with FakeLangfuse() as fake:
            times, cpus = [], []
            for _ in range(args.repeat):
                fake.scores.clear()
                dt, res, cpu = timed_push(rd, fake.env())
                times.append(dt)
                cpus.append(cpu)
            n_scores = sum(1 for s in fake.scores.values() if s.get("traceId"))
            traces = len(fake.spans_by_trace())
            gens = sum(1 for s in fake.spans if s["attributes"].get("langfuse.observation.type") == "generation")
            # nothing lost: every record a trace with its generation, every score stored
            assert res.status == "complete" and traces == args.records and gens == args.records, (res, traces, gens)
            # exact_match BOOLEAN; similarity NUMERIC + .passed; judge NUMERIC (no verdict)
            assert n_scores == args.records * 4, n_scores
            posts = len(fake.calls("scores_create")) // args.repeat, len(fake.calls("opentelemetry_exportTraces")) // args.repeat
            assert not fake.errors, fake.errors[:3]
            t1 = time.perf_counter()
            from evalrun.langfuse.push import push_run

            again = push_run(rd)
            noop_s = time.perf_counter() - t1

        sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
        Thread(target=sink.serve_forever, daemon=True).start()
        sink_env = {"LANGFUSE_PUBLIC_KEY": "pk", "LANGFUSE_SECRET_KEY": "sk",
                    "LANGFUSE_BASE_URL": f"http://127.0.0.1:{sink.server_address[1]}"}
        sink_runs = [timed_push(rd, sink_env) for _ in range(args.repeat)]
        ideal = statistics.median(r[0] for r in sink_runs)
        ideal_cpu = statistics.median(r[2] for r in sink_runs)
        sink.shutdown()

        med = statistics.median(times)
        print(f"push {args.records} records x 3 scorers -> {traces} traces ({gens} generations), {n_scores} item "
              f"scores ({posts[1]} OTLP requests, {posts[0]} score requests per push); result: {res.status}")
        print(f"  contract-validating test server: median {med:.2f} s wall, runs {', '.join(f'{t:.2f}' for t in times)} s"
              f"  (target <= 10 s: {'PASS' if med <= 10 else 'FAIL'}); CPU of push + server: median "
              f"{statistics.median(cpus):.2f} s")
        print(f"  ideal (server only reads the bodies): median {ideal:.2f} s wall, evalrun's own CPU {ideal_cpu:.2f} s")
        print(f"  load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        print(f"  SDK + OTLP encoder import, paid once per process: {import_s:.2f} s")
        print(f"  re-push with nothing left to send: {noop_s:.3f} s (status {again.status})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
