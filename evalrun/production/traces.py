"""Production traces, from wherever they are, as one neutral shape (:class:`Trace`).

Sources:

- ``langfuse``: the project's traces through the public API (``GET /api/public/traces``, paged,
  with the server-side filters it has: name, tags, environment, user, session, release, version,
  time window; web/src/features/public-api/types/traces.ts) and their scores
  (``GET /api/public/v2/scores`` by score name, paged; web/src/pages/api/public/v2/scores/index.ts);
- a ``.jsonl`` export: one trace per line, in the API's trace shape (``scores`` a list of
  ``{name, value, comment}`` or a mapping name -> value);
- an OTLP JSON file (``.json`` with ``resourceSpans``): one trace per trace id, its root span's
  input/output attributes (Langfuse's ``langfuse.observation.input``/``output``, OpenInference's
  ``input.value``/``output.value``, or ``gen_ai.prompt``/``gen_ai.completion``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalrun.errors import RunFailed, UsageError

PAGE_SIZE = 100


@dataclass
class Trace:
    id: str
    input: Any = None
    output: Any = None
    name: str | None = None
    timestamp: str | None = None
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    environment: str | None = None
    release: str | None = None
    version: str | None = None
    user_id: str | None = None
    session_id: str | None = None
    latency: float | None = None  # seconds
    cost: float | None = None  # USD
    error: bool = False
    scores: dict[str, Any] = field(default_factory=dict)  # name -> value
    comments: dict[str, str] = field(default_factory=dict)  # name -> comment (a human correction)
    source: str = ""  # where it was read (file:line or the API)


def _scores(raw: Any) -> tuple[dict[str, Any], dict[str, str]]:
    values: dict[str, Any] = {}
    comments: dict[str, str] = {}
    if isinstance(raw, dict):
        return {str(k): v for k, v in raw.items()}, {}
    for s in raw if isinstance(raw, list) else []:
        if isinstance(s, dict) and s.get("name") is not None:
            name = str(s["name"])
            values[name] = s.get("value") if s.get("value") is not None else s.get("stringValue")
            if s.get("comment"):
                comments[name] = str(s["comment"])
    return values, comments


def from_api(raw: dict[str, Any], source: str) -> Trace:
    """A trace in the public API's shape (also the JSONL export's)."""
    if not isinstance(raw, dict) or not raw.get("id"):
        raise ValueError("a trace needs an id")
    values, comments = _scores(raw.get("scores"))
    meta_raw, tags_raw = raw.get("metadata"), raw.get("tags")
    meta: dict[str, Any] = meta_raw if isinstance(meta_raw, dict) else {}
    tags: list[Any] = tags_raw if isinstance(tags_raw, list) else []
    return Trace(id=str(raw["id"]), input=raw.get("input"), output=raw.get("output"), name=raw.get("name"),
                 timestamp=str(raw.get("timestamp")) if raw.get("timestamp") else None, tags=[str(t) for t in tags],
                 metadata=meta, environment=raw.get("environment"), release=raw.get("release"),
                 version=raw.get("version"), user_id=raw.get("userId"), session_id=raw.get("sessionId"),
                 latency=raw.get("latency"), cost=raw.get("totalCost"),
                 error=bool(raw.get("level") == "ERROR" or meta.get("error")), scores=values, comments=comments,
                 source=source)


def read_jsonl(path: Path) -> Iterator[Trace]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"{path}: cannot be read: {e}") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield from_api(json.loads(line), f"{path}:{n}")
        except ValueError as e:
            raise UsageError(f"not a trace: {e}", str(path), n) from None


_IN = ("langfuse.observation.input", "langfuse.trace.input", "input.value", "gen_ai.prompt")
_OUT = ("langfuse.observation.output", "langfuse.trace.output", "output.value", "gen_ai.completion")


def _attr_value(v: dict[str, Any]) -> Any:
    for key in ("stringValue", "intValue", "doubleValue", "boolValue"):
        if key in v:
            return v[key]
    if "arrayValue" in v:
        return [_attr_value(x) for x in v["arrayValue"].get("values", [])]
    return None


def _maybe_json(v: Any) -> Any:
    if isinstance(v, str) and v[:1] in "{[\"":
        try:
            return json.loads(v)
        except ValueError:
            return v
    return v


def read_otlp(path: Path) -> Iterator[Trace]:
    """Traces of an OTLP/JSON export: each trace's root span (no parent) carries it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise UsageError(f"{path}: not an OTLP JSON file: {e}") from None
    if not isinstance(data, dict) or "resourceSpans" not in data:
        raise UsageError(f"{path}: not an OTLP JSON file (no resourceSpans)")
    for rs in data["resourceSpans"] or []:
        for ss in rs.get("scopeSpans") or []:
            for span in ss.get("spans") or []:
                if span.get("parentSpanId"):
                    continue
                attrs = {a["key"]: _attr_value(a.get("value") or {}) for a in span.get("attributes") or []
                         if isinstance(a, dict) and "key" in a}
                inp = next((attrs[k] for k in _IN if k in attrs), None)
                out = next((attrs[k] for k in _OUT if k in attrs), None)
                tags = attrs.get("langfuse.trace.tags") or []
                start, end = span.get("startTimeUnixNano"), span.get("endTimeUnixNano")
                latency = (int(end) - int(start)) / 1e9 if start and end else None
                meta = {k.removeprefix("langfuse.trace.metadata."): v for k, v in attrs.items()
                        if k.startswith("langfuse.trace.metadata.")}
                yield Trace(id=str(span.get("traceId")), input=_maybe_json(inp), output=_maybe_json(out),
                            name=attrs.get("langfuse.trace.name") or span.get("name"),
                            tags=[str(t) for t in (tags if isinstance(tags, list) else [tags])], metadata=meta,
                            environment=attrs.get("langfuse.environment"), release=attrs.get("langfuse.release"),
                            version=attrs.get("langfuse.version"), user_id=attrs.get("user.id"),
                            session_id=attrs.get("session.id"), latency=latency,
                            error=(span.get("status") or {}).get("code") == 2, source=str(path))


def read_langfuse(query: dict[str, Any], score_names: list[str], progress: Any = None) -> Iterator[Trace]:
    """The project's traces matching ``query`` (the API's own filters), with the scores named
    ``score_names`` attached (values and comments)."""
    from evalrun.langfuse.client import Client, Refused, Unreachable, credentials

    with Client(credentials(), budget=None) as client:
        def pages(path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
            page = 1
            while True:
                p = {**params, "page": page, "limit": PAGE_SIZE}

                def get(o: dict[str, Any], p: dict[str, Any] = p) -> Any:
                    return client.get_json(path, o, p)

                try:
                    res = client.call(f"GET {path} page {page}", get)
                except Unreachable as e:
                    raise RunFailed(f"Langfuse at {client.creds.base_url}: {e}") from None
                except Refused as e:
                    raise UsageError(f"Langfuse refused {path}: {e}") from None
                yield from res.get("data") or []
                if progress is not None:
                    progress(path, page, (res.get("meta") or {}).get("totalPages"))
                if page >= ((res.get("meta") or {}).get("totalPages") or 0) or not res.get("data"):
                    return
                page += 1

        scores: dict[str, dict[str, Any]] = {}
        comments: dict[str, dict[str, str]] = {}
        for name in score_names:
            for s in pages("/api/public/v2/scores", {"name": name}):
                tid = s.get("traceId")
                if tid:
                    v = s.get("value") if s.get("value") is not None else s.get("stringValue")
                    scores.setdefault(tid, {})[name] = v
                    if s.get("comment"):
                        comments.setdefault(tid, {})[name] = str(s["comment"])
        for raw in pages("/api/public/traces", query):
            t = from_api({**raw, "scores": None}, "langfuse")
            t.scores = scores.get(t.id, {})
            t.comments = comments.get(t.id, {})
            yield t
