"""Send a finished (or interrupted) run to Langfuse as an experiment run, and remember in the run
directory what Langfuse has accepted.

What goes out, per record: one trace of two spans shaped as the SDK's experiment runner shapes
them (``experiment-item-run`` with an ``experiment-item-task`` child carrying the experiment
attributes Langfuse's OTel ingestion reads: experiment id and name, dataset and item id,
expected output, metadata), timed by the record's own start and latency, level ERROR when the
target failed; then the record's scores attached to the task observation. Per run: aggregate
scores attached to the experiment (``datasetRunId``).

Every id is derived from the run id (trace and span ids, score ids, the experiment id as Langfuse
derives it), so sending again upserts and never duplicates. ``push_state.json`` in the run
directory lists what Langfuse acknowledged; a later ``evalrun push`` sends only the rest. Score
batches answered 207 (partly rejected) are split and resent until each rejected score is known
by id; those stay in the state with Langfuse's message, and the push is not called complete.
Keys are never written: the state holds the base URL and ids only.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from evalrun._version import __version__
from evalrun.errors import ExitCode, UsageError
from evalrun.langfuse import otlp, wire
from evalrun.langfuse.client import Client, Credentials, Refused, Unreachable, credentials, name_filter
from evalrun.langfuse.otlp import STATUS_ERROR, STATUS_UNSET, SpanData
from evalrun.records import Record, Score
from evalrun.runs import Manifest, Summary
from evalrun.store import RunDir, write_json_atomic

STATE_FILE = "push_state.json"
#: the traces (one id a line) whose pipeline traced a generation of its own during the run,
#: written by the live trace context (tracecontext.GenerationWatch)
GENERATIONS_FILE = "langfuse_generations.txt"
#: marks a line naming a trace called before the watch could see it (the SDK not yet set up)
UNWATCHED_MARK = "?"
COST_AUTO, COST_EVALRUN, COST_PIPELINE = "auto", "evalrun", "pipeline"
#: which Langfuse API a push speaks, found once per run (the first answer of GET /api/public/experiments)
SERVER_V4 = "v4"
SERVER_V3 = "v3"
SERVER_MODES = {SERVER_V4: "Langfuse v4 experiments API",
                SERVER_V3: "Langfuse v3 API: traces, scores and dataset run items"}
STATE_VERSION = 1
#: records per OTLP request (two spans each) and a byte cap, well under Langfuse's body limits
TRACE_BATCH = 250
TRACE_BATCH_BYTES = 3_000_000
#: scores per request; the SDK's score endpoint limit is 1 MB per body
SCORE_BATCH = 250
SCORE_BATCH_BYTES = 900_000
RUN_ITEM_KEY = "run-item:"
SCORE_ARRAY = "array"
#: score requests in flight when the server takes one score object per request
OBJECT_SCORE_REQUESTS = 8
SCORE_OBJECT = "object"
#: how long comments and messages may get before they are cut
MAX_TEXT = 4000


def _hex(*parts: Any, n: int) -> str:
    return wire.digest(*parts, n=n)


def _io(value: Any) -> Any:
    """A string that is itself valid JSON ("42", "true") goes JSON-encoded: Langfuse parses
    input/output text as JSON where it can, and the string would come back as a number. Media
    from a Langfuse dataset goes back as its reference string."""
    if isinstance(value, dict | list):
        return wire.media_references(value)
    if isinstance(value, str):
        try:
            json.loads(value)
        except ValueError:
            return value
        return json.dumps(value)
    return value


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _parse_iso(s: str | None) -> float | None:
    if not s:
        return None
    try:
        return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


# -- the state file -----------------------------------------------------------------------------

@dataclass
class PushState:
    context: dict[str, Any] | None = None
    settings: dict[str, str] | None = None  # the eval file's langfuse strings as expanded at run time
    traces_sent: set[str] = field(default_factory=set)
    scores_sent: set[str] = field(default_factory=set)
    rejected: dict[str, str] = field(default_factory=dict)  # trace or score id -> Langfuse's message
    unsendable: dict[str, str] = field(default_factory=dict)  # score id -> why Langfuse cannot hold it
    status: str = "pending"
    last_error: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    #: how this Langfuse takes POST /api/public/scores: "array" (SDK 5.2.0's batch) or "object"
    #: (one score per request, as the server source's PostScoresBodyV1); None until it answered
    score_body: str | None = None
    #: Langfuse v3 only: traces linked to the dataset run (POST /api/public/dataset-run-items
    #: takes no id of ours, so a resend would add a second run item), and the run's id
    run_items_sent: set[str] = field(default_factory=set)
    dataset_run_id: str | None = None
    _saved_at: float = 0.0

    def save_soon(self, run_dir: RunDir) -> None:
        """Save at most every half second: a crash costs a resend of the last batches, which
        the deterministic ids turn into upserts."""
        if time.monotonic() - self._saved_at > 0.5:
            self.save(run_dir)

    @classmethod
    def load(cls, run_dir: RunDir) -> PushState:
        p = run_dir.path / STATE_FILE
        if not p.is_file():
            return cls()
        try:
            d = json.loads(p.read_text(encoding="utf-8"))
        except ValueError:
            # a state we cannot read only costs a resend: ids are deterministic, so nothing duplicates
            return cls()
        return cls(context=d.get("context"), settings=d.get("settings"), traces_sent=set(d.get("traces_sent") or []),
                   scores_sent=set(d.get("scores_sent") or []), rejected=dict(d.get("rejected") or {}),
                   unsendable=dict(d.get("unsendable") or {}),
                   status=d.get("status", "pending"), last_error=d.get("last_error"),
                   history=list(d.get("history") or []), score_body=d.get("score_body"),
                   run_items_sent=set(d.get("run_items_sent") or []), dataset_run_id=d.get("dataset_run_id"))

    def save(self, run_dir: RunDir) -> None:
        self._saved_at = time.monotonic()
        write_json_atomic(run_dir.path / STATE_FILE, {
            "version": STATE_VERSION, "status": self.status, "last_error": self.last_error,
            "context": self.context, "settings": self.settings, "traces_sent": sorted(self.traces_sent),
            "scores_sent": sorted(self.scores_sent), "rejected": self.rejected,
            "unsendable": self.unsendable, "history": self.history[-20:], "score_body": self.score_body,
            "run_items_sent": sorted(self.run_items_sent), "dataset_run_id": self.dataset_run_id,
        })


@dataclass
class PushResult:
    status: str  # complete | pending | rejected
    run_name: str | None
    experiment_id: str | None
    traces: tuple[int, int]  # (acknowledged, planned)
    scores: tuple[int, int]
    rejected: dict[str, str]
    error: str | None
    waited: float = 0.0
    unsendable: dict[str, str] = field(default_factory=dict)
    server: str | None = None  # SERVER_V4 / SERVER_V3: which API the push used
    run_items: tuple[int, int] | None = None  # Langfuse v3: dataset run items (created, planned)

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.OK if self.status == "complete" else ExitCode.RUN_FAILED

    @property
    def delivered(self) -> bool:
        return self.status == "complete"

    def line(self, run_id: str) -> str:
        t, s = self.traces, self.scores
        what = f"{t[0]}/{t[1]} traces, {s[0]}/{s[1]} scores"
        if self.run_items is not None:
            what += f", {self.run_items[0]}/{self.run_items[1]} dataset run items"
        if self.status == "complete":
            line = f"langfuse: pushed {what} as experiment run '{self.run_name}'"
            if self.server:
                line += f" ({SERVER_MODES[self.server]})"
            if self.unsendable:
                first = next(iter(self.unsendable.values()))
                line += (f"; {len(self.unsendable)} score values Langfuse cannot hold were not sent "
                         f"({first}; all in push_state.json)")
            return line
        if self.status == "rejected":
            first = next(iter(self.rejected.values()), "")
            return (f"langfuse: Langfuse rejected {len(self.rejected)} of them ({first}); {what} accepted; "
                    f"fix and resend with  evalrun push {run_id}")
        return f"langfuse: push pending ({self.error}); {what} delivered; send the rest with  evalrun push {run_id}"


# -- what a record becomes --------------------------------------------------------------------

def declared_score_types(manifest: Manifest) -> dict[str, str]:
    """Per scorer, its Langfuse data type as its class declares it (``langfuse_data_type``),
    overridden by ``langfuse: {score_types: ...}``: never inferred from a run's values, so the
    same scorer is one score column across runs."""
    from evalrun.scoring.base import scorer_class

    cfg = manifest.get("config") or {}
    out: dict[str, str] = {}
    for sc in cfg.get("scorers") or []:
        if isinstance(sc, str):
            sc = {"type": sc}
        if not isinstance(sc, dict) or not sc.get("type"):
            continue
        try:
            dtype = scorer_class(str(sc["type"])).langfuse_data_type
        except (KeyError, ImportError, AttributeError):
            dtype = "NUMERIC"
        out[str(sc.get("name") or sc["type"])] = dtype
    out.update((cfg.get("langfuse") or {}).get("score_types") or {})
    return out


def score_entries(name: str, score: Score, dtype: str = "NUMERIC"
                  ) -> tuple[list[tuple[str, float | str, str]], str | None]:
    """((score name, value, Langfuse data type)..., problem) for one evalrun Score.

    ``dtype`` is the scorer's declared type (:func:`declared_score_types`): BOOLEAN sends the
    verdict as 1/0; NUMERIC sends the value, with the verdict beside it as ``<name>.passed``;
    CATEGORICAL sends the label (``extra["label"]``, else the value as text). A string
    ``extra["label"]`` is also CATEGORICAL ``<name>.label``. A scorer error (a NaN or infinite
    value is one) is no score: it is in the trace's metadata. A value that does not fit the
    declared type (0.5 from a BOOLEAN scorer without a verdict) is the problem, not sent.
    """
    if score.error is not None:
        return [], None
    out: list[tuple[str, float | str, str]] = []
    problem = None
    v, passed = score.value, score.passed
    label = (score.extra or {}).get("label")
    label = label.strip()[:500] if isinstance(label, str) and label.strip() else None
    number = float(v) if v is not None and isinstance(v, int | float) and not isinstance(v, bool) else None
    if dtype == "BOOLEAN":
        verdict = passed if passed is not None else (bool(v) if number is not None and number in (0.0, 1.0) else None)
        if verdict is not None:
            out.append((name, 1.0 if verdict else 0.0, "BOOLEAN"))
        elif v is not None:
            problem = f"{name}: value {v!r} is not a verdict (BOOLEAN)"
    elif dtype == "CATEGORICAL":
        text = label or (str(v)[:500] if v is not None else None)
        if text:
            out.append((name, text, "CATEGORICAL"))
        label = None
    else:
        if number is not None:
            out.append((name, number, "NUMERIC"))
        if passed is not None:
            out.append((f"{name}.passed", 1.0 if passed else 0.0, "BOOLEAN"))
    if label:
        out.append((f"{name}.label", label, "CATEGORICAL"))
    return out, problem


@dataclass
class Context:
    """Everything about the experiment run that ids and attributes depend on; frozen in the state."""

    run_id: str
    run_name: str
    description: str | None
    metadata: dict[str, str]
    experiment_id: str
    dataset_name: str | None
    dataset_id: str | None
    dataset_version: str | None
    base_url: str
    score_types: dict[str, str] = field(default_factory=dict)
    repeat: int = 1  # trials per item: each trial is its own trace sharing the item id
    items_checked: bool = False  # a local dataset's item ids were found in the Langfuse dataset
    server: str = SERVER_V4  # the API this Langfuse speaks (SERVER_V4 / SERVER_V3)
    #: set per push from the eval file, not frozen: who reports the target call's cost
    #: (COST_AUTO: the pipeline when it traced a generation of its own, else evalrun), and the
    #: version Langfuse shows on every observation (only what the user names)
    cost: str = "auto"
    version: str | None = None
    own_generations: frozenset[str] = frozenset()

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("cost", "version", "own_generations")}

    def pipeline_owns_cost(self, trace_id: str) -> bool:
        return self.cost == COST_PIPELINE or (self.cost == COST_AUTO and trace_id in self.own_generations)


def trace_id_for(run_id: str, item_id: str, trial: int = 0) -> str:
    """A record's trace. With repeats every trial is a trace of its own sharing the experiment
    item id: Langfuse derives an experiment item from each root observation
    (``experiment.item.root_observation_id``, OtelIngestionProcessor.extractExperimentFields)
    and reads its scores there, so a trial nested under a shared item span would show none."""
    return wire.trace_id(f"evalrun:{run_id}:{item_id}:{trial}")


def parent_span_for(run_id: str, item_id: str, trial: int) -> tuple[str, str]:
    """(trace id, span id) a record's own observations belong under: its task span."""
    tid = trace_id_for(run_id, item_id, trial)
    return tid, task_span_id(tid)


def task_span_id(trace_id: str) -> str:
    return wire.span_id(trace_id, "experiment-item-task")


def experiment_attributes(ctx: Context, item_id: str, item_meta: dict[str, Any], trace_id: str) -> dict[str, Any]:
    """The experiment attributes every observation of an item's trace carries."""
    return {k: v for k, v in {
        wire.ENVIRONMENT: wire.EXPERIMENT_ENVIRONMENT,
        wire.EXPERIMENT_DESCRIPTION: ctx.description,
        wire.EXPERIMENT_ID: ctx.experiment_id,
        wire.EXPERIMENT_NAME: ctx.run_name,
        wire.EXPERIMENT_METADATA: wire.serialize(ctx.metadata),
        wire.EXPERIMENT_DATASET_ID: ctx.dataset_id,
        wire.EXPERIMENT_ITEM_ID: item_id,
        wire.EXPERIMENT_ITEM_METADATA: wire.serialize(item_meta) if item_meta else None,
        wire.EXPERIMENT_ITEM_ROOT_OBSERVATION_ID: task_span_id(trace_id),
        wire.VERSION: ctx.version,
    }.items() if v is not None}


_DETAILS = {"prompt_tokens_details": "input", "input_tokens_details": "input",
            "completion_tokens_details": "output", "output_tokens_details": "output"}
_TOKENS = {"input": ("input_tokens", "prompt_tokens", "input"), "output": ("output_tokens", "completion_tokens", "output"),
           "total": ("total_tokens", "total")}
#: flat keys naming a part of the input or output count (OpenAI's details, flattened)
_PARTS = {"cached_tokens": ("input", "input_cached_tokens"), "reasoning_tokens": ("output", "output_reasoning_tokens"),
          "audio_tokens": ("input", "input_audio_tokens")}
#: Anthropic's cache counts, which its input_tokens leaves out
_APART = {"cache_read_input_tokens": "input_cache_read", "cache_creation_input_tokens": "input_cache_creation"}


def _count(v: Any) -> int | None:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
        return None
    return int(v) if float(v).is_integer() else None


def usage_details(raw: dict[str, Any] | None) -> dict[str, int]:
    """A target's token counts as Langfuse's disjoint usage buckets: ``input`` and ``output``
    without their cached / reasoning parts, the parts under Langfuse's names
    (``input_cached_tokens``, ``output_reasoning_tokens``, ``input_<detail>``...), and ``total``.
    As the server maps OpenAI usage (OpenAICompletionUsageSchema in
    packages/shared/src/server/ingestion/types.ts); keys it would not know are left out, since
    with no ``total`` Langfuse sums every key (worker/src/services/IngestionService/index.ts)."""
    raw = raw or {}
    flat = {k: n for k, v in raw.items() if (n := _count(v)) is not None}
    sides: dict[str, int | None] = {side: next((flat[k] for k in keys if k in flat), None)
                                    for side, keys in _TOKENS.items()}
    parts: dict[str, tuple[str, int]] = {}
    for key, side in _DETAILS.items():
        if isinstance(raw.get(key), dict):
            for k, v in raw[key].items():
                n = _count(v)
                if n:
                    parts[f"{side}_{k}"] = (side, n)
    for k, (side, name) in _PARTS.items():
        if flat.get(k) and name not in parts:
            parts[name] = (side, flat[k])
    out: dict[str, int] = {}
    for side in ("input", "output"):
        whole = sides[side]
        if whole is not None:
            out[side] = max(whole - sum(n for s, n in parts.values() if s == side), 0)
    for name, (_side, n) in parts.items():
        out[name] = n
    for k, name in _APART.items():
        if flat.get(k):
            out[name] = flat[k]
    if out:
        out["total"] = sides["total"] if sides["total"] is not None and not any(k in flat for k in _APART) \
            else sum(out.values())
    return out


def generation_details(rec: Record) -> tuple[dict[str, int], float | None]:
    """(usage_details, cost in USD) of a record's target call, as Langfuse names them."""
    usage = rec.usage or {}
    cost = usage.get("cost_usd")
    if isinstance(cost, int | float) and not isinstance(cost, bool) and math.isfinite(cost):
        return usage_details(usage), float(cost)
    return usage_details(usage), None


def _span(name: str, trace_id: str, span: str, parent: str | None, attrs: dict[str, Any],
          status: tuple[int, str | None], start_ns: int, end_ns: int) -> SpanData:
    return SpanData(name, trace_id, span, parent, attrs, start_ns, end_ns, status[0], status[1])


def _record_meta(ctx: Context, rec: Record) -> dict[str, Any]:
    item_meta = rec.metadata if isinstance(rec.metadata, dict) else {}
    run_meta: dict[str, Any] = {"experiment_name": ctx.metadata.get("eval", ctx.run_name),
                                "experiment_run_name": ctx.run_name}
    if ctx.dataset_id:
        run_meta.update(dataset_id=ctx.dataset_id, dataset_item_id=rec.item_id)
    extra: dict[str, Any] = {"evalrun_trial": rec.trial, "evalrun_attempts": rec.attempts,
                             "latency_ms": rec.latency_ms}
    if rec.usage:
        extra["usage"] = rec.usage
    scorer_errors = {n: s.error for n, s in rec.scores.items() if s.error is not None}
    if scorer_errors:
        extra["scorer_errors"] = scorer_errors
    # run keys first and last, as the SDK does: the attribute limit trims user keys first, and
    # run keys win over user keys of the same name
    return {**run_meta, **item_meta, **ctx.metadata, **extra, **run_meta}


def _outcome(rec: Record) -> tuple[Any, str | None, str | None]:
    """(output, level, status message) of a record."""
    if rec.error:
        message = f"{rec.error.get('type', 'Error')}: {rec.error.get('message', '')}"[:MAX_TEXT]
        return f"Error: {message}", "ERROR", message
    return rec.output, None, None


def _status(level: str | None, message: str | None) -> tuple[int, str | None]:
    return (STATUS_ERROR, message) if level == "ERROR" else (STATUS_UNSET, None)


def _times(rec: Record, fallback_start: float) -> tuple[int, int]:
    start = rec.started_at or fallback_start
    return int(start * 1e9), int((start + (rec.latency_ms or 0.0) / 1000.0) * 1e9)


def _tool_spans(rec: Record, trace_id: str, parent: str, experiment_attrs: dict[str, Any], start_ns: int,
                end_ns: int) -> list[Any]:
    """The tool calls the target reported (a chat target's tool loop, ``Output(tool_calls=...)``)
    as observations of type ``tool``: arguments in, result out, a failed call at level ERROR.
    Calls read from the pipeline's own spans are not sent again (its spans went where it sends
    them)."""
    calls = (rec.trajectory or {}).get("tool_calls") if isinstance(rec.trajectory, dict) else None
    out = []
    for i, call in enumerate(calls if isinstance(calls, list) else []):
        if not isinstance(call, dict) or not isinstance(call.get("name"), str) or call.get("source") == "spans":
            continue
        error = call.get("error") if isinstance(call.get("error"), str) else None
        args = call.get("arguments") if call.get("arguments") is not None else call.get("raw_arguments")
        attrs = {**experiment_attrs, **wire.observation_attributes(
            kind="tool", input=args, output=call.get("result"), level="ERROR" if error else None,
            status_message=error, metadata={"tool_call_id": call["id"]} if isinstance(call.get("id"), str) else None)}
        out.append(_span(call["name"], trace_id, wire.span_id(trace_id, "tool", str(i), parent), parent, attrs,
                         _status("ERROR" if error else None, error), start_ns, end_ns))
    return out


def _call_spans(rec: Record, trace_id: str, parent: str, experiment_attrs: dict[str, Any],
                fallback_start: float, pipeline_owns_cost: bool = False) -> list[Any]:
    """The target call as a generation (model, usage, cost, prompt version) and each judge's
    calls as an evaluator observation (their own model, usage and cost), under ``parent``.

    ``pipeline_owns_cost``: the pipeline reported its own generation for this call (or the eval
    file says ``langfuse: {cost: pipeline}``); Langfuse sums the cost and tokens of every
    generation of a trace, so the target call is then a plain span with them in its metadata."""
    output, level, message = _outcome(rec)
    start_ns, end_ns = _times(rec, fallback_start)
    spans = []
    usage, cost = generation_details(rec)
    tmeta = rec.target_metadata if isinstance(rec.target_metadata, dict) else {}
    if usage or cost is not None or tmeta.get("model"):
        call_input: Any = _io(rec.input)
        messages = tmeta.get("messages")
        if isinstance(messages, list) and messages:
            call_input = messages  # what the model was sent: the prompt rendered for the item
        kind = "span" if pipeline_owns_cost else "generation"
        meta = {"usage": rec.usage, "cost_owner": "pipeline"} if pipeline_owns_cost else None
        gen = {**experiment_attrs, **wire.observation_attributes(kind=kind, input=call_input,
                                                                 output=_io(output), metadata=meta,
                                                                 level=level, status_message=message)}
        model = tmeta.get("model") or (rec.usage or {}).get("model")
        if isinstance(model, str) and model and not pipeline_owns_cost:
            gen[wire.MODEL] = model
            params = tmeta.get("model_parameters")
            if isinstance(params, dict) and params:
                gen[wire.MODEL_PARAMETERS] = wire.serialize(params)
        if usage and not pipeline_owns_cost:
            gen[wire.USAGE_DETAILS] = wire.serialize(usage)
        if cost is not None and not pipeline_owns_cost:
            gen[wire.COST_DETAILS] = wire.serialize({"total": cost})
        prompt = tmeta.get("prompt")
        if isinstance(prompt, dict) and prompt.get("name") and isinstance(prompt.get("version"), int) \
                and not pipeline_owns_cost:
            gen[wire.PROMPT_NAME] = str(prompt["name"])
            gen[wire.PROMPT_VERSION] = prompt["version"]
        spans.append(_span("target-call", trace_id, wire.span_id(trace_id, "generation", parent), parent, gen,
                           _status(level, message), start_ns, end_ns))
    spans += _tool_spans(rec, trace_id, parent, experiment_attrs, start_ns, end_ns)
    for scorer, score in rec.scores.items():
        judged = score.usage
        if not isinstance(judged, dict) or not judged.get("calls"):
            continue
        ev = {**experiment_attrs, **wire.observation_attributes(kind="evaluator", output=score.to_dict())}
        if isinstance(judged.get("model"), str):
            ev[wire.MODEL] = judged["model"]
        ev[wire.USAGE_DETAILS] = wire.serialize(usage_details(
            {"prompt_tokens": judged.get("prompt_tokens") or 0,
             "completion_tokens": judged.get("completion_tokens") or 0}))
        if isinstance(judged.get("cost_usd"), int | float):
            ev[wire.COST_DETAILS] = wire.serialize({"total": float(judged["cost_usd"])})
        spans.append(_span(scorer, trace_id, wire.span_id(trace_id, "evaluator", scorer, parent), parent, ev,
                           _status(None, None), end_ns, end_ns))
    return spans


def _item_spans(ctx: Context, rec: Record, trace_id: str, fallback_start: float) -> list[Any]:
    """One record's trace, shaped as the SDK's experiment runner shapes it:
    ``experiment-item-run`` > ``experiment-item-task`` (the experiment item's root observation),
    and under the task the record's own observations."""
    run_span = wire.span_id(trace_id, "experiment-item-run")
    task_span = task_span_id(trace_id)
    item_meta = rec.metadata if isinstance(rec.metadata, dict) else {}
    experiment_attrs = experiment_attributes(ctx, rec.item_id, item_meta, trace_id)
    expected = wire.serialize(_io(rec.expected_output))
    if expected is not None:
        experiment_attrs[wire.EXPERIMENT_ITEM_EXPECTED_OUTPUT] = expected
    if ctx.dataset_id and ctx.dataset_version:
        experiment_attrs[wire.EXPERIMENT_ITEM_VERSION] = ctx.dataset_version
    output, level, message = _outcome(rec)
    observation = wire.observation_attributes(kind="span", input=_io(rec.input), output=_io(output),
                                              metadata=_record_meta(ctx, rec), level=level,
                                              status_message=message)
    start_ns, end_ns = _times(rec, fallback_start)
    spans = _call_spans(rec, trace_id, task_span, experiment_attrs, fallback_start, ctx.pipeline_owns_cost(trace_id))
    status = _status(level, message)
    root_observation = dict(observation)
    for k in (wire.INPUT, wire.OUTPUT):
        text = observation.get(k)
        if text and wire.DATA_URI_MARK in text:
            # inline media goes to Langfuse once, on the task span; the root span names it
            try:
                value = json.loads(text) if text[:1] in '[{"' else text
            except ValueError:
                value = text
            root_observation[k] = wire.serialize(wire.without_data_uris(value))
    spans[:0] = [
        _span("experiment-item-task", trace_id, task_span, run_span, {**experiment_attrs, **observation}, status,
              start_ns, end_ns),
        _span("experiment-item-run", trace_id, run_span, None, {wire.IS_APP_ROOT: True, **experiment_attrs,
                                                                **root_observation}, status,
              start_ns, end_ns),
    ]
    return spans


def _item_scores(ctx: Context, rec: Record, trace_id: str, fallback_start: float,
                 problems: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """A record's scores on its experiment item's root observation (the task span), where
    Langfuse reads an item's scores."""
    types = ctx.score_types
    target = task_span_id(trace_id)
    when = _iso((rec.started_at or fallback_start) + (rec.latency_ms or 0.0) / 1000.0)
    out = []
    for scorer, score in rec.scores.items():
        entries, problem = score_entries(scorer, score, types.get(scorer, "NUMERIC"))
        if problem and problems is not None:
            problems[_hex(trace_id, "score", scorer, rec.trial, n=32)] = f"item {rec.item_id} trial {rec.trial}: {problem}"
        for name, value, dtype in entries:
            body: dict[str, Any] = {"id": _hex(trace_id, "score", name, n=32), "traceId": trace_id,
                                    "observationId": target, "name": name, "value": value,
                                    "dataType": dtype, "timestamp": when}
            if score.reason:
                body["comment"] = str(score.reason)[:MAX_TEXT]
            out.append(body)
    return out


def _run_scores(ctx: Context, summary: Summary | None, run_id: str | None) -> list[dict[str, Any]]:
    """Run-level scores on the dataset run ``run_id``: the experiment id on v4; on v3 the id
    Langfuse gave the dataset run (createOrFetchDatasetRun makes a random one)."""
    if not summary:
        return []
    entries: list[tuple[str, float | str, str, str | None]] = []
    for name, s in (summary.get("scorers") or {}).items():
        # errors are failures in these numbers (summary.json's), or left out when the eval file says
        errs = int(s.get("target_errors") or 0) + int(s.get("errors") or 0)
        said = "" if not errs else (f", {errs} errors left out (exclude_errors)" if summary.get("exclude_errors")
                                    else f", {errs} errors counted as failures")
        if s.get("mean") is not None:
            ci = s.get("ci95") or [None, None]
            entries.append((f"{name}.mean", float(s["mean"]), "NUMERIC", f"n={s.get('n')}, ci95={ci}{said}"))
        if s.get("pass_rate") is not None:
            entries.append((f"{name}.pass_rate", float(s["pass_rate"]), "NUMERIC",
                            f"passed {s.get('passed')}, failed {s.get('failed')}{said}"))
    rate = summary.get("error_rate")
    if rate is not None:
        entries.append(("error_rate", float(rate), "NUMERIC",
                        f"{summary.get('errors')} of {summary.get('records')} records"))
    if summary.get("status"):
        entries.append(("run_status", str(summary["status"]), "CATEGORICAL", None))
    verdict = summary.get("verdict")
    if isinstance(verdict, dict):
        verdict = verdict.get("status") or verdict.get("verdict")
    if isinstance(verdict, str) and verdict:
        entries.append(("gate_verdict", verdict, "CATEGORICAL", None))
    when = _iso(_parse_iso(summary.get("finished_at")) or datetime.now(UTC).timestamp())
    out = []
    for name, value, dtype, comment in entries:
        body: dict[str, Any] = {"id": _hex(ctx.experiment_id, "run-score", name, n=32),
                                "datasetRunId": run_id, "name": name, "value": value,
                                "dataType": dtype, "timestamp": when}
        if comment:
            body["comment"] = comment
        out.append(body)
    return out


# -- resolving the experiment ---------------------------------------------------------------------

def run_settings(manifest: Manifest) -> dict[str, str]:
    """The eval file's ``langfuse:`` strings (run_name, description, dataset_name), with
    ``${VAR}`` expanded now: the manifest keeps them unexpanded."""
    from evalrun.config import expand_env

    raw = (manifest.get("config") or {}).get("langfuse") or {}
    where = manifest.get("config_path")
    return {k: expand_env(v, lambda msg, k=k: UsageError(f"langfuse.{k}: {msg}", where))
            for k, v in raw.items() if isinstance(v, str)}


def resolve_context(client: Client, run_dir: RunDir, manifest: Manifest,
                    overrides: dict[str, Any]) -> Context:
    from evalrun.langfuse.datasets import SCHEME, get_dataset, parse_dataset_ref

    s = {k: v for k, v in overrides.items() if v is not None}
    run_id = run_dir.id
    eval_name = str(manifest.get("eval") or "eval")
    run_name = s.get("run_name") or f"{eval_name}-{run_id}"
    source = str((manifest.get("dataset") or {}).get("source") or "")
    dataset_name = s.get("dataset_name")
    version = None
    if dataset_name is None and source.startswith(SCHEME):
        dataset_name, v = parse_dataset_ref(source)
        version = v.isoformat(timespec="milliseconds").replace("+00:00", "Z") if v else None
    dataset_id = None
    if dataset_name:
        ds = get_dataset(client, dataset_name)
        if ds is None:
            raise UsageError(f"Langfuse has no dataset {dataset_name!r} to link run {run_id} to; "
                             f"create it with  evalrun datasets push <file> --name {dataset_name}")
        dataset_id = ds.id
    git = manifest.get("git") or {}
    user_meta = ((manifest.get("config") or {}).get("langfuse") or {}).get("metadata") or {}
    metadata = {**{str(k): str(v) for k, v in user_meta.items()}, **{k: str(v) for k, v in {
        "eval": eval_name, "evalrun_run_id": run_id, "evalrun_version": manifest.get("evalrun_version") or __version__,
        "git_commit": git.get("commit"), "git_branch": git.get("branch"),
        "git_dirty": git.get("dirty") if git else None,
        "config_fingerprint": manifest.get("config_fingerprint"),
        "dataset_source": source or None, "dataset_fingerprint": (manifest.get("dataset") or {}).get("fingerprint"),
    }.items() if v is not None}}
    server = _check_run_name_unused(client, run_name, run_id, dataset_id, dataset_name)
    if dataset_id:
        # the id Langfuse itself derives for (project, dataset, run name), so the server and the SDK agree
        projects = client.call("get project", lambda o: client.api.projects.get(request_options=o))
        if not projects.data:
            raise UsageError("the Langfuse keys belong to no project (use project-scoped API keys)")
        project_id = projects.data[0].id
        payload = json.dumps(["langfuse-experiment-v1", project_id, dataset_id, run_name],
                             separators=(",", ":"), ensure_ascii=False)
        experiment_id = hashlib.sha256(payload.encode()).hexdigest()[:16]
    else:
        experiment_id = _hex("evalrun-experiment", run_id, run_name, n=16)
    return Context(run_id=run_id, run_name=run_name, description=s.get("description") or manifest.get("description"),
                   metadata=metadata, experiment_id=experiment_id, dataset_name=dataset_name,
                   dataset_id=dataset_id, dataset_version=version, base_url=client.creds.base_url, server=server)


def freeze_context(run_dir: RunDir, manifest: Manifest, state: PushState, *, budget: float | None = 10.0,
                   overrides: dict[str, Any] | None = None, client: Client | None = None) -> Context:
    """Resolve the experiment (a Langfuse call when the run links a dataset) and keep it in the
    state, so every later push and the live trace context use the same ids. ``client``: the
    push's own (else one is opened for this, with ``budget``)."""
    if state.settings is None:
        state.settings = run_settings(manifest)
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    if client is not None:
        ctx = resolve_context(client, run_dir, manifest, {**state.settings, **given})
    else:
        with Client(credentials(), budget=budget, connect_attempts=2) as own:
            ctx = resolve_context(own, run_dir, manifest, {**state.settings, **given})
    ctx.score_types = declared_score_types(manifest)
    ctx.repeat = int((manifest.get("planned") or {}).get("repeat") or 1)
    state.context = ctx.to_dict()
    state.save(run_dir)
    return ctx


def pipeline_generations(run_dir: RunDir) -> frozenset[str]:
    """The traces whose pipeline traced a generation of its own (GENERATIONS_FILE). A record
    called before the watch could attach (the langfuse client is often made inside the first
    call) counts as the pipeline's when any watched record's pipeline reported a generation."""
    try:
        lines = (run_dir.path / GENERATIONS_FILE).read_text(encoding="utf-8").split()
    except OSError:
        return frozenset()
    seen = {ln for ln in lines if not ln.startswith(UNWATCHED_MARK)}
    if not seen:
        return frozenset()
    return frozenset(seen | {ln[len(UNWATCHED_MARK):] for ln in lines if ln.startswith(UNWATCHED_MARK)})


def _check_run_name_unused(client: Client, run_name: str, run_id: str, dataset_id: str | None,
                           dataset_name: str | None) -> str:
    """A run name names one run: an experiment of that name made by another run is refused
    (merging the two would mix their items and overwrite the run-level scores). Returns the
    API the server speaks: GET /api/public/experiments answers 404 on Langfuse v3 and on v4
    without the experiments API (web/src/pages/api/public/experiments/index.ts), which keep
    runs as dataset runs."""
    import json as _j
    from urllib.parse import quote

    from evalrun.langfuse.baseline import EPOCH

    # the experiments API splits name= on commas (optionalCommaSeparatedStringArray in
    # web/src/features/public-api/types/experiments.ts); a filter matches the whole name
    by_filter = "," in run_name
    try:
        exps = client.call(f"look up run name {run_name!r}", lambda o: client.api.experiments.list(
            from_start_time=EPOCH, name=None if by_filter else run_name, dataset_id=dataset_id,
            filter=_j.dumps([name_filter(run_name)]) if by_filter else None,
            fields="core,metadata", limit=10, request_options=o))
    except Refused as e:
        if e.status != 404:
            raise
        if dataset_name:
            try:
                run = client.call(f"look up dataset run {run_name!r}", lambda o: client.get_json(
                    f"/api/public/datasets/{quote(dataset_name, safe='')}/runs/{quote(run_name, safe='')}", o))
            except Refused as e2:
                if e2.status != 404:
                    raise
                run = None
            meta = run.get("metadata") if isinstance(run, dict) else None
            other = meta.get("evalrun_run_id") if isinstance(meta, dict) else None
            if run is not None and other != run_id:
                _name_taken(run_name, other)
        return SERVER_V3
    for exp in exps.data:
        other = (exp.metadata or {}).get("evalrun_run_id") if isinstance(exp.metadata, dict) else None
        if exp.name == run_name and other != run_id:
            _name_taken(run_name, other)
    return SERVER_V4


def _name_taken(run_name: str, other: Any) -> None:
    by = f"run {other}" if other else "another experiment"
    raise UsageError(f"Langfuse run name {run_name!r} is already used by {by}; "
                     "give this run its own langfuse.run_name (or --run-name)")


def _check_linked_items(client: Client, ctx: Context, item_ids: set[str], manifest: Manifest) -> None:
    """A run linked to a Langfuse dataset must be about that dataset's items: a local file's
    ids are checked against the dataset's (active) items before anything is sent."""
    from evalrun.langfuse.datasets import PAGE_SIZE, SCHEME

    if str((manifest.get("dataset") or {}).get("source") or "").startswith(SCHEME):
        return  # the items came from that dataset
    known: set[str] = set()
    page = 1
    while True:
        def list_page(o: Any, page: int = page) -> Any:
            return client.api.dataset_items.list(dataset_name=ctx.dataset_name, page=page, limit=PAGE_SIZE,
                                                 request_options=o)

        res = client.call(f"list items of {ctx.dataset_name!r}", list_page)
        known.update(str(i.id) for i in res.data)
        if page >= (res.meta.total_pages or 0) or not res.data:
            break
        page += 1
    missing = sorted(item_ids - known)
    if missing:
        raise UsageError(f"{len(missing)} of the run's {len(item_ids)} items are not active items of Langfuse "
                         f"dataset {ctx.dataset_name!r} (first: {missing[0]!r}); push the file with  evalrun "
                         f"datasets push <file> --name {ctx.dataset_name}  or drop langfuse.dataset_name")


# -- sending ----------------------------------------------------------------------------------------

def _batches(units: list[tuple[str, Any, int]], count: int, max_bytes: int) -> Iterator[list[tuple[str, Any, int]]]:
    batch: list[tuple[str, Any, int]] = []
    size = 0
    for u in units:
        if batch and (len(batch) >= count or size + u[2] > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(u)
        size += u[2]
    if batch:
        yield batch


class _Pusher:
    def __init__(self, client: Client, run_dir: RunDir, state: PushState) -> None:
        self.client = client
        self.run_dir = run_dir
        self.state = state
        # no service.version: Langfuse would show evalrun's own version as every trace's and
        # observation's version (OtelIngestionProcessor.ts falls back to it); langfuse.version
        # on the spans is what the user names (langfuse: {version: ...})
        self.resource = {"service.name": "evalrun", "telemetry.sdk.language": "python"}
        # the client's headers already name the SDK version (read once from the package metadata)
        self.scope = (wire.SCOPE_NAME, client.sdk_headers[wire.HEADER_SDK_VERSION],
                      {"public_key": client.creds.public_key})

    def send_traces(self, units: list[tuple[str, list[Any], int]]) -> None:
        for batch in _batches(units, TRACE_BATCH, TRACE_BATCH_BYTES):
            self._send_span_batch(batch)

    def _send_span_batch(self, batch: list[tuple[str, list[Any], int]]) -> None:
        with self.client.paused():
            body = otlp.encode([s for _tid, spans, _n in batch for s in spans], self.resource, *self.scope)
        try:
            rejected, message = self.client.call(
                f"send {len(batch)} traces", lambda o: self.client.post_otlp(body, o))
        except Refused as e:
            rejected, message = len(batch) * 2, e.message
        if rejected and len(batch) > 1:
            half = len(batch) // 2
            self._send_span_batch(batch[:half])
            self._send_span_batch(batch[half:])
            return
        for tid, _spans, _n in batch:
            if rejected:
                self.state.rejected[tid] = f"trace refused: {message}"[:MAX_TEXT]
            else:
                self.state.traces_sent.add(tid)
                self.state.rejected.pop(tid, None)
        self.state.save_soon(self.run_dir)

    def send_scores(self, scores: list[dict[str, Any]]) -> None:
        if self.state.score_body == SCORE_OBJECT:
            self._send_objects(scores)
            return
        units = [(s["id"], s, len(json.dumps(s, default=str)) + 1) for s in scores]
        for batch in _batches(units, SCORE_BATCH, SCORE_BATCH_BYTES):
            self._send_score_batch([b[1] for b in batch])

    def _send_score_batch(self, batch: list[dict[str, Any]]) -> None:
        if self.state.score_body == SCORE_OBJECT:
            self._send_objects(batch)
            return
        message = ""
        try:
            status, data = self.client.call(f"send {len(batch)} scores",
                                            lambda o: self.client.post_json("/api/public/scores", batch, o))
            self.state.score_body = SCORE_ARRAY
            # 202: all accepted; 207: {accepted, rejected, errors: [{message}]}
            rejected = int(data.get("rejected") or 0) if status == 207 and isinstance(data, dict) else 0
            if status == 207 and not rejected and isinstance(data, dict) and data.get("errors"):
                rejected = len(batch)  # errors without counts: trust none of the batch
            if rejected:
                message = "; ".join(str(e.get("message", e)) if isinstance(e, dict) else str(e)
                                    for e in (data.get("errors") or []))
        except Refused as e:
            if e.status == 400 and self.state.score_body is None:
                # the server validates one score object per request (PostScoresBodyV1 in
                # web/src/pages/api/public/scores/index.ts, v3 and v4 alike): an array is
                # refused whole, so every score of this push goes as its own object
                self.state.score_body = SCORE_OBJECT
                self._send_score_batch(batch)
                return
            rejected, message = len(batch), e.message
        if rejected and len(batch) > 1:
            # Langfuse says how many were rejected, not which: split and resend (ids make resends
            # upserts) until each rejected score stands alone
            half = len(batch) // 2
            self._send_score_batch(batch[:half])
            self._send_score_batch(batch[half:])
            return
        for s in batch:
            self._settle_score(s, message if rejected else None)
        self.state.save_soon(self.run_dir)

    def _send_objects(self, scores: list[dict[str, Any]]) -> None:
        """POST each score as one object (the server answers 200 ``{"id"}`` or a 4xx with its
        message), a few requests in flight: one request per score is the server's shape, and
        in series a remote Langfuse would take minutes for a few thousand scores. The first
        request that cannot be delivered stops the rest (they stay in the state, to resend)."""
        from concurrent.futures import ThreadPoolExecutor

        def one(sc: dict[str, Any]) -> str | None:
            try:
                self.client.call(f"send score {sc['name']!r}",
                                 lambda o: self.client.post_json("/api/public/scores", sc, o))
            except Refused as e:
                return e.message
            return None

        pool = ThreadPoolExecutor(OBJECT_SCORE_REQUESTS, thread_name_prefix="evalrun-scores")
        try:
            futures = [(sc, pool.submit(one, sc)) for sc in scores]
            for sc, fut in futures:
                self._settle_score(sc, fut.result())
                self.state.save_soon(self.run_dir)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _settle_score(self, s: dict[str, Any], refused: str | None) -> None:
        if refused is not None:
            self.state.rejected[s["id"]] = f"score {s['name']!r} refused: {refused}"[:MAX_TEXT]
        else:
            self.state.scores_sent.add(s["id"])
            self.state.rejected.pop(s["id"], None)

    def link_run_items(self, ctx: Context, traces: dict[str, Record]) -> None:
        """Langfuse v3: one dataset run item per delivered trace (POST
        /api/public/dataset-run-items, web/src/pages/api/public/dataset-run-items.ts), which
        creates the dataset run on the first call and names its id. The run item points at the
        trace (no observation), so the run's latency and cost are the trace's."""
        for tid, rec in traces.items():
            if tid in self.state.run_items_sent or tid not in self.state.traces_sent:
                continue
            body: dict[str, Any] = {"runName": ctx.run_name, "datasetItemId": rec.item_id, "traceId": tid,
                                    "metadata": ctx.metadata}
            if ctx.description:
                body["runDescription"] = ctx.description
            if ctx.dataset_version:
                body["datasetVersion"] = ctx.dataset_version
            def post(o: dict[str, Any], body: dict[str, Any] = body) -> tuple[int, Any]:
                return self.client.post_json("/api/public/dataset-run-items", body, o)

            try:
                _status_code, answer = self.client.call(f"link item {rec.item_id!r} to dataset run", post)
            except Refused as e:
                self.state.rejected[RUN_ITEM_KEY + tid] = f"dataset run item refused: {e.message}"[:MAX_TEXT]
                continue
            run_id = answer.get("datasetRunId") if isinstance(answer, dict) else None
            if isinstance(run_id, str) and run_id:
                self.state.dataset_run_id = run_id
            self.state.run_items_sent.add(tid)
            self.state.rejected.pop(RUN_ITEM_KEY + tid, None)
            self.state.save_soon(self.run_dir)


def push_run(run_dir: RunDir, *, overrides: dict[str, Any] | None = None, budget: float | None = None,
             connect_attempts: int | None = None, creds: Credentials | None = None) -> PushResult:
    """Send what Langfuse has not acknowledged yet. Raises UsageError for missing keys or a
    dataset Langfuse does not have; Langfuse being down or slow is a 'pending' result."""
    from datetime import datetime as _dt


    creds = creds or credentials()
    manifest = run_dir.read_manifest()
    summary = run_dir.read_summary()
    state = PushState.load(run_dir)
    if state.context and state.context.get("base_url") != creds.base_url:
        # another Langfuse: what the old one acknowledged says nothing here
        state = PushState(settings=state.settings)
    if state.settings is None:
        state.settings = run_settings(manifest)
    records = sorted(run_dir.records(), key=lambda r: (r.trial, r.item_id))
    fallback_start = _parse_iso(manifest.get("started_at")) or _dt.now(UTC).timestamp()
    client = Client(creds, budget=budget, connect_attempts=connect_attempts)
    ctx: Context | None = None
    error: str | None = None
    n_traces = len(records)
    planned_scores: list[dict[str, Any]] = []
    planned_traces: set[str] = set()
    run_items: tuple[int, int] | None = None
    sent = False  # everything was offered to Langfuse (no exception on the way)
    try:
        try:
            asked_name = (overrides or {}).get("run_name")
            if state.context and asked_name and asked_name != state.context.get("run_name") \
                    and not state.traces_sent and not state.scores_sent:
                state.context = None  # frozen when the run started; nothing sent yet, so the name asked for wins
            if state.context:
                ctx = Context(**state.context)
            else:
                ctx = freeze_context(run_dir, manifest, state, overrides=overrides, client=client)
            lf_cfg = (manifest.get("config") or {}).get("langfuse") or {}
            ctx.cost = str(lf_cfg.get("cost") or COST_AUTO)
            ctx.version = (state.settings or {}).get("version") or None
            ctx.own_generations = pipeline_generations(run_dir)
            if ctx.dataset_id and not ctx.items_checked:
                _check_linked_items(client, ctx, {r.item_id for r in records}, manifest)
                ctx.items_checked = True
                state.context = ctx.to_dict()
                state.save(run_dir)
            pusher = _Pusher(client, run_dir, state)
            units = []
            by_trace: dict[str, Record] = {}
            with client.paused():  # building spans is not Langfuse's time: the budget is for the network
                for rec in records:
                    tid = trace_id_for(ctx.run_id, rec.item_id, rec.trial)
                    by_trace[tid] = rec
                    planned_scores.extend(_item_scores(ctx, rec, tid, fallback_start, state.unsendable))
                n_traces = len(by_trace)
                planned_traces.update(by_trace)
                for tid, rec in by_trace.items():
                    if tid not in state.traces_sent:
                        spans = _item_spans(ctx, rec, tid, fallback_start)
                        size = sum(len(v) if type(v) is str else 8 for s in spans for v in s.attributes.values()) + 200
                        units.append((tid, spans, size))
            pusher.send_traces(units)
            v3_runs = ctx.server == SERVER_V3 and ctx.dataset_id is not None
            if v3_runs:
                pusher.link_run_items(ctx, by_trace)
            run_scores: list[dict[str, Any]] = []
            if ctx.server != SERVER_V3:
                run_scores = _run_scores(ctx, summary, ctx.experiment_id)
            elif state.dataset_run_id:
                run_scores = _run_scores(ctx, summary, state.dataset_run_id)
            elif not v3_runs:
                for sc in _run_scores(ctx, summary, None):
                    state.unsendable[sc["id"]] = (f"{sc['name']}: Langfuse v3 keeps run-level scores on dataset "
                                                  "runs only (link a dataset with langfuse.dataset_name)")
            planned_scores.extend(run_scores)
            pusher.send_scores([s for s in planned_scores if s["id"] not in state.scores_sent])
            sent = True
        except Unreachable as e:
            error = str(e)
        except Refused as e:
            error = f"Langfuse refused: {e}"
    finally:
        client.close()
        planned_ids = {s["id"] for s in planned_scores}
        if ctx is not None and ctx.server == SERVER_V3 and ctx.dataset_id is not None:
            run_items = (len(state.run_items_sent & planned_traces), len(planned_traces))
        traces_ok = len(state.traces_sent & planned_traces) if planned_traces else len(state.traces_sent)
        scores_ok = len(state.scores_sent & planned_ids) if planned_scores else len(state.scores_sent)
        if sent and error is None and not state.rejected:
            status = "complete"
        elif sent and error is None and state.rejected:
            status = "rejected"
        else:
            status = "pending"
        state.status, state.last_error = status, error
        state.history.append({"at": _iso(_dt.now(UTC).timestamp()), "status": status, "error": error,
                              "traces": traces_ok, "scores": scores_ok})
        state.save(run_dir)
    return PushResult(status=status, run_name=ctx.run_name if ctx else None,
                      experiment_id=ctx.experiment_id if ctx else None,
                      traces=(traces_ok, n_traces), scores=(scores_ok, len(planned_scores) or scores_ok),
                      rejected=dict(state.rejected), error=error, waited=client.waited,
                      unsendable=dict(state.unsendable), server=ctx.server if ctx else None, run_items=run_items)


@dataclass
class AfterRun:
    """What the push at the end of a run did: the line to print and whether Langfuse has it all."""

    line: str
    delivered: bool


def push_required(manifest: Manifest) -> bool:
    """``langfuse: {required: true}``: an undelivered push fails the command (exit 3)."""
    return bool(((manifest.get("config") or {}).get("langfuse") or {}).get("required"))


def push_after_run(run_dir: RunDir, overrides: dict[str, Any] | None = None, budget: float = 30.0) -> AfterRun:
    """The push at the end of ``evalrun run``: never raises, gives up quickly when Langfuse
    cannot be reached (the state keeps what is left). Whether an undelivered push changes the
    exit code is the caller's (``--push-required``, ``langfuse: {required: true}``)."""
    try:
        result = push_run(run_dir, overrides=overrides, budget=budget, connect_attempts=2)
    except UsageError as e:
        state = PushState.load(run_dir)
        if state.settings is None:
            try:
                state.settings = run_settings(run_dir.read_manifest())
            except UsageError:
                pass
        state.status, state.last_error = "pending", str(e)
        state.save(run_dir)
        return AfterRun(f"langfuse: not pushed: {e}; send later with: evalrun push {run_dir.id}", False)
    except Exception as e:  # the run is saved; a push bug must not turn it into a crash
        return AfterRun(f"langfuse: not pushed ({type(e).__name__}: {e}); send later with: evalrun push {run_dir.id}",
                        False)
    return AfterRun(result.line(run_dir.id), result.delivered)
