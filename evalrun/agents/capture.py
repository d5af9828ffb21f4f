"""The pipeline's own OpenTelemetry spans, captured per record (``target: {capture_spans: true}``).

An in-process span processor joins the process's tracer provider: the one already set (the
langfuse SDK sets one when its client starts, as does any OTel setup), or, when none is set
yet, an SDK provider evalrun sets (``set_tracer_provider`` works once per process: the
langfuse SDK and others then find it and add their own processors to it). A span that starts
with no parent while a record's call runs belongs to that record (``targets.CURRENT_RECORD``);
a child belongs to its parent's record, whatever thread or task it runs on. Spans are buffered
as they end, synchronously (a batch processor would deliver them after the call), and taken by
the engine when the call returns, as compact :class:`~evalrun.trajectory.Step` dicts: the tool,
retrieval and model spans (recognised by :func:`evalrun.toolcalls.span_kind`), and any other
span that failed; plain spans (an agent's wrapper, a framework's internals) are left out. Spans of
other code (no record, or a record whose call is over) are ignored. Nothing is exported.

``opentelemetry-sdk`` is imported only when capture is on and the pipeline uses OpenTelemetry
(its modules imported ``opentelemetry.trace``; the langfuse SDK does when imported): a pipeline
that emits no spans pays no import (about 0.35 s) and no processor. The check is repeated as
each call starts, so a pipeline that imports OpenTelemetry lazily is captured from its next
call on.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from evalrun.targets import CURRENT_RECORD
from evalrun.toolcalls import span_kind
from evalrun.trajectory import MAX_TEXT, clip

#: attributes kept per span at most (the rest are dropped; values are cut to MAX_TEXT)
MAX_ATTRIBUTES = 40
#: spans kept per record at most (a runaway loop must not fill memory)
MAX_SPANS = 500

Key = tuple[str, int]

_processor: Any = None  # the one RecordSpanProcessor of this process, once installed
_install_lock = threading.Lock()


class SpanCapture:
    """Spans by record for one run; :meth:`begin` before a call, :meth:`take` after it.

    The processor's side runs on whatever thread ends a span; it takes no lock: single dict
    and list operations are atomic in CPython, and a span that ends after its record's call
    was taken is dropped (its list is no longer reachable)."""

    def __init__(self) -> None:
        self._open: dict[Key, list[Any]] = {}
        self._owner: dict[int, Key] = {}  # span id -> record, while the span runs
        self.dropped = 0
        self.installed = False

    # --- the processor's side (any thread) ----------------------------------------------

    def on_start(self, span: Any) -> None:
        parent = span.parent
        if parent is not None:
            key = self._owner.get(parent.span_id)
            if key is not None:
                self._owner[span.context.span_id] = key
                return
        rec = CURRENT_RECORD.get()
        if rec is not None:
            key = (rec[0], rec[1])
            if key in self._open:
                self._owner[span.context.span_id] = key

    def on_end(self, span: Any) -> None:
        key = self._owner.pop(span.context.span_id, None)
        if key is None:
            return
        spans = self._open.get(key)
        if spans is None:  # the call is over (a span that outlived it)
            return
        if len(spans) < MAX_SPANS:
            spans.append(span)
        else:
            self.dropped += 1

    # --- the target's side --------------------------------------------------------------

    def begin(self, key: Key) -> None:
        if not self.installed and "opentelemetry.trace" in sys.modules:
            _install(self)
        self._open[key] = []

    def take(self, key: Key) -> tuple[list[dict[str, Any]], str | None] | None:
        """(the record's finished steps as ``Step`` dicts, in start order; why the pipeline
        ended early, or None), or None when the call emitted no span at all: the steps are its
        tool, retrieval and model spans and any other span that failed (a pipeline whose spans
        are all plain has an empty list: it ran, and called no tool); a failed root span (no
        parent among the record's spans) ended the pipeline early. The record is closed."""
        spans = self._open.pop(key, None)
        if not spans:
            return None
        spans.sort(key=_start)
        out = []
        ended: str | None = None
        ids = None
        for span in spans:
            attrs = span.attributes
            kind = span_kind(attrs) if attrs else "span"
            failed = span.status.status_code.value == _ERROR
            if kind != "span" or failed:
                step = step_of(span, attrs, kind, failed)
                out.append(step)
                if failed and ended is None:
                    if ids is None:
                        ids = {s.context.span_id for s in spans}
                    if span.parent is None or span.parent.span_id not in ids:
                        ended = f"the pipeline's span {step['name']!r} failed: {step['error']}"
        return out, ended

    def discard(self, key: Key) -> None:
        """Close the record without reading its spans (its call failed)."""
        self._open.pop(key, None)

    def close(self) -> None:
        if _processor is not None and _processor.capture is self:
            _processor.capture = None


def _start(span: Any) -> int:
    return span.start_time or 0


def _short(attrs: dict[str, Any]) -> dict[str, Any]:
    """Attribute values as JSON: sequences (OTel keeps tuples) as lists, long text cut."""
    for k, v in attrs.items():
        if (v.__class__ is str and len(v) > MAX_TEXT) or isinstance(v, tuple):
            return {k: clip(list(v) if isinstance(v, tuple) else v, MAX_TEXT) for k, v in attrs.items()}
    return attrs


_ERROR = 2  # opentelemetry.trace.StatusCode.ERROR.value


def step_of(span: Any, attrs: Any, kind: str, failed: bool) -> dict[str, Any]:
    """A span as a ``Step`` dict (see :class:`~evalrun.trajectory.Step`)."""
    d: dict[str, Any] = {"name": str(span.name), "kind": kind}
    if attrs:
        attrs = dict(attrs) if len(attrs) <= MAX_ATTRIBUTES else dict(list(attrs.items())[:MAX_ATTRIBUTES])
        d["attributes"] = _short(attrs)
    if span.start_time is not None and span.end_time is not None:
        d["latency_ms"] = round((span.end_time - span.start_time) / 1e6, 3)
    if failed:
        error = span.status.description or "error"
        for ev in span.events or ():
            if ev.name == "exception" and ev.attributes:
                error = f"{ev.attributes.get('exception.type', '')}: {ev.attributes.get('exception.message', '')}"
                break
        d["error"] = clip(error, 500)
    d["span_id"] = f"{span.context.span_id:016x}"
    parent = span.parent
    if parent is not None:
        d["parent_id"] = f"{parent.span_id:016x}"
    return d


def trajectory_of_spans(taken: tuple[list[dict[str, Any]], str | None] | None, base: dict[str, Any] | None
                        ) -> dict[str, Any] | None:
    """The record's trajectory (a ``Trajectory`` dict) with the steps :meth:`SpanCapture.take`
    gave added (``base``: what the target reported, already checked), or ``base`` when the call
    emitted no span; a failed root span ends it early."""
    if taken is None:
        return base
    steps, ended = taken
    traj = dict(base) if base is not None else {"tool_calls": []}
    traj["spans"] = steps
    if ended is not None and traj.get("truncated") is None:
        traj["truncated"] = ended
    return traj


def install() -> SpanCapture:
    """A capture for this run; its processor joins the process's tracer provider once the
    pipeline has imported OpenTelemetry (now, or as a later call starts)."""
    capture = SpanCapture()
    if "opentelemetry.trace" in sys.modules:
        _install(capture)
    return capture


def _install(capture: SpanCapture) -> None:
    global _processor
    from opentelemetry import trace
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

    with _install_lock:
        if _processor is None:
            class RecordSpanProcessor(SpanProcessor):
                """Hands each span to the run's capture, if a run is capturing."""

                capture: SpanCapture | None = None

                def on_start(self, span: Any, parent_context: Any = None) -> None:
                    c = self.capture
                    if c is not None:
                        c.on_start(span)

                def on_end(self, span: Any) -> None:
                    c = self.capture
                    if c is not None:
                        c.on_end(span)

            provider = trace.get_tracer_provider()
            if not hasattr(provider, "add_span_processor"):
                # no provider set yet (a proxy): set an SDK one, which others then share
                trace.set_tracer_provider(TracerProvider())
                provider = trace.get_tracer_provider()
            if not hasattr(provider, "add_span_processor"):
                raise RuntimeError("the process's OpenTelemetry tracer provider takes no span processor")
            processor = RecordSpanProcessor()
            provider.add_span_processor(processor)
            _processor = processor
        _processor.capture = capture
        capture.installed = True
