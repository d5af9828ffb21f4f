"""What a pipeline did on the way to its answer: the tool calls it made (with their results) and
the steps of its own spans, in one neutral shape whatever produced them.

Provider formats (OpenAI chat, OpenAI Responses, Anthropic, OpenTelemetry spans) are converted
into these types once, at the edge (:mod:`evalrun.toolcalls`); the tool loop, the ``tool_calls``
scorer and the reports read only these. Every type has ``to_dict`` and a validating
``from_dict`` that raises ValueError saying what is wrong (a record line, a target's JSON).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: characters of a tool result or span attribute kept on a record (the rest is cut, marked)
MAX_TEXT = 2000


def clip(value: Any, limit: int = MAX_TEXT) -> Any:
    """``value`` with long strings cut to ``limit`` characters (nested ones too), marked ``…``."""
    if isinstance(value, str):
        return value if len(value) <= limit else value[:limit] + "…"
    if isinstance(value, list):
        return [clip(v, limit) for v in value]
    if isinstance(value, dict):
        return {str(k): clip(v, limit) for k, v in value.items()}
    return value


def _opt_str(d: dict[str, Any], key: str, where: str) -> str | None:
    v = d.get(key)
    if v is not None and not isinstance(v, str):
        raise ValueError(f"{where}: {key} must be a string (got {type(v).__name__})")
    return v


def _opt_num(d: dict[str, Any], key: str, where: str) -> float | None:
    v = d.get(key)
    if v is not None and (v.__class__ is bool or not isinstance(v, int | float)):
        raise ValueError(f"{where}: {key} must be a number (got {type(v).__name__})")
    return v


@dataclass(slots=True)
class ToolCall:
    """One call of a tool. ``arguments`` is the parsed JSON object; when the model's argument
    text is not a JSON object, ``arguments`` is None, ``raw_arguments`` keeps the text and
    ``parse_error`` says why (such a call never matches an expected one: bad JSON is never
    taken as ``{}``). ``result`` / ``error`` are what the tool answered, when known."""

    name: str
    arguments: dict[str, Any] | None = field(default_factory=dict)
    id: str | None = None
    raw_arguments: str | None = None
    parse_error: str | None = None
    result: Any = None
    error: str | None = None
    latency_ms: float | None = None
    #: where it was read: "openai_chat", "openai_responses", "anthropic", "spans", "output"...
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "arguments": self.arguments}
        for key in ("id", "raw_arguments", "parse_error", "error", "latency_ms", "source"):
            v = getattr(self, key)
            if v is not None:
                d[key] = v
        if self.result is not None:
            d["result"] = clip(self.result)
        return d

    @classmethod
    def from_dict(cls, d: Any, where: str = "tool call") -> ToolCall:
        if not isinstance(d, dict):
            raise ValueError(f"{where} must be an object with a name (got {type(d).__name__})")
        name = d.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"{where} has no name")
        args = d.get("arguments", {})
        if args is not None and not isinstance(args, dict):
            raise ValueError(f"{where} ({name}): arguments must be an object (got {type(args).__name__})")
        parse_error = _opt_str(d, "parse_error", where)
        if args is None and parse_error is None:
            parse_error = "the arguments are missing"
        return cls(name=name, arguments=args, id=_opt_str(d, "id", where),
                   raw_arguments=_opt_str(d, "raw_arguments", where), parse_error=parse_error,
                   result=d.get("result"), error=_opt_str(d, "error", where),
                   latency_ms=_opt_num(d, "latency_ms", where), source=_opt_str(d, "source", where))

    def brief(self, limit: int = 120) -> str:
        """``name(a=1, b="x")`` for reports, cut to ``limit`` characters."""
        from evalrun import _json

        if self.arguments is None:
            inner = f"<bad arguments: {self.parse_error}>"
        else:
            inner = ", ".join(f"{k}={_json.canonical(v)}" for k, v in self.arguments.items())
        text = f"{self.name}({inner})"
        return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(slots=True)
class Step:
    """One span of the pipeline (a tool, a retrieval, a model call), kept compact."""

    name: str
    kind: str = "span"  # tool | retrieval | llm | agent | span
    attributes: dict[str, Any] = field(default_factory=dict)
    latency_ms: float | None = None
    error: str | None = None
    span_id: str | None = None
    parent_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.attributes:
            d["attributes"] = clip(self.attributes)
        for key in ("latency_ms", "error", "span_id", "parent_id"):
            v = getattr(self, key)
            if v is not None:
                d[key] = v
        return d

    @classmethod
    def from_dict(cls, d: Any, where: str = "step") -> Step:
        if not isinstance(d, dict) or not isinstance(d.get("name"), str):
            raise ValueError(f"{where} must be an object with a name")
        attrs = d.get("attributes") or {}
        if not isinstance(attrs, dict):
            raise ValueError(f"{where}: attributes must be an object")
        return cls(name=d["name"], kind=_opt_str(d, "kind", where) or "span", attributes=attrs,
                   latency_ms=_opt_num(d, "latency_ms", where), error=_opt_str(d, "error", where),
                   span_id=_opt_str(d, "span_id", where), parent_id=_opt_str(d, "parent_id", where))


@dataclass(slots=True)
class Trajectory:
    """The tool calls in the order they were made, the pipeline's span steps, how many model
    turns it took (``steps``), and ``truncated``: why it ended before a final answer (the step
    limit, an aborted loop, missing spans), None when it ended normally. A truncated trajectory
    is a scorer error, never a pass."""

    tool_calls: list[ToolCall] = field(default_factory=list)
    steps: int | None = None
    spans: list[Step] = field(default_factory=list)
    truncated: str | None = None
    #: whether spans were captured at all (a pipeline that ran without a tool or retrieval step
    #: has none to keep, but was seen): written as ``"spans": []``
    captured: bool = False

    def __bool__(self) -> bool:
        return bool(self.tool_calls or self.spans or self.truncated or self.steps)

    @property
    def tool_errors(self) -> int:
        return sum(1 for c in self.tool_calls if c.error is not None) + sum(
            1 for s in self.spans if s.kind == "tool" and s.error is not None)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"tool_calls": [c.to_dict() for c in self.tool_calls]}
        if self.steps is not None:
            d["steps"] = self.steps
        if self.spans or self.captured:
            d["spans"] = [s.to_dict() for s in self.spans]
        if self.truncated is not None:
            d["truncated"] = self.truncated
        return d

    @classmethod
    def from_dict(cls, d: Any) -> Trajectory:
        if not isinstance(d, dict):
            raise ValueError(f"a trajectory is an object (got {type(d).__name__})")
        calls = d.get("tool_calls", [])
        spans = d.get("spans", [])
        if not isinstance(calls, list) or not isinstance(spans, list):
            raise ValueError("trajectory tool_calls and spans must be lists")
        steps = d.get("steps")
        if steps is not None and (steps.__class__ is bool or not isinstance(steps, int)):
            raise ValueError("trajectory steps must be a whole number")
        return cls(tool_calls=[ToolCall.from_dict(c, f"tool call {i + 1}") for i, c in enumerate(calls)],
                   steps=steps, spans=[Step.from_dict(s, f"span {i + 1}") for i, s in enumerate(spans)],
                   truncated=_opt_str(d, "truncated", "trajectory"), captured="spans" in d)
