"""`evalrun run` end to end through the real CLI: records, manifest, summary, options,
failing targets, retries, exec and HTTP targets."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import REPO, invoke_cli, run_cli

TARGETS = '''
import asyncio, json, os, threading, time
from pathlib import Path
from evalrun import Output, RetryableError

async def echo(x):
    return x

def upper(x):
    return x.upper()

_lock = threading.Lock()
_active = 0
def sync_tracked(x):
    global _active
    with _lock:
        _active += 1
        peak = Path("peak.txt")
        cur = int(peak.read_text()) if peak.exists() else 0
        peak.write_text(str(max(cur, _active)))
    time.sleep(0.05)
    with _lock:
        _active -= 1
    return x

async def flaky(x):
    # fails with a retryable error the first two times it sees an input, then answers
    p = Path("attempts") / x
    p.parent.mkdir(exist_ok=True)
    n = int(p.read_text()) + 1 if p.exists() else 1
    p.write_text(str(n))
    if n <= 2:
        raise RetryableError("busy, try again")
    return x

async def troubled(x):
    if x == "raise":
        raise ValueError("bad things")
    if x == "hang":
        await asyncio.sleep(60)
    if x == "garbage":
        return object()
    if x == "sync-garbage":
        return {1, 2}
    return x

async def with_usage(x):
    return Output(x, usage={"input_tokens": 3, "output_tokens": 5}, cost_usd=0.25)

import contextvars
_last = contextvars.ContextVar("last", default=None)

async def remembers(x):
    # what an earlier call set in its context, if anything reaches this one
    prev = _last.get()
    _last.set(x)
    return "none" if prev is None else "saw " + prev

def editing(q):
    q["seen"] = q.get("seen", 0) + 1
    return str(q["seen"])

async def swallows(x):
    # catches the cancel of its own timeout and answers anyway
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        pass
    return x

async def slow(x):
    # a resume that only has to finish the run sets SLOW_TARGET_S=0
    await asyncio.sleep(float(os.environ.get("SLOW_TARGET_S", "0.2")))
    return x
'''


def write_suite(root: Path, items: list[dict], target: str, extra: str = "", scorers: str = "[exact_match]") -> Path:
    (root / "targets_mod.py").write_text(TARGETS)
    (root / "data.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    cfg = root / "eval.yaml"
    cfg.write_text(f"name: t\ndataset: data.jsonl\ntarget:\n  {target}\nscorers: {scorers}\n{extra}")
    return cfg


def run_in(root: Path, *args: str, **kw):
    return invoke_cli("run", "eval.yaml", "--output-dir", str(root / ".evalrun"), *args, cwd=root, **kw)


def only_run(root: Path) -> Path:
    runs = list((root / ".evalrun" / "runs").iterdir())
    assert len(runs) == 1
    return runs[0]


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]


ITEMS = [{"id": f"i{i}", "input": f"q{i}", "expected_output": f"q{i}" if i % 4 else "other",
          "metadata": {"tags": ["even" if i % 2 == 0 else "odd"], "group": str(i % 3)}} for i in range(12)]


def test_demo_suite_from_repo_root(tmp_path):
    r = invoke_cli("run", "--output-dir", str(tmp_path), cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert "exact_match" in r.stdout and "loose" in r.stdout and "pass rate" in r.stdout
    run_dir = next((tmp_path / "runs").iterdir())
    recs = records(run_dir)
    assert len(recs) == 18
    assert {"item_id", "trial", "input", "expected_output", "output", "error", "latency_ms", "usage",
            "scores"} <= set(recs[0])
    by_id = {r["item_id"]: r for r in recs}
    assert by_id["france"]["output"] == "Paris"
    assert by_id["france"]["scores"]["exact_match"] == {"value": 1.0, "passed": True, "reason": None}
    assert by_id["mongolia"]["scores"]["exact_match"]["passed"] is False
    assert by_id["france"]["usage"]["input_tokens"] == 6
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["eval"] == "capitals"
    assert manifest["config_fingerprint"].startswith("sha256:")
    assert manifest["dataset"]["fingerprint"].startswith("sha256:")
    assert manifest["git"] is None or {"commit", "branch", "dirty"} <= set(manifest["git"])
    assert manifest["evalrun_version"] and manifest["started_at"] and manifest["finished_at"]
    summary = json.loads((run_dir / "summary.json").read_text())
    em = summary["scorers"]["exact_match"]
    assert em["n"] == 18 and em["pass_rate"] == pytest.approx(17 / 18, abs=1e-6)
    assert em["ci95"][0] < em["mean"] <= em["ci95"][1] <= 1.0
    assert summary["status"] == "finished" and summary["errors"] == 0


def test_json_and_quiet(tmp_path):
    write_suite(tmp_path, ITEMS, "python: targets_mod:echo")
    r = run_in(tmp_path, "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["records"] == 12
    assert summary["scorers"]["exact_match"]["passed"] == 9
    # the suite's one plain `python -m evalrun`, as a user types it: a quiet run's process
    # writes nothing at all
    r = run_cli("run", "eval.yaml", "--output-dir", str(tmp_path / ".evalrun"), "--quiet", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout == "" and r.stderr == ""


def test_repeat_limit_filter_sample(tmp_path):
    write_suite(tmp_path, ITEMS, "python: targets_mod:echo", extra="repeat: 2\n")
    r = run_in(tmp_path, "--json", "--limit", "5")
    s = json.loads(r.stdout)
    assert (s["records"], s["items"]) == (10, 5)
    r = run_in(tmp_path, "--json", "--repeat", "3", "--filter", "tag=even", "--filter", "group=0")
    s = json.loads(r.stdout)
    assert (s["records"], s["items"]) == (6, 2)  # i0 and i6
    a = json.loads(run_in(tmp_path, "--json", "--sample", "4", "--seed", "7").stdout)
    b = json.loads(run_in(tmp_path, "--json", "--sample", "4", "--seed", "7").stdout)
    assert a["items"] == b["items"] == 4
    from evalrun.store import list_runs

    runs = [r.path for r in list_runs(tmp_path / ".evalrun")]  # oldest first, exact start times
    ids = [sorted({r["item_id"] for r in records(d)}) for d in runs[-2:]]
    assert ids[0] == ids[1]
    trials = sorted({(r["item_id"], r["trial"]) for r in records(runs[0])})
    assert trials == [(f"i{i}", t) for i in range(5) for t in range(2)]


def test_failing_target_fails_only_its_records(tmp_path):
    items = [{"id": x, "input": x, "expected_output": x} for x in ["ok1", "raise", "hang", "garbage", "sync-garbage", "ok2"]]
    write_suite(tmp_path, items, "python: targets_mod:troubled\n  timeout: 0.5\n  retries: 1\n  backoff: 0.01",
                extra="error_budget: 1\n")
    r = run_in(tmp_path, "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    # the four errors are failures in every number (issue 21), counted apart
    em = summary["scorers"]["exact_match"]
    assert summary["errors"] == 4 and (em["n"], em["target_errors"], em["pass_rate"]) == (6, 4, round(2 / 6, 6))
    recs = {x["item_id"]: x for x in records(only_run(tmp_path))}
    assert recs["raise"]["error"] == {"type": "ValueError", "message": "bad things"}
    assert recs["raise"]["attempts"] == 1  # not retryable
    assert recs["hang"]["error"]["type"] == "Timeout" and recs["hang"]["attempts"] == 2  # retried once
    assert "JSON-serialisable" in recs["garbage"]["error"]["message"]
    assert "JSON-serialisable" in recs["sync-garbage"]["error"]["message"]
    assert recs["ok1"]["scores"]["exact_match"]["passed"] is True and recs["raise"]["scores"] == {}
    assert "Traceback" not in json.dumps(recs)


def test_every_call_failing_is_exit_3(tmp_path):
    items = [{"id": "a", "input": "raise"}, {"id": "b", "input": "raise"}]
    write_suite(tmp_path, items, "python: targets_mod:troubled")
    r = run_in(tmp_path)
    assert r.returncode == 3, r.stderr
    assert "run failed: every target call failed (2 of 2): ValueError: bad things" in r.stderr
    assert json.loads((only_run(tmp_path) / "summary.json").read_text())["status"] == "failed"
    # over the error budget with some calls answered: the machine-readable verdict agrees with
    # the exit code (a failed run is never "pass")
    items = [{"id": "a", "input": "ok1", "expected_output": "ok1"}, {"id": "b", "input": "raise"}]
    write_suite(tmp_path, items, "python: targets_mod:troubled",
                extra="error_budget: 0.05\ngates: [exact_match.mean >= 0]\n")
    r = invoke_cli("run", "eval.yaml", "--output-dir", str(tmp_path / "again"), "--json", cwd=tmp_path)
    assert r.returncode == 3 and json.loads(r.stdout)["verdict"]["verdict"] == "error", r.stdout


def test_bare_command_groups_print_their_help(tmp_path):
    for args in ((), ("scorers",), ("prompts",)):
        r = invoke_cli(*args, cwd=tmp_path)
        assert r.returncode == 2
        assert "Usage:" in r.stderr and "Commands" in r.stderr and len(r.stderr.splitlines()) > 3, r.stderr


def test_retries_with_backoff(tmp_path):
    items = [{"id": x, "input": x, "expected_output": x} for x in ["a", "b", "c"]]
    write_suite(tmp_path, items, "python: targets_mod:flaky\n  retries: 2\n  backoff: 0.01")
    r = run_in(tmp_path, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["errors"] == 0
    assert {x["attempts"] for x in records(only_run(tmp_path))} == {3}


def test_usage_and_cost_from_python_target(tmp_path):
    write_suite(tmp_path, ITEMS[:4], "python: targets_mod:with_usage")
    s = json.loads(run_in(tmp_path, "--json").stdout)
    assert s["usage"] == {"cost_usd": 1.0, "input_tokens": 12, "output_tokens": 20}


def test_sync_target_respects_concurrency(tmp_path):
    items = [{"id": f"s{i}", "input": f"s{i}"} for i in range(40)]
    write_suite(tmp_path, items, "python: targets_mod:sync_tracked", extra="concurrency: 4\n", scorers="[]")
    r = run_in(tmp_path, "--quiet")
    assert r.returncode == 0, r.stderr
    assert int((tmp_path / "peak.txt").read_text()) == 4


def test_context_variables_a_target_sets_stay_with_its_call(tmp_path):
    """Each call of an async target runs in a copy of the worker's context: a ContextVar it
    sets (its own state, OpenTelemetry's current span) never reaches the next item's call."""
    items = [{"id": f"c{i}", "input": f"c{i}", "expected_output": "none"} for i in range(6)]
    write_suite(tmp_path, items, "python: targets_mod:remembers", extra="concurrency: 1\n")
    r = run_in(tmp_path, "--quiet")
    assert r.returncode == 0, r.stderr
    assert [rec["output"] for rec in records(only_run(tmp_path))] == ["none"] * 6


def test_a_target_that_swallows_its_timeout_still_times_out(tmp_path):
    """The call's timeout cancels it; a target that catches that and answers anyway still gets
    a Timeout on its record (its answer came too late), and the run does not wait 30 s."""
    items = [{"id": f"w{i}", "input": f"w{i}", "expected_output": f"w{i}"} for i in range(3)]
    write_suite(tmp_path, items, "python: targets_mod:swallows\n  timeout: 0.3\n  retries: 0",
                extra="error_budget: 1\n")
    r = run_in(tmp_path, "--quiet")
    # every call failed: the run could not complete, whatever the budget (issue 21)
    assert r.returncode == 3, r.stderr
    recs = records(only_run(tmp_path))
    assert [x["error"]["type"] for x in recs] == ["Timeout"] * 3 and all(x["output"] is None for x in recs)


def test_a_target_editing_its_input_changes_neither_other_trials_nor_the_saved_input(tmp_path):
    items = [{"id": f"e{i}", "input": {"q": f"e{i}"}, "expected_output": "1"} for i in range(3)]
    write_suite(tmp_path, items, "python: targets_mod:editing", extra="repeat: 3\n")
    r = run_in(tmp_path, "--quiet")
    assert r.returncode == 0, r.stderr
    recs = records(only_run(tmp_path))
    assert len(recs) == 9 and all(x["output"] == "1" for x in recs), [x["output"] for x in recs]
    assert all(x["input"] == {"q": x["item_id"]} for x in recs)


def test_rate_limit_spaces_call_starts(tmp_path):
    items = [{"id": f"r{i}", "input": f"r{i}"} for i in range(10)]
    write_suite(tmp_path, items, "python: targets_mod:echo", extra="concurrency: 10\nrate: 20\n", scorers="[]")
    assert run_in(tmp_path, "--quiet").returncode == 0
    starts = sorted(x["started_at"] for x in records(only_run(tmp_path)))
    # 20/s: the k-th call may not start before k * 50 ms, however late the sleeps wake up
    # (a late wake-up can shrink one gap, never the span)
    assert starts[-1] - starts[0] >= 9 * 0.05 - 0.01


def test_exec_target(tmp_path):
    (tmp_path / "app.py").write_text(
        "import json, sys\nq = json.load(sys.stdin)\n"
        "if q == 'fail':\n    print('boom', file=sys.stderr); sys.exit(3)\n"
        "print(q['text'].upper() if isinstance(q, dict) else q.upper())\n")
    items = [{"id": "a", "input": "abc", "expected_output": "ABC"},
             {"id": "b", "input": {"text": "xy"}, "expected_output": "XY"},
             {"id": "c", "input": "fail"}]
    write_suite(tmp_path, items, 'exec: "python app.py"', extra="error_budget: 0.5\n")
    r = run_in(tmp_path, "--json")
    assert r.returncode == 0, r.stderr
    recs = {x["item_id"]: x for x in records(only_run(tmp_path))}
    assert recs["a"]["output"] == "ABC" and recs["b"]["scores"]["exact_match"]["passed"] is True
    assert recs["c"]["error"] == {"type": "TargetError", "message": "exit code 3: boom"}


class _Handler(BaseHTTPRequestHandler):
    hits: dict[str, int] = {}

    def do_POST(self):  # noqa: N802 - http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        q = body["question"]
        n = _Handler.hits[q] = _Handler.hits.get(q, 0) + 1
        if q == "busy" and n == 1:
            self.send_response(503)
            self.end_headers()
            return
        if q == "limited" and n == 1:
            self.send_response(429)
            self.send_header("Retry-After", "1")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if q == "echo-auth":
            raw = f"bad request from {self.headers.get('Authorization')}".encode()
            self.send_response(400)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)
            return
        if q == "missing":
            payload = {"nothing": True}
        else:
            payload = {"data": {"answer": q[::-1]}, "usage": {"total_tokens": 7},
                       "auth": self.headers.get("Authorization")}
        raw = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *a):
        pass


@pytest.fixture
def http_server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_http_target(tmp_path, http_server):
    items = [{"id": "a", "input": "abc", "expected_output": "cba"}, {"id": "b", "input": "busy"},
             {"id": "c", "input": "missing"}, {"id": "d", "input": "limited"}, {"id": "e", "input": "echo-auth"}]
    target = (f"http:\n    url: {http_server}/ask\n    input_key: question\n    output_path: data.answer\n"
              f"    usage_path: usage\n    headers: {{Authorization: 'Bearer ${{HTTP_TOKEN_FOR_TEST}}'}}\n"
              f"  backoff: 0.01")
    write_suite(tmp_path, items, target, extra="error_budget: 0.5\n")
    r = run_in(tmp_path, "--json", env={"HTTP_TOKEN_FOR_TEST": "s3cret-token"})
    assert r.returncode == 0, r.stderr
    recs = {x["item_id"]: x for x in records(only_run(tmp_path))}
    assert recs["a"]["output"] == "cba" and recs["a"]["usage"] == {"total_tokens": 7}
    assert recs["b"]["output"] == "ysub" and recs["b"]["attempts"] == 2  # 503 then retried
    assert recs["c"]["error"]["message"] == "response has no 'data.answer'"
    # 429 with Retry-After: 1 waits the second the server asked for (backoff alone is 10 ms)
    assert recs["d"]["output"] == "detimil" and recs["d"]["attempts"] == 2
    assert recs["d"]["started_at"] - recs["a"]["started_at"] >= 0.95
    assert recs["e"]["error"]["message"] == "HTTP 400: bad request from ***"
    # the secret came from the environment and is nowhere in the run directory
    for f in only_run(tmp_path).iterdir():
        assert "s3cret-token" not in f.read_text()
    assert "${HTTP_TOKEN_FOR_TEST}" in (only_run(tmp_path) / "manifest.json").read_text()


def test_env_default_and_progress_lines(tmp_path):
    write_suite(tmp_path, ITEMS, "python: targets_mod:${EVALRUN_T_FN:-echo}")
    r = run_in(tmp_path)
    assert r.returncode == 0, r.stderr
    assert "12/12 (100%)" in r.stderr and "\x1b[" not in r.stderr  # plain lines when not a terminal


def test_runs_and_show(tmp_path):
    write_suite(tmp_path, ITEMS, "python: targets_mod:echo")
    assert run_in(tmp_path, "--quiet").returncode == 0
    run_dir = only_run(tmp_path)
    home = str(tmp_path / ".evalrun")
    listing = json.loads(invoke_cli("runs", "--output-dir", home, "--json", cwd=tmp_path).stdout)
    assert [x["run_id"] for x in listing] == [run_dir.name] and listing[0]["status"] == "finished"
    by_id = invoke_cli("show", run_dir.name, "--output-dir", home, "--json", cwd=tmp_path)
    by_dir = invoke_cli("show", str(run_dir), "--json", cwd=tmp_path)
    assert json.loads(by_id.stdout) == json.loads(by_dir.stdout)
    assert json.loads(by_id.stdout)["run_id"] == run_dir.name
    r = invoke_cli("show", "nope", "--output-dir", home, cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.startswith("evalrun: error: no run 'nope'")


def test_plain_run_imports_nothing_heavy(tmp_path):
    write_suite(tmp_path, ITEMS, "python: targets_mod:echo")
    code = ("import sys; from evalrun.cli import main\n"
            "try:\n    main(['run', 'eval.yaml', '--quiet', '--output-dir', '.evalrun'])\n"
            "except SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'sentence_transformers', 'langfuse', 'openai') if m in sys.modules))")
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.stdout.strip().splitlines()[-1] == "[]", r.stdout + r.stderr


def test_integers_beyond_64_bits_are_saved(tmp_path):
    (tmp_path / "targets_mod.py").write_text(TARGETS)
    (tmp_path / "data.yaml").write_text("- id: big\n  input: 123456789012345678901234567890\n"
                                        "  expected_output: 123456789012345678901234567890\n- id: small\n  input: 1\n")
    (tmp_path / "eval.yaml").write_text("name: t\ndataset: data.yaml\ntarget:\n  python: targets_mod:echo\n"
                                        "scorers: [exact_match]\n")
    r = run_in(tmp_path, "--json")
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr and "never retrieved" not in r.stderr
    recs = {x["item_id"]: x for x in records(only_run(tmp_path))}
    assert recs["big"]["output"] == 123456789012345678901234567890
    assert recs["big"]["scores"]["exact_match"]["passed"] is True and len(recs) == 2
