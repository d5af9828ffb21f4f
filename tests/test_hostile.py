"""Hostile text (model output, item ids, error bodies) stays inert everywhere it goes: the job
log under GitHub Actions, PR-comment markdown, and every file a secret could reach."""

from __future__ import annotations

import io
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from evalrun.github import InertStream, inert_line
from evalrun.report.markdown import cell, code
from tests.conftest import invoke_cli
from tests.test_cli_run import only_run, write_suite

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
HOSTILE = ["::add-mask::hidden", "::stop-commands::tok", "  ::error title=pwn::injected", "\t::set-env name=X::1",
           "\x1b[1m::warning::bold", "\r::notice::cr"]


def _commands(text: str) -> list[str]:
    """Lines the Actions runner would take as workflow commands."""
    out = []
    for line in re.split(r"\r\n|\n|\r", text):
        if _ANSI.sub("", line).lstrip().startswith("::"):
            out.append(line)
    return out


def test_inert_stream_defuses_every_line_start_but_lets_own_commands_through():
    raw = io.StringIO()
    s = InertStream(raw)
    for h in HOSTILE:
        s.write("prefix\n" + h + "\n")
    s.write("partial ::x::")  # not at a line start: harmless, kept as is
    s.write("\n::add-mask::split")
    s.write(" across writes\n")
    s.command("::error file=a.yaml,line=3::evalrun's own annotation")
    s.flush()
    text = raw.getvalue()
    assert _commands(text) == ["::error file=a.yaml,line=3::evalrun's own annotation"]
    assert "partial ::x::" in text and "add-mask" in text  # text is kept, readable
    assert inert_line("no colons here\n") == "no colons here\n"


HOSTILE_TARGET = '''
def out(x):
    return "ok\\n::add-mask::hidden\\n  ::stop-commands::tok\\n::error title=pwn::x @octocat <img src=x onerror=alert(1)> | cell\\n" + x

def echo(x):
    return x
'''


def test_hostile_output_and_ids_under_github_actions(tmp_path):
    items = [{"id": "::add-mask::id1", "input": "a", "expected_output": "a"},
             {"id": "line\n## heading @org/team", "input": "b", "expected_output": "b"},
             {"id": "pipe|id", "input": "c", "expected_output": "c"}]
    (tmp_path / "host.py").write_text(HOSTILE_TARGET)
    write_suite(tmp_path, items, "python: host:echo")
    home = str(tmp_path / ".evalrun")
    assert invoke_cli("run", "eval.yaml", "--output-dir", home, "-q", cwd=tmp_path).returncode == 0
    base = only_run(tmp_path).name
    (tmp_path / "eval.yaml").write_text((tmp_path / "eval.yaml").read_text().replace("host:echo", "host:out"))
    summary = tmp_path / "summary.md"
    r = invoke_cli("run", "eval.yaml", "--output-dir", home, "--baseline", base, "--report", "console:-",
                   "--report", "md:-", cwd=tmp_path,
                   env={"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary),
                        "GITHUB_WORKSPACE": str(tmp_path)})
    assert r.returncode in (0, 1), r.stderr
    assert "regressed items" in r.stdout and "::add-mask::" in r.stdout  # shown, readable
    cmds = _commands(r.stdout) + _commands(r.stderr)
    # the only workflow commands are evalrun's own annotations (one per regressed item)
    # (their properties escape ':' so hostile text in a title cannot end the command early)
    assert 1 <= len(cmds) <= 3 and all(re.match(r"::(error|warning) (file=|title=)[^:]*::", c) for c in cmds), cmds
    md = summary.read_text()
    for table_row in [ln for ln in md.splitlines() if ln.startswith("| `")]:
        assert table_row.endswith("|") and table_row.count(" | ") >= 3
    assert "\n## heading" not in md, md
    assert "<img" not in md and "@octocat" not in md and "@org/team" not in md
    assert "@\u2060octocat" in md and "pipe\\|id" in md


def test_markdown_cells_and_code_stay_in_their_cell():
    assert cell("a|b") == "a\\|b"
    assert "<br>" in cell("one\ntwo") and "\n" not in cell("one\r\ntwo\u2028three")
    assert "<" not in cell("<script>") and cell("@alice hi") == "@\u2060alice hi"
    assert code("x\ny|z`") == "`x y\\|z'`"


class _Echo(BaseHTTPRequestHandler):
    """Answers 400 with a long body that echoes the request line and every header, the way
    some gateways echo a failed request: a secret sits past the 200-character cut."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = ("E" * 170 + " " + self.requestline + " " + " ".join(f"{k}={v}" for k, v in self.headers.items())).encode()
        self.send_response(400)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def test_secrets_never_reach_any_file_or_report(tmp_path):
    token = "tok_" + "S3cr3tValue" * 4
    query = "qk_" + "QueryKey9" * 4
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_port
    try:
        write_suite(tmp_path, [{"id": "s1", "input": "a", "expected_output": "a"}],
                    "http:\n    url: http://127.0.0.1:" + str(port) + "/v1?key=${QKEY}\n"
                    "    headers: {Authorization: 'Bearer ${TOKEN}', X-Api-Key: '${TOKEN}'}\n  retries: 0",
                    extra="error_budget: 1\n")
        home = tmp_path / ".evalrun"
        r = invoke_cli("run", "eval.yaml", "--output-dir", str(home), "--report", "junit", "--report", "html",
                       "--report", "json", "--report", "md", "--json", cwd=tmp_path,
                       env={"TOKEN": token, "QKEY": query})
    finally:
        server.shutdown()
    assert r.returncode in (0, 1, 3), r.stderr
    run_dir = only_run(tmp_path)
    rec = json.loads((run_dir / "results.jsonl").read_text().splitlines()[0])
    assert rec["error"]["type"] == "TargetError" and "***" in rec["error"]["message"]
    texts = [r.stdout, r.stderr] + [p.read_text(errors="replace") for p in run_dir.iterdir() if p.is_file()]
    for secret in (token, query):
        for text in texts:
            # no 8 characters in a row of the secret, anywhere (a cut must not leave a piece)
            for i in range(len(secret) - 8):
                assert secret[i:i + 8] not in text, (secret[i:i + 8], text[:300])


class _OpenAIEcho(BaseHTTPRequestHandler):
    """An OpenAI-compatible gateway that echoes the failed request (request line with its query
    string, every header) past the point where evalrun cuts an error text: as a JSON error
    message (``/json/...``), as plain text (``/plain/...``), or as a 200 that is not JSON."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        # the query string's secret straddles the cut: 200 (plain), 300 (JSON), 120 (a 200 not JSON)
        echo = "E" * (70 if "/ok/" in self.path else 150) + " " + self.requestline + " " + " ".join(f"{k}={v}" for k, v in self.headers.items())
        status, body = 400, echo.encode()
        if "/json/" in self.path:
            body = json.dumps({"error": {"message": echo, "type": "invalid_request_error"}}).encode()
        elif "/ok/" in self.path:
            status = 200
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def test_openai_clients_mask_key_userinfo_and_query_before_cutting(tmp_path, cli):
    """The chat target and the LLM judge: the API key, a ``${VAR}`` in base_url's userinfo
    and one in its query string never reach results.jsonl or a report, not even in part."""
    key = "sk-" + "K3yMaterial" * 4
    password = "pw_" + "UserInfoPw7" * 4
    query = "qv_" + "QueryVal8" * 4
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OpenAIEcho)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {"OPENAI_API_KEY": key, "PW": password, "QV": query}
    (tmp_path / "data.jsonl").write_text(json.dumps({"id": "s1", "input": "a", "expected_output": "a"}) + "\n")
    try:
        for mode in ("json", "plain", "ok"):
            url = f"http://bob:${{PW}}@127.0.0.1:{server.server_port}/{mode}/v1?api_key=${{QV}}"
            for kind in ("chat", "judge"):
                root = tmp_path / f"{kind}-{mode}"
                root.mkdir()
                (root / "tgt.py").write_text("def echo(x):\n    return x\n")
                if kind == "chat":
                    target = f"chat:\n    base_url: '{url}'\n    model: m\n    messages:\n" \
                             "      - {role: user, content: '{{ input }}'}\n  retries: 0"
                    scorers = "[exact_match]"
                else:
                    target = "python: tgt:echo"
                    scorers = (f"\n  - type: llm_judge\n    rubric: relevance\n    model: m\n"
                               f"    base_url: '{url}'\n    retries: 0")
                (root / "eval.yaml").write_text(f"name: t\ndataset: ../data.jsonl\ntarget:\n  {target}\n"
                                                f"scorers: {scorers}\nerror_budget: 1\n")
                r = cli("run", "eval.yaml", "--output-dir", str(root / "home"), "--report", "junit",
                        "--report", "html", "--report", "json", "--report", "md", "--json", cwd=root,
                        env=env)
                assert r.returncode in (0, 1, 3), (kind, mode, r.stderr)
                [run_dir] = list((root / "home" / "runs").iterdir())
                rec = json.loads((run_dir / "results.jsonl").read_text().splitlines()[0])
                message = rec["error"]["message"] if kind == "chat" else rec["scores"]["llm_judge"]["error"]
                assert "***" in message, (kind, mode, message)
                texts = [r.stdout, r.stderr] + [p.read_text(errors="replace") for p in run_dir.iterdir()
                                                if p.is_file()]
                for secret in (key, password, query):
                    for text in texts:
                        for i in range(len(secret) - 8):
                            assert secret[i:i + 8] not in text, (kind, mode, secret[i:i + 8], text[:400])
    finally:
        server.shutdown()


# Held-out hostile text (issue 12b): spellings and places the first adversarial pass did not
# try. Each string is an item id and that item's (regressed) output; every report must keep it
# inert: no workflow command in the job log, well-formed JUnit XML, no live HTML or markdown.
HELD_OUT = {
    "set_output": "::set-output name=verdict::pass",
    "group": "::group::pwn",
    "endgroup_after_crlf": "x\r\n::endgroup::",
    "percent_encoded_newline": "a%0A::add-mask::pct",
    "percent_encoded_cr": "a%0D%0A::error::pct",
    "unicode_line_separator": "a\u2028::warning::ls",
    "next_line_char": "a\x85::notice::nel",
    "bom_prefix": "\ufeff::error::bom",
    "osc_hyperlink_prefix": "\x1b]8;;https://evil.example\x07::add-mask::osc",
    "vertical_tab": "a\x0b::error::vt",
    "rich_markup": "[bold red]loud[/] [link=https://evil.example]click[/link]",
    "script_close": "</script><script>alert(1)</script>",
    "cdata_end_and_control": "]]><x/>\x01\x08 & <y>",
    "markdown_link_and_details": "[pr](javascript:alert(1)) <details open> @org/team `tick`",
    "nul_in_text": "nul\x00byte",
    "very_long_id": "L" * 20000 + "::add-mask::tail",
}


@pytest.mark.parametrize("name", list(HELD_OUT))
def test_held_out_hostile_text_stays_inert(tmp_path, cli, name):
    import xml.etree.ElementTree as ET

    hostile = HELD_OUT[name]
    items = [{"id": hostile, "input": "a", "expected_output": "a"}, {"id": "plain", "input": "b", "expected_output": "b"}]
    (tmp_path / "host.py").write_text(f"H = {hostile!r}\ndef echo(x):\n    return x\ndef out(x):\n    return H + x\n")
    write_suite(tmp_path, items, "python: host:echo")
    home = str(tmp_path / ".evalrun")
    assert cli("run", "eval.yaml", "--output-dir", home, "-q", cwd=tmp_path).returncode == 0
    base = only_run(tmp_path).name
    (tmp_path / "eval.yaml").write_text((tmp_path / "eval.yaml").read_text().replace("host:echo", "host:out"))
    summary = tmp_path / "summary.md"
    r = cli("run", "eval.yaml", "--output-dir", home, "--baseline", base, "--report", "console:-",
            "--report", "md", "--report", "junit", "--report", "html", cwd=tmp_path,
            env={"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary), "GITHUB_WORKSPACE": str(tmp_path)})
    assert r.returncode in (0, 1), r.stderr
    assert "regressed items" in r.stdout
    # the job log: the only workflow commands are evalrun's own annotations, whose data has
    # '%', CR and LF escaped (so an encoded newline in hostile text stays text)
    for c in _commands(r.stdout) + _commands(r.stderr):
        assert re.match(r"::(error|warning|notice) (file=|title=)[^:]*::", c), c
        assert "%0A::" not in c.replace("%250A", "") and "\r" not in c, c
    # evalrun's own lines in the log never start a command: check every Unicode line break too
    for line in re.split(r"[\n\r\x0b\x0c\x85\u2028\u2029]", r.stdout):
        visible = re.sub(r"\x1b(\[[0-9;?]*[A-Za-z]|\][^\x07\x1b]*(\x07|\x1b\\))", "", line).lstrip().lstrip("\ufeff")
        assert not visible.startswith("::") or re.match(r"::(error|warning|notice) (file=|title=)", visible), line
    assert "\x1b]8;;https://evil" not in r.stdout  # a terminal hyperlink from model output is not live
    if name == "rich_markup":
        assert "[bold red]loud[/]" in r.stdout  # printed as written, not interpreted
    run_dir = [p for p in (tmp_path / ".evalrun" / "runs").iterdir() if p.name != base][0]
    ET.parse(run_dir / "junit.xml")  # well-formed whatever the ids hold
    html = (run_dir / "report.html").read_text()
    assert "<script>alert(1)" not in html and "</script><script>" not in html
    for md in (summary.read_text(), (run_dir / "report.md").read_text()):
        outside_code = re.sub(r"`[^`\n]*`", "", md)  # inside a code span, text is literal
        # the report's own collapsed sections are whole lines with no '<' inside (text in them is escaped)
        outside_code = re.sub(r"^(<details><summary>[^<\n]*</summary>|</details>)$", "", outside_code, flags=re.M)
        assert "<details" not in outside_code and not re.search(r"(?<!\\)\]\(javascript:", outside_code)
        assert "@org/team" not in md
        assert "\x00" not in md


ECHO_PROG = '''import os, sys
sys.stdin.read()
sys.stderr.write("E" * 150 + " argv=" + " ".join(sys.argv[1:]) + " env=" + os.environ.get("SECRET_ENV", "") + "\\n")
sys.exit(1)
'''


@pytest.mark.parametrize("where", ["exec_argument", "exec_env", "http_path"])
def test_held_out_secrets_in_other_places_are_masked(tmp_path, cli, where):
    """A ``${VAR}`` in an exec argument, in target.env, or in the URL path: a failing call that
    echoes it past the cut leaves no piece of it in results.jsonl or a report."""
    token = "tk_" + "Hidden42Val" * 4
    (tmp_path / "prog.py").write_text(ECHO_PROG)
    server = None
    if where == "exec_argument":
        target = "exec: [python3, prog.py, '--key=${TOKEN}']\n  retries: 0"
    elif where == "exec_env":
        target = "exec: [python3, prog.py]\n  env: {SECRET_ENV: '${TOKEN}'}\n  retries: 0"
    else:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        target = f"http:\n    url: http://127.0.0.1:{server.server_port}/t/${{TOKEN}}/run\n  retries: 0"
    try:
        write_suite(tmp_path, [{"id": "s1", "input": "a", "expected_output": "a"}], target, extra="error_budget: 1\n")
        r = cli("run", "eval.yaml", "--output-dir", str(tmp_path / ".evalrun"), "--report", "junit", "--report", "html",
                "--report", "md", "--json", cwd=tmp_path, env={"TOKEN": token})
    finally:
        if server is not None:
            server.shutdown()
    assert r.returncode in (0, 1, 3), r.stderr
    run_dir = only_run(tmp_path)
    rec = json.loads((run_dir / "results.jsonl").read_text().splitlines()[0])
    assert rec["error"] and "***" in rec["error"]["message"], rec["error"]
    for text in [r.stdout, r.stderr] + [p.read_text(errors="replace") for p in run_dir.iterdir() if p.is_file()]:
        for i in range(len(token) - 8):
            assert token[i:i + 8] not in text, (token[i:i + 8], text[:300])


def test_bidirectional_overrides_cannot_reorder_ids_or_outputs():
    """U+202E and friends make text display in another order than it is ("Trojan Source"): the
    console shows them as escapes, markdown cells and code spans as U+FFFD."""
    from evalrun.report.console import _text
    from evalrun.report.markdown import cell, code

    hostile = "ok\u202egnp.exe\u2066x\u2069\u200f"
    shown = _text(hostile).plain
    assert shown == "ok\\u202egnp.exe\\u2066x\\u2069\\u200f"
    for rendered in (cell(hostile), code(hostile)):
        assert not any(ch in rendered for ch in "\u202e\u2066\u2069\u200f"), rendered
        assert "gnp.exe" in rendered
