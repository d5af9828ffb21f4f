"""Tool calls read from the formats users meet, into :class:`~evalrun.trajectory.ToolCall`.

One reader per format, each sharing :func:`parse_arguments`:

- **OpenAI chat completions** (:func:`from_openai_chat`): ``message.tool_calls[]`` =
  ``{id, type: "function", function: {name, arguments: <JSON text>}}``; a result is a later
  ``{"role": "tool", "tool_call_id": id, "content": ...}`` message; the legacy
  ``message.function_call`` too.
- **OpenAI Responses** (:func:`from_openai_responses`): ``output[]`` items of type
  ``function_call`` = ``{id: "fc_…", call_id: "call_…", name, arguments}``; a result is a
  ``function_call_output`` item paired by ``call_id`` (never by the ``fc_`` item id).
- **Anthropic messages** (:func:`from_anthropic`): ``content[]`` blocks of type ``tool_use`` =
  ``{id: "toolu_…", name, input: <object>}``; a result is a ``tool_result`` block
  ``{tool_use_id, content, is_error}`` in a later user message.
- **OpenTelemetry spans** (:func:`from_spans`): GenAI semantic conventions
  (``gen_ai.operation.name == "execute_tool"``), OpenInference (``openinference.span.kind ==
  "TOOL"``) and Langfuse (``langfuse.observation.type == "tool"``), through one key map.

:func:`normalise` recognises which of these a value is (or the neutral
``[{name, arguments}]``). Argument text that is not a JSON object is kept with its parse error,
never replaced by ``{}``: an argument-free expectation must not pass on a garbled call.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from evalrun import _json
from evalrun.trajectory import MAX_TEXT, Step, ToolCall, clip


def parse_arguments(raw: Any) -> tuple[dict[str, Any] | None, str | None, str | None]:
    """(arguments, raw text, parse error) of a tool call's arguments: an object as is; JSON text
    parsed. Text that is not JSON, or JSON that is not an object, gives arguments None, the
    text kept (cut to a bound) and the reason."""
    if isinstance(raw, dict):
        return raw, None, None
    if raw is None:
        return None, None, "the call has no arguments field"
    if not isinstance(raw, str):
        return None, clip(_json.canonical(raw), MAX_TEXT), f"arguments are a {type(raw).__name__}, not an object"
    kept = clip(raw, MAX_TEXT)
    try:
        value = _json.loads(raw)
    except ValueError as e:
        return None, kept, f"arguments are not valid JSON ({str(e)[:120]})"
    if not isinstance(value, dict):
        return None, kept, f"arguments are JSON {type(value).__name__}, not an object"
    return value, None, None


def _call(name: Any, raw_args: Any, call_id: Any, source: str) -> ToolCall:
    args, raw, err = parse_arguments(raw_args)
    return ToolCall(name=str(name or ""), arguments=args, id=str(call_id) if call_id is not None else None,
                    raw_arguments=raw, parse_error=err, source=source)


def _result_text(content: Any) -> Any:
    """A tool result as stored: text parts joined, anything else as is."""
    if isinstance(content, list) and all(isinstance(p, dict) and "text" in p for p in content):
        return "".join(str(p["text"]) for p in content)
    return content


def _attach(calls: list[ToolCall], results: dict[str, tuple[Any, str | None]]) -> list[ToolCall]:
    for c in calls:
        if c.id is not None and c.id in results:
            c.result, c.error = results[c.id]
    return calls


# --- OpenAI chat completions ----------------------------------------------------------------

def _chat_message_calls(message: dict[str, Any]) -> list[ToolCall]:
    out = []
    for tc in message.get("tool_calls") or []:
        if not isinstance(tc, dict):
            continue
        fn = tc.get("function")
        if not isinstance(fn, dict):
            fn = {}
        out.append(_call(fn.get("name"), fn.get("arguments"), tc.get("id"), "openai_chat"))
    fc = message.get("function_call")
    if isinstance(fc, dict):  # the pre-tools format: one call, no id
        out.append(_call(fc.get("name"), fc.get("arguments"), None, "openai_chat"))
    return out


def from_openai_chat(data: Any) -> list[ToolCall]:
    """Tool calls of a chat-completions response, one assistant message, a conversation
    (results paired from ``role: tool`` messages), or a bare ``tool_calls`` list."""
    if isinstance(data, dict) and "choices" in data:
        choices = data.get("choices") or []
        message = choices[0].get("message") if choices and isinstance(choices[0], dict) else None
        return _chat_message_calls(message) if isinstance(message, dict) else []
    if isinstance(data, dict):
        return _chat_message_calls(data)
    if not isinstance(data, list):
        return []
    if data and all(isinstance(x, dict) and "function" in x for x in data):
        return _chat_message_calls({"tool_calls": data})
    calls: list[ToolCall] = []
    results: dict[str, tuple[Any, str | None]] = {}
    for m in data:
        if not isinstance(m, dict):
            continue
        if m.get("role") == "tool" and m.get("tool_call_id") is not None:
            results[str(m["tool_call_id"])] = (_result_text(m.get("content")), None)
        elif m.get("role") == "assistant":
            calls += _chat_message_calls(m)
    return _attach(calls, results)


# --- OpenAI Responses -----------------------------------------------------------------------

def from_openai_responses(data: Any) -> list[ToolCall]:
    """Tool calls of a Responses API response (``output``) or an input/output item list;
    results from ``function_call_output`` items, paired by ``call_id``."""
    items = data.get("output") if isinstance(data, dict) else data
    if not isinstance(items, list):
        return []
    calls: list[ToolCall] = []
    results: dict[str, tuple[Any, str | None]] = {}
    for it in items:
        if not isinstance(it, dict):
            continue
        kind = it.get("type")
        if kind == "function_call":
            # call_id pairs the call with its output; "id" (fc_...) names the output item only
            calls.append(_call(it.get("name"), it.get("arguments"), it.get("call_id"), "openai_responses"))
        elif kind == "function_call_output" and it.get("call_id") is not None:
            results[str(it["call_id"])] = (_result_text(it.get("output")), None)
    return _attach(calls, results)


# --- Anthropic messages ---------------------------------------------------------------------

def _blocks(data: Any) -> Iterable[dict[str, Any]]:
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        return
    for x in data:
        if not isinstance(x, dict):
            continue
        if isinstance(x.get("content"), list) and ("role" in x or x.get("type") == "message"):
            yield from (b for b in x["content"] if isinstance(b, dict))
        else:
            yield x


def from_anthropic(data: Any) -> list[ToolCall]:
    """Tool calls of a Messages API response, a conversation (results paired from
    ``tool_result`` blocks by ``tool_use_id``), or a list of content blocks."""
    calls: list[ToolCall] = []
    results: dict[str, tuple[Any, str | None]] = {}
    for b in _blocks(data):
        if b.get("type") == "tool_use":
            calls.append(_call(b.get("name"), b.get("input"), b.get("id"), "anthropic"))
        elif b.get("type") == "tool_result" and b.get("tool_use_id") is not None:
            content = _result_text(b.get("content"))
            error = (str(content)[:MAX_TEXT] or "the tool failed") if b.get("is_error") else None
            results[str(b["tool_use_id"])] = (content, error)
    return _attach(calls, results)


# --- OpenTelemetry spans --------------------------------------------------------------------

#: where each instrumentation puts a tool span's facts (the GenAI conventions are still
#: "Development": one map, versioned here, instead of guesses spread over the code)
SPAN_KEYS: dict[str, dict[str, str]] = {
    # https://opentelemetry.io/docs/specs/semconv/gen-ai/gen-ai-spans/ (execute_tool span)
    "gen_ai": {"kind_key": "gen_ai.operation.name", "kind_value": "execute_tool", "name": "gen_ai.tool.name",
               "id": "gen_ai.tool.call.id", "arguments": "gen_ai.tool.call.arguments",
               "result": "gen_ai.tool.call.result"},
    # OpenInference semantic conventions (Arize): span kind TOOL
    "openinference": {"kind_key": "openinference.span.kind", "kind_value": "TOOL", "name": "tool.name",
                      "id": "tool_call.id", "arguments": "input.value", "result": "output.value"},
    # the langfuse SDK (v3+): @observe(as_type="tool") / start_observation(as_type="tool")
    "langfuse": {"kind_key": "langfuse.observation.type", "kind_value": "tool", "name": "",
                 "id": "", "arguments": "langfuse.observation.input", "result": "langfuse.observation.output"},
}
#: (attribute, value) -> the step kind it marks
SPAN_KINDS: dict[tuple[str, str], str] = {
    **{(k["kind_key"], k["kind_value"]): "tool" for k in SPAN_KEYS.values()},
    ("openinference.span.kind", "RETRIEVER"): "retrieval", ("langfuse.observation.type", "retriever"): "retrieval",
    ("gen_ai.operation.name", "retrieval"): "retrieval",
    ("openinference.span.kind", "LLM"): "llm", ("langfuse.observation.type", "generation"): "llm",
    ("gen_ai.operation.name", "chat"): "llm",
}
_KIND_KEYS = tuple(dict.fromkeys(k for k, _ in SPAN_KINDS))


def span_kind(attributes: dict[str, Any]) -> str:
    """tool | retrieval | llm | span, from a span's attributes."""
    for key in _KIND_KEYS:
        value = attributes.get(key)
        if value is not None:
            kind = SPAN_KINDS.get((key, value))
            if kind is not None:
                return kind
    return "span"


def _tool_args(raw: Any) -> Any:
    """An instrumentation's recorded input: a langfuse ``@observe`` input is
    ``{"args": [...], "kwargs": {...}}``; keyword arguments are the call's arguments."""
    if isinstance(raw, str):
        try:
            raw = _json.loads(raw)
        except ValueError:
            return raw
    if isinstance(raw, dict) and set(raw) <= {"args", "kwargs"} and "kwargs" in raw:
        if not raw.get("args"):
            return raw["kwargs"]
    return raw


def _tool_result(raw: Any) -> Any:
    if isinstance(raw, str):
        try:
            return _json.loads(raw)
        except ValueError:
            return raw
    return raw


def tool_call_of_step(step: Step) -> ToolCall | None:
    """The tool call a tool span records, or None for another kind of span."""
    if step.kind != "tool":
        return None
    a = step.attributes
    for keys in SPAN_KEYS.values():
        if a.get(keys["kind_key"]) != keys["kind_value"]:
            continue
        name = (a.get(keys["name"]) if keys["name"] else None) or step.name
        raw = _tool_args(a.get(keys["arguments"])) if keys["arguments"] in a else {}
        call = _call(name, raw, a.get(keys["id"]) if keys["id"] else None, "spans")
        if keys["result"] in a:
            call.result = _tool_result(a[keys["result"]])
        call.error, call.latency_ms = step.error, step.latency_ms
        return call
    return None


def from_spans(spans: Iterable[Step]) -> list[ToolCall]:
    """The tool calls among a pipeline's span steps, in the order the spans started."""
    return [c for c in (tool_call_of_step(s) for s in spans) if c is not None]


# --- any of the above -----------------------------------------------------------------------

def detect(value: Any) -> str:
    """Which format ``value`` is in: openai_chat | openai_responses | anthropic | neutral."""
    if isinstance(value, dict):
        if "choices" in value or "tool_calls" in value or "function_call" in value:
            return "openai_chat"
        if value.get("object") == "response" or isinstance(value.get("output"), list):
            return "openai_responses"
        if value.get("type") in ("message", "tool_use") or isinstance(value.get("content"), list):
            return "anthropic"
        return "neutral"
    if isinstance(value, list):
        for x in value:
            if not isinstance(x, dict):
                continue
            if x.get("type") in ("function_call", "function_call_output"):
                return "openai_responses"
            if x.get("type") in ("tool_use", "tool_result") or isinstance(x.get("content"), list) and any(
                    isinstance(b, dict) and b.get("type") in ("tool_use", "tool_result") for b in x["content"]):
                return "anthropic"
            if "function" in x or "tool_calls" in x or x.get("role") == "tool":
                return "openai_chat"
    return "neutral"


def normalise(value: Any, where: str = "tool_calls") -> list[ToolCall]:
    """Tool calls from any supported format; a neutral list holds ``{name, arguments}``
    objects (arguments an object, or JSON text). Raises ValueError for a value that is none of
    these (``where`` names it in the message)."""
    if value is None:
        return []
    if isinstance(value, ToolCall):
        return [value]
    fmt = detect(value)
    if fmt == "openai_chat":
        return from_openai_chat(value)
    if fmt == "openai_responses":
        return from_openai_responses(value)
    if fmt == "anthropic":
        return from_anthropic(value)
    if not isinstance(value, list):
        raise ValueError(f"{where}: expected a list of tool calls or a provider response (got {type(value).__name__})")
    out = []
    for i, x in enumerate(value):
        if isinstance(x, ToolCall):
            out.append(x)
            continue
        if not isinstance(x, dict):
            raise ValueError(f"{where}[{i}]: a tool call is an object with a name (got {type(x).__name__})")
        if isinstance(x.get("arguments"), str) or "arguments" not in x and "args" in x:
            raw = x.get("arguments", x.get("args"))
            args, rawtext, err = parse_arguments(raw)
            x = {**x, "arguments": args, "raw_arguments": rawtext, "parse_error": err}
            x.pop("args", None)
        out.append(ToolCall.from_dict(x, f"{where}[{i}]"))
    return out
