"""A Langfuse-compatible HTTP server on 127.0.0.1 for tests, checked against the langfuse SDK's
own generated API types (``tests/langfuse_contract.py``; nothing outside the repository).

Every request is matched to a contract operation; its query parameters and JSON body are
validated against the SDK's types, and every JSON answer is validated against the SDK's answer
type before it is sent, so a test fails when either side drifts from the wire format
(``server.errors`` collects the problems). OTLP protobuf arriving at
``/api/public/otel/v1/traces`` is decoded into plain span dicts (``server.spans``) so tests can
check every span and attribute; experiments and experiment items are derived from those spans
the way Langfuse derives them from the experiment attributes.

Failure modes for tests: ``fail(prefix, status, times, retry_after)`` answers the next
requests with an error (429 with Retry-After, 5xx), ``reject_scores(fn)`` answers score batches
with 207 and drops the scores ``fn`` rejects, ``down()``/``up()`` close and reopen the port,
``delay`` slows every answer.

Two Langfuse servers (``mode``), each rule below citing the file of the Langfuse server source
(github.com/langfuse/langfuse) it comes from, at tag ``v3.225.4`` (the last v3 release) or
``v4.16.0``:

- ``"v4"`` (default): experiments and experiment items derived from the OTel experiment
  attributes (packages/shared/src/server/otel/OtelIngestionProcessor.ts, extractExperimentFields:
  an item per root observation ``experiment.item.root_observation_id``, its scores read from
  that observation); ``GET /api/public/experiments`` splits ``name=`` on commas
  (web/src/features/public-api/types/experiments.ts, optionalCommaSeparatedStringArray) and
  takes a ``filter``; ``POST /api/public/dataset-run-items`` answers the stable experiment id
  and stores nothing (events_only mode: web/src/pages/api/public/dataset-run-items.ts,
  createStableExperimentId in web/src/features/datasets/server/publicDatasetService.ts).
- ``"v3"``: ``GET /api/public/experiments`` and ``/experiment-items`` answer 404
  (web/src/pages/api/public/experiments/index.ts@v3.225.4); a run is a dataset run made by
  ``POST /api/public/dataset-run-items`` (a strict body, PostDatasetRunItemsV1Body in
  web/src/features/public-api/types/datasets.ts; the item must be ACTIVE, else 404 "Dataset
  item not found"; the run is created on first use with a random id, createOrFetchDatasetRun in
  packages/shared/src/server/repositories/dataset-runs.ts; every call adds a run item, "we do
  not accept user defined ids for dataset run items"), read back with
  ``GET /api/public/datasets/{name}/runs/{run}`` (web/src/pages/api/public/datasets/[name]/runs/[runName].ts)
  and ``GET /api/public/traces/{id}`` (web/src/pages/api/public/traces/[traceId].ts: the
  trace's observations and all its scores, getScoresForTraces).

``POST /api/public/scores`` (``score_body``): ``"object"`` validates one score object per request
and answers 200 ``{"id"}``; an array is refused whole with 400 "Invalid request data"
(PostScoresBodyV1 in web/src/pages/api/public/scores/index.ts, the same at v3.225.4 and v4.16.0;
zod errors answered by web/src/features/public-api/server/withMiddlewares.ts). ``"array"``
takes a list of CreateScoreRequest and answers 202 ``{"message": "Accepted"}`` or 207
``{"accepted", "rejected", "errors"}``, as SDK 5.2.0's scores client documents for the cloud.
The default is ``"object"`` for v3 and ``"array"`` for v4.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests import langfuse_contract as contract

V3 = "v3"
V4 = "v4"
SCORE_OBJECT = "object"
SCORE_ARRAY = "array"
#: web/src/pages/api/public/experiments/index.ts (v3.225.4 and v4 without the preview opt-in)
NO_EXPERIMENTS_API = ("The experiments API is only available in a Langfuse v4 write mode. "
                      "Learn more at: https://langfuse.com/docs/v4")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_ts(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


class HTTPError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None,
                 body: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.body = body


@dataclass
class _Failure:
    prefix: str
    status: int
    times: int
    retry_after: float | None
    method: str | None
    message: str | None = None


@dataclass
class Logged:
    method: str
    path: str
    status: int
    operation: str | None
    query: dict[str, str] = field(default_factory=dict)
    at: float = field(default_factory=time.monotonic)
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names


# -- OTLP decoding --------------------------------------------------------------------------

def _any_value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_any_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _any_value(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, kind)


def _json_any_value(v: dict[str, Any]) -> Any:
    for k, x in v.items():
        if k == "arrayValue":
            return [_json_any_value(y) for y in x.get("values", [])]
        if k == "kvlistValue":
            return {kv["key"]: _json_any_value(kv.get("value", {})) for kv in x.get("values", [])}
        if k == "intValue":
            return int(x)
        return x
    return None


def decode_otlp_protobuf(body: bytes) -> list[dict[str, Any]]:
    """ExportTraceServiceRequest bytes -> one plain dict per span."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    req = ExportTraceServiceRequest()
    req.ParseFromString(body)
    spans = []
    for rs in req.resource_spans:
        resource = {kv.key: _any_value(kv.value) for kv in rs.resource.attributes}
        for ss in rs.scope_spans:
            scope = {"name": ss.scope.name, "version": ss.scope.version,
                     "attributes": {kv.key: _any_value(kv.value) for kv in ss.scope.attributes}}
            for s in ss.spans:
                spans.append({
                    "trace_id": s.trace_id.hex(), "span_id": s.span_id.hex(),
                    "parent_span_id": s.parent_span_id.hex() or None, "name": s.name,
                    "start_time_unix_nano": s.start_time_unix_nano, "end_time_unix_nano": s.end_time_unix_nano,
                    "attributes": {kv.key: _any_value(kv.value) for kv in s.attributes},
                    "status": {"code": s.status.code, "message": s.status.message},
                    "resource": resource, "scope": scope,
                })
    return spans


def decode_otlp_json(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """OTLP/JSON (ids in hex, as the OTLP spec says) -> one plain dict per span."""
    spans = []
    for rs in doc.get("resourceSpans") or []:
        resource = {a["key"]: _json_any_value(a.get("value", {}))
                    for a in ((rs.get("resource") or {}).get("attributes") or [])}
        for ss in rs.get("scopeSpans") or []:
            sc = ss.get("scope") or {}
            scope = {"name": sc.get("name", ""), "version": sc.get("version", ""),
                     "attributes": {a["key"]: _json_any_value(a.get("value", {})) for a in sc.get("attributes") or []}}
            for s in ss.get("spans") or []:
                spans.append({
                    "trace_id": s.get("traceId", ""), "span_id": s.get("spanId", ""),
                    "parent_span_id": s.get("parentSpanId") or None, "name": s.get("name", ""),
                    "start_time_unix_nano": int(s.get("startTimeUnixNano") or 0),
                    "end_time_unix_nano": int(s.get("endTimeUnixNano") or 0),
                    "attributes": {a["key"]: _json_any_value(a.get("value", {})) for a in s.get("attributes") or []},
                    "status": s.get("status") or {}, "resource": resource, "scope": scope,
                })
    return spans


def _maybe_json(v: Any) -> Any:
    if isinstance(v, str):
        try:
            return json.loads(v)
        except ValueError:
            return v
    return v


def _ns_iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- the server --------------------------------------------------------------------------------

class FakeLangfuse:
    """One Langfuse project behind basic auth, in memory. Use as a context manager."""

    def __init__(self, public_key: str = "pk-lf-test-0123", secret_key: str = "sk-lf-test-secret-4567", *,
                 max_page_limit: int = 100, project_id: str = "proj-evalrun-test", port: int = 0,
                 mode: str = "v4", score_body: str | None = None) -> None:
        if mode not in (V3, V4):
            raise ValueError(f"mode {mode!r}")
        self.mode = mode
        self.score_body = score_body or (SCORE_OBJECT if mode == V3 else SCORE_ARRAY)
        #: v3 dataset runs by (dataset id, run name), each with its "items" (run items)
        self.dataset_runs: dict[tuple[str, str], dict[str, Any]] = {}
        self.public_key = public_key
        self.secret_key = secret_key
        self.max_page_limit = max_page_limit
        self.project_id = project_id
        self._port = port
        self.lock = threading.RLock()
        self.datasets: dict[str, dict[str, Any]] = {}
        self.item_versions: dict[str, list[tuple[str, dict[str, Any] | None]]] = {}  # id -> [(validFrom, item)]
        self.scores: dict[str, dict[str, Any]] = {}
        self.score_posts = 0
        # spans upsert on (trace id, span id), as Langfuse upserts observations on their id
        self._spans: dict[tuple[str, str], dict[str, Any]] = {}
        self.spans_received = 0
        self.requests: list[Logged] = []
        self.errors: list[str] = []  # spec violations (requests or our own answers) and unhandled calls
        self.delay = 0.0
        self._failures: list[_Failure] = []
        self._score_rejecter: Callable[[dict[str, Any]], str | None] | None = None
        self._last_ts: datetime | None = None
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle ------------------------------------------------------------------------------
    def __enter__(self) -> FakeLangfuse:
        self.up()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.down()

    def up(self) -> None:
        server = self

        class Handler(_Handler):
            fake = server

        httpd = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        httpd.daemon_threads = True
        self._port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def down(self) -> None:
        """Stop answering: the port refuses connections until ``up()``."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def env(self) -> dict[str, str]:
        return {"LANGFUSE_PUBLIC_KEY": self.public_key, "LANGFUSE_SECRET_KEY": self.secret_key,
                "LANGFUSE_BASE_URL": self.url}

    # failure injection ------------------------------------------------------------------------
    def fail(self, prefix: str, status: int, times: int = 1, retry_after: float | None = None,
             method: str | None = None, message: str | None = None) -> None:
        """Answer the next ``times`` requests whose path starts with ``prefix`` with ``status``
        (and ``message`` as the error text)."""
        with self.lock:
            self._failures.append(_Failure(prefix, status, times, retry_after, method, message))

    def reject_scores(self, fn: Callable[[dict[str, Any]], str | None] | None) -> None:
        """Score batches: scores for which ``fn`` returns a message are rejected (207), not stored."""
        self._score_rejecter = fn

    # inspection -------------------------------------------------------------------------------
    @property
    def spans(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self._spans.values())

    def calls(self, operation: str) -> list[Logged]:
        return [r for r in self.requests if r.operation == operation]

    def spans_by_trace(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for s in self.spans:
            out.setdefault(s["trace_id"], []).append(s)
        return out

    def dataset_items(self, name: str, version: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            ds = self.datasets.get(name)
            if ds is None:
                return []
            at = _parse_ts(version) if version else None
            out = []
            for versions in self.item_versions.values():
                state = None
                for valid_from, snap in versions:
                    if at is None or _parse_ts(valid_from) <= at:
                        state = snap
                if state is not None and state["datasetId"] == ds["id"]:
                    out.append(state)
            out.sort(key=lambda it: (it["createdAt"], it["id"]), reverse=True)  # newest first, as Langfuse
            return out

    def add_dataset_items(self, name: str, items: list[dict[str, Any]]) -> None:
        """Seed a dataset directly (what a user would have created in the Langfuse UI)."""
        with self.lock:
            self._create_dataset({"name": name})
            for it in items:
                # mediaReferences: what Langfuse resolves for media uploaded with the item
                refs = it.get("mediaReferences")
                self._upsert_item({"datasetName": name, **{k: v for k, v in it.items() if k != "mediaReferences"},
                                   "_mediaReferences": refs})

    # internals --------------------------------------------------------------------------------
    def _ts(self) -> str:
        # strictly increasing, so a version timestamp separates writes made in the same instant
        with self.lock:
            now = datetime.now(UTC)
            if self._last_ts is not None and now <= self._last_ts:
                now = self._last_ts + timedelta(microseconds=1)
            self._last_ts = now
            return now.isoformat(timespec="microseconds").replace("+00:00", "Z")

    def _take_failure(self, method: str, path: str) -> _Failure | None:
        with self.lock:
            for f in self._failures:
                if f.times > 0 and path.startswith(f.prefix) and (f.method is None or f.method == method):
                    f.times -= 1
                    return f
        return None

    def _create_dataset(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            ds = self.datasets.get(body["name"])
            ts = self._ts()
            if ds is None:
                ds = {"id": "ds-" + uuid.uuid4().hex[:12], "name": body["name"], "description": None,
                      "metadata": None, "inputSchema": None, "expectedOutputSchema": None,
                      "projectId": self.project_id, "createdAt": ts, "updatedAt": ts}
                self.datasets[body["name"]] = ds
            for k in ("description", "metadata", "inputSchema", "expectedOutputSchema"):
                if body.get(k) is not None:
                    ds[k] = body[k]
                    ds["updatedAt"] = ts
            return dict(ds)

    def _upsert_item(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            ds = self.datasets.get(body["datasetName"])
            if ds is None:
                raise HTTPError(404, f"Dataset {body['datasetName']} not found")
            item_id = body.get("id") or str(uuid.uuid4())
            if len(item_id) > 255:
                raise HTTPError(400, "id must be at most 255 characters")
            versions = self.item_versions.setdefault(item_id, [])
            current = versions[-1][1] if versions else None
            if current is not None and current["datasetId"] != ds["id"]:
                raise HTTPError(400, f"Dataset item id {item_id} is already used in another dataset")
            ts = self._ts()
            new = {
                "id": item_id, "status": body.get("status") or (current or {}).get("status") or "ACTIVE",
                "input": body.get("input"), "expectedOutput": body.get("expectedOutput"),
                "metadata": body.get("metadata"), "sourceTraceId": body.get("sourceTraceId"),
                "sourceObservationId": body.get("sourceObservationId"), "datasetId": ds["id"],
                "datasetName": ds["name"], "createdAt": current["createdAt"] if current else ts,
                "updatedAt": ts, "mediaReferences": body.get("_mediaReferences") or [],
            }
            if current is not None and {k: v for k, v in current.items() if k != "updatedAt"} == \
                    {k: v for k, v in new.items() if k != "updatedAt"}:
                return dict(current)  # nothing changed: no new version
            versions.append((ts, new))
            return dict(new)

    def create_run_item(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /api/public/dataset-run-items (createDatasetRunItemForApi; v4 events_only:
        buildStableDatasetRunItemResponseEventsOnly)."""
        import hashlib

        with self.lock:
            versions = self.item_versions.get(body["datasetItemId"]) or []
            item = versions[-1][1] if versions else None
            if item is None or item["status"] != "ACTIVE":
                raise HTTPError(404, "Dataset item not found")
            ts = self._ts()
            if self.mode == V4:
                run_id = hashlib.sha256(json.dumps(["langfuse-experiment-v1", self.project_id, item["datasetId"],
                                                    body["runName"]], separators=(",", ":")).encode()
                                        ).hexdigest()[:16]
                return {"id": str(uuid.uuid4()), "datasetRunId": run_id, "datasetRunName": body["runName"],
                        "datasetItemId": item["id"], "traceId": body.get("traceId") or "",
                        "observationId": body.get("observationId"), "createdAt": ts, "updatedAt": ts}
            key = (item["datasetId"], body["runName"])
            run = self.dataset_runs.get(key)
            if run is None:
                run = self.dataset_runs[key] = {
                    "id": str(uuid.uuid4()), "name": body["runName"], "description": body.get("runDescription"),
                    "metadata": body.get("metadata") or {}, "datasetId": item["datasetId"],
                    "datasetName": item["datasetName"], "createdAt": ts, "updatedAt": ts, "items": []}
            ri = {"id": str(uuid.uuid4()), "datasetRunId": run["id"], "datasetRunName": run["name"],
                  "datasetItemId": item["id"], "traceId": body.get("traceId") or "",
                  "observationId": body.get("observationId"), "createdAt": ts, "updatedAt": ts}
            run["items"].append(ri)
            return dict(ri)

    def trace_view(self, trace_id: str) -> dict[str, Any] | None:
        """GET /api/public/traces/{id} on v3: the trace, its observations and every score of the trace."""
        from langfuse._client.attributes import LangfuseOtelSpanAttributes as A

        with self.lock:
            spans = [sp for sp in self._spans.values() if sp["trace_id"] == trace_id]
            scores = [sc for sc in self.scores.values() if sc.get("traceId") == trace_id]
        if not spans:
            return None
        observations = []
        for sp in spans:
            a = sp["attributes"]
            observations.append({
                "id": sp["span_id"], "traceId": trace_id, "name": sp["name"], "parentObservationId": sp["parent_span_id"],
                "type": str(a.get(A.OBSERVATION_TYPE) or "span").upper(),
                "startTime": _ns_iso(sp["start_time_unix_nano"]), "endTime": _ns_iso(sp["end_time_unix_nano"]),
                "input": _maybe_json(a.get(A.OBSERVATION_INPUT)), "output": _maybe_json(a.get(A.OBSERVATION_OUTPUT)),
                "metadata": _maybe_json(a.get(A.OBSERVATION_METADATA)) or _prefixed(a, A.OBSERVATION_METADATA),
                "level": a.get(A.OBSERVATION_LEVEL) or ("ERROR" if sp["status"].get("code") == 2 else "DEFAULT"),
            })
        root = next(o for o in observations if o["parentObservationId"] is None)
        return {"id": trace_id, "timestamp": root["startTime"], "name": root["name"], "input": root["input"],
                "output": root["output"], "observations": observations,
                "scores": [{"id": sc["id"], "traceId": trace_id, "observationId": sc.get("observationId"),
                            "name": sc["name"], "dataType": sc.get("dataType") or "NUMERIC",
                            "value": sc["value"] if not isinstance(sc["value"], str) else 0,
                            "stringValue": sc["value"] if isinstance(sc["value"], str) else None,
                            "comment": sc.get("comment")} for sc in scores]}

    # -- what Langfuse shows of a trace (v4) -----------------------------------------------------
    def app_roots(self, trace_id: str) -> list[dict[str, Any]]:
        """The trace's spans marked ``langfuse.internal.is_app_root``: each is a root in v4's
        root-observation views (OtelIngestionProcessor.ts reads the attribute)."""
        return [s for s in self.spans if s["trace_id"] == trace_id
                and s["attributes"].get("langfuse.internal.is_app_root") is True]

    def trace_cost(self, trace_id: str) -> float:
        """The sum of the trace's observations' total cost: an observation's given cost_details
        (``total``, else the sum of its keys: worker/src/services/IngestionService/index.ts); a
        cost from model prices is none here (the stand-in knows no price)."""
        total = 0.0
        for s in self.spans:
            cost = _maybe_json(s["attributes"].get("langfuse.observation.cost_details")) if s["trace_id"] == trace_id \
                else None
            if isinstance(cost, dict) and cost:
                total += float(cost["total"]) if "total" in cost else sum(float(v) for v in cost.values())
        return total

    def trace_tokens(self, trace_id: str) -> int:
        """The trace's tokens: each observation's usage ``total``, else the sum of every key
        (IngestionService/index.ts: usageDetails.total = sum of the provided keys). OpenAI's
        usage object (prompt/completion/total_tokens and their details, nothing else) is first
        mapped to input/output/total (OpenAICompletionUsageSchema in
        packages/shared/src/server/ingestion/types.ts)."""
        openai = {"prompt_tokens", "completion_tokens", "total_tokens"}
        total = 0
        for s in self.spans:
            usage = _maybe_json(s["attributes"].get("langfuse.observation.usage_details")) \
                if s["trace_id"] == trace_id else None
            if not isinstance(usage, dict) or not usage:
                continue
            if openai <= set(usage) <= openai | {"prompt_tokens_details", "completion_tokens_details"}:
                usage = {"total": usage["total_tokens"]}
            total += int(usage["total"]) if "total" in usage else sum(int(v) for v in usage.values())
        return total

    @staticmethod
    def observation_version(span: dict[str, Any]) -> str | None:
        """``langfuse.version`` on the span, else the resource's ``service.version``
        (OtelIngestionProcessor.ts)."""
        return span["attributes"].get("langfuse.version") or span["resource"].get("service.version")

    def experiment_items(self) -> list[dict[str, Any]]:
        """Experiment items as Langfuse derives them: one per span that is its item's root observation."""
        from langfuse._client.attributes import LangfuseOtelSpanAttributes as A

        with self.lock:
            spans = list(self.spans)
            scores = list(self.scores.values())
        by_trace: dict[str, list[dict[str, Any]]] = {}
        for sc in scores:
            if sc.get("traceId"):
                by_trace.setdefault(sc["traceId"], []).append(sc)
        items = []
        for s in spans:
            a = s["attributes"]
            if not a.get(A.EXPERIMENT_ID) or a.get(A.EXPERIMENT_ITEM_ROOT_OBSERVATION_ID) != s["span_id"]:
                continue
            level = a.get(A.OBSERVATION_LEVEL) or ("ERROR" if s["status"].get("code") == 2 else "DEFAULT")
            items.append({
                "id": s["span_id"], "traceId": s["trace_id"],
                "startTime": _ns_iso(s["start_time_unix_nano"]),
                "endTime": _ns_iso(s["end_time_unix_nano"]) if s["end_time_unix_nano"] else None,
                "level": level, "environment": a.get(A.ENVIRONMENT) or "default",
                "experimentId": a[A.EXPERIMENT_ID], "experimentName": a.get(A.EXPERIMENT_NAME, ""),
                "experimentItemId": a.get(A.EXPERIMENT_ITEM_ID, ""),
                "experimentDatasetId": a.get(A.EXPERIMENT_DATASET_ID),
                "experimentItemVersion": a.get(A.EXPERIMENT_ITEM_VERSION),
                "input": _maybe_json(a.get(A.OBSERVATION_INPUT)),
                "output": _maybe_json(a.get(A.OBSERVATION_OUTPUT)),
                "expectedOutput": _maybe_json(a.get(A.EXPERIMENT_ITEM_EXPECTED_OUTPUT)),
                "metadata": _maybe_json(a.get(A.OBSERVATION_METADATA)) or _prefixed(a, A.OBSERVATION_METADATA),
                "experimentItemMetadata": _maybe_json(a.get(A.EXPERIMENT_ITEM_METADATA)),
                "experimentMetadata": _maybe_json(a.get(A.EXPERIMENT_METADATA)),
                "experimentDescription": a.get(A.EXPERIMENT_DESCRIPTION),
                # an item's scores: those on its root observation, or on its trace with no
                # observation (queryScoreRecordsForExperimentItems, packages/shared/src/server/
                # repositories/scores.ts@v4.16.0), no older than the item
                "scores": [self._score_v3(sc) for sc in by_trace.get(s["trace_id"], [])
                           if sc.get("observationId") in (None, "", s["span_id"])
                           and _parse_ts(sc.get("timestamp") or sc["_createdAt"]).timestamp() * 1e9
                           >= s["start_time_unix_nano"] - 1e6],
            })
        items.sort(key=lambda it: it["startTime"], reverse=True)
        return items

    def experiments(self) -> list[dict[str, Any]]:
        groups: dict[str, list[dict[str, Any]]] = {}
        for it in self.experiment_items():
            groups.setdefault(it["experimentId"], []).append(it)
        with self.lock:
            scores = list(self.scores.values())
        out = []
        for exp_id, its in groups.items():
            first = its[-1]
            out.append({
                "id": exp_id, "name": first["experimentName"], "description": first["experimentDescription"],
                "startTime": min(i["startTime"] for i in its),
                "endTime": max(i["endTime"] or i["startTime"] for i in its),
                "itemCount": len(its), "datasetId": first["experimentDatasetId"],
                "metadata": first["experimentMetadata"],
                "scores": [self._score_v3(s) for s in scores if s.get("datasetRunId") == exp_id],
            })
        out.sort(key=lambda e: e["endTime"], reverse=True)
        return out

    def _score_v3(self, sc: dict[str, Any]) -> dict[str, Any]:
        dt = sc.get("dataType") or ("CATEGORICAL" if isinstance(sc["value"], str) else "NUMERIC")
        value: Any = sc["value"]
        if dt == "BOOLEAN":
            value = bool(value)
        out = {"id": sc["id"], "projectId": self.project_id, "name": sc["name"], "source": "API",
               "timestamp": sc.get("timestamp") or sc["_createdAt"], "environment": sc.get("environment") or "default",
               "createdAt": sc["_createdAt"], "updatedAt": sc["_updatedAt"], "value": value, "dataType": dt,
               "comment": sc.get("comment"), "configId": sc.get("configId"), "metadata": sc.get("metadata")}
        if sc.get("observationId"):
            out["subject"] = {"kind": "observation", "id": sc["observationId"], "traceId": sc.get("traceId")}
        elif sc.get("traceId"):
            out["subject"] = {"kind": "trace", "id": sc["traceId"]}
        elif sc.get("datasetRunId"):
            out["subject"] = {"kind": "experiment", "id": sc["datasetRunId"]}
        return out

    def _store_score(self, sc: dict[str, Any]) -> None:
        if sc.get("dataType") == "BOOLEAN" and sc["value"] not in (0, 1):
            raise HTTPError(400, "Boolean score value must equal 0 or 1")
        if sc.get("dataType") in ("CATEGORICAL", "TEXT") and not isinstance(sc["value"], str):
            raise HTTPError(400, "Categorical score value must be a string")
        if sc.get("dataType") in (None, "NUMERIC", "BOOLEAN") and isinstance(sc["value"], str):
            raise HTTPError(400, "Numeric score value must be a number")
        ts = self._ts()
        with self.lock:
            sid = sc.get("id") or str(uuid.uuid4())
            old = self.scores.get(sid)
            self.scores[sid] = {**sc, "id": sid, "_createdAt": old["_createdAt"] if old else ts, "_updatedAt": ts}


def _prefixed(attrs: dict[str, Any], prefix: str) -> dict[str, Any] | None:
    out = {k[len(prefix) + 1:]: _maybe_json(v) for k, v in attrs.items() if k.startswith(prefix + ".")}
    return out or None


def _page(items: list[Any], query: dict[str, str], fake: FakeLangfuse, default: int = 50) -> tuple[list[Any], dict]:
    page = int(query.get("page") or 1)
    limit = int(query.get("limit") or default)
    if page < 1 or limit < 1:
        raise HTTPError(400, "page and limit must be positive")
    if limit > fake.max_page_limit:
        raise HTTPError(400, f"limit must be at most {fake.max_page_limit}")
    total = len(items)
    chunk = items[(page - 1) * limit: page * limit]
    return chunk, {"page": page, "limit": limit, "totalItems": total, "totalPages": -(-total // limit)}


def _cursor_page(items: list[Any], query: dict[str, str], fake: FakeLangfuse) -> tuple[list[Any], dict]:
    limit = int(query.get("limit") or 50)
    if limit < 1 or limit > 100:
        raise HTTPError(400, "limit must be between 1 and 100")
    offset = 0
    if query.get("cursor"):
        try:
            raw = base64.urlsafe_b64decode(query["cursor"] + "=" * (-len(query["cursor"]) % 4))
            version, off = raw.decode().split(":", 1)
            if version != "v1":
                raise ValueError(version)
            offset = int(off)
        except (ValueError, UnicodeDecodeError):
            raise HTTPError(400, "invalid cursor") from None
    chunk = items[offset: offset + limit]
    meta: dict[str, Any] = {}
    if offset + limit < len(items):
        meta["cursor"] = base64.urlsafe_b64encode(f"v1:{offset + limit}".encode()).decode().rstrip("=")
    return chunk, meta


def _apply_filter(rows: list[dict[str, Any]], raw: str | None) -> list[dict[str, Any]]:
    """The experiments API ``filter``: a JSON list of filters (experimentFilterState in
    web/src/features/public-api/types/experiments.ts); the stand-in knows the stringOptions
    kind on the name/id/datasetId columns (packages/shared/src/interfaces/filters.ts)."""
    if not raw:
        return rows
    try:
        filters = json.loads(raw)
    except ValueError:
        raise HTTPError(400, "Invalid JSON in filter parameter") from None
    for f in filters:
        if f.get("type") != "stringOptions" or f.get("column") not in ("id", "name", "datasetId") \
                or f.get("operator") not in ("any of", "none of") or not f.get("value"):
            raise HTTPError(400, f"filter not known to the stand-in: {f!r}")
        hit = set(f["value"])
        rows = [r for r in rows if (r.get(f["column"]) in hit) == (f["operator"] == "any of")]
    return rows


#: routes SDK 5.2.0's generated client does not have (Langfuse v3's dataset runs, the v1 trace)
_SERVER_ROUTES = [
    ("dataset_run_items_create", "POST", re.compile(r"^/api/public/dataset-run-items$")),
    ("dataset_run_get", "GET", re.compile(r"^/api/public/datasets/(?P<name>[^/]+)/runs/(?P<run>[^/]+)$")),
    ("dataset_runs_list", "GET", re.compile(r"^/api/public/datasets/(?P<name>[^/]+)/runs$")),
    ("trace_get", "GET", re.compile(r"^/api/public/traces/(?P<traceId>[^/]+)$")),
]
#: PostDatasetRunItemsV1Body (web/src/features/public-api/types/datasets.ts), a strict object
_RUN_ITEM_FIELDS = {"runName": str, "runDescription": (str, type(None)), "metadata": object,
                    "datasetItemId": str, "observationId": (str, type(None)), "traceId": (str, type(None)),
                    "datasetVersion": (str, type(None)), "createdAt": (str, type(None))}


def _server_route(method: str, path: str) -> tuple[str, dict[str, str]] | None:
    for name, m, rx in _SERVER_ROUTES:
        hit = rx.match(path)
        if m == method and hit:
            return name, {k: unquote(v) for k, v in hit.groupdict().items()}
    return None


def _csv(q: dict[str, str], key: str) -> set[str] | None:
    return {x for x in q[key].split(",") if x} if q.get(key) else None


class _Handler(BaseHTTPRequestHandler):
    fake: FakeLangfuse
    protocol_version = "HTTP/1.1"
    # headers and body leave in separate writes; with Nagle on, each answer waits ~40 ms for an ACK
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read server.requests
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def _send(self, status: int, body: bytes, ctype: str = "application/json",
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _handle(self, method: str) -> None:
        fake = self.fake
        url = urlsplit(self.path)
        path = url.path
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        own = _server_route(method, path)
        matched = None if own else contract.match(method, path)
        op_id = own[0] if own else (matched[0].op_id if matched else None)
        log = Logged(method, path, 0, op_id, query, headers={k.lower(): v for k, v in self.headers.items()})
        with fake.lock:
            fake.requests.append(log)
        if fake.delay:
            time.sleep(fake.delay)
        try:
            failure = fake._take_failure(method, path)
            if failure is not None:
                headers = {"Retry-After": f"{failure.retry_after:g}"} if failure.retry_after is not None else {}
                raise HTTPError(failure.status, failure.message or f"injected failure {failure.status}", headers)
            if not self._authorized():
                raise HTTPError(401, "Invalid credentials", {"WWW-Authenticate": 'Basic realm="langfuse"'})
            if own is not None:
                status, answer, ctype = self._server_only(own[0], own[1], query, raw)
                log.status = status
                self._send(status, json.dumps(answer).encode(), "application/json")
                return
            if matched is None:
                fake.errors.append(f"{method} {path}: no such operation in the contract")
                raise HTTPError(404, f"no route {method} {path}")
            op, params = matched
            status, answer, ctype = self._dispatch(op, params, query, raw)
        except HTTPError as e:
            log.status = e.status
            self._send(e.status, json.dumps(e.body or {"message": e.message, "error": e.message}).encode(),
                       headers=e.headers)
            return
        except Exception as e:  # a bug in the fake must show in the test, not hang the client
            fake.errors.append(f"{method} {path}: server error {type(e).__name__}: {e}")
            log.status = 500
            self._send(500, json.dumps({"message": str(e)}).encode())
            return
        log.status = status
        if isinstance(answer, bytes):
            self._send(status, answer, ctype)
            return
        self._check_response(op, status, answer, f"{method} {path} -> {status}")
        self._send(status, json.dumps(answer).encode(), "application/json")

    def _authorized(self) -> bool:
        auth = self.headers.get("Authorization") or ""
        if not auth.startswith("Basic "):
            return False
        try:
            user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
        except ValueError:
            return False
        return user == self.fake.public_key and pw == self.fake.secret_key

    def _check_response(self, op: contract.Operation, status: int, answer: Any, where: str) -> None:
        if op.answer is not None and 200 <= status < 300:
            self.fake.errors.extend(contract.violations(op.answer, answer, "answer " + where))

    def _check_query(self, op: contract.Operation, query: dict[str, str]) -> None:
        errs = contract.query_violations(op, query)
        if errs:
            self.fake.errors.extend(f"{op.op_id}: {e}" for e in errs)
            raise HTTPError(400, "; ".join(errs))

    def _json_body(self, op: contract.Operation, raw: bytes) -> Any:
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            raise HTTPError(400, "body is not JSON") from None
        if op.body is None:
            return body
        errs = contract.violations(op.body, body, "body")
        if errs:
            self.fake.errors.extend(f"{op.op_id}: {e}" for e in errs)
            raise HTTPError(400, "; ".join(errs[:5]))
        return body

    def _dispatch(self, op: contract.Operation, params: dict[str, str], query: dict[str, str],
                  raw: bytes) -> tuple[int, Any, str]:
        fake = self.fake
        op_id = op.op_id
        self._check_query(op, query)
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            raw = gzip.decompress(raw)
        if op_id == "opentelemetry_exportTraces":
            return self._otel(op, raw)
        if op_id in ("experiments_list", "experiments_listItems") and fake.mode == V3:
            raise HTTPError(404, NO_EXPERIMENTS_API)
        if op_id == "scores_create" and fake.score_body == SCORE_OBJECT:
            return self._score_object(raw)
        body = self._json_body(op, raw) if op.method == "POST" else None
        if op_id == "health_health":
            return 200, {"version": "3.0.0-fake", "status": "OK"}, ""
        if op_id == "projects_get":
            return 200, {"data": [{"id": fake.project_id, "name": "evalrun-tests", "metadata": {},
                                   "organization": {"id": "org-test", "name": "evalrun"}}]}, ""
        if op_id == "datasets_create":
            return 200, fake._create_dataset(body), ""
        if op_id == "datasets_get":
            ds = fake.datasets.get(params["datasetName"])
            if ds is None:
                raise HTTPError(404, f"Dataset {params['datasetName']} not found")
            return 200, dict(ds), ""
        if op_id == "datasets_list":
            chunk, meta = _page(sorted(fake.datasets.values(), key=lambda d: d["createdAt"]), query, fake)
            return 200, {"data": chunk, "meta": meta}, ""
        if op_id == "datasetItems_create":
            return 200, fake._upsert_item(body), ""
        if op_id == "datasetItems_get":
            versions = fake.item_versions.get(params["id"])
            if not versions or versions[-1][1] is None:
                raise HTTPError(404, "Dataset item not found")
            return 200, dict(versions[-1][1]), ""
        if op_id == "datasetItems_list":
            name = query.get("datasetName")
            if query.get("version") and not name:
                raise HTTPError(400, "version requires datasetName")
            if name is not None and name not in fake.datasets:
                raise HTTPError(404, f"Dataset {name} not found")
            items = fake.dataset_items(name, query.get("version")) if name else \
                [v[-1][1] for v in fake.item_versions.values() if v[-1][1] is not None]
            # as Langfuse: the listing never returns ARCHIVED items (GET by id does)
            items = [i for i in items if i["status"] != "ARCHIVED"]
            chunk, meta = _page(items, query, fake)
            return 200, {"data": chunk, "meta": meta}, ""
        if op_id == "scores_create":
            return self._scores(body)
        if op_id == "experiments_list":
            exps = fake.experiments()
            exps = self._filter(exps, query, {"id": "id", "name": "name", "datasetId": "datasetId"})
            exps = _apply_filter(exps, query.get("filter"))
            fields = _csv(query, "fields") or {"core"}
            exps = [{k: v for k, v in e.items()
                     if k not in ("metadata", "scores") or k in fields} for e in exps]
            chunk, meta = _cursor_page(exps, query, fake)
            return 200, {"data": chunk, "meta": meta}, ""
        if op_id == "experiments_listItems":
            its = fake.experiment_items()
            its = self._filter(its, query, {"experimentId": "experimentId", "experimentName": "experimentName",
                                            "experimentItemId": "experimentItemId", "datasetId": "experimentDatasetId"})
            frm = _parse_ts(query["fromStartTime"])
            its = [i for i in its if _parse_ts(i["startTime"]) >= frm]
            fields = _csv(query, "fields") or {"core", "dataset"}
            groups = {"dataset": ("experimentDatasetId", "experimentItemVersion"),
                      "io": ("input", "output", "expectedOutput"), "metadata": ("metadata",),
                      "itemMetadata": ("experimentItemMetadata",),
                      "experimentMetadata": ("experimentMetadata", "experimentDescription"), "scores": ("scores",)}
            drop = {k for g, keys in groups.items() if g not in fields for k in keys}
            its = [{k: v for k, v in i.items() if k not in drop} for i in its]
            chunk, meta = _cursor_page(its, query, fake)
            return 200, {"data": chunk, "meta": meta}, ""
        if op_id in PROMPT_OPERATIONS:  # versioned prompts: the block at the end of this file
            return 200, prompt_operation(fake, op_id, params, query, body), ""
        fake.errors.append(f"{op_id}: not implemented by the fake server")
        raise HTTPError(501, f"{op_id} is not implemented by the fake server")

    @staticmethod
    def _filter(rows: list[dict[str, Any]], query: dict[str, str], cols: dict[str, str]) -> list[dict[str, Any]]:
        for qkey, col in cols.items():
            wanted = _csv(query, qkey)
            if wanted is not None:
                rows = [r for r in rows if r.get(col) in wanted]
        return rows

    def _server_only(self, name: str, params: dict[str, str], query: dict[str, str],
                     raw: bytes) -> tuple[int, Any, str]:
        fake = self.fake
        if name == "dataset_run_items_create":
            try:
                body = json.loads(raw or b"null")
            except ValueError:
                raise HTTPError(400, "Invalid request data") from None
            bad = [k for k in body if k not in _RUN_ITEM_FIELDS] if isinstance(body, dict) else ["<root>"]
            bad += [k for k, t in _RUN_ITEM_FIELDS.items() if isinstance(body, dict) and k in body
                    and not isinstance(body[k], t)]
            bad += [k for k in ("runName", "datasetItemId") if isinstance(body, dict) and k not in body]
            if bad or not (body.get("traceId") or body.get("observationId")):
                fake.errors.append(f"dataset_run_items_create: invalid body ({bad or 'no traceId/observationId'})")
                raise HTTPError(400, "Invalid request data")
            return 200, fake.create_run_item(body), ""
        if fake.mode == V4:
            # rejectInEventsOnlyMode (web/src/features/public-api/server/createAuthedProjectAPIRoute.ts)
            raise HTTPError(404, "This endpoint is not available on deployments running in Langfuse v4 "
                                 "events_only mode.")
        if name == "trace_get":
            trace = fake.trace_view(params["traceId"])
            if trace is None:
                raise HTTPError(404, "Trace not found within authorized project")
            return 200, trace, ""
        ds = fake.datasets.get(params["name"])
        if ds is None:
            raise HTTPError(404, "Dataset not found")
        if name == "dataset_runs_list":
            runs = [{k: v for k, v in r.items() if k != "items"} for (dsid, _n), r in fake.dataset_runs.items()
                    if dsid == ds["id"]]
            runs.sort(key=lambda r: r["createdAt"], reverse=True)
            chunk, meta = _page(runs, query, fake)
            return 200, {"data": chunk, "meta": meta}, ""
        run = fake.dataset_runs.get((ds["id"], params["run"]))
        if run is None:
            raise HTTPError(404, "Dataset run not found")
        out = {k: v for k, v in run.items() if k != "items"}
        out["datasetRunItems"] = list(run["items"])
        return 200, out, ""

    def _score_object(self, raw: bytes) -> tuple[int, Any, str]:
        """One score per request (PostScoresBodyV1): 200 {"id"}; an array is a 400 zod error."""
        fake = self.fake
        with fake.lock:
            fake.score_posts += 1
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            raise HTTPError(400, "body is not JSON") from None
        if not isinstance(body, dict):
            raise HTTPError(400, "Invalid request data", body={
                "message": "Invalid request data",
                "error": [{"code": "invalid_type", "expected": "object", "received": type(body).__name__,
                           "path": [], "message": f"Expected object, received {type(body).__name__}"}]})
        errs = contract.violations(contract.score_object_type(), body, "body")
        if errs:
            fake.errors.extend(f"scores_create: {e}" for e in errs)
            raise HTTPError(400, "; ".join(errs[:5]))
        msg = fake._score_rejecter(body) if fake._score_rejecter else None
        if msg is not None:
            raise HTTPError(400, msg)
        fake._store_score(body)
        # PostScoresResponseV1 is {id}: no SDK 5.2.0 type describes it, so sent as is
        return 200, json.dumps({"id": body.get("id") or ""}).encode(), "application/json"

    def _scores(self, body: Any) -> tuple[int, Any, str]:
        fake = self.fake
        with fake.lock:
            fake.score_posts += 1
        errors = []
        for sc in body:
            msg = fake._score_rejecter(sc) if fake._score_rejecter else None
            if msg is None:
                try:
                    fake._store_score(sc)
                    continue
                except HTTPError as e:
                    msg = e.message
            errors.append({"message": f"score {sc.get('id')}: {msg}"})
        if errors:
            return 207, {"accepted": len(body) - len(errors), "rejected": len(errors), "errors": errors}, ""
        return 202, {"message": "Accepted"}, ""

    def _otel(self, op: contract.Operation, raw: bytes) -> tuple[int, Any, str]:
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if ctype == "application/x-protobuf":
            try:
                spans = decode_otlp_protobuf(raw)
            except Exception as e:  # a malformed payload is the client's error
                raise HTTPError(400, f"invalid OTLP protobuf: {e}") from None
            from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

            answer: Any = ExportTraceServiceResponse().SerializeToString()
        elif ctype == "application/json":
            spans = decode_otlp_json(self._json_body(op, raw))
            answer = {}
        else:
            raise HTTPError(415, f"unsupported content type {ctype!r}")
        with self.fake.lock:
            self.fake.spans_received += len(spans)
            for sp in spans:
                self.fake._spans[(sp["trace_id"], sp["span_id"])] = sp
        if isinstance(answer, bytes):
            return 200, answer, "application/x-protobuf"
        return 200, answer, ""


# --- prompts (versioned, labelled) ------------------------------------------------------------
# Self-contained: a per-fake store of prompt versions behind the spec's prompts_get /
# prompts_create / prompts_list operations, with Langfuse's rules: a new version gets the next
# number and the "latest" label; a label moves to the version that is given it; a get without
# version or label means label "production"; no match is 404.

PROMPT_OPERATIONS = ("prompts_get", "prompts_create", "prompts_list")


class PromptStore:
    def __init__(self) -> None:
        self.versions: dict[str, list[dict[str, Any]]] = {}  # name -> versions, oldest first
        self.lock = threading.Lock()

    def add(self, name: str, prompt: Any, *, labels: list[str] | None = None, config: Any = None,
            type: str | None = None, tags: list[str] | None = None, commit_message: str | None = None
            ) -> dict[str, Any]:
        """Create the next version of ``name`` (what POST /api/public/v2/prompts does)."""
        kind = type or ("text" if isinstance(prompt, str) else "chat")
        with self.lock:
            versions = self.versions.setdefault(name, [])
            new_labels = list(dict.fromkeys([*(labels or []), "latest"]))
            for v in versions:  # a label (and "latest") lives on one version only
                v["labels"] = [lb for lb in v["labels"] if lb not in new_labels]
            messages = prompt if kind == "text" else [
                {k: m[k] for k in ("role", "content", "type", "name") if k in m} for m in prompt]
            version = {"type": kind, "name": name, "version": len(versions) + 1, "prompt": messages,
                       "config": config if config is not None else {}, "labels": new_labels,
                       "tags": list(tags or (versions[-1]["tags"] if versions else [])),
                       "commitMessage": commit_message}
            versions.append(version)
            return json.loads(json.dumps(version))

    def get(self, name: str, version: int | None, label: str | None) -> dict[str, Any]:
        with self.lock:
            versions = self.versions.get(name) or []
            if version is not None:
                hit = [v for v in versions if v["version"] == version]
            else:
                hit = [v for v in versions if (label or "production") in v["labels"]]
            if not hit:
                raise HTTPError(404, f"Prompt not found: '{name}'")
            return json.loads(json.dumps(hit[-1]))


def prompts_of(fake: FakeLangfuse) -> PromptStore:
    """The fake's prompt store (made on first use)."""
    with fake.lock:
        store = fake.__dict__.get("_prompt_store")
        if store is None:
            store = fake.__dict__["_prompt_store"] = PromptStore()
        return store


def prompt_operation(fake: FakeLangfuse, op_id: str, params: dict[str, str], query: dict[str, str],
                     body: Any) -> Any:
    store = prompts_of(fake)
    if op_id == "prompts_get":
        version = int(query["version"]) if query.get("version") else None
        return store.get(params["promptName"], version, query.get("label") or None)
    if op_id == "prompts_create":
        return store.add(body["name"], body["prompt"], labels=body.get("labels"), config=body.get("config"),
                         type=body.get("type"), tags=body.get("tags"), commit_message=body.get("commitMessage"))
    with store.lock:  # prompts_list: one row per prompt name
        rows = [{"name": n, "type": vs[-1]["type"], "versions": [v["version"] for v in vs],
                 "labels": sorted({lb for v in vs for lb in v["labels"]}), "tags": vs[-1]["tags"],
                 "lastUpdatedAt": now_iso(), "lastConfig": vs[-1]["config"]}
                for n, vs in sorted(store.versions.items())]
    chunk, meta = _page(rows, query, fake)
    return {"data": chunk, "meta": meta}
