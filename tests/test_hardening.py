"""Issue 32, the third hardening pass: what a pipeline or a file can throw at evalrun ends as
one record's error or one clear line, never a traceback, a hang or a leak."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import invoke_cli, run_cli
from tests.test_cli_run import only_run, records, write_suite

RAISERS = '''
import asyncio

def sync_target(x):
    if x == "genexit":
        raise GeneratorExit("closed")
    if x == "stopiter":
        raise StopIteration("done")
    if x == "stopasync":
        raise StopAsyncIteration("done")
    return x

async def async_target(x):
    return sync_target(x)
'''


@pytest.mark.parametrize("target", ["sync_target", "async_target"])
def test_generator_exit_and_stop_iteration_from_a_target_fail_only_their_record(tmp_path, target):
    """A GeneratorExit from a sync target ended the whole run (traceback, exit 1, manifest left
    'running'); a StopIteration could not be put into the call's future and became a Timeout
    after the full timeout. Each is that record's error now, named, at once."""
    (tmp_path / "raisers.py").write_text(RAISERS)
    bad = ["genexit", "stopiter", "stopasync"]
    items = [{"id": b, "input": b, "expected_output": b} for b in bad]
    items += [{"id": f"ok{i}", "input": f"ok{i}", "expected_output": f"ok{i}"} for i in range(6)]
    write_suite(tmp_path, items, f"python: raisers:{target}\n  timeout: 30\n  retries: 0",
                extra="error_budget: 0.9\nconcurrency: 3\n")
    r = invoke_cli("run", "eval.yaml", "--output-dir", str(tmp_path / ".evalrun"), "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr and "interacts badly" not in r.stderr
    assert json.loads(r.stdout)["errors"] == len(bad)
    recs = {x["item_id"]: x for x in records(only_run(tmp_path))}
    assert all(recs[f"ok{i}"]["output"] == f"ok{i}" for i in range(6))
    for b, name in zip(bad, ["GeneratorExit", "StopIteration", "StopAsyncIteration"], strict=True):
        err = recs[b]["error"]
        assert err["type"] != "Timeout" and name in f"{err['type']}: {err['message']}", err
        assert recs[b]["latency_ms"] < 10_000  # settled when raised, not after the timeout
    assert json.loads((only_run(tmp_path) / "manifest.json").read_text())["status"] == "finished"


STUBBORN = '''
import asyncio

async def swallows_forever(x):
    # catches every cancellation and goes on waiting
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            pass

async def _stubborn():
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            pass

async def gathers_a_stubborn_task(x):
    # the cancel goes to the gather, whose child ignores it: the gather never ends
    await asyncio.gather(asyncio.ensure_future(_stubborn()))

async def busy_yields(x):
    while True:
        try:
            await asyncio.sleep(0)
        except BaseException:
            pass
'''


@pytest.mark.parametrize("target", ["swallows_forever", "gathers_a_stubborn_task", "busy_yields"])
def test_an_async_target_that_ignores_its_cancellation_still_times_out(tmp_path, target):
    """The timeout does not depend on the target's cooperation: a target that swallows its
    cancel and keeps awaiting is abandoned after a short grace, its record a Timeout, and the
    run ends (it used to run forever)."""
    (tmp_path / "stubborn.py").write_text(STUBBORN)
    items = [{"id": f"s{i}", "input": f"s{i}", "expected_output": "x"} for i in range(3)]
    write_suite(tmp_path, items, f"python: stubborn:{target}\n  timeout: 0.3\n  retries: 0",
                extra="error_budget: 1\n")
    r = run_cli("run", "eval.yaml", "--output-dir", str(tmp_path / ".evalrun"), "--json", cwd=tmp_path,
                timeout=60)
    # every call timed out: the run ends, and says it could not complete (exit 3), whatever the budget
    assert r.returncode == 3, r.stderr
    assert "run failed: every target call failed (3 of 3): Timeout" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and "was destroyed" not in r.stderr, r.stderr
    recs = records(only_run(tmp_path))
    assert [x["error"]["type"] for x in recs] == ["Timeout"] * 3


def test_a_non_daemon_thread_left_by_the_target_does_not_hold_the_exit(tmp_path):
    """A telemetry SDK's worker thread (non-daemon, waiting for an exit handler that Python
    runs only after joining it) kept `evalrun run` from exiting once the run was saved; the
    exit handlers still run (the SDK's flush)."""
    (tmp_path / "threads.py").write_text(
        "import atexit, threading\n"
        "_stop = threading.Event()\n"
        "_t = None\n"
        "async def call(x):\n"
        "    global _t\n"
        "    if _t is None:\n"
        "        _t = threading.Thread(target=_stop.wait, name='telemetry', daemon=False)\n"
        "        _t.start()\n"
        "        atexit.register(lambda: open('flushed.txt', 'w').write('yes'))\n"
        "    return x\n")
    items = [{"id": f"t{i}", "input": f"t{i}", "expected_output": f"t{i}"} for i in range(3)]
    write_suite(tmp_path, items, "python: threads:call")
    r = run_cli("run", "eval.yaml", "--output-dir", str(tmp_path / ".evalrun"), "--json", cwd=tmp_path,
                timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["status"] == "finished"
    assert (tmp_path / "flushed.txt").read_text() == "yes"


@pytest.mark.parametrize(("where", "key", "shown"), [
    ("top", "a[b", "unknown key 'a[b'"),
    ("target", "time[out", "unknown key 'time[out' (did you mean 'timeout'?)"),
    ("scorer", "ca[se", "unknown key 'ca[se'"),
    ("top", "x\x1b[31m\x9b2J", 'unknown key "x\\u001b[31m\\u009b2J"'),
])
def test_unknown_keys_holding_brackets_or_controls_are_named_at_their_line(tmp_path, cli, where, key, shown):
    """A key holding '[' was an internal IndexError (exit 3), and a target key was reported as
    "unknown key 'target' (did you mean 'target'?)"; a key holding a terminal escape reached
    the terminal raw."""
    items = [{"id": "k", "input": "k", "expected_output": "k"}]
    quoted = json.dumps(key)
    if where == "top":
        cfg = write_suite(tmp_path, items, "python: targets_mod:echo", extra=f"{quoted}: 1\n")
        line = 6
    elif where == "target":
        cfg = write_suite(tmp_path, items, f"python: targets_mod:echo\n  {quoted}: 3")
        line = 5
    else:
        cfg = write_suite(tmp_path, items, "python: targets_mod:echo", scorers=f"[{{type: exact_match, {quoted}: 1}}]")
        line = 5
    r = cli("run", "eval.yaml", "--output-dir", str(tmp_path / ".evalrun"), cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith(f"evalrun: error: {cfg.name}:{line}:"), r.stderr
    assert shown in r.stderr, r.stderr
    assert "internal error" not in r.stderr and "\x1b" not in r.stderr and "\x9b" not in r.stderr


@pytest.mark.parametrize(("spec", "shown"), [
    ("x[y=1", "unknown key 'x[y'"),
    ("target.time[out=1", "unknown key 'time[out' (did you mean 'timeout'?)"),
    ("a\x1b[31mb=1", "\\x1b[31mb"),
])
def test_set_keys_holding_brackets_or_controls_are_usage_errors(tmp_path, cli, spec, shown):
    write_suite(tmp_path, [{"id": "k", "input": "k", "expected_output": "k"}], "python: targets_mod:echo")
    r = cli("run", "eval.yaml", "--output-dir", str(tmp_path / ".evalrun"), "--set", spec, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("evalrun: error: --set ") and shown in r.stderr, r.stderr
    assert "internal error" not in r.stderr and "\x1b" not in r.stderr


CONTROLS = "csi\x9b2J vt\x0b ff\x0c nel\x85 del\x7f ls\u2028 rlo\u202e end"


def test_c1_controls_and_vertical_tabs_reach_no_report_file(tmp_path, cli):
    """U+009B (a CSI on some terminals) went raw into the job-summary markdown and the HTML
    report, a vertical tab into the HTML: every report file shows them as U+FFFD (the JSON
    report as \\u escapes, which parse back to the same text)."""
    (tmp_path / "host.py").write_text(f"H = {CONTROLS!r}\ndef out(x):\n    return H\n")
    items = [{"id": "c\x9bid", "input": "a", "expected_output": "a"}]
    write_suite(tmp_path, items, "python: host:out")
    summary = tmp_path / "summary.md"
    r = cli("run", "eval.yaml", "--output-dir", str(tmp_path / ".evalrun"), "--report", "md", "--report", "junit",
            "--report", "html", "--report", "json", cwd=tmp_path,
            env={"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary), "GITHUB_WORKSPACE": str(tmp_path)})
    assert r.returncode in (0, 1), r.stderr
    run_dir = only_run(tmp_path)
    files = {p.name: p.read_text() for p in run_dir.iterdir() if p.suffix in (".md", ".xml", ".html", ".json")}
    files["job summary"] = summary.read_text()
    assert {"report.md", "junit.xml", "report.html", "comparison.json"} <= set(files), set(files)
    for name, text in files.items():
        for ch in "\x9b\x0b\x0c\x85\x7f\u2028\u202e":
            assert ch not in text, (name, repr(ch))
    assert "csi\ufffd2J" in files["report.html"] and "vt\ufffd" in files["report.html"]
    assert "csi\ufffd2J" in files["job summary"]
    assert "c\\u009bid" in files["comparison.json"] and "c\x9bid" in json.dumps(
        json.loads(files["comparison.json"]), ensure_ascii=False)  # the same id to a parser
    assert "\x9b" not in r.stdout and "\x9b" not in r.stderr


def test_a_boolean_expected_output_against_text_says_so_in_the_reason(tmp_path, cli):
    """`expected_output: NO` is YAML 1.1's boolean false: the failure reason says that and how
    to quote it, instead of only "output 'NO' does not match"."""
    (tmp_path / "t.py").write_text("def echo(x):\n    return x\n")
    (tmp_path / "data.yaml").write_text("- {id: a, input: 'NO', expected_output: NO}\n"
                                        "- {id: b, input: 'yes', expected_output: 'yes'}\n")
    (tmp_path / "eval.yaml").write_text("name: t\ndataset: data.yaml\ntarget:\n  python: t:echo\n"
                                        "scorers: [exact_match, contains]\n")
    r = cli("run", "eval.yaml", "--output-dir", str(tmp_path / ".evalrun"), "-q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    recs = {x["item_id"]: x for x in records(only_run(tmp_path))}
    for scorer in ("exact_match", "contains"):
        reason = recs["a"]["scores"][scorer]["reason"]
        assert "false is a boolean, not text" in reason and "'NO'" in reason, reason
        assert recs["b"]["scores"][scorer]["passed"] is True


@pytest.mark.parametrize("flags", [["-q"], ["--json"], ["-q", "--json"]])
def test_quiet_never_hides_why_a_run_failed(tmp_path, cli, flags):
    """A run over its error budget exits 3; with -q it used to print nothing at all."""
    items = [{"id": f"f{i}", "input": "raise", "expected_output": "x"} for i in range(3)]
    write_suite(tmp_path, items, "python: targets_mod:troubled\n  retries: 0")
    r = cli("run", "eval.yaml", "--output-dir", str(tmp_path / ".evalrun"), *flags, cwd=tmp_path)
    assert r.returncode == 3, r.stderr
    assert "run failed: every target call failed (3 of 3): ValueError: bad things" in r.stderr, r.stderr
    if "--json" in flags:
        assert json.loads(r.stdout)["status"] == "failed"  # stdout stays JSON


@pytest.mark.parametrize("damage", ['{"run_id": "x", broken', "[1, 2]", '"text"', ""])
def test_a_damaged_old_manifest_is_skipped_with_a_warning(tmp_path, cli, damage):
    """One damaged manifest.json made `evalrun runs` and `compare latest` exit 2 (or 3, for
    JSON that is not an object) for every run."""
    write_suite(tmp_path, [{"id": "a", "input": "a", "expected_output": "a"}], "python: targets_mod:echo")
    home = str(tmp_path / ".evalrun")
    for _ in range(3):
        assert cli("run", "eval.yaml", "--output-dir", home, "-q", cwd=tmp_path).returncode == 0
    order = [x["path"] for x in json.loads(cli("runs", "--output-dir", home, "--json", cwd=tmp_path).stdout)]
    runs = [Path(p) for p in order]
    (runs[0] / "manifest.json").write_text(damage)
    r = cli("runs", "--output-dir", home, "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert [x["run_id"] for x in json.loads(r.stdout)] == [p.name for p in runs[1:]]
    assert r.stderr.count(f"warning: skipping run {runs[0].name}") == 1, r.stderr
    r = cli("compare", "latest", "--output-dir", home, cwd=tmp_path)  # with the previous run
    assert r.returncode == 0, r.stderr
    assert f"skipping run {runs[0].name}" in r.stderr
    r = cli("show", "latest", "--output-dir", home, "--json", cwd=tmp_path)
    assert r.returncode == 0 and json.loads(r.stdout)["run_id"] == runs[2].name, r.stderr


class _AuthEcho(BaseHTTPRequestHandler):
    """An OpenAI-compatible server (and a JSON http endpoint) that echoes the Authorization
    header it received: in an error (``/err/``), or as the answer itself."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        echo = f"you sent Authorization={self.headers.get('Authorization')}"
        if "/err/" in self.path:
            status, body = 400, {"error": {"message": echo, "type": "invalid_request_error"}}
        else:
            status, body = 200, {"id": "c1", "object": "chat.completion", "model": "m", "answer": echo,
                                 "choices": [{"index": 0, "finish_reason": "stop",
                                              "message": {"role": "assistant", "content": echo}}],
                                 "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass


def _client_suite(tmp_path, kind: str, url: str) -> None:
    """A one-item suite whose ``kind`` (chat, http, or a judge over a python target) calls ``url``."""
    (tmp_path / "tgt.py").write_text("def echo(x):\n    return x\n")
    scorers = "[exact_match]"
    if kind == "chat":
        target = f"chat:\n    base_url: '{url}'\n    model: m\n    messages:\n      - {{role: user, content: '{{{{ input }}}}'}}"
    elif kind == "http":
        target = f"http:\n    url: '{url}'\n    output_path: answer"
    else:
        target = "python: tgt:echo"
        scorers = f"\n  - type: llm_judge\n    rubric: relevance\n    model: m\n    base_url: '{url}'\n    retries: 0"
    (tmp_path / "data.jsonl").write_text(json.dumps({"id": "s1", "input": "a", "expected_output": "a"}) + "\n")
    (tmp_path / "eval.yaml").write_text(f"name: t\ndataset: data.jsonl\ntarget:\n  {target}\n  retries: 0\n"
                                        f"scorers: {scorers}\nerror_budget: 1\n")


@pytest.mark.parametrize("kind", ["chat", "http", "judge"])
@pytest.mark.parametrize("mode", ["err", "ok"])
def test_basic_auth_from_userinfo_is_masked_for_every_target(tmp_path, cli, kind, mode):
    """`user:password@` in a URL becomes an `Authorization: Basic base64(user:password)`
    header; a server that echoes it (in an error or in its answer) left it in results.jsonl
    and every report for the chat target. One masking helper covers it for every client."""
    import base64

    password = "pw_" + "Userinfo9" * 3
    basic = base64.b64encode(f"bob:{password}".encode()).decode()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AuthEcho)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://bob:${{PW}}@127.0.0.1:{server.server_port}/{mode}/v1"
    _client_suite(tmp_path, kind, url)
    try:
        r = cli("run", "eval.yaml", "--output-dir", str(tmp_path / "home"), "--report", "junit", "--report", "html",
                "--report", "json", "--report", "md", "--json", cwd=tmp_path, env={"PW": password})
    finally:
        server.shutdown()
    assert r.returncode in (0, 1, 3), r.stderr
    [run_dir] = list((tmp_path / "home" / "runs").iterdir())
    saved = (run_dir / "results.jsonl").read_text()
    assert "you sent Authorization=Basic ***" in saved, saved  # the echo happened, and was masked
    for text in [r.stdout, r.stderr] + [p.read_text(errors="replace") for p in run_dir.iterdir() if p.is_file()]:
        for secret in (basic, password):
            for i in range(len(secret) - 8):
                assert secret[i:i + 8] not in text, (secret[i:i + 8], text[:300])


class _Big(BaseHTTPRequestHandler):
    """Answers too large to hold: a plain body past the limit (``/plain/``), or a small gzip
    body that inflates past it (``/gzip/``), as a JSON endpoint or a chat completion would."""

    def do_POST(self):
        import gzip

        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        filler = "x" * (3 * 1024 * 1024)
        body = json.dumps({"answer": filler, "choices": [{"message": {"role": "assistant", "content": filler}}]})
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if "/gzip/" in self.path:
            data = gzip.compress(data)
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass


@pytest.mark.parametrize("kind", ["http", "chat", "judge"])
@pytest.mark.parametrize("mode", ["plain", "gzip"])
def test_an_answer_past_the_size_limit_is_that_records_error(tmp_path, cli, monkeypatch, kind, mode):
    """No cap on a response's size: a 1 MB gzip body that inflated to 1 GB peaked at 2.1 GB.
    Every http/chat/judge answer is read up to MAX_RESPONSE_BYTES (counted decompressed); past
    it the call fails with a line that says so. (The limit is lowered to 1 MiB here; the
    gzip body is about 3 KB.)"""
    from evalrun import _http

    monkeypatch.setattr(_http, "MAX_RESPONSE_BYTES", 1024 * 1024)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Big)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/{mode}/v1"
    _client_suite(tmp_path, kind, url)
    try:
        r = cli("run", "eval.yaml", "--output-dir", str(tmp_path / "home"), "--json", cwd=tmp_path)
    finally:
        server.shutdown()
    assert r.returncode in (0, 3), r.stderr
    [rec] = records(next((tmp_path / "home" / "runs").iterdir()))
    error = rec["scores"]["llm_judge"]["error"] if kind == "judge" else rec["error"]["message"]
    assert "the response is larger than 1 MiB, the limit for one answer" in error, rec
    assert rec["output"] == ("a" if kind == "judge" else None)


def test_a_huge_text_output_is_stored_cut_with_its_full_length(tmp_path, cli):
    """A 100 MB output was stored whole (in results.jsonl, the journal, every report): text
    past MAX_OUTPUT_CHARS is cut, and the record says so with the full length."""
    from evalrun.records import MAX_OUTPUT_CHARS

    (tmp_path / "big.py").write_text(f"def call(x):\n    return 'y' * {MAX_OUTPUT_CHARS + 12345}\n")
    write_suite(tmp_path, [{"id": "b", "input": "b", "expected_output": "b"}], "python: big:call")
    r = cli("run", "eval.yaml", "--output-dir", str(tmp_path / ".evalrun"), "-q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    [rec] = records(only_run(tmp_path))
    assert len(rec["output"]) == MAX_OUTPUT_CHARS
    assert rec["target_metadata"] == {"output_truncated": True, "output_chars": MAX_OUTPUT_CHARS + 12345}


def test_a_slice_key_no_item_has_is_a_usage_error(tmp_path, cli):
    """`--slice` with a key no item has was silently ignored (a gate's slice selector got a
    "did you mean"): both `--slice` and the eval file's `slices:` now say so before any call."""
    items = [{"id": f"s{i}", "input": f"s{i}", "expected_output": f"s{i}", "metadata": {"group": "a"}}
             for i in range(3)]
    write_suite(tmp_path, items, "python: targets_mod:echo")
    home = str(tmp_path / ".evalrun")
    r = cli("run", "eval.yaml", "--output-dir", home, "--slice", "metadata.grup", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("evalrun: error: --slice metadata.grup: no item has metadata.grup "
                               "(did you mean 'metadata.group'?)"), r.stderr
    assert not (tmp_path / ".evalrun" / "runs").exists() or not any((tmp_path / ".evalrun" / "runs").iterdir())
    write_suite(tmp_path, items, "python: targets_mod:echo", extra="slices: [tags]\n")
    r = cli("run", "eval.yaml", "--output-dir", home, cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.startswith("evalrun: error: eval.yaml:6:"), r.stderr
    assert "slices: no item has tag" in r.stderr
    r = cli("run", "eval.yaml", "--output-dir", home, "--set", "slices=[metadata.group]", "--slice", "tags",
            "-q", cwd=tmp_path)
    assert r.returncode == 2 and "--slice tags: no item has tag" in r.stderr, r.stderr
    r = cli("run", "eval.yaml", "--output-dir", home, "--set", "slices=[metadata.group]", "-q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr


def test_a_targets_own_timeouts_start_no_grace(tmp_path, cli):
    """The grace after a cancel is for evalrun's own (the call's timeout, Ctrl-C): a target
    whose own asyncio.timeout / wait_for cancels a step and then goes on working for longer
    than the grace still answers."""
    (tmp_path / "own.py").write_text(
        "import asyncio\n"
        "async def call(x):\n"
        "    try:\n"
        "        async with asyncio.timeout(0.05):\n"
        "            await asyncio.sleep(10)\n"
        "    except TimeoutError:\n"
        "        pass\n"
        "    try:\n"
        "        await asyncio.wait_for(asyncio.sleep(10), 0.05)\n"
        "    except TimeoutError:\n"
        "        pass\n"
        "    await asyncio.sleep(1.5)  # longer than the grace\n"
        "    return x\n")
    items = [{"id": f"o{i}", "input": f"o{i}", "expected_output": f"o{i}"} for i in range(3)]
    write_suite(tmp_path, items, "python: own:call\n  timeout: 20\n  retries: 0")
    r = cli("run", "eval.yaml", "--output-dir", str(tmp_path / ".evalrun"), "-q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    recs = records(only_run(tmp_path))
    assert [x["error"] for x in recs] == [None] * 3 and [x["output"] for x in recs] == ["o0", "o1", "o2"]
