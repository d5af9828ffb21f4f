"""Faults end the run or the record, never hang it and never lose a finished call: SIGKILL
at random moments with slow scorers, a full disk, text UTF-8 cannot hold, BaseExceptions
from user code, hung sync calls, a second process on a live run, foreign result lines,
symlinks planted in the run directory."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import invoke_cli, run_cli
from tests.crash_harness import make_suite, run_with_kills
from tests.openai_server import OpenAIServer
from tests.test_cli_run import only_run, records, write_suite

ITEMS = [{"id": f"k{i}", "input": f"k{i}", "expected_output": f"k{i}"} for i in range(30)]


@pytest.mark.slow
def test_sigkill_at_random_moments_reexecutes_only_calls_in_flight(tmp_path):
    # judge (50 ms per call) and embeddings are slower than the target: before write-before-score
    # every kill here lost whole scoring batches of finished calls
    make_suite(tmp_path, 240, concurrency=6, embedding=True)
    with OpenAIServer(latency=0.05) as srv:
        # kills up to 1.25 s into a process's calls: while calls are in flight and the scorers
        # (the embedding model still loading) hold finished ones
        rep = run_with_kills(tmp_path, srv.url, kills=3, max_wait=1.25, seed=7, target_sleep=0.03)
    assert rep.final_exit == 0, rep.final_stderr
    assert rep.duplicate_lines == 0
    assert rep.final_records == rep.final_unique == 240
    # (a kill that lands while a finished run exits needs no resume after it)
    assert rep.kills >= 1 and len(rep.reexecuted_per_kill) in (rep.kills, rep.kills - 1)
    assert all(n <= 6 for n in rep.reexecuted_per_kill), rep.reexecuted_per_kill
    assert rep.total_calls <= 240 + 6 * rep.kills
    run_dir = only_run(tmp_path)
    assert not (run_dir / "pending.jsonl").exists()  # a finished run leaves no journal behind
    assert all(r["scores"]["judge"]["value"] is not None and r["scores"]["similar"]["value"] is not None
               for r in records(run_dir))


def _popen(root: Path, *args: str, **kw) -> subprocess.Popen[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("GITHUB_ACTIONS", None)
    return subprocess.Popen([sys.executable, "-m", "evalrun", "run", *args, "--output-dir", str(root / ".evalrun")],
                            cwd=root, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def _wait_for(path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text().strip():
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


def test_a_call_is_on_disk_before_any_scorer_sees_it(tmp_path):
    # a scorer that never returns: the finished calls must still be on disk, and a resume
    # after SIGKILL must score them without calling the target again
    items = [{"id": f"p{i}", "input": f"p{i}", "expected_output": f"p{i}"} for i in range(20)]
    write_suite(tmp_path, items, "python: targets_mod:echo", scorers="[{name: s, type: python, function: stall:score}]")
    (tmp_path / "stall.py").write_text(
        "import os, time\n"
        "def score(output):\n"
        "    if os.environ.get('STALL'):\n        time.sleep(3600)\n"
        "    return 1.0\n")
    env = {**os.environ, "NO_COLOR": "1", "STALL": "1"}
    p = subprocess.Popen([sys.executable, "-m", "evalrun", "run", "eval.yaml", "--output-dir", str(tmp_path / ".evalrun")],
                         cwd=tmp_path, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    runs = tmp_path / ".evalrun" / "runs"
    deadline = time.monotonic() + 30
    while True:
        pend = list(runs.glob("*/pending.jsonl")) if runs.is_dir() else []
        if pend and pend[0].read_text().count("\n") == 20:
            break
        assert time.monotonic() < deadline, "finished calls did not reach the disk while the scorer stalled"
        time.sleep(0.05)
    p.kill()
    p.communicate(timeout=30)
    run_dir = only_run(tmp_path)
    assert not (run_dir / "results.jsonl").read_text()  # nothing scored yet
    (tmp_path / "targets_mod.py").write_text("async def echo(x):\n    raise SystemExit('target must not be called')\n")
    r = run_cli("run", "--resume", run_dir.name, "--output-dir", str(tmp_path / ".evalrun"), "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    recs = records(run_dir)
    assert sorted(x["item_id"] for x in recs) == sorted(i["id"] for i in items)
    assert all(x["error"] is None and x["scores"]["s"]["value"] == 1.0 for x in recs)


def test_a_journal_write_that_fails_once_is_retried_while_every_scorer_slot_is_busy(tmp_path):
    """One failed write of the pending journal (a full disk for a moment) while the scorers hold
    every scoring slot: the calls that finish afterwards still reach the disk, long before any
    scorer frees a slot (before the fix they waited in memory for the next scoring batch)."""
    items = [{"id": f"j{i}", "input": f"j{i}", "expected_output": f"j{i}"} for i in range(20)]
    write_suite(tmp_path, items, "python: targets_mod:slow",
                extra="concurrency: 1\n", scorers="[{name: s, type: python, function: stall:score}]")
    (tmp_path / "stall.py").write_text("import time\ndef score(output):\n    time.sleep(3600)\n")
    # the 8th journal write (by then every scoring slot holds a stalled batch) fails once
    code = ("import runpy, sys, evalrun.store as st\n"
            "orig, n = st.ResultsWriter.write, [0]\n"
            "def write(self, records):\n"
            "    if self.path.name == 'pending.jsonl':\n"
            "        n[0] += 1\n"
            "        if n[0] == 8:\n"
            "            raise OSError(28, 'No space left on device')\n"
            "    return orig(self, records)\n"
            "st.ResultsWriter.write = write\n"
            "sys.argv = ['evalrun', 'run', 'eval.yaml', '--output-dir', '.evalrun', '-q']\n"
            "runpy.run_module('evalrun', run_name='__main__')\n")
    env = {**os.environ, "NO_COLOR": "1", "SLOW_TARGET_S": "0.05"}
    p = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, env=env, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        lines = 0
        while lines < 20:
            assert p.poll() is None, p.communicate()
            assert time.monotonic() < deadline, f"{lines}/20 finished calls on disk while the scorers stalled"
            time.sleep(0.05)
            pend = list((tmp_path / ".evalrun" / "runs").glob("*/pending.jsonl"))
            lines = pend[0].read_text().count("\n") if pend else 0
        assert sorted(json.loads(x)["item_id"] for x in pend[0].read_text().splitlines()) == sorted(
            i["id"] for i in items)
    finally:
        p.kill()
        p.communicate(timeout=30)


def _limit_file_size(limit: int):
    def pre() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return pre


def test_a_full_disk_with_a_fast_target_exits_3_and_never_hangs(tmp_path):
    items = [{"id": f"d{i}", "input": "x" * 100 + str(i), "expected_output": "y"} for i in range(6000)]
    write_suite(tmp_path, items, "python: targets_mod:echo", extra="concurrency: 16\n")
    p = _popen(tmp_path, "eval.yaml", preexec_fn=_limit_file_size(256 * 1024))
    out, err = p.communicate(timeout=120)
    assert p.returncode == 3, err
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("evalrun: saved")]
    assert len([ln for ln in lines if ln.startswith("evalrun: error")]) == 1, err
    assert "Traceback" not in err and ("File too large" in err or "No space" in err), err
    run_dir = only_run(tmp_path)
    saved = records(run_dir)
    assert len(saved) == len({(r["item_id"], r["trial"]) for r in saved}) > 0


def test_text_utf8_cannot_hold_is_repaired_and_flagged(tmp_path, cli):
    (tmp_path / "srv_mod.py").write_text(
        "def bad(x):\n    return '\\ud800 lone ' + x\n")
    items = [{"id": "a", "input": "a", "expected_output": "a"}, {"id": "b", "input": "b", "expected_output": "b"}]
    write_suite(tmp_path, items, "python: srv_mod:bad")
    r = cli("run", "eval.yaml", "--output-dir", str(tmp_path / ".evalrun"), "--json", cwd=tmp_path)
    assert r.returncode in (0, 1), r.stderr
    run_dir = only_run(tmp_path)
    recs = records(run_dir)
    assert len(recs) == 2
    for rec in recs:
        assert rec["output"].startswith("\ufffd lone ") and rec["repaired"] == ["output"] and rec["error"] is None
    # and a resume/baseline read of the same file works
    r2 = cli("compare", str(run_dir), str(run_dir), "--json", cwd=tmp_path)
    assert r2.returncode == 0, r2.stderr


def test_a_lone_surrogate_over_http_is_stored_safely(tmp_path, cli):
    # the JSON body holds "\ud800" escaped, which JSON allows and UTF-8 cannot store
    class H(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            body = b'{"answer": "x\\ud800y"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        write_suite(tmp_path, ITEMS[:3], f"http:\n    url: http://127.0.0.1:{server.server_port}/\n    output_path: answer")
        r = cli("run", "eval.yaml", "--output-dir", str(tmp_path / ".evalrun"), "--json", cwd=tmp_path)
    finally:
        server.shutdown()
    assert r.returncode in (0, 1), r.stderr
    recs = records(only_run(tmp_path))
    assert [x["output"] for x in recs] == ["x\ufffdy"] * 3 and all(x["repaired"] == ["output"] for x in recs)


BASE_EXC = '''
import asyncio

def sync_target(x):
    if x == "exit":
        raise SystemExit(4)
    if x == "base":
        raise BaseException("odd")
    if x == "kbd":
        raise KeyboardInterrupt()
    return x

async def async_target(x):
    if x == "exit":
        raise SystemExit(4)
    if x == "cancel":
        raise asyncio.CancelledError()
    if x == "base":
        raise BaseException("odd")
    return x
'''


def _run_base_exc(tmp_path: Path, target: str, bad: list[str]) -> None:
    (tmp_path / "be.py").write_text(BASE_EXC)
    items = [{"id": b, "input": b, "expected_output": b} for b in bad]
    items += [{"id": f"ok{i}", "input": f"ok{i}", "expected_output": f"ok{i}"} for i in range(10)]
    write_suite(tmp_path, items, f"python: be:{target}", extra="error_budget: 0.9\nconcurrency: 3\n")
    # in this process: a SystemExit or KeyboardInterrupt that got past the run would end pytest
    r = invoke_cli("run", "eval.yaml", "--output-dir", str(tmp_path / ".evalrun"), "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    s = json.loads(r.stdout)
    assert s["status"] == "finished" and s["records"] == len(items) and s["errors"] == len(bad)
    recs = {x["item_id"]: x for x in records(only_run(tmp_path))}
    for b in bad:
        assert recs[b]["error"]["type"] == "TargetError", recs[b]
    assert all(recs[f"ok{i}"]["output"] == f"ok{i}" for i in range(10))
    assert json.loads((only_run(tmp_path) / "manifest.json").read_text())["status"] == "finished"


def test_base_exceptions_from_a_sync_target_fail_only_their_record(tmp_path):
    _run_base_exc(tmp_path, "sync_target", ["exit", "base", "kbd"])


def test_base_exceptions_from_an_async_target_fail_only_their_record(tmp_path):
    _run_base_exc(tmp_path, "async_target", ["exit", "cancel", "base"])


def test_hung_sync_calls_do_not_starve_the_others(tmp_path):
    (tmp_path / "hang.py").write_text(
        "import threading\n"
        "def call(x):\n"
        "    if x.startswith('hang'):\n        threading.Event().wait()\n"
        "    return x\n")
    items = [{"id": f"hang{i}", "input": f"hang{i}", "expected_output": "-"} for i in range(4)]
    items += [{"id": f"ok{i}", "input": f"ok{i}", "expected_output": f"ok{i}"} for i in range(40)]
    write_suite(tmp_path, items, "python: hang:call\n  timeout: 0.5\n  retries: 0",
                extra="concurrency: 4\nerror_budget: 0.5\n")
    # the hung threads must not keep the process alive: it exits by itself (run_cli's timeout
    # is the hang detector, not a speed bound)
    r = run_cli("run", "eval.yaml", "--output-dir", str(tmp_path / ".evalrun"), "--json", cwd=tmp_path, timeout=60)
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["records"] == 44 and s["errors"] == 4, s
    recs = {x["item_id"]: x for x in records(only_run(tmp_path))}
    assert all(recs[f"hang{i}"]["error"]["type"] == "Timeout" for i in range(4))
    assert all(recs[f"ok{i}"]["error"] is None for i in range(40))


def test_a_second_process_on_a_live_run_gets_exit_2_naming_the_holder(tmp_path):
    write_suite(tmp_path, ITEMS, "python: targets_mod:slow", extra="concurrency: 1\n")
    p = _popen(tmp_path, "eval.yaml")
    try:
        runs = tmp_path / ".evalrun" / "runs"
        deadline = time.monotonic() + 30
        while not (runs.is_dir() and list(runs.glob("*/results.jsonl"))):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        run_dir = only_run(tmp_path)
        r = run_cli("run", "--resume", run_dir.name, "--output-dir", str(tmp_path / ".evalrun"), cwd=tmp_path)
        assert r.returncode == 2, r.stderr
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and f"pid {p.pid}" in lines[0] and "in use" in lines[0], r.stderr
    finally:
        p.kill()
        p.communicate(timeout=30)
    # once the holder is gone (killed: the kernel dropped its lock) the resume goes through
    # (finishing the remaining calls without the target's delay)
    r = run_cli("run", "--resume", run_dir.name, "--output-dir", str(tmp_path / ".evalrun"), "--json", cwd=tmp_path,
                env={"SLOW_TARGET_S": "0"})
    assert r.returncode == 0, r.stderr
    keys = [(x["item_id"], x["trial"]) for x in records(run_dir)]
    assert len(keys) == len(set(keys)) == 30


def _finished_then_running(tmp_path: Path, n: int = 6) -> Path:
    write_suite(tmp_path, ITEMS[:n], "python: targets_mod:echo")
    assert invoke_cli("run", "eval.yaml", "--output-dir", str(tmp_path / ".evalrun"), "--quiet", cwd=tmp_path).returncode == 0
    run_dir = only_run(tmp_path)
    m = json.loads((run_dir / "manifest.json").read_text())
    m["status"] = "running"
    (run_dir / "manifest.json").write_text(json.dumps(m))
    return run_dir


def test_a_complete_last_record_without_newline_is_kept(tmp_path, cli):
    run_dir = _finished_then_running(tmp_path)
    text = (run_dir / "results.jsonl").read_text()
    last = json.loads(text.splitlines()[-1])
    (run_dir / "results.jsonl").write_text(text.rstrip("\n"))
    r = cli("run", "--resume", str(run_dir), "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    recs = records(run_dir)
    assert len(recs) == 6 == json.loads(r.stdout)["records"]
    assert recs[-1] == last  # kept as it was, not cut and run again


def test_foreign_result_lines_are_exit_2_with_file_and_line(tmp_path, cli):
    run_dir = _finished_then_running(tmp_path)
    good = (run_dir / "results.jsonl").read_text()
    for bad in ('{"item_id": "k1", "trial": "x"}', "null", '{"item_id": "k1", "trial": 0, "latency_ms": "fast"}',
                '{"trial": 0}', '{"item_id": "k1", "scores": {"exact_match": {"value": "high"}}}'):
        (run_dir / "results.jsonl").write_text(good + bad + "\n")
        r = cli("run", "--resume", str(run_dir), cwd=tmp_path)
        assert r.returncode == 2, (bad, r.stderr)
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and "results.jsonl:7" in lines[0] and "Traceback" not in r.stderr, (bad, r.stderr)


def test_a_symlink_planted_in_the_run_directory_is_not_followed(tmp_path, cli):
    run_dir = _finished_then_running(tmp_path)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    (run_dir / "results.jsonl").unlink()
    (run_dir / "results.jsonl").symlink_to(victim)
    r = cli("run", "--resume", str(run_dir), cwd=tmp_path)
    assert r.returncode == 2 and "symlink" in r.stderr, r.stderr
    assert victim.read_text() == "keep me\n"


def test_a_runaway_regex_fails_only_its_records(tmp_path):
    items = [{"id": "bad", "input": "a" * 60 + "b", "expected_output": "-"},
             {"id": "good", "input": "aaaa", "expected_output": "-"}]
    write_suite(tmp_path, items, "python: targets_mod:echo",
                scorers="[{type: regex, pattern: '(a|aa)+$', timeout: 0.3, error_budget: 0.5}]")
    r = invoke_cli("run", "eval.yaml", "--output-dir", str(tmp_path / ".evalrun"), "--json", cwd=tmp_path, timeout=60)
    assert r.returncode == 0, r.stderr
    recs = {x["item_id"]: x for x in records(only_run(tmp_path))}
    assert "longer than 0.3s" in recs["bad"]["scores"]["regex"]["error"]
    assert recs["good"]["scores"]["regex"]["passed"] is True


def test_atomic_writes_replace_a_planted_symlink_instead_of_following_it(tmp_path):
    from evalrun.store import RunDir

    victim = tmp_path / "victim.json"
    victim.write_text("precious\n")
    rd = RunDir(tmp_path / "run")
    rd.path.mkdir()
    (rd.path / "manifest.json").symlink_to(victim)
    rd.write_manifest({"status": "running"})
    assert victim.read_text() == "precious\n"
    assert not (rd.path / "manifest.json").is_symlink() and rd.read_manifest() == {"status": "running"}
    assert not list(rd.path.glob("*.tmp*"))



def test_reports_replace_symlinks_planted_in_the_run_directory(tmp_path, cli):
    """Every report written into a run directory (md, junit, html, json, console text) and
    history.jsonl replaces a symlink planted under its name; the file it pointed to stays."""
    items = [{"id": f"i{i}", "input": f"x{i}", "expected_output": f"x{i}"} for i in range(3)]
    write_suite(tmp_path, items, "python: targets_mod:echo")
    home = str(tmp_path / ".evalrun")
    assert cli("run", "eval.yaml", "--output-dir", home, "--quiet", cwd=tmp_path).returncode == 0
    assert cli("run", "eval.yaml", "--output-dir", home, "--quiet", cwd=tmp_path).returncode == 0
    from evalrun.store import list_runs

    first, second = list_runs(tmp_path / ".evalrun")[-2:]
    names = ["report.md", "junit.xml", "report.html", "comparison.json", "report.txt", "history.jsonl"]
    victims = {}
    for name in names:
        victim = tmp_path / f"victim-{name}"
        victim.write_text("precious\n")
        (second.path / name).unlink(missing_ok=True)
        (second.path / name).symlink_to(victim)
        victims[name] = victim
    r = cli("compare", second.id, first.id, "--output-dir", home, "--report", "md", "--report", "junit",
            "--report", "html", "--report", "json", "--report", "console:" + str(second.path / "report.txt"),
            cwd=tmp_path)
    assert r.returncode in (0, 1), r.stderr
    written = [n for n in names if not (second.path / n).is_symlink()]
    for name in names:
        assert victims[name].read_text() == "precious\n", name
    # every report that was asked for landed as a regular file in its own place
    assert written == names, written
    assert (second.path / "report.html").read_text().lstrip().startswith("<!")
    assert not list(second.path.glob("*.tmp*"))


BASE_EXC_SCORER = '''
import asyncio

def _raise(output):
    if output == "exit":
        raise SystemExit(4)
    if output == "kbd":
        raise KeyboardInterrupt()
    if output == "base":
        raise BaseException("odd")
    return output.startswith("ok")

async def async_score(output):
    if output == "cancel":
        raise asyncio.CancelledError()
    await asyncio.sleep(0)
    return _raise(output)

def sync_score(output):
    return _raise(output)
'''


@pytest.mark.parametrize("fn", ["async_score", "sync_score"])
def test_base_exceptions_from_a_custom_scorer_fail_only_that_records_score(tmp_path, fn):
    (tmp_path / "bs.py").write_text(BASE_EXC_SCORER)
    bad = ["exit", "kbd", "base"] + (["cancel"] if fn == "async_score" else [])
    items = [{"id": b, "input": b, "expected_output": b} for b in bad]
    items += [{"id": f"ok{i}", "input": f"ok{i}", "expected_output": f"ok{i}"} for i in range(10)]
    write_suite(tmp_path, items, "python: targets_mod:echo", scorers=f"[{{name: s, type: python, function: bs:{fn}, error_budget: 0.5}}]")
    r = invoke_cli("run", "eval.yaml", "--output-dir", str(tmp_path / ".evalrun"), "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    s = json.loads(r.stdout)
    assert s["status"] == "finished" and s["records"] == len(items) and s["errors"] == 0
    recs = {x["item_id"]: x for x in records(only_run(tmp_path))}
    want = {"exit": "SystemExit: 4", "kbd": "KeyboardInterrupt", "base": "BaseException: odd",
            "cancel": "CancelledError"}
    for b in bad:
        assert recs[b]["output"] == b and want[b] in recs[b]["scores"]["s"]["error"], recs[b]
    # the other records of the same batch are scored as usual
    assert all(recs[f"ok{i}"]["scores"]["s"]["value"] == 1.0 for i in range(10))
    assert json.loads((only_run(tmp_path) / "manifest.json").read_text())["status"] == "finished"


# held-out foreign lines (issue 12b): other wrong shapes than the ones above, each on line 7
HELD_OUT_FOREIGN = [
    '{"item_id": "k1", "trial": 0, "scores": "x"}',
    '{"item_id": 5, "trial": 0}',
    '[1, 2, 3]',
    '"just a string"',
    '{}',
    '{"item_id": "k1", "trial": -1}',
    '{"item_id": "k1", "trial": 1e999}',
    '{"item_id": "k1", "trial": 0, "error": "boom"}',
    '{"item_id": "k1", "trial": 0, "scores": {"exact_match": "yes"}}',
    '{"item_id": "k1", "trial": 0, "usage": ["tokens"]}',
    '{"item_id": "k1", "trial": true}',
    '{"item_id": "' + "x" * 100 + '\\u2028::add-mask::y", "trial": 0, "latency_ms": null, "scores": []}',
]


@pytest.mark.parametrize("bad", HELD_OUT_FOREIGN)
def test_held_out_foreign_result_lines(tmp_path, bad, cli):
    run_dir = _finished_then_running(tmp_path)
    good = (run_dir / "results.jsonl").read_text()
    (run_dir / "results.jsonl").write_text(good + bad + "\n")
    r = cli("run", "--resume", str(run_dir), cwd=tmp_path)
    assert r.returncode == 2, (bad, r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "results.jsonl:7" in lines[0] and "Traceback" not in r.stderr, (bad, r.stderr)
    assert (run_dir / "results.jsonl").read_text() == good + bad + "\n"  # nothing computed is lost


@pytest.mark.slow
@pytest.mark.parametrize("signals", [(signal.SIGHUP,), (signal.SIGINT, signal.SIGINT),
                                     (signal.SIGTERM, signal.SIGINT), (signal.SIGQUIT,)],
                         ids=["hup", "int-int", "term-int", "quit"])
def test_held_out_signals_lose_nothing_and_double_nothing(tmp_path, signals):
    """Signals the first pass did not send (a closed terminal, a second Ctrl-C during the
    first one's shutdown, SIGQUIT): every resume ends with exactly one record per item."""
    # 100 items: the third process still starts mid-run (the first two make ~10 and ~35 calls)
    make_suite(tmp_path, 100, concurrency=4, embedding=False)
    with OpenAIServer(latency=0.02) as srv:
        rep = run_with_kills(tmp_path, srv.url, kills=2, max_wait=0.6, seed=3, target_sleep=0.03, signals=signals)
    assert rep.kills >= 1 and len(rep.calls_per_process) >= 2, rep  # a signal landed mid-run, a resume followed
    assert rep.final_exit == 0, rep.final_stderr
    assert "Traceback" not in rep.final_stderr
    assert rep.duplicate_lines == 0 and rep.final_records == rep.final_unique == 100
    assert all(n <= 4 for n in rep.reexecuted_per_kill), rep.reexecuted_per_kill  # at most the calls in flight
    assert all(r["scores"]["judge"]["value"] is not None for r in records(only_run(tmp_path)))


def test_a_non_finite_number_the_eval_file_allows_does_not_break_the_manifest(tmp_path, cli):
    """``tolerance: .inf`` is a valid (if lax) numeric scorer; the manifest keeps the eval file
    as JSON, where it is the string "Infinity" (held out, issue 12b: was an internal error)."""
    items = [{"id": "n1", "input": "1", "expected_output": "2"}]
    write_suite(tmp_path, items, "python: targets_mod:echo", scorers="[{type: numeric, tolerance: .inf}]")
    r = cli("run", "eval.yaml", "--output-dir", str(tmp_path / ".evalrun"), "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    manifest = json.loads((only_run(tmp_path) / "manifest.json").read_text())
    assert manifest["config"]["scorers"][0]["tolerance"] == "Infinity"
    assert [x["scores"]["numeric"]["passed"] for x in records(only_run(tmp_path))] == [True]
