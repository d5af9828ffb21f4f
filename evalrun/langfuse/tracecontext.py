"""The live trace context: while a record's target call runs, its experiment item's task span
(the ids ``evalrun push`` gives it) is the current trace context, so what the pipeline traces
itself nests under the item instead of landing as a separate production trace.

- python targets run inside an OpenTelemetry context whose current span is the task span and
  which carries the experiment attributes the way the langfuse SDK propagates them (context
  values ``langfuse.propagated.experiment_*``), so ``@observe`` / ``langfuse.openai`` children
  nest, take the experiment environment and count in the experiment;
- exec targets get ``TRACEPARENT``, ``TRACESTATE`` and ``BAGGAGE`` (W3C, with the experiment
  attributes as ``langfuse_experiment_*`` baggage entries) in their environment;
- http targets get ``traceparent`` and ``baggage`` headers.

On for ``--push langfuse``, ``langfuse: {push: true}`` and ``langfuse: {trace_context: true}``
(``trace_context: false`` turns it off). The experiment is resolved when the run starts and
frozen in ``push_state.json``, so the push sends the task spans under exactly these ids.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from evalrun.langfuse import wire
from evalrun.targets import CURRENT_RECORD

if TYPE_CHECKING:
    from evalrun.runs import Manifest
    from evalrun.store import RunDir
    from evalrun.targets import Target


@dataclass
class TraceContext:
    run_id: str
    #: propagated key (``experiment_id``...) -> value, for every item of the run
    experiment: dict[str, str]

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

    def otel_context(self) -> Any:
        """The OTel context for the current record (None outside a record)."""
        cur = CURRENT_RECORD.get()
        if cur is None:
            return None
        from opentelemetry import baggage, context, trace

        item_id, trial, meta = cur
        tid, parent, task = self.ids(item_id, trial)
        span = trace.NonRecordingSpan(trace.SpanContext(int(tid, 16), int(parent, 16), is_remote=True,
                                                        trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED)))
        ctx = trace.set_span_in_context(span, context.Context())
        for key, value in self.propagated(item_id, meta, task).items():
            ctx = context.set_value(wire.PROPAGATED_CONTEXT_PREFIX + key, value, ctx)
            ctx = baggage.set_baggage(wire.BAGGAGE_PREFIX + key, value, ctx)
        return ctx

    def carrier(self) -> dict[str, str]:
        """W3C ``traceparent``/``tracestate``/``baggage`` for the current record ({} outside one)."""
        ctx = self.otel_context()
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
    return TraceContext(run_dir.id, experiment), note


def install(target: Target, run_dir: RunDir, manifest: Manifest, push: bool) -> None:
    """Give ``target`` the run's trace context when one is wanted; a note goes to stderr.
    (The engine calls it through ``RunOptions.on_start``, which the API and the CLI set.)"""
    import sys

    tc, note = setup(run_dir, manifest, push)
    if note:
        print(note, file=sys.stderr, flush=True)
    target.trace = tc
