"""Agents end to end: the chat target's tool loop against the local OpenAI-compatible server
(tests/openai_server.py, which answers with tool calls in OpenAI's wire format and refuses a
conversation that breaks the tool protocol as OpenAI does), the demo support agent of
examples/support_agent (40 items; a prompt change that skips a required tool and calls a
forbidden one regresses, with the divergence marked, and fails the gates), and the capture of
a python pipeline's own OpenTelemetry spans (plain OTel and the langfuse SDK's ``@observe``)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REPO, invoke_cli, run_cli
from tests.langfuse_server import FakeLangfuse

EXAMPLE = REPO / "examples" / "support_agent"

TOOLS = [{"type": "function", "function": {"name": n, "parameters": {"type": "object", "properties": {}}}}
         for n in ("lookup_order", "issue_refund", "search_kb", "end_conversation")]


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None):
    return invoke_cli(*args, cwd=cwd, env={"OPENAI_API_KEY": "sk-test-agents", **(env or {})})


def newest_run(root: Path) -> Path:
    from evalrun.store import list_runs

    return list_runs(root / ".evalrun")[-1].path


def records(root: Path) -> dict[str, dict[str, Any]]:
    run = newest_run(root)
    return {r["item_id"]: r for r in map(json.loads, (run / "results.jsonl").read_text().splitlines())}


def suite(root: Path, server: Any, items: list[dict[str, Any]], scorers: list[Any] | None = None,
          **chat: Any) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "golden.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    target = {"chat": {"base_url": server.url, "model": "gpt-4o-mini", "tools": TOOLS,
                       "messages": [{"role": "user", "content": "{{ input }}"}], **chat}, "retries": 0}
    cfg = {"name": "loop", "dataset": "golden.jsonl", "target": target, "scorers": scorers or ["tool_calls"]}
    (root / "eval.yaml").write_text(json.dumps(cfg))


def test_tool_loop_runs_to_the_final_answer_with_scripted_results(tmp_path, server):
    items = [
        {"id": "two-steps", "input": '[[call:lookup_order {"order_id": "A-1"}]] [[call:issue_refund {"order_id": "A-1", '
                                     '"amount": 25}]] [[say:Refunded.]]',
         "expected_tool_calls": [{"name": "lookup_order", "arguments": {"order_id": "A-1"}},
                                 {"name": "issue_refund", "arguments": {"order_id": "A-1", "amount": 25.0}}],
         "tool_results": {"lookup_order": {"total": 25.0},
                          "issue_refund": [{"arguments": {"order_id": "A-2"}, "result": "wrong order"},
                                           {"arguments": {"order_id": "A-1"}, "result": {"refunded": 25}}]}},
        {"id": "parallel", "input": '[[call:lookup_order {"order_id": "A-1"} && search_kb {"query": "returns"}]] [[say:ok]]',
         "expected_tool_calls": [{"name": "search_kb", "arguments": {"query": "returns"}},
                                 {"name": "lookup_order", "arguments": {"order_id": "A-1"}}],
         "tool_results": {"lookup_order": "shipped", "search_kb": ["30 days"]}},
        {"id": "unscripted", "input": '[[call:search_kb {"query": "x"}]] [[say:sorry]]',
         "expected_tool_calls": [{"name": "search_kb", "arguments": {"query": "x"}}], "tool_results": {}},
        {"id": "bad-args", "input": '[[call:lookup_order {"order_id": "A-]] [[say:hm]]',
         "expected_tool_calls": [{"name": "lookup_order"}], "tool_results": {"lookup_order": "x"}},
        {"id": "failing-tool", "input": '[[call:issue_refund {"order_id": "A-9", "amount": 5}]] [[say:could not]]',
         "expected_tool_calls": [{"name": "issue_refund"}],
         "tool_results": {"issue_refund": [{"arguments": {}, "error": "refunds are down"}]}},
        {"id": "runaway", "input": "".join(f'[[call:lookup_order {{"order_id": "A-{k}"}}]]' for k in range(5)),
         "expected_tool_calls": [{"name": "lookup_order"}], "tool_results": {"lookup_order": "x"}},
        {"id": "no-results", "input": '[[call:lookup_order {"order_id": "A-1"}]] [[say:never reached]]',
         "expected_tool_calls": [{"name": "lookup_order", "arguments": {"order_id": "A-1"}}]},
    ]
    # the runaway loop is a scorer error by design: a budget that allows it, so the run judges
    suite(tmp_path, server, items, [{"type": "tool_calls", "mode": "unordered", "error_budget": 0.5}], max_steps=3)
    r = cli("run", "eval.yaml", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    recs = records(tmp_path)
    two = recs["two-steps"]
    assert two["output"] == "Refunded." and two["scores"]["tool_calls"]["passed"] is True
    calls = two["trajectory"]["tool_calls"]
    assert [c["name"] for c in calls] == ["lookup_order", "issue_refund"]
    assert calls[0]["result"] == {"total": 25.0} and calls[1]["result"] == {"refunded": 25}
    assert two["trajectory"]["steps"] == 3 and two["target_metadata"]["steps"] == 3
    # three model turns: the usage is their sum
    bodies = [b for b in server.state.bodies if "A-1\"}]] [[call:issue_refund" in b["messages"][0]["content"]]
    assert len(bodies) == 3
    assert two["usage"]["prompt_tokens"] > 0 and two["usage"]["completion_tokens"] == 12 + 12 + len("Refunded.") // 4 + 1
    # the last request carried the whole conversation: each tool message answers its call's id
    last = bodies[-1]["messages"]
    assert [m["role"] for m in last] == ["user", "assistant", "tool", "assistant", "tool"]
    assert last[2]["tool_call_id"] == last[1]["tool_calls"][0]["id"] and last[2]["content"] == '{"total":25.0}'
    assert all(b["tools"] == TOOLS for b in bodies)
    assert recs["parallel"]["scores"]["tool_calls"]["passed"] is True  # unordered: parallel calls in any order
    un = recs["unscripted"]
    assert un["target_metadata"]["unscripted_tool_calls"] == 1
    assert "no scripted result for tool 'search_kb'" in un["trajectory"]["tool_calls"][0]["error"]
    bad = recs["bad-args"]["trajectory"]["tool_calls"][0]
    assert bad["arguments"] is None and bad["raw_arguments"] == '{"order_id": "A-' and "not valid JSON" in bad["error"]
    assert recs["bad-args"]["scores"]["tool_calls"]["passed"] is False
    assert recs["failing-tool"]["trajectory"]["tool_calls"][0]["error"] == "RuntimeError: refunds are down"
    run = recs["runaway"]
    assert run["trajectory"]["truncated"].startswith("max_steps (3) reached")
    assert run["scores"]["tool_calls"]["error"].startswith("the trajectory ended early: max_steps (3)")
    # without tool_results the model's first answer is recorded, no tool is answered
    nr = recs["no-results"]
    assert nr["trajectory"]["steps"] == 1 and nr["scores"]["tool_calls"]["passed"] is True and nr["output"] == ""


def test_tools_from_a_prompt_file_tool_choice_and_bad_tools(tmp_path, server):
    (tmp_path / "agent.yaml").write_text(json.dumps({
        "messages": [{"role": "user", "content": "{{ input }}"}], "model": "m",
        "params": {"tools": TOOLS[:1], "tool_choice": "none"}}))
    suite(tmp_path, server, [{"id": "a", "input": '[[call:lookup_order {"order_id": "A-1"}]] [[say:no tools]]',
                              "expected_tool_calls": []}])
    cfg = json.loads((tmp_path / "eval.yaml").read_text())
    chat = cfg["target"]["chat"]
    del chat["messages"], chat["tools"]
    chat["prompt"] = "agent.yaml"
    (tmp_path / "eval.yaml").write_text(json.dumps(cfg))
    r = cli("run", "eval.yaml", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    body = server.state.bodies[-1]
    assert body["tools"] == TOOLS[:1] and body["tool_choice"] == "none"
    assert records(tmp_path)["a"]["output"] == "no tools"
    assert records(tmp_path)["a"]["scores"]["tool_calls"]["passed"] is True
    for bad, why in (([{"type": "function", "function": {}}], "has no name"), ([], "non-empty list"),
                     ([TOOLS[0], TOOLS[0]], "declared twice")):
        chat.pop("prompt", None)
        chat.update(messages=[{"role": "user", "content": "x"}], tools=bad)
        (tmp_path / "eval.yaml").write_text(json.dumps(cfg))
        r = cli("run", "eval.yaml", cwd=tmp_path)
        assert r.returncode == 2 and why in r.stderr and "eval.yaml:" in r.stderr, r.stderr


def test_tool_results_from_a_python_function(tmp_path, server):
    (tmp_path / "tools_mod.py").write_text(
        "def answer(name, arguments, input):\n"
        "    if name == 'issue_refund':\n"
        "        raise ValueError('over the limit')\n"
        "    return {'tool': name, **arguments}\n")
    suite(tmp_path, server, [{"id": "a", "input": '[[call:lookup_order {"order_id": "A-7"}]]'
                                                  '[[call:issue_refund {"order_id": "A-7", "amount": 1}]][[say:done]]',
                              "expected_tool_calls": [{"name": "lookup_order"}, {"name": "issue_refund"}]}],
          tool_results="tools_mod:answer")
    r = cli("run", "eval.yaml", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    calls = records(tmp_path)["a"]["trajectory"]["tool_calls"]
    assert calls[0]["result"] == {"tool": "lookup_order", "order_id": "A-7"}
    assert calls[1]["error"] == "ValueError: over the limit"
    suite(tmp_path, server, [{"id": "a", "input": "x"}], tool_results="tools_mod:nope")
    r = cli("run", "eval.yaml", cwd=tmp_path)
    assert r.returncode == 2 and "tool_results function 'nope' not found" in r.stderr


def test_the_fake_server_refuses_a_broken_tool_protocol(server):
    call = {"id": "call_1", "type": "function", "function": {"name": "lookup_order", "arguments": "{}"}}
    convos = [
        [{"role": "user", "content": "x"}, {"role": "tool", "tool_call_id": "call_1", "content": "r"}],
        [{"role": "user", "content": "x"}, {"role": "assistant", "content": None, "tool_calls": [call]},
         {"role": "user", "content": "and?"}],
    ]
    for messages, why in zip(convos, ("must be a response to a preceeding message with 'tool_calls'",
                                      "did not have response messages: call_1"), strict=True):
        r = httpx.post(f"{server.url}/chat/completions", json={"model": "m", "messages": messages, "tools": TOOLS})
        assert r.status_code == 400 and why in r.json()["error"]["message"]


# --- the demo support agent ------------------------------------------------------------------

@pytest.mark.slow
def test_support_agent_suite_regresses_on_a_prompt_that_skips_and_forbids(tmp_path, server):
    root = tmp_path / "support_agent"
    shutil.copytree(EXAMPLE, root)
    env = {"OPENAI_BASE_URL": server.url}
    a = cli("run", "support-agent.yaml", cwd=root, env=env)
    assert a.returncode == 0, a.stdout + a.stderr
    recs = records(root)
    assert len(recs) == 40
    scores = {k: r["scores"]["tool_calls"] for k, r in recs.items()}
    passed = {k for k, s in scores.items() if s.get("passed")}
    # everything passes but the two runaway loops, which are errors (never passes)
    assert passed == set(recs) - {"runaway-0", "runaway-1"}, {k: s for k, s in scores.items() if k not in passed}
    assert all(scores[k]["error"].startswith("the trajectory ended early: max_steps (8)") for k in ("runaway-0", "runaway-1"))
    # argument values: 24.99 for 25.0 within the tolerance, paraphrased queries by embedding similarity
    assert recs["refund-1"]["trajectory"]["tool_calls"][1]["arguments"]["amount"] != \
        recs["refund-1"]["expected_tool_calls"][1]["arguments"]["amount"]
    assert recs["kb-0"]["trajectory"]["tool_calls"][0]["arguments"]["query"] == "how to reset my password"
    b = cli("run", "support-agent.yaml", "--set", "target.chat.prompt=prompts/agent-v2.yaml", "--baseline", "latest",
            "--report", "console:-", "--report", "md", cwd=root, env=env)
    assert b.returncode == 1, b.stdout + b.stderr
    out = " ".join(b.stdout.split())
    assert "FAIL" in out and "no_regressions" in out
    recs2 = records(root)
    regressed_skip = recs2["refund-3"]["scores"]["tool_calls"]
    assert regressed_skip["passed"] is False and "called forbidden tool end_conversation" in regressed_skip["reason"]
    assert "missing lookup_order" in regressed_skip["reason"]
    md = (newest_run(root) / "report.md").read_text().replace("\\_", "_")
    assert "tool_calls actual:" in md and "▶ " in md
    # (the report shows the worst items first, within its size budget)
    assert re.search(r'tool_calls expected: lookup_order\(order_id="A-\d+"\)', md)
    assert re.search(r'tool_calls actual: +(\S.*→ )?▶ end_conversation\(reason="answered"\)', md)


@pytest.mark.slow
def test_support_agent_through_a_python_pipeline_scored_from_its_langfuse_spans(tmp_path, server):
    root = tmp_path / "support_agent"
    shutil.copytree(EXAMPLE, root)
    with FakeLangfuse() as lf:
        # in a process of its own: the langfuse SDK and the tracer provider are process-wide
        r = run_cli("run", "support-agent-python.yaml", cwd=root, env={"OPENAI_BASE_URL": server.url, **lf.env()})
    assert r.returncode == 0, r.stdout + r.stderr
    recs = records(root)
    assert len(recs) == 40
    # the aborted loops: the agent raised its step limit, so the records are errors
    for k in ("runaway-0", "runaway-1"):
        assert recs[k]["error"] == {"type": "StepLimit", "message": "still calling tools after 8 steps"}
    scored = {k: r["scores"]["tool_calls"] for k, r in recs.items() if not r["error"]}
    assert {k for k, s in scored.items() if not s.get("passed")} == set(), {
        k: s for k, s in scored.items() if not s.get("passed")}
    traj = recs["refund-2"]["trajectory"]
    assert traj["tool_calls"] == []  # the agent reported nothing: the calls come from its spans
    tools = [s for s in traj["spans"] if s["kind"] == "tool"]
    assert [s["name"] for s in tools] == ["lookup_order", "issue_refund"]
    assert all(s["parent_id"] for s in tools)  # under the agent's own span, which is not kept


# --- span capture ------------------------------------------------------------------------------

PIPELINE = '''
import asyncio, threading
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

trace.set_tracer_provider(TracerProvider())
tracer = trace.get_tracer("pipeline")


def tool(name, **args):
    with tracer.start_as_current_span(name) as s:
        s.set_attribute("gen_ai.operation.name", "execute_tool")
        s.set_attribute("gen_ai.tool.name", name)
        s.set_attribute("gen_ai.tool.call.arguments", __import__("json").dumps(args))
        if args.get("fail"):
            raise RuntimeError("tool broke")
        return "ok"


def sync_agent(inp):
    if inp == "quiet":
        return "no spans"
    if inp == "aborted":  # the agent's loop gave up, marked on its own span, and still answered
        from opentelemetry.trace import Status, StatusCode
        with tracer.start_as_current_span("agent") as a:
            tool("lookup", order=inp)
            a.set_status(Status(StatusCode.ERROR, "gave up after 3 steps"))
        return "sorry"
    with tracer.start_as_current_span("agent"):
        with tracer.start_as_current_span("retrieve") as r:
            r.set_attribute("openinference.span.kind", "RETRIEVER")
            r.set_attribute("output.value", '["doc-other"]' if inp == "wrongdoc" else f'["doc-{inp}"]')
        tool("lookup", order=inp)
        # a thread of the pipeline's own: its span still belongs to this record (parent context)
        ctx = __import__("opentelemetry.context", fromlist=["x"]).get_current()
        t = threading.Thread(target=lambda: __import__("opentelemetry.context", fromlist=["x"]).attach(ctx)
                             and tool("notify", order=inp))
        t.start(); t.join()
        if inp == "boom":
            try:
                tool("refund", fail=True)
            except RuntimeError:
                pass
    return inp


async def async_agent(inp):
    if inp == "quiet":
        return "no spans"
    with tracer.start_as_current_span("agent"):
        await asyncio.sleep(0.01)
        tool("lookup", order=inp)
        await asyncio.sleep(0.01)
    return inp
'''


def test_capture_keeps_each_records_own_spans(tmp_path):
    (tmp_path / "pipeline.py").write_text(PIPELINE)
    items = [{"id": f"i{n}", "input": f"o{n}", "expected_tool_calls": [{"name": "lookup", "arguments": {"order": f"o{n}"}},
                                                                       {"name": "notify", "arguments": {"order": f"o{n}"}}]}
             for n in range(30)]
    items += [{"id": "quiet", "input": "quiet"}, {"id": "aborted", "input": "aborted",
                                                  "expected_tool_calls": [{"name": "lookup"}]},
              {"id": "wrongdoc", "input": "wrongdoc",
               "expected_tool_calls": [{"name": "lookup"}, {"name": "notify"}]},
              {"id": "boom", "input": "boom",
                                                  "expected_tool_calls": [{"name": "lookup"}, {"name": "notify"}]}]
    (tmp_path / "golden.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    for fn in ("sync_agent", "async_agent"):
        cfg = {"name": "cap", "dataset": "golden.jsonl", "concurrency": 8,
               "target": {"python": f"pipeline:{fn}", "capture_spans": True},
               # the quiet and aborted items are scorer errors by design: a budget that allows them
               "scorers": [{"type": "tool_calls", "mode": "in_order" if fn == "sync_agent" else "subset",
                            "error_budget": 0.5}]}
        if fn == "sync_agent":  # "the retrieval step returned the item's document"
            cfg["scorers"].append({"type": "tool_calls", "name": "evidence", "mode": "superset", "error_budget": 0.5,
                                   "steps": [
                {"kind": "retrieval", "attribute": "output.value", "contains_item": "input"}]})
        (tmp_path / "eval.yaml").write_text(json.dumps(cfg))
        r = run_cli("run", "eval.yaml", cwd=tmp_path)
        assert r.returncode == 0, r.stdout + r.stderr
        recs = records(tmp_path)
        for n in range(30):
            rec = recs[f"i{n}"]
            tools = [c for c in rec["trajectory"]["spans"] if c["kind"] == "tool"]
            # 8 calls at once: each record has its own spans and no other's
            assert {s["attributes"]["gen_ai.tool.call.arguments"] for s in tools} == {json.dumps({"order": f"o{n}"})}
            assert rec["scores"]["tool_calls"]["passed"] is True, rec["scores"]
        if fn == "sync_agent":
            # tool and retrieval steps are kept; the agent's own plain span is not
            assert [s["kind"] for s in recs["i0"]["trajectory"]["spans"]] == ["retrieval", "tool", "tool"]
            boom = recs["boom"]["trajectory"]
            assert boom["spans"][-1]["error"] == "RuntimeError: tool broke" and "truncated" not in boom
            # a failed root span: the trajectory ended early, a scorer error, never a pass
            aborted = recs["aborted"]
            assert aborted["trajectory"]["truncated"] == "the pipeline's span 'agent' failed: gave up after 3 steps"
            assert aborted["scores"]["tool_calls"]["error"].startswith("the trajectory ended early")
            assert recs["i3"]["scores"]["evidence"]["passed"] is True
            assert recs["wrongdoc"]["scores"]["tool_calls"]["passed"] is True
            assert recs["wrongdoc"]["scores"]["evidence"]["passed"] is False
            assert recs["wrongdoc"]["scores"]["evidence"]["reason"] == \
                "no retrieval step's output.value contains 'wrongdoc'"
        # a call that emits no span is recorded as before
        assert "trajectory" not in recs["quiet"]


def test_capture_needs_a_python_target(tmp_path, cli):
    (tmp_path / "golden.jsonl").write_text('{"input": "x"}\n')
    (tmp_path / "eval.yaml").write_text(json.dumps({"name": "c", "dataset": "golden.jsonl",
                                                    "target": {"exec": "cat", "capture_spans": True}}))
    r = cli("run", "eval.yaml", cwd=tmp_path)
    assert r.returncode == 2 and "capture_spans works for python targets" in r.stderr


def test_a_cached_agent_turn_keeps_its_trajectory_and_the_scripted_results_key_it(tmp_path, server):
    item = {"id": "a", "input": '[[call:lookup_order {"order_id": "A-1"}]] [[say:done]]',
            "expected_tool_calls": [{"name": "lookup_order", "arguments": {"order_id": "A-1"}}],
            "tool_results": {"lookup_order": "shipped"}}
    suite(tmp_path, server, [item])
    cfg = json.loads((tmp_path / "eval.yaml").read_text())
    cfg["target"]["cache"] = True
    (tmp_path / "eval.yaml").write_text(json.dumps(cfg))
    assert cli("run", "eval.yaml", cwd=tmp_path).returncode == 0
    sent = server.state.requests
    assert cli("run", "eval.yaml", cwd=tmp_path).returncode == 0
    rec = records(tmp_path)["a"]
    assert server.state.requests == sent and rec["attempts"] == 0  # served from the cache
    assert rec["trajectory"]["tool_calls"][0]["result"] == "shipped"
    assert rec["scores"]["tool_calls"]["passed"] is True
    # other scripted results: another answer, asked again
    item["tool_results"] = {"lookup_order": "lost"}
    (tmp_path / "golden.jsonl").write_text(json.dumps(item) + "\n")
    assert cli("run", "eval.yaml", cwd=tmp_path).returncode == 0
    assert server.state.requests == sent + 2
    assert records(tmp_path)["a"]["trajectory"]["tool_calls"][0]["result"] == "lost"
