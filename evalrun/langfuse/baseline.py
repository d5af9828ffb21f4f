"""Read an experiment run back from Langfuse as Records: ``langfuse://<dataset>/<run-name>``.

Used as a baseline: each experiment item becomes a Record (item id, trial, input, output,
expected output, error, latency) with its item scores turned back into evalrun Scores, the
inverse of what :mod:`evalrun.langfuse.push` sends (``<name>.passed`` joins ``<name>``,
``<name>.label`` becomes ``extra["label"]``). Runs made by the SDK's own experiment runner read
the same way.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from evalrun.errors import UsageError
from evalrun.langfuse.client import Client, Refused, Unreachable, credentials, name_filter
from evalrun.langfuse.datasets import SCHEME, get_dataset
from evalrun.records import Record, Score

#: experiments list needs a lower bound on start time; nothing Langfuse holds is older
EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
ITEM_FIELDS = "core,dataset,io,metadata,scores"


def parse_run_ref(ref: str) -> tuple[str, str]:
    """``langfuse://<dataset>/<run-name>`` -> (dataset, run name); a '/' inside either is %2F."""
    if not ref.startswith(SCHEME) or "/" not in ref[len(SCHEME):]:
        raise UsageError(f"baseline {ref!r}: expected {SCHEME}<dataset>/<run-name>")
    dataset, run = ref[len(SCHEME):].rsplit("/", 1)
    dataset, run = unquote(dataset).strip(), unquote(run).strip()
    if not dataset or not run:
        raise UsageError(f"baseline {ref!r}: expected {SCHEME}<dataset>/<run-name>")
    return dataset, run


def _value(v: Any) -> Any:
    return getattr(v, "value", v)


def scores_from_langfuse(raw_scores: list[Any]) -> dict[str, Score]:
    """Langfuse scores of one item -> evalrun Scores by name."""
    by_name: dict[str, Any] = {}
    for s in raw_scores or []:
        by_name[s.name] = s
    out: dict[str, Score] = {}
    for name, s in by_name.items():
        dtype = str(_value(getattr(s, "data_type", None)) or "NUMERIC")
        if name.endswith((".passed", ".label")) and name.rsplit(".", 1)[0] in by_name:
            continue  # folded into their base score below
        value = s.value
        reason = getattr(s, "comment", None)
        if dtype == "BOOLEAN":
            out[name] = Score(1.0 if value else 0.0, bool(value), reason)
        elif dtype in ("CATEGORICAL", "TEXT"):
            out[name] = Score(None, None, reason, extra={"label": str(value)})
        else:
            out[name] = Score(float(value), None, reason)
        passed = by_name.get(f"{name}.passed")
        if passed is not None:
            out[name].passed = bool(passed.value)
        label = by_name.get(f"{name}.label")
        if label is not None:
            out[name].extra = {**(out[name].extra or {}), "label": str(label.value)}
    return out


def _ts(v: Any) -> float | None:
    if v is None:
        return None
    if isinstance(v, datetime):
        return (v if v.tzinfo else v.replace(tzinfo=UTC)).timestamp()
    return datetime.fromisoformat(str(v).replace("Z", "+00:00")).timestamp()


def item_to_record(it: Any, trial: int) -> Record:
    meta = dict(getattr(it, "metadata", None) or {})
    output = getattr(it, "output", None)
    error = None
    if str(_value(getattr(it, "level", None))) == "ERROR":
        message = str(output or "")
        error = {"type": "Error", "message": message[len("Error: "):] if message.startswith("Error: ") else message}
        output = None
    start, end = _ts(getattr(it, "start_time", None)), _ts(getattr(it, "end_time", None))
    return Record(item_id=str(it.experiment_item_id), trial=trial, input=getattr(it, "input", None),
                  expected_output=getattr(it, "expected_output", None), output=output, error=error,
                  latency_ms=round((end - start) * 1000, 3) if start is not None and end is not None else None,
                  scores=scores_from_langfuse(getattr(it, "scores", None) or []),
                  metadata={k: v for k, v in meta.items() if k in ("tags",)}, started_at=start)


def _call(client: Client, what: str, fn: Any) -> Any:
    try:
        return client.call(what, fn)
    except (Unreachable, Refused) as e:
        raise UsageError(f"baseline from Langfuse at {client.creds.base_url}: {what}: {e}") from None


def read_baseline(ref: str) -> list[Record]:
    import json

    dataset, run_name = parse_run_ref(ref)
    with Client(credentials(), budget=120.0) as client:
        ds = get_dataset(client, dataset)
        if ds is None:
            raise UsageError(f"baseline {ref}: Langfuse has no dataset {dataset!r}")
        by_filter = "," in run_name  # name= is split on commas by the experiments API
        try:
            exps = client.call(f"find run {run_name!r}", lambda o: client.api.experiments.list(
                from_start_time=EPOCH, name=None if by_filter else run_name, dataset_id=ds.id, limit=10,
                filter=json.dumps([name_filter(run_name)]) if by_filter else None, request_options=o))
        except Refused as e:
            if e.status != 404:
                raise UsageError(f"baseline from Langfuse at {client.creds.base_url}: find run {run_name!r}: {e}"
                                 ) from None
            # Langfuse v3 (no experiments API): the dataset run and its traces
            return _read_dataset_run(client, ref, dataset, run_name)
        match = [e for e in exps.data if e.name == run_name]
        if not match:
            recent = _call(client, "list runs", lambda o: client.api.experiments.list(
                from_start_time=EPOCH, dataset_id=ds.id, limit=5, request_options=o))
            names = ", ".join(repr(e.name) for e in recent.data) or "none"
            raise UsageError(f"baseline {ref}: dataset {dataset!r} has no run {run_name!r} (recent runs: {names})")
        exp = match[0]
        items: list[Any] = []
        cursor = None
        while True:
            def page(o: dict[str, Any], cursor: str | None = cursor) -> Any:
                return client.api.experiments.list_items(
                    from_start_time=exp.start_time, experiment_id=exp.id, fields=ITEM_FIELDS, limit=100,
                    score_limit=50, cursor=cursor, request_options=o)

            res = _call(client, f"read items of run {run_name!r}", page)
            items.extend(res.data)
            cursor = getattr(res.meta, "cursor", None)
            if not cursor or not res.data:
                break
    return _to_records(ref, items)


def _to_records(ref: str, items: list[Any]) -> list[Record]:
    # trials: evalrun writes each record's trial into the observation metadata; for runs made
    # elsewhere, repeated items count up in start order
    items.sort(key=lambda it: (_ts(it.start_time) or 0.0, it.id))
    seen: dict[str, int] = {}
    records = []
    for it in items:
        meta = getattr(it, "metadata", None) or {}
        trial = meta.get("evalrun_trial")
        if isinstance(trial, str) and trial.isdigit():  # metadata values may come back as their JSON text
            trial = int(trial)
        if not isinstance(trial, int):
            trial = seen.get(it.experiment_item_id, 0)
        seen[it.experiment_item_id] = max(seen.get(it.experiment_item_id, 0), trial + 1)
        records.append(item_to_record(it, trial))
    if not records:
        raise UsageError(f"baseline {ref}: the run has no items")
    return records


def _read_dataset_run(client: Client, ref: str, dataset: str, run_name: str) -> list[Record]:
    """A Langfuse v3 dataset run as Records: its run items
    (GET /api/public/datasets/{name}/runs/{run}: web/src/pages/api/public/datasets/[name]/runs/[runName].ts)
    and each item's trace (GET /api/public/traces/{id}: web/src/pages/api/public/traces/[traceId].ts),
    whose ``experiment-item-task`` observation (else the trace itself) holds the item's input,
    output and scores."""
    from types import SimpleNamespace
    from urllib.parse import quote

    path = f"/api/public/datasets/{quote(dataset, safe='')}/runs"
    try:
        run = client.call(f"find run {run_name!r}", lambda o: client.get_json(f"{path}/{quote(run_name, safe='')}", o))
    except Refused as e:
        if e.status != 404:
            raise UsageError(f"baseline from Langfuse at {client.creds.base_url}: find run {run_name!r}: {e}") from None
        recent = _call(client, "list runs", lambda o: client.get_json(path, o, {"limit": 5}))
        names = ", ".join(repr(r.get("name")) for r in (recent or {}).get("data") or []) or "none"
        raise UsageError(f"baseline {ref}: dataset {dataset!r} has no run {run_name!r} (recent runs: {names})"
                         ) from None
    except Unreachable as e:
        raise UsageError(f"baseline from Langfuse at {client.creds.base_url}: find run {run_name!r}: {e}") from None
    items = []
    for ri in run.get("datasetRunItems") or []:
        tid = str(ri.get("traceId"))
        trace = _call(client, f"read trace {tid}", lambda o, tid=tid: client.get_json(
            f"/api/public/traces/{quote(tid, safe='')}", o))
        observations = trace.get("observations") or []
        wanted = ri.get("observationId")
        root = next((ob for ob in observations if (ob.get("id") == wanted if wanted else
                                                   ob.get("name") == "experiment-item-task")), None)
        src = root or trace
        scores = [SimpleNamespace(name=sc.get("name"), value=sc.get("value") if sc.get("dataType") not in
                                  ("CATEGORICAL", "TEXT") else sc.get("stringValue", sc.get("value")),
                                  data_type=sc.get("dataType"), comment=sc.get("comment"))
                  for sc in trace.get("scores") or []
                  if root is None or sc.get("observationId") in (None, root.get("id"))]
        items.append(SimpleNamespace(
            id=(root or {}).get("id") or tid, experiment_item_id=ri.get("datasetItemId"),
            input=src.get("input"), output=src.get("output"), expected_output=None,
            level=(root or {}).get("level"), start_time=src.get("startTime") or src.get("timestamp"),
            end_time=src.get("endTime"), metadata=src.get("metadata"), scores=scores))
    return _to_records(ref, items)
