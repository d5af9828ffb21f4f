"""The live trace context: while a record's target call runs, its experiment item's task span
(the ids ``evalrun push`` gives it) is the current trace context, so what the pipeline traces
itself nests under the item instead of landing as a separate production trace.

- python targets run inside an OpenTelemetry context whose current span is the task span and
  which carries the experiment attributes the way the langfuse SDK propagates them in-process
  (context values ``langfuse.propagated.experiment_*``, never baggage, which an
  HTTP-instrumented pipeline would send on to its LLM provider), so ``@observe`` /
  ``langfuse.openai`` children nest, take the experiment environment and count in the experiment;
- every context claims its trace the way the SDK's ``start_as_current_observation`` does (the
  ``langfuse_trace_id`` baggage entry), so the pipeline's first span is not a second app root;
- exec targets get ``TRACEPARENT``, ``TRACESTATE`` and ``BAGGAGE`` in their environment, http
  targets ``traceparent`` and ``baggage`` headers: W3C, the baggage holding only what a child
  process's SDK needs (the trace claim and the experiment's ids and name as
  ``langfuse_experiment_*``: no git commit, branch, fingerprints or item metadata). An entry over
  the W3C limits, which the propagator would drop, is reported once on stderr.

A python target's own generations are watched (a span processor on the global tracer provider
the langfuse SDK registers): the trace of a record whose pipeline reported a generation is noted
in the run directory (``langfuse_generations.txt``), and the push then leaves cost and usage to
the pipeline's generation instead of counting them twice (``langfuse: {cost: ...}`` decides).

On for ``--push langfuse``, ``langfuse: {push: true}`` and ``langfuse: {trace_context: true}``
(``trace_context: false`` turns it off). The experiment is resolved when the run starts and
frozen in ``push_state.json``, so the push sends the task spans under exactly these ids.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from evalrun.langfuse import wire
from evalrun.targets import CURRENT_RECORD

if TYPE_CHECKING:
    from evalrun.runs import Manifest
    from evalrun.store import RunDir
    from evalrun.targets import Target


#: the propagated keys a child process's SDK needs to join the experiment item; the others
#: (experiment and item metadata: git commit, branch, fingerprints...) stay in-process
CHILD_KEYS = ("experiment_id", "experiment_name", "experiment_dataset_id", "experiment_item_id",
              "experiment_item_root_observation_id")
#: W3C baggage limits as OpenTelemetry's W3CBaggagePropagator enforces them (it drops what is over)
BAGGAGE_MAX_PAIR = 4096
BAGGAGE_MAX_HEADER = 8192


class GenerationWatch:
    """An OpenTelemetry span processor noting which of the run's traces got a generation from
    the pipeline itself, so the push does not count that call's cost and tokens twice."""

    def __init__(self, path: Path, unwatched_mark: str) -> None:
        self.path = path
        self.mark = unwatched_mark
        self.expected: set[str] = set()
        self.seen: set[str] = set()
        self.lock = threading.Lock()

    def processor(self) -> Any:
        """This watch as an OpenTelemetry SDK span processor (which never raises into the pipeline)."""
        from opentelemetry.sdk.trace import SpanProcessor

        watch = self

        class _Processor(SpanProcessor):
            def on_end(self, span: Any) -> None:
                try:
                    watch.on_end(span)
                except Exception:  # noqa: S110 - a watch must not break the pipeline it watches
                    pass

        return _Processor()

    def unwatched(self, tid: str) -> None:
        """A record called before the watch could attach: its pipeline's generations are unseen
        (the push counts it as the pipeline's when any watched record's pipeline reported one)."""
        with self.lock:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(self.mark + tid + "\n")

    def on_end(self, span: Any) -> None:
        attrs = getattr(span, "attributes", None) or {}
        if attrs.get(wire.TYPE) != "generation" or not (attrs.get(wire.USAGE_DETAILS) or attrs.get(wire.COST_DETAILS)):
            return  # a generation Langfuse can cost: it carries tokens (priced by model) or a cost
        tid = format(span.context.trace_id, "032x")
        with self.lock:
            if tid not in self.expected or tid in self.seen:
                return
            self.seen.add(tid)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(tid + "\n")


@dataclass
class TraceContext:
    run_id: str
    #: propagated key (``experiment_id``...) -> value, for every item of the run
    experiment: dict[str, str]
    #: watches the pipeline's own generations (python targets)
    watch: GenerationWatch | None = None
    _watching: bool = False
    _reported: set[str] = field(default_factory=set)

    def ids(self, item_id: str, trial: int) -> tuple[str, str, str]:
        """(trace id, parent span id, task span id) of a record: the ones the push uses."""
        from evalrun.langfuse.push import parent_span_for, task_span_id

        tid, parent = parent_span_for(self.run_id, item_id, trial)
        return tid, parent, task_span_id(tid)

    def propagated(self, item_id: str, item_meta: dict[str, Any], task_span: str) -> dict[str, str]:
        values = dict(self.experiment)
        values["experiment_item_id"] = item_id
        values["experiment_item_root_observation_id"] = task_span
        if item_meta:
            values["experiment_item_metadata"] = wire.serialize(item_meta) or ""
        return values

    def otel_context(self, for_child: bool = False) -> Any:
        """The OTel context for the current record (None outside a record): the task span as the
        remote parent, the experiment attributes as in-process context values, the trace claimed
        in baggage; ``for_child``: the experiment's ids in baggage too (exec and http targets)."""
        cur = CURRENT_RECORD.get()
        if cur is None:
            return None
        from opentelemetry import baggage, context, trace

        item_id, trial, meta = cur
        tid, parent, task = self.ids(item_id, trial)
        self._watch(tid)
        span = trace.NonRecordingSpan(trace.SpanContext(int(tid, 16), int(parent, 16), is_remote=True,
                                                        trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED)))
        ctx = trace.set_span_in_context(span, context.Context())
        values = self.propagated(item_id, meta, task)
        for key, value in values.items():
            ctx = context.set_value(wire.PROPAGATED_CONTEXT_PREFIX + key, value, ctx)
        # the app-root claim, as the SDK's start_as_current_observation sets it
        entries = {wire.TRACE_ID_BAGGAGE: tid}
        if for_child:
            entries.update((wire.BAGGAGE_PREFIX + k, values[k]) for k in CHILD_KEYS if values.get(k))
        size = 0
        for key, value in entries.items():
            pair = len(quote(key, safe="")) + 1 + len(quote(value, safe=""))
            if pair > BAGGAGE_MAX_PAIR or size + pair + 1 > BAGGAGE_MAX_HEADER:
                self._report(key, pair)
                continue
            size += pair + 1
            ctx = baggage.set_baggage(key, value, ctx)
        return ctx

    def _report(self, key: str, size: int) -> None:
        if key in self._reported:
            return
        self._reported.add(key)
        print(f"langfuse: baggage entry {key} ({size} bytes) is over the W3C limits "
              f"({BAGGAGE_MAX_PAIR} per entry, {BAGGAGE_MAX_HEADER} in all); child processes do not get it",
              file=sys.stderr, flush=True)

    def _watch(self, tid: str) -> None:
        if self.watch is None:
            return
        self.watch.expected.add(tid)
        if not self._attach():
            self.watch.unwatched(tid)

    def _attach(self) -> bool:
        """Watch the global tracer provider once it is the SDK's (the langfuse client registers
        it when first made, often inside the first call)."""
        if self.watch is None or self._watching:
            return self._watching
        from opentelemetry import trace

        provider = trace.get_tracer_provider()
        if hasattr(provider, "add_span_processor"):
            provider.add_span_processor(self.watch.processor())
            self._watching = True
        return self._watching

    def carrier(self) -> dict[str, str]:
        """W3C ``traceparent``/``tracestate``/``baggage`` for the current record ({} outside one)."""
        ctx = self.otel_context(for_child=True)
        if ctx is None:
            return {}
        from opentelemetry.baggage.propagation import W3CBaggagePropagator
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        out: dict[str, str] = {}
        TraceContextTextMapPropagator().inject(out, ctx)
        W3CBaggagePropagator().inject(out, ctx)
        return out

    def env(self) -> dict[str, str]:
        """The carrier as environment variables (the OTel convention for processes)."""
        return {k.upper(): v for k, v in self.carrier().items()}

    async def arun(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``await fn(*args)`` with the current record's context attached (in this task)."""
        ctx = self.otel_context()
        if ctx is None:
            return await fn(*args)
        from opentelemetry import context

        token = context.attach(ctx)
        try:
            return await fn(*args)
        finally:
            context.detach(token)
            self._attach()  # the call may have made the langfuse client (and its provider)

    def bind(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` to run in another thread under the current record's context."""
        ctx = self.otel_context()
        if ctx is None:
            return fn
        from opentelemetry import context

        def bound(*args: Any) -> Any:
            token = context.attach(ctx)
            try:
                return fn(*args)
            finally:
                context.detach(token)
                self._attach()  # the call may have made the langfuse client (and its provider)

        return bound


def wanted(manifest: Manifest, push: bool) -> bool:
    settings = (manifest.get("config") or {}).get("langfuse") or {}
    explicit = settings.get("trace_context")
    if explicit is not None:
        return bool(explicit)
    return push or bool(settings.get("push"))


def setup(run_dir: Any, manifest: Manifest, push: bool, budget: float = 10.0) -> tuple[TraceContext | None, str | None]:
    """The run's trace context (None when not wanted) and a note when the experiment could not be
    resolved (then only the trace and span ids propagate). Never raises for Langfuse trouble."""
    if not wanted(manifest, push):
        return None, None
    from evalrun.errors import UsageError
    from evalrun.langfuse.push import Context, PushState, freeze_context

    state = PushState.load(run_dir)
    note = None
    ctx = Context(**state.context) if state.context else None
    group = manifest.get("group") or {}
    if ctx is None:
        try:
            overrides = None
            if group.get("variant"):  # a variant is pushed as its own experiment run <run name>/<variant>
                from evalrun.langfuse.push import run_settings

                base = run_settings(manifest).get("run_name") or f"{manifest.get('eval')}-{group.get('id')}"
                overrides = {"run_name": f"{base}/{group['variant']}"}
            ctx = freeze_context(run_dir, manifest, state, budget=budget, overrides=overrides)
        except UsageError as e:
            note = f"langfuse: trace context without experiment attributes ({e})"
        except Exception as e:  # unreachable, refused: the run goes on, the push resolves later
            note = f"langfuse: trace context without experiment attributes ({type(e).__name__}: {e})"
    experiment: dict[str, str] = {}
    if ctx is not None:
        experiment = {k: v for k, v in {
            "experiment_id": ctx.experiment_id, "experiment_name": ctx.run_name,
            "experiment_metadata": wire.serialize(ctx.metadata), "experiment_dataset_id": ctx.dataset_id,
        }.items() if v}
    from evalrun.langfuse.push import GENERATIONS_FILE, UNWATCHED_MARK

    watch = GenerationWatch(run_dir.path / GENERATIONS_FILE, UNWATCHED_MARK)
    return TraceContext(run_dir.id, experiment, watch), note


def install(target: Target, run_dir: RunDir, manifest: Manifest, push: bool) -> None:
    """Give ``target`` the run's trace context when one is wanted; a note goes to stderr.
    (The engine calls it through ``RunOptions.on_start``, which the API and the CLI set.)"""
    import sys

    tc, note = setup(run_dir, manifest, push)
    if note:
        print(note, file=sys.stderr, flush=True)
    target.trace = tc
