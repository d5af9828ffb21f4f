"""The live trace context: a pipeline's own Langfuse observations join its experiment item.

Real CLI runs (subprocesses), the real langfuse SDK inside the target (``@observe``, a
generation) and inside an exec target's own process, all sending to the recording server."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli
from tests.langfuse_server import FakeLangfuse
from tests.test_langfuse import records_of, run_dir_of, state_of


def cli(fake: FakeLangfuse, *args: str, cwd: Path) -> Any:
    """In a subprocess: the target's own langfuse SDK exports its spans when its process
    ends (the process boundary is the point), and its client must not outlive the test."""
    return run_cli(*args, cwd=cwd, env=fake.env(), timeout=180)

PY_TARGET = '''
from langfuse import get_client, observe
from evalrun.targets import Output

@observe(name="pipeline")
def answer(question):
    lf = get_client()
    with lf.start_as_current_observation(name="llm-call", as_type="generation", model="tiny-llm") as g:
        g.update(output="ok", usage_details={"input": 3, "output": 5})
    return Output(question.upper(), usage={"input_tokens": 3, "output_tokens": 5}, cost_usd=0.25,
                  metadata={"model": "tiny-llm", "finish_reason": "stop",
                            "prompt": {"name": "qa-prompt", "version": 4, "labels": ["production"]}})
'''

# an exec target that is its own Langfuse-instrumented process: it takes the W3C context from
# its environment (the OTel convention for processes) and traces a generation with the SDK
EXEC_TARGET = '''
import json, os, sys
from opentelemetry import context
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from langfuse import Langfuse

question = json.load(sys.stdin)
carrier = {k.lower(): v for k, v in os.environ.items() if k in ("TRACEPARENT", "TRACESTATE", "BAGGAGE")}
ctx = TraceContextTextMapPropagator().extract(carrier)
ctx = W3CBaggagePropagator().extract(carrier, ctx)
token = context.attach(ctx)
lf = Langfuse()
with lf.start_as_current_observation(name="subprocess-llm", as_type="generation", model="proc-llm") as g:
    g.update(output=question, usage_details={"input": 1, "output": 1})
context.detach(token)
lf.flush()
lf.shutdown()
print(question[::-1])
'''


@pytest.fixture
def fake():
    with FakeLangfuse() as server:
        yield server
        assert server.errors == [], "contract violations:\n" + "\n".join(server.errors[:20])


def _project(root: Path, target: dict[str, Any], n: int = 3, langfuse: dict[str, Any] | None = None,
             repeat: int = 1, scorers: list[Any] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "data.jsonl", "w") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"q{i}", "input": f"question {i}", "expected_output": f"QUESTION {i}"}) + "\n")
    cfg: dict[str, Any] = {"name": "traced", "dataset": "data.jsonl", "target": target, "repeat": repeat,
                           "scorers": scorers if scorers is not None else ["exact_match"]}
    if langfuse is not None:
        cfg["langfuse"] = langfuse
    (root / "eval.yaml").write_text(json.dumps(cfg))
    return root


def _ids(run_id: str, item: str, trial: int = 0) -> tuple[str, str]:
    from evalrun.langfuse import wire
    from evalrun.langfuse.push import task_span_id

    tid = wire.trace_id(f"evalrun:{run_id}:{item}:{trial}")
    return tid, task_span_id(tid)


def _check_nested(fake: FakeLangfuse, run: Path, name: str, n: int) -> list[dict[str, Any]]:
    """Every item's trace holds a span ``name`` whose parent is the item's task span, with the
    experiment attributes and environment the experiment's own spans have."""
    state = state_of(run)
    exp_id = state["context"]["experiment_id"]
    found = [s for s in fake.spans if s["name"] == name]
    assert len(found) == n, [s["name"] for s in fake.spans]
    by_trace = fake.spans_by_trace()
    for item in (f"q{i}" for i in range(n)):
        tid, task = _ids(run.name, item)
        mine = [s for s in by_trace[tid] if s["name"] == name]
        assert len(mine) == 1, f"{name} not in the trace of {item}"
        sp = mine[0]
        assert sp["parent_span_id"] == task
        a = sp["attributes"]
        assert a["langfuse.experiment.id"] == exp_id
        assert a["langfuse.experiment.item.id"] == item
        assert a["langfuse.experiment.item.root_observation_id"] == task
        assert a["langfuse.environment"] == "sdk-experiment"
        task_span = [s for s in by_trace[tid] if s["span_id"] == task]
        assert task_span and task_span[0]["name"] == "experiment-item-task"
    return found


def test_python_target_observations_nest_under_the_task_span(fake, tmp_path):
    root = _project(tmp_path / "p", {"python": "tgt:answer", "retries": 0})
    (root / "tgt.py").write_text(PY_TARGET)
    r = cli(fake, "run", "eval.yaml", "--output-dir", str(tmp_path / "h"), "--push", "langfuse", cwd=root)
    assert r.returncode == 0, r.stderr
    run = run_dir_of(tmp_path / "h")
    pipeline = _check_nested(fake, run, "pipeline", 3)
    # the generation made inside @observe is a child of the pipeline span, in the same trace
    gens = [s for s in fake.spans if s["name"] == "llm-call"]
    assert len(gens) == 3
    parents = {(p["trace_id"], p["span_id"]) for p in pipeline}
    assert all((g["trace_id"], g["parent_span_id"]) in parents for g in gens)
    assert all(g["attributes"]["langfuse.observation.type"] == "generation" for g in gens)
    # experiment items are still exactly the task spans (the pipeline's spans join them)
    assert len(fake.experiment_items()) == 3
    # target metadata is saved with the record
    recs = records_of(run)
    assert recs[0]["target_metadata"]["prompt"] == {"name": "qa-prompt", "version": 4, "labels": ["production"]}


def test_same_pipeline_without_evalrun_context_is_unchanged(fake, tmp_path):
    """Without --push (and no langfuse settings) the pipeline traces as it always did: its own
    root traces, no experiment attributes."""
    root = _project(tmp_path / "p", {"python": "tgt:answer", "retries": 0})
    (root / "tgt.py").write_text(PY_TARGET)
    r = cli(fake, "run", "eval.yaml", "--output-dir", str(tmp_path / "h"), cwd=root)
    assert r.returncode == 0, r.stderr
    pipeline = [s for s in fake.spans if s["name"] == "pipeline"]
    assert len(pipeline) == 3
    assert all(s["parent_span_id"] is None for s in pipeline)
    assert len({s["trace_id"] for s in pipeline}) == 3
    assert not any(k.startswith("langfuse.experiment") for s in pipeline for k in s["attributes"])
    assert all(s["attributes"].get("langfuse.environment", "default") != "sdk-experiment" for s in pipeline)
    assert fake.experiment_items() == []


@pytest.mark.slow
def test_trace_context_can_be_asked_for_or_refused_in_the_eval_file(fake, tmp_path):
    root = _project(tmp_path / "p", {"python": "tgt:answer", "retries": 0}, langfuse={"trace_context": True})
    (root / "tgt.py").write_text(PY_TARGET)
    r = cli(fake, "run", "eval.yaml", "--output-dir", str(tmp_path / "h"), cwd=root)
    assert r.returncode == 0, r.stderr
    run = run_dir_of(tmp_path / "h")
    pipeline = [s for s in fake.spans if s["name"] == "pipeline"]
    assert {s["parent_span_id"] for s in pipeline} == {_ids(run.name, f"q{i}")[1] for i in range(3)}
    # and off, even with --push
    fake2_root = _project(tmp_path / "p2", {"python": "tgt:answer", "retries": 0}, langfuse={"trace_context": False})
    (fake2_root / "tgt.py").write_text(PY_TARGET)
    before = {s["span_id"] for s in fake.spans}
    r = cli(fake, "run", "eval.yaml", "--output-dir", str(tmp_path / "h2"), "--push", "langfuse", cwd=fake2_root)
    assert r.returncode == 0, r.stderr
    new = [s for s in fake.spans if s["span_id"] not in before and s["name"] == "pipeline"]
    assert len(new) == 3 and all(s["parent_span_id"] is None for s in new)


def test_exec_target_process_joins_the_item_trace(fake, tmp_path):
    root = _project(tmp_path / "p", {"exec": [sys.executable, "proc.py"], "retries": 0},
                    scorers=[])
    (root / "proc.py").write_text(EXEC_TARGET)
    r = cli(fake, "run", "eval.yaml", "--output-dir", str(tmp_path / "h"), "--push", "langfuse", cwd=root)
    assert r.returncode == 0, r.stderr
    run = run_dir_of(tmp_path / "h")
    gens = _check_nested(fake, run, "subprocess-llm", 3)
    assert all(g["attributes"]["langfuse.observation.model.name"] == "proc-llm" for g in gens)


def test_http_target_gets_traceparent_and_baggage(fake, tmp_path):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[dict[str, str]] = []

    class H(BaseHTTPRequestHandler):
        def log_message(self, *a: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append({k.lower(): v for k, v in self.headers.items()})
            out = json.dumps({"answer": body["input"].upper()}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/"
        root = _project(tmp_path / "p", {"http": {"url": url, "input_key": "input", "output_path": "answer"},
                                         "retries": 0})
        r = cli(fake, "run", "eval.yaml", "--output-dir", str(tmp_path / "h"), "--push", "langfuse", cwd=root)
        assert r.returncode == 0, r.stderr
    finally:
        httpd.shutdown()
    run = run_dir_of(tmp_path / "h")
    exp_id = state_of(run)["context"]["experiment_id"]
    from urllib.parse import unquote

    by_parent = {}
    for h in seen:
        version, tid, sid, flags = h["traceparent"].split("-")
        assert version == "00" and flags == "01"
        bag = {k: unquote(v) for k, v in (kv.split("=", 1) for kv in h["baggage"].split(","))}
        assert bag["langfuse_experiment_id"] == exp_id and bag["langfuse_trace_id"] == tid
        # what the child needs to join the item, nothing more: no run metadata (git commit,
        # branch, fingerprints) and no item metadata travel to whatever the pipeline calls
        assert set(bag) == {"langfuse_trace_id", "langfuse_experiment_id", "langfuse_experiment_name",
                            "langfuse_experiment_item_id", "langfuse_experiment_item_root_observation_id"}
        by_parent[bag["langfuse_experiment_item_id"]] = (tid, sid)
    assert by_parent == {f"q{i}": _ids(run.name, f"q{i}") for i in range(3)}


def test_with_repeats_each_trial_is_its_own_trace_for_the_pipeline(fake, tmp_path):
    from evalrun.langfuse.push import parent_span_for, task_span_id

    root = _project(tmp_path / "p", {"python": "tgt:answer", "retries": 0}, n=2, repeat=2)
    (root / "tgt.py").write_text(PY_TARGET)
    r = cli(fake, "run", "eval.yaml", "--output-dir", str(tmp_path / "h"), "--push", "langfuse", cwd=root)
    assert r.returncode == 0, r.stderr
    run = run_dir_of(tmp_path / "h")
    spans = {(s["trace_id"], s["span_id"]): s for s in fake.spans}
    pipeline = [s for s in fake.spans if s["name"] == "pipeline"]
    assert len(pipeline) == 4
    want = {parent_span_for(run.name, f"q{i}", t) for i in range(2) for t in range(2)}
    assert len({tid for tid, _ in want}) == 4
    assert {(s["trace_id"], s["parent_span_id"]) for s in pipeline} == want
    for tid, parent in want:
        assert spans[(tid, parent)]["name"] == "experiment-item-task" and parent == task_span_id(tid)
    assert all(s["attributes"]["langfuse.experiment.item.root_observation_id"] == task_span_id(s["trace_id"])
               for s in pipeline)


# a pipeline traced with the SDK whose own generation reports the call's tokens and cost, and
# which also returns them to evalrun (the langfuse.openai + Output(...) case)
COSTED_TARGET = '''
from langfuse import get_client, observe
from evalrun.targets import Output

@observe(name="pipeline")
def answer(question):
    with get_client().start_as_current_observation(name="llm-call", as_type="generation", model="tiny-llm") as g:
        g.update(output="ok", usage_details={"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42},
                 cost_details={"total": 0.25})
    return Output(question.upper(), usage={"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42,
                                           "prompt_tokens_details": {"cached_tokens": 10}},
                  cost_usd=0.25, metadata={"model": "tiny-llm"})
'''


@pytest.mark.parametrize("cost", [None, "evalrun"])
def test_an_instrumented_pipeline_has_one_root_one_cost_and_true_tokens(fake, tmp_path, cost):
    from evalrun._version import __version__

    lf: dict[str, Any] = {"version": "pipeline-7"}
    if cost:
        lf["cost"] = cost
    root = _project(tmp_path / "p", {"python": "tgt:answer", "retries": 0}, langfuse=lf)
    (root / "tgt.py").write_text(COSTED_TARGET)
    r = cli(fake, "run", "eval.yaml", "--output-dir", str(tmp_path / "h"), "--push", "langfuse", cwd=root)
    assert r.returncode == 0, r.stderr
    run = run_dir_of(tmp_path / "h")
    for i in range(3):
        tid, _task = _ids(run.name, f"q{i}")
        # the trace context claims the trace: the pipeline's first span is no second app root
        assert [s["name"] for s in fake.app_roots(tid)] == ["experiment-item-run"]
        if cost is None:  # the pipeline's generation reports the call: evalrun's target call does not again
            assert fake.trace_cost(tid) == pytest.approx(0.25)
            assert fake.trace_tokens(tid) == 42
            (call,) = [s for s in fake.spans if s["trace_id"] == tid and s["name"] == "target-call"]
            assert call["attributes"]["langfuse.observation.type"] == "span"
        else:  # told that evalrun owns the cost, both count (what the knob is for)
            assert fake.trace_cost(tid) == pytest.approx(0.5)
    for s in fake.spans:
        if s["name"].startswith("experiment-item") or s["name"] == "target-call":
            # the version is what the eval file names, never evalrun's own
            assert FakeLangfuse.observation_version(s) == "pipeline-7" and "service.version" not in s["resource"]
    assert __version__ not in {FakeLangfuse.observation_version(s) for s in fake.spans}


def test_usage_keys_become_langfuses_buckets():
    from evalrun.langfuse.push import usage_details

    # OpenAI chat: cached and reasoning tokens are parts of prompt and completion tokens
    assert usage_details({"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42,
                          "prompt_tokens_details": {"cached_tokens": 10},
                          "completion_tokens_details": {"reasoning_tokens": 5}}) == \
        {"input": 20, "input_cached_tokens": 10, "output": 7, "output_reasoning_tokens": 5, "total": 42}
    # flat keys as a pipeline reports them; an unknown key is not counted into the total
    assert usage_details({"input_tokens": 20, "output_tokens": 5, "cached_tokens": 4, "reasoning_tokens": 2,
                          "latency_ms": 900, "model": "x"}) == \
        {"input": 16, "input_cached_tokens": 4, "output": 3, "output_reasoning_tokens": 2, "total": 25}
    # Anthropic: cache reads and writes are apart from input_tokens
    assert usage_details({"input_tokens": 7, "output_tokens": 3, "cache_read_input_tokens": 100,
                          "cache_creation_input_tokens": 20}) == \
        {"input": 7, "output": 3, "input_cache_read": 100, "input_cache_creation": 20, "total": 130}
    assert usage_details({}) == {} and usage_details({"tokens": -1, "x": float("nan")}) == {}


def test_async_and_threaded_targets_see_the_records_context():
    """Both ways a python target runs (awaited in the record's task, or in a worker thread)
    see the record's task span and the propagated experiment attributes; other records and
    code outside a record see nothing."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from opentelemetry import context, trace

    from evalrun.langfuse.tracecontext import TraceContext
    from evalrun.targets import enter_record  # the engine's seam: whose call runs in this task

    tc = TraceContext("run-1", {"experiment_id": "exp-1", "experiment_name": "name-1"})

    def seen() -> tuple[str, str, Any, Any]:
        sc = trace.get_current_span().get_span_context()
        return (f"{sc.trace_id:032x}", f"{sc.span_id:016x}", context.get_value("langfuse.propagated.experiment_id"),
                context.get_value("langfuse.propagated.experiment_item_id"))

    async def atarget() -> Any:
        await asyncio.sleep(0)
        return seen()

    pool = ThreadPoolExecutor(2)

    async def one(item: str) -> tuple[Any, Any]:
        enter_record(item, 0, {})
        a = await tc.arun(atarget)
        b = await asyncio.get_running_loop().run_in_executor(pool, tc.bind(seen))
        return a, b

    async def main() -> list[tuple[Any, Any]]:
        return await asyncio.gather(*(asyncio.create_task(one(f"q{i}")) for i in range(3)))

    results = asyncio.run(main())
    pool.shutdown()
    for i, (a, b) in enumerate(results):
        tid, parent, _task = tc.ids(f"q{i}", 0)
        assert a == b == (tid, parent, "exp-1", f"q{i}")
    assert seen()[2] is None and tc.carrier() == {}


# the python target of the next test, stopping its process (as a crash would) at the second
# item while the flag file exists
CRASHING_TARGET = PY_TARGET.replace('''def answer(question):
''', '''def answer(question):
    import os, pathlib
    if question == "question 1" and pathlib.Path(__file__).with_name("CRASH").exists():
        os._exit(9)
''')

API_RUN = '''
import sys, evalrun
result = evalrun.run(sys.argv[1] if sys.argv[1] != "-" else None, home="h", push=True,
                     resume=None if sys.argv[1] != "-" else "latest")
sys.exit(result.exit_code)
'''


def _check_joined(fake: FakeLangfuse, run: Path, name: str, items: set[str]) -> None:
    """Each span ``name`` sits in its item's trace under the item's task span, with the run's
    frozen experiment id; ``items`` all have one."""
    exp_id = state_of(run)["context"]["experiment_id"]
    seen = set()
    for s in fake.spans:
        if s["name"] != name or s["attributes"].get("langfuse.experiment.id") != exp_id:
            continue
        item = s["attributes"]["langfuse.experiment.item.id"]
        assert (s["trace_id"], s["parent_span_id"]) == _ids(run.name, item), item
        assert s["attributes"]["langfuse.experiment.item.root_observation_id"] == _ids(run.name, item)[1]
        seen.add(item)
    assert items <= seen, (items, seen)


def test_library_run_and_its_resume_join_the_item_traces(fake, tmp_path):
    """evalrun.run(push=True) installs the trace context as the CLI does, and a resumed run
    (crashed at the second item) calls the rest under the same run's ids and experiment."""
    import subprocess

    from tests.conftest import _cli_env

    root = _project(tmp_path / "p", {"python": "tgt:answer", "retries": 0})
    (root / "tgt.py").write_text(CRASHING_TARGET)
    cfg = json.loads((root / "eval.yaml").read_text())
    (root / "eval.yaml").write_text(json.dumps({**cfg, "concurrency": 1}))
    (root / "CRASH").write_text("")
    env = _cli_env(fake.env())
    r = subprocess.run([sys.executable, "-c", API_RUN, "eval.yaml"], cwd=root, env=env, capture_output=True,
                       text=True, timeout=180)
    assert r.returncode == 9, r.stderr
    run = run_dir_of(root / "h")
    frozen = state_of(run)["context"]["experiment_id"]
    (root / "CRASH").unlink()
    r = subprocess.run([sys.executable, "-c", API_RUN, "-"], cwd=root, env=env, capture_output=True, text=True,
                       timeout=180)
    assert r.returncode == 0, r.stderr
    assert run_dir_of(root / "h") == run and state_of(run)["context"]["experiment_id"] == frozen
    _check_joined(fake, run, "pipeline", {"q1", "q2"})


def test_each_variant_joins_its_own_experiment_items(fake, tmp_path):
    root = _project(tmp_path / "p", {"python": "tgt:answer", "retries": 0}, n=2)
    (root / "tgt.py").write_text(PY_TARGET)
    cfg = json.loads((root / "eval.yaml").read_text())
    (root / "eval.yaml").write_text(json.dumps({**cfg, "variants": {"a": {}, "b": {"target.timeout": 30}}}))
    r = cli(fake, "run", "eval.yaml", "--output-dir", str(tmp_path / "h"), "--push", "langfuse", "-q", cwd=root)
    assert r.returncode == 0, r.stderr
    runs = sorted((tmp_path / "h" / "runs").iterdir())
    assert [p.name.rsplit(".", 1)[1] for p in runs] == ["a", "b"]
    for run in runs:
        _check_joined(fake, run, "pipeline", {"q0", "q1"})
    assert len({state_of(run)["context"]["experiment_id"] for run in runs}) == 2
    assert len([s for s in fake.spans if s["name"] == "pipeline"]) == 4


def test_baggage_over_the_w3c_limits_is_reported_not_dropped_silently(capsys):
    """A child process gets the experiment's ids in baggage; an entry the W3C propagator would
    drop (over 4096 bytes) is left out and said once on stderr; in-process values keep it."""
    import contextvars

    from opentelemetry import baggage, context

    from evalrun.langfuse import wire
    from evalrun.langfuse.tracecontext import TraceContext
    from evalrun.targets import enter_record

    name = "n" * 5000
    tc = TraceContext("run-1", {"experiment_id": "exp-1", "experiment_name": name})

    def in_record() -> tuple[dict[str, str], Any]:
        enter_record("q1", 0, {"team": "a"})
        return tc.carrier(), tc.otel_context()

    carrier, ctx = contextvars.copy_context().run(in_record)
    contextvars.copy_context().run(in_record)  # a second record: no second report
    bag = dict(kv.split("=", 1) for kv in carrier["baggage"].split(","))
    assert "langfuse_experiment_name" not in bag and bag["langfuse_experiment_id"] == "exp-1"
    err = capsys.readouterr().err
    assert err.count("baggage entry langfuse_experiment_name") == 1 and "W3C limits" in err
    # in-process: context values carry everything, baggage only the trace claim
    assert context.get_value(wire.PROPAGATED_CONTEXT_PREFIX + "experiment_name", ctx) == name
    assert context.get_value(wire.PROPAGATED_CONTEXT_PREFIX + "experiment_item_metadata", ctx) == '{"team":"a"}'
    assert set(baggage.get_all(ctx)) == {"langfuse_trace_id"}
