"""Tool calls: the provider formats read into one shape, the matching modes and argument
matchers on their edge cases, and the ``tool_calls`` scorer through the real CLI (python,
exec and http targets).

The samples in tests/data/tool_calls/ follow the providers' published wire formats:
OpenAI chat completions (API reference, "Create chat completion", function calling:
``choices[0].message.tool_calls[].function.arguments`` is JSON text, results come back as
``role: tool`` messages with ``tool_call_id``), OpenAI Responses (API reference, "Create a
model response" / function calling guide: ``output[]`` items ``type: function_call`` with an
``fc_`` item id and a separate ``call_id``; results are ``function_call_output`` items carrying
that ``call_id``), Anthropic Messages (tool use docs: ``content[]`` blocks ``type: tool_use``
with ``id``/``name``/``input`` object, ``stop_reason: tool_use``; results are ``tool_result``
blocks with ``tool_use_id`` and optional ``is_error``).
"""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from evalrun import toolcalls
from evalrun.scoring import trajectory_match as tm
from evalrun.trajectory import ToolCall, Trajectory

DATA = Path(__file__).parent / "data" / "tool_calls"


def sample(name: str) -> Any:
    return json.loads((DATA / name).read_text())


# --- the provider formats -------------------------------------------------------------------

def test_openai_chat_response_sample():
    calls = toolcalls.normalise(sample("openai_chat_response.json"))
    assert [(c.name, c.arguments, c.id, c.source) for c in calls] == [
        ("lookup_order", {"order_id": "A-1042"}, "call_8fJ2kQzX1pVbN3mT6yRwLc0D", "openai_chat"),
        ("issue_refund", {"order_id": "A-1042", "amount": 25.0, "reason": "damaged"}, "call_Qm4sT7uV2xYz9aBcDeFgHiJk",
         "openai_chat")]
    assert toolcalls.detect(sample("openai_chat_response.json")) == "openai_chat"


def test_openai_chat_conversation_pairs_results_by_tool_call_id():
    (call,) = toolcalls.normalise(sample("openai_chat_conversation.json"))
    assert call.name == "lookup_order" and call.result == '{"status": "shipped", "eta": "2026-12-10"}'


def test_bad_arguments_are_kept_with_their_error_never_taken_as_empty():
    calls = toolcalls.normalise(sample("openai_chat_bad_arguments.json"))
    assert [c.arguments for c in calls] == [None, None, None]
    assert calls[0].raw_arguments == '{"query": "reset pass' and "not valid JSON" in calls[0].parse_error
    assert "list, not an object" in calls[1].parse_error
    assert calls[2].raw_arguments == "" and calls[2].parse_error
    # an argument-free expectation does not pass on a garbled call
    m = tm.CallMatcher()
    assert m.why_not(ToolCall("escalate", {}), calls[2]) is not None
    assert "brief" and "<bad arguments" in calls[0].brief()


def test_openai_responses_pairs_by_call_id_not_item_id():
    resp = toolcalls.normalise(sample("openai_responses_response.json"))
    assert [(c.name, c.id) for c in resp] == [("lookup_order", "call_unLAR8MvFNptuiZK6K6HCy5k"),
                                              ("check_stock", "call_7QzVb2kLmN4pR8sT1uWx3yZa")]
    assert resp[1].arguments == {"sku": "KB-220", "quantity": 1}
    items = toolcalls.normalise(sample("openai_responses_items.json"))
    # outputs arrive in the other order than the calls: paired by call_id, each to its own call
    assert {c.name: c.result for c in items} == {"check_stock": '{"in_stock": 12}',
                                                 "lookup_order": '{"status": "shipped"}'}
    assert all(c.source == "openai_responses" for c in items)


def test_anthropic_response_and_conversation():
    calls = toolcalls.normalise(sample("anthropic_response.json"))
    assert [(c.name, c.arguments["order_id"], c.id) for c in calls] == [
        ("lookup_order", "A-1042", "toolu_01A09q90qw90lq917835lq9"),
        ("issue_refund", "A-1042", "toolu_01B7zX2cV4bN6mQ8wE0rT3yU")]
    conv = toolcalls.normalise(sample("anthropic_conversation.json"))
    assert conv[0].result == '{"status": "delivered", "total": 25.0}' and conv[0].error is None
    assert conv[1].error == "refund service unavailable"  # is_error: the tool failed
    assert Trajectory(conv).tool_errors == 1


def test_the_same_calls_in_three_formats_score_alike():
    expected = [ToolCall("lookup_order", {"order_id": "A-1042"}),
                ToolCall("issue_refund", {"order_id": "A-1042", "amount": 25})]
    matcher = tm.CallMatcher()
    for name in ("openai_chat_response.json", "anthropic_response.json"):
        assert tm.match(expected, toolcalls.normalise(sample(name)), "exact", matcher).passed, name


def test_neutral_lists_and_bad_shapes():
    calls = toolcalls.normalise([{"name": "a", "arguments": '{"x": 1}'}, {"name": "b"}, {"name": "c", "args": {"y": 2}}])
    assert [(c.name, c.arguments) for c in calls] == [("a", {"x": 1}), ("b", {}), ("c", {"y": 2})]
    for bad in ([{"arguments": {}}], [3], "search", {"name": "x"}):
        with pytest.raises(ValueError):
            toolcalls.normalise(bad)
    with pytest.raises(ValueError, match="arguments must be an object"):
        ToolCall.from_dict({"name": "a", "arguments": [1]})


def test_trajectory_round_trip_and_validation():
    t = Trajectory([ToolCall("a", {"x": 1}, id="c1", result="x" * 5000, error=None)], steps=2, truncated=None)
    d = t.to_dict()
    assert len(d["tool_calls"][0]["result"]) == 2001  # cut, and marked
    back = Trajectory.from_dict(d)
    assert back.tool_calls[0].name == "a" and back.steps == 2
    for bad in ([], {"tool_calls": {}}, {"steps": True}, {"tool_calls": [{"name": 3}]}):
        with pytest.raises(ValueError):
            Trajectory.from_dict(bad)


# --- matching -------------------------------------------------------------------------------

def calls(*spec: Any) -> list[ToolCall]:
    return [ToolCall(s, {}) if isinstance(s, str) else ToolCall(s[0], s[1]) for s in spec]


@pytest.mark.parametrize(("mode", "expected", "actual", "passed"), [
    # repeated tools: multisets, not sets
    ("unordered", ["search", "search"], ["search"], False),
    ("unordered", ["search", "search"], ["search", "search"], True),
    ("superset", ["search", "search"], ["search", "lookup"], False),
    ("f1", ["search", "search"], ["search", "search"], True),
    # extra calls
    ("exact", ["a", "b"], ["a", "b", "c"], False),
    ("in_order", ["a", "b"], ["a", "x", "b", "y"], True),
    ("in_order", ["a", "b"], ["b", "a"], False),
    ("unordered", ["a", "b"], ["b", "a"], True),
    ("unordered", ["a", "b"], ["b", "a", "c"], False),
    ("superset", ["a", "b"], ["c", "b", "a"], True),
    ("subset", ["a", "b"], ["a"], True),
    ("subset", ["a", "b"], ["a", "c"], False),
    ("exact", [], [], True),
    ("exact", [], ["a"], False),
    ("superset", [], ["a"], True),
    ("subset", ["a"], [], True),
])
def test_modes(mode, expected, actual, passed):
    r = tm.match(calls(*expected), calls(*actual), mode, tm.CallMatcher())
    assert r.passed is passed, r.reason
    assert (r.reason is None) is passed


def test_f1_on_multisets():
    r = tm.match(calls("a", "a", "b"), calls("a", "b", "c", "d"), "f1", tm.CallMatcher())
    assert r.value == pytest.approx(2 * 2 / 7)
    assert not r.passed  # threshold 1.0 by default
    assert tm.match(calls("a", "a", "b"), calls("a", "b", "c", "d"), "f1", tm.CallMatcher(), 0.5).passed


def test_bipartite_matching_beats_a_greedy_pairing():
    # expected[0] accepts both actual calls, expected[1] only the first: greedy pairs e0-a0 and
    # leaves e1 unmatched; a maximum matching pairs e0-a1, e1-a0
    expected = calls(("q", {"text": "refund"}), ("q", {"text": "refund policy"}))
    actual = calls(("q", {"text": "refund policy"}), ("q", {"text": "refund for order"}))
    m = tm.CallMatcher("superset", {("q", "text"): tm.contains(False)})
    assert tm.match(expected, actual, "unordered", m).passed


def test_one_and_one_point_zero_and_booleans():
    m = tm.CallMatcher()
    assert m.matches(ToolCall("t", {"n": 1}), ToolCall("t", {"n": 1.0}))
    assert not m.matches(ToolCall("t", {"n": 1}), ToolCall("t", {"n": True}))
    assert not m.matches(ToolCall("t", {"n": 1}), ToolCall("t", {"n": "1"}))
    assert m.matches(ToolCall("t", {"v": [1, {"a": 2.0}]}), ToolCall("t", {"v": [1.0, {"a": 2}]}))


def test_missing_and_extra_arguments_under_each_argument_mode():
    exp, act = ToolCall("t", {"a": 1, "b": 2}), ToolCall("t", {"a": 1, "c": 3})
    assert "argument 'b' is missing" in tm.CallMatcher("superset").why_not(exp, act)
    assert "argument 'b' is missing" in tm.CallMatcher("exact").why_not(exp, act)
    assert "unexpected argument 'c'" in tm.CallMatcher("subset").why_not(exp, act)
    assert tm.CallMatcher("ignore").why_not(exp, act) is None
    assert tm.CallMatcher("subset").why_not(exp, ToolCall("t", {"a": 1})) is None
    assert tm.CallMatcher("superset").why_not(ToolCall("t", {"a": 1}), ToolCall("t", {"a": 1, "z": 0})) is None
    assert tm.CallMatcher("exact").why_not(ToolCall("t", {"a": 1}), ToolCall("t", {"a": 1, "z": 0}))
    # an expected null is a value: absent is not null
    assert tm.CallMatcher().why_not(ToolCall("t", {"a": None}), ToolCall("t", {}))


def test_argument_matchers():
    def ok(check: tm.ValueCheck, e: Any, a: Any) -> bool:
        return check(e, a) is None

    n = tm.numeric(0.5, False)
    assert ok(n, 25, 25.4) and ok(n, 25, "24.6") and not ok(n, 25, 26) and not ok(n, 25, True)
    assert "not a number" in n(25, "twenty five")
    r = tm.numeric(0.1, True)
    assert ok(r, 100, 109) and not ok(r, 100, 111)
    assert ok(tm.regex(r"^A-\d+$", False), None, "A-1042") and not ok(tm.regex(r"^A-\d+$", False), None, "B-1")
    assert ok(tm.regex(None, True), "refund", "Issue a REFUND please")  # the expected value is the pattern
    assert not ok(tm.regex(None, False), "x", 5)
    assert ok(tm.contains(True), "Paris", "paris, france") and not ok(tm.contains(False), "Paris", "paris")
    assert ok(tm.subset(), {"a": 1}, {"a": 1.0, "b": 2}) and not ok(tm.subset(), {"a": 1}, {"b": 2})
    assert ok(tm.anything(), 1, "whatever")


def test_divergence_and_reason_name_the_first_difference():
    expected = calls(("lookup_order", {"order_id": "A-1"}), ("issue_refund", {"amount": 25}))
    actual = calls(("lookup_order", {"order_id": "A-1"}), ("end_conversation", {}))
    r = tm.match(expected, actual, "exact", tm.CallMatcher())
    assert r.divergence == 1
    assert "first divergence at call 2: expected issue_refund(amount=25), got end_conversation()" in r.reason
    r = tm.match(expected, calls(("lookup_order", {"order_id": "A-1"}), ("issue_refund", {"amount": 20})),
                 "in_order", tm.CallMatcher("superset", {("issue_refund", "amount"): tm.numeric(1, False)}))
    assert "missing issue_refund(amount=25)" in r.reason and "20 is not within 1 of 25" in r.reason


# --- the scorer through the CLI -------------------------------------------------------------

AGENT = '''
import json

from evalrun.targets import Output

PLANS = {
    "refund": [{"name": "lookup_order", "arguments": {"order_id": "A-1"}},
               {"name": "issue_refund", "arguments": {"order_id": "A-1", "amount": 25.0}}],
    "refund-close": [{"name": "lookup_order", "arguments": {"order_id": "A-1"}},
                     {"name": "issue_refund", "arguments": {"order_id": "A-1", "amount": 24.6}}],
    "skip": [{"name": "issue_refund", "arguments": {"order_id": "A-1", "amount": 25}}],
    "forbidden": [{"name": "lookup_order", "arguments": {"order_id": "A-1"}},
                  {"name": "end_conversation", "arguments": {}}],
    "garbled": [{"name": "lookup_order", "arguments": '{"order_id": "A-'}],
    "openai": {"choices": [{"message": {"role": "assistant", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "lookup_order", "arguments": json.dumps({"order_id": "A-1"})}},
        {"id": "c2", "type": "function", "function": {"name": "issue_refund",
                                                       "arguments": json.dumps({"order_id": "A-1", "amount": 25})}}]}}]},
}

def agent(inp):
    if inp == "aborted":
        return Output("gave up", trajectory={"tool_calls": [], "truncated": "max_steps (4) reached"})
    if inp == "plain":
        return "no calls reported"
    return Output("done", tool_calls=PLANS[inp], usage={"total_tokens": 900 if inp == "refund" else 100})
'''

EXPECTED = [{"name": "lookup_order", "arguments": {"order_id": "A-1"}},
            {"name": "issue_refund", "arguments": {"order_id": "A-1", "amount": 25}}]


def write_agent_suite(root: Path, scorers: list[Any], target: dict[str, Any] | None = None,
                      inputs: tuple[str, ...] = ("refund", "refund-close", "skip", "forbidden", "garbled", "openai",
                                                 "aborted", "plain"), **extra: Any) -> None:
    (root / "agent_mod.py").write_text(AGENT)
    items = [{"id": i, "input": i, "expected_tool_calls": EXPECTED} for i in inputs]
    (root / "golden.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    cfg = {"name": "agent", "dataset": "golden.jsonl", "target": target or {"python": "agent_mod:agent"},
           "scorers": scorers, **extra}
    (root / "eval.yaml").write_text(json.dumps(cfg))


def newest_run(root: Path) -> Path:
    from evalrun.store import list_runs

    return list_runs(root / ".evalrun")[-1].path


def scores_of(root: Path, scorer: str = "tool_calls") -> dict[str, dict[str, Any]]:
    run = newest_run(root)
    out = {}
    for line in (run / "results.jsonl").read_text().splitlines():
        rec = json.loads(line)
        out[rec["item_id"]] = rec["scores"].get(scorer) or {"record_error": rec["error"]}
    return out


def test_python_target_tool_calls_scored_in_each_mode(tmp_path, cli):
    # the aborted and plain items are scorer errors by design: budgets that allow them, so the gate judges
    write_agent_suite(tmp_path, [
        {"type": "tool_calls", "mode": "exact", "matchers": {"issue_refund.amount": {"type": "numeric", "tolerance": 0.5}},
         "forbidden_tools": ["end_*"], "budgets": {"tokens": 500}, "error_budget": 0.5},
        {"type": "tool_calls", "name": "strict", "mode": "exact", "error_budget": 0.5},
        {"type": "tool_calls", "name": "f1", "mode": "f1", "threshold": 0.6, "error_budget": 0.5},
    ], gates=["tool_calls.pass_rate >= 0.9"])
    r = cli("run", "eval.yaml", cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "tool_calls.pass_rate" in r.stdout
    s = scores_of(tmp_path)
    assert s["refund-close"]["passed"] is True  # 24.6 within 0.5 of 25
    assert s["openai"]["passed"] is True  # an OpenAI message, 25 for 25
    assert s["refund"]["passed"] is False and "900 tokens, over the budget of 500" in s["refund"]["reason"]
    assert s["skip"]["passed"] is False and "first divergence at call 1" in s["skip"]["reason"]
    assert s["skip"]["extra"]["divergence"] == 0
    assert s["forbidden"]["passed"] is False and s["forbidden"]["value"] == 0.0
    assert "called forbidden tool end_conversation" in s["forbidden"]["reason"]
    assert s["garbled"]["passed"] is False and "not valid JSON" in s["garbled"]["reason"]
    # an aborted loop and a target that reports no calls are errors, never passes
    assert s["aborted"]["error"] == "the trajectory ended early: max_steps (4) reached"
    assert s["aborted"]["passed"] is None
    assert "no tool calls recorded" in s["plain"]["error"]
    strict = scores_of(tmp_path, "strict")
    assert strict["refund-close"]["passed"] is False and "24.6 is not 25" in strict["refund-close"]["reason"]
    f1 = scores_of(tmp_path, "f1")
    assert f1["skip"]["value"] == pytest.approx(2 / 3) and f1["skip"]["passed"] is True
    summary = json.loads((newest_run(tmp_path) / "summary.json").read_text())
    assert summary["scorers"]["tool_calls"]["forbidden_calls"] == 1
    assert summary["scorers"]["tool_calls"]["truncated"] == 1


def test_bad_scorer_config_and_bad_items_are_one_line(tmp_path, cli):
    write_agent_suite(tmp_path, [{"type": "tool_calls", "mode": "strict"}], inputs=("refund",))
    r = cli("run", "eval.yaml", cwd=tmp_path)
    assert r.returncode == 2 and "eval.yaml" in r.stderr and "Traceback" not in r.stderr
    write_agent_suite(tmp_path, [{"type": "tool_calls", "matchers": {"amount": "numeric"}}], inputs=("refund",))
    r = cli("run", "eval.yaml", cwd=tmp_path)
    assert r.returncode == 2 and "tool.argument" in r.stderr
    write_agent_suite(tmp_path, [{"type": "tool_calls", "matchers": {"a.b": {"type": "regex", "pattern": "("}}}],
                      inputs=("refund",))
    r = cli("run", "eval.yaml", cwd=tmp_path)
    assert r.returncode == 2 and "bad regex" in r.stderr
    write_agent_suite(tmp_path, ["tool_calls"], inputs=("refund",))
    (tmp_path / "golden.jsonl").write_text(json.dumps({"id": "x", "input": "refund",
                                                       "expected_tool_calls": [{"arguments": {}}]}) + "\n")
    r = cli("run", "eval.yaml", cwd=tmp_path)
    assert r.returncode == 2 and "golden.jsonl:1" in r.stderr and "has no name" in r.stderr


EXEC_AGENT = '''
import json, sys
inp = json.load(sys.stdin)
calls = [{"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "lookup_order",
          "arguments": json.dumps({"order_id": "A-1"})}]
if inp == "refund":
    calls.append({"type": "function_call", "id": "fc_2", "call_id": "call_2", "name": "issue_refund",
                  "arguments": json.dumps({"order_id": "A-1", "amount": 25})})
print(json.dumps({"answer": "ok", "run": {"output": calls}}))
'''


def test_exec_target_tool_calls_path(tmp_path, cli):
    write_agent_suite(tmp_path, ["tool_calls"], inputs=("refund", "skip"))
    (tmp_path / "agent.py").write_text(EXEC_AGENT)
    cfg = json.loads((tmp_path / "eval.yaml").read_text())
    cfg["target"] = {"exec": [sys.executable, "agent.py"], "output_path": "answer", "tool_calls_path": "run"}
    (tmp_path / "eval.yaml").write_text(json.dumps(cfg))
    r = cli("run", "eval.yaml", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    s = scores_of(tmp_path)
    assert s["refund"]["passed"] is True
    assert s["skip"]["passed"] is False
    assert "first divergence at call 2: expected issue_refund" in s["skip"]["reason"]
    cfg["target"].pop("output_path")
    (tmp_path / "eval.yaml").write_text(json.dumps(cfg))
    r = cli("run", "eval.yaml", cwd=tmp_path)
    assert r.returncode == 2 and "set output_path too" in r.stderr


class _AgentHandler(BaseHTTPRequestHandler):
    def log_message(self, *a: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        blocks = [{"type": "tool_use", "id": "toolu_1", "name": "lookup_order", "input": {"order_id": "A-1"}}]
        if body["input"] == "refund":
            blocks.append({"type": "tool_use", "id": "toolu_2", "name": "issue_refund",
                           "input": {"order_id": "A-1", "amount": 25.0}})
        answer = {"output": "ok", "message": {"role": "assistant", "content": blocks}}
        if body["input"] == "nocalls":
            answer = {"output": "ok"}  # the key left out: no calls made
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def test_http_target_tool_calls_path(tmp_path, cli):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _AgentHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        write_agent_suite(tmp_path, ["tool_calls"], inputs=("refund", "skip", "nocalls"),
                          target={"http": {"url": f"http://127.0.0.1:{httpd.server_address[1]}/agent",
                                           "input_key": "input", "tool_calls_path": "message"}})
        r = cli("run", "eval.yaml", cwd=tmp_path)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert r.returncode == 0, r.stderr
    s = scores_of(tmp_path)
    assert s["refund"]["passed"] is True
    assert s["skip"]["passed"] is False
    assert s["nocalls"]["passed"] is False
    assert "expected lookup_order(order_id=\"A-1\"), got no more calls" in s["nocalls"]["reason"]


def test_regressed_items_show_expected_and_actual_calls_with_the_divergence(tmp_path, cli):
    """A change that makes the agent skip a required tool: those items regress, every report
    shows expected vs actual calls with the first divergence marked, and the gate fails."""
    write_agent_suite(tmp_path, [{"type": "tool_calls", "mode": "in_order"}], inputs=("refund", "skip", "openai"),
                      gates=["tool_calls.pass_rate >= baseline - 0.02", {"no_regressions": {"scorer": "tool_calls"}}])
    assert cli("run", "eval.yaml", "-q", cwd=tmp_path).returncode == 0
    # the "new prompt": refund now skips lookup_order
    mod = tmp_path / "agent_mod.py"
    mod.write_text(mod.read_text().replace('"refund": [{"name": "lookup_order", "arguments": {"order_id": "A-1"}},\n',
                                           '"refund": ['))
    r = cli("run", "eval.yaml", "--baseline", "latest", "--report", "console:-", "--report", "md", "--report", "html",
            "--report", "junit", cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    out = " ".join(r.stdout.split())
    assert "regressed" in out.lower()
    assert 'tool_calls expected: lookup_order(order_id="A-1") → issue_refund(order_id="A-1", amount=25)' in out
    assert 'tool_calls actual: ▶ issue_refund(order_id="A-1", amount=25.0)' in out
    assert "FAIL" in out
    run = newest_run(tmp_path)
    for name in ("report.md", "report.html", "junit.xml"):
        text = (run / name).read_text().replace("\\_", "_")
        assert "▶ issue_refund" in text, name
        assert "tool_calls expected: lookup_order" in text, name
    assert "▶ (no more calls)" not in (run / "report.md").read_text()


def test_a_forbidden_call_marks_the_divergence_even_when_the_match_passes():
    import asyncio

    from evalrun.records import Record
    from evalrun.scoring.base import ScorerContext
    from evalrun.scoring.tool_calls import ToolCalls, ToolCallsConfig

    scorer = ToolCalls(ToolCallsConfig.model_validate({"type": "tool_calls", "mode": "in_order",
                                                       "forbidden_tools": ["end_*"]}), ScorerContext(Path(".")))
    asyncio.run(scorer.setup())
    traj = Trajectory(calls(("search_kb", {"q": "x"}), ("end_conversation", {}), ("search_kb", {"q": "y"})))
    rec = Record("a", 0, "in", expected_tool_calls=[{"name": "search_kb", "arguments": {"q": "x"}}],
                 trajectory=traj.to_dict())
    s = scorer.score_one(rec)
    assert s.passed is False and s.value == 0.0 and s.extra["divergence"] == 1
    assert s.reason == "called forbidden tool end_conversation"
    # no expected calls: judged on the forbidden tools alone
    rec.expected_tool_calls = None
    s = scorer.score_one(rec)
    assert s.passed is False and s.extra["divergence"] == 1 and "expected" not in s.extra
    rec.trajectory = Trajectory(calls("search_kb")).to_dict()
    assert scorer.score_one(rec).passed is True


def test_the_langfuse_push_shows_reported_tool_calls_as_tool_observations(tmp_path):
    from tests.langfuse_server import FakeLangfuse
    from tests.test_langfuse import cli as lf_cli
    from tests.test_langfuse import run_dir_of, state_of

    (tmp_path / "agent_mod.py").write_text(
        "from evalrun.targets import Output\n"
        "def agent(inp):\n"
        "    return Output('done', tool_calls=[\n"
        "        {'name': 'lookup_order', 'arguments': {'order_id': inp}, 'result': {'status': 'shipped'}},\n"
        "        {'name': 'issue_refund', 'arguments': {'order_id': inp, 'amount': 5}, 'error': 'refunds are down'}])\n")
    (tmp_path / "golden.jsonl").write_text("".join(json.dumps({"id": f"i{n}", "input": f"A-{n}",
                                                               "expected_tool_calls": [{"name": "lookup_order"}]}) + "\n"
                                                   for n in range(3)))
    (tmp_path / "eval.yaml").write_text(json.dumps({"name": "tools", "dataset": "golden.jsonl",
                                                    "target": {"python": "agent_mod:agent"},
                                                    "scorers": [{"type": "tool_calls", "mode": "superset"}]}))
    with FakeLangfuse() as fake:
        r = lf_cli(fake, "run", "eval.yaml", "--output-dir", str(tmp_path / "h"), "--push", "langfuse", cwd=tmp_path)
        assert r.returncode == 0, r.stdout + r.stderr
        assert fake.errors == [], fake.errors[:5]
        exp_id = state_of(run_dir_of(tmp_path / "h"))["context"]["experiment_id"]
        spans = [s for s in fake.spans if s["attributes"].get("langfuse.experiment.id") == exp_id]
    tools = [s for s in spans if s["attributes"].get("langfuse.observation.type") == "tool"]
    assert sorted(s["name"] for s in tools) == ["issue_refund"] * 3 + ["lookup_order"] * 3
    by_trace: dict[str, list[dict[str, Any]]] = {}
    for s in tools:
        by_trace.setdefault(s["trace_id"], []).append(s)
    assert len(by_trace) == 3  # each item's calls in its own trace
    lookup = next(s for s in tools if s["name"] == "lookup_order")
    assert json.loads(lookup["attributes"]["langfuse.observation.output"]) == {"status": "shipped"}
    assert json.loads(lookup["attributes"]["langfuse.observation.input"])["order_id"].startswith("A-")
    refund = next(s for s in tools if s["name"] == "issue_refund")
    assert refund["attributes"]["langfuse.observation.level"] == "ERROR"
    assert refund["attributes"]["langfuse.observation.status_message"] == "refunds are down"
