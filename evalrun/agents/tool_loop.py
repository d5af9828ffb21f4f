"""The chat target's tool loop: the model asks for tools, the item's scripted results answer,
until the model gives its final answer or ``max_steps`` model turns have been spent.

Tool results come from the item (``tool_results:``), so a whole agent turn is evaluated
offline and deterministically:

- ``{name: result}``: every call of that tool gets ``result``;
- ``{name: [{arguments: {...}, result: ...}, ...]}``: the first entry whose ``arguments`` are
  contained in the call's arguments (1 equals 1.0; an entry without ``arguments`` matches any
  call); ``error: "..."`` instead of ``result`` makes the tool fail with that message;
- or a python function ``module:function(name, arguments, input)`` named by the chat target's
  ``tool_results`` key, for results computed from the arguments.

A call no script answers (or whose arguments are not JSON) gets an error tool message, as an
agent framework would send back, and is counted in ``target_metadata.unscripted_tool_calls``:
the loop goes on, and the scorer sees the call with its error. A loop that reaches
``max_steps`` while the model still asks for tools ends with ``truncated`` set: the
``tool_calls`` scorer counts it as an error, never a pass.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, replace
from typing import Any

from evalrun import _json
from evalrun.openai_client import Completion
from evalrun.scoring.trajectory_match import json_contains
from evalrun.toolcalls import from_openai_chat
from evalrun.trajectory import ToolCall, Trajectory


class NoResult(Exception):
    """No scripted result for a call."""


@dataclass
class ScriptedTools:
    """What answers the tool calls of one item."""

    script: dict[str, Any] | None
    function: Any = None  # (name, arguments, input) -> result
    input: Any = None

    async def answer(self, call: ToolCall) -> Any:
        """The result of ``call``; raises NoResult (nothing scripted) or another exception (the
        tool failed: its message goes back to the model)."""
        if call.arguments is None:
            raise ValueError(f"the arguments could not be read: {call.parse_error}")
        if self.function is not None:
            value = self.function(call.name, dict(call.arguments), self.input)
            return await value if inspect.isawaitable(value) else value
        script = self.script or {}
        if call.name not in script:
            raise NoResult(f"no scripted result for tool {call.name!r}")
        entry = script[call.name]
        if isinstance(entry, list) and entry and all(isinstance(e, dict) and ("result" in e or "error" in e)
                                                     for e in entry):
            for e in entry:
                if json_contains(e.get("arguments") or {}, call.arguments):
                    if "error" in e:
                        raise RuntimeError(str(e["error"]))
                    return e["result"]
            raise NoResult(f"no scripted result for {call.brief(200)}")
        return entry


def result_text(value: Any) -> str:
    """A tool message's content: text as is, anything else as JSON."""
    return value if isinstance(value, str) else _json.canonical(value)


@dataclass
class LoopResult:
    #: the last answer, its usage the sum over every turn
    completion: Completion
    trajectory: Trajectory
    unscripted: int = 0


def assistant_message(message: dict[str, Any]) -> dict[str, Any]:
    """The model's message as it is sent back in the next request: role, content and tool calls
    only (answer-only fields such as ``refusal`` or ``annotations`` are not request fields)."""
    out: dict[str, Any] = {"role": "assistant", "content": message.get("content")}
    if message.get("tool_calls"):
        out["tool_calls"] = message["tool_calls"]
    return out


async def run_loop(chat: Any, payload: dict[str, Any], tools: ScriptedTools | None, max_steps: int) -> LoopResult:
    """Call the model (``chat(body) -> Completion`` with ``message``) until it answers without
    asking for a tool. With ``tools`` None the first answer ends it: its calls are recorded,
    none is answered."""
    messages = list(payload["messages"])
    calls: list[ToolCall] = []
    usage = {"prompt_tokens": 0, "completion_tokens": 0}
    unscripted = 0
    done: Completion | None = None
    for step in range(1, max_steps + 1):
        done = await chat({**payload, "messages": messages})
        for k in usage:
            usage[k] += done.usage.get(k, 0)
        message = done.message or {}
        asked = from_openai_chat(message)
        calls += asked
        if not asked or tools is None:
            return LoopResult(replace(done, usage=usage), Trajectory(calls, steps=step), unscripted)
        messages.append(assistant_message(message))
        for call in asked:
            try:
                call.result = await tools.answer(call)
                content = result_text(call.result)
            except NoResult as e:
                unscripted += 1
                call.error = str(e)
                content = f"Error: {e}"
            except Exception as e:  # the tool failed: the model hears about it, as from a real tool
                call.error = f"{type(e).__name__}: {e}"[:500]
                content = f"Error: {call.error}"
            messages.append({"role": "tool", "tool_call_id": call.id or "", "content": content})
    assert done is not None  # max_steps >= 1
    return LoopResult(replace(done, usage=usage),
                      Trajectory(calls, steps=max_steps,
                                 truncated=f"max_steps ({max_steps}) reached with the model still calling tools"),
                      unscripted)
