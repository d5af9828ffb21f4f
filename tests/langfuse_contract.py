"""The Langfuse public API contract the fake server enforces, taken from the langfuse SDK itself.

Nothing here is read from outside the repository: every operation names the SDK's generated
REST client method that calls it (its keyword parameters are the query parameters) and the
SDK's generated pydantic types for the request body and the answer. A request or answer that
the SDK's own types would not accept -- a missing required field, a wrong type, an unknown
enum value, an unknown key, an unknown query parameter -- is a contract violation.

The route table (method and path of each operation) is ours; ``tests/test_langfuse.py`` pins it
by driving the SDK's own generated client through every operation against the fake server, so
a route that disagrees with the SDK fails there.
"""

from __future__ import annotations

import inspect
import re
import typing
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


@dataclass
class Operation:
    op_id: str
    method: str
    template: str
    #: the SDK's generated raw client class and method that calls this operation
    client: str
    func: str
    #: the SDK type of the JSON request body, and of the 2xx JSON answers (None: not checked)
    body: Any = None
    answer: Any = None
    regex: re.Pattern[str] = field(init=False)
    query: dict[str, tuple[Any, bool]] = field(init=False)  # wire name -> (annotation, required)

    def __post_init__(self) -> None:
        self.regex = re.compile("^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(self.template)) + "$")
        self.query = {}
        if self.method != "GET":
            return
        mod_name, cls_name = self.client.rsplit(".", 1)
        import importlib

        cls = getattr(importlib.import_module(mod_name), cls_name)
        fn = getattr(cls, self.func)
        hints = typing.get_type_hints(fn)
        path_params = set(re.findall(r"\{(\w+)\}", self.template))
        for name, p in inspect.signature(fn).parameters.items():
            if name in ("self", "request_options") or _camel(name) in path_params:
                continue
            self.query[_camel(name)] = (hints.get(name, Any), p.default is inspect.Parameter.empty)


def _sdk(path: str) -> Any:
    import importlib

    mod, name = path.rsplit(".", 1)
    return getattr(importlib.import_module("langfuse.api." + mod), name)


_A = "langfuse.api."
OPERATIONS: list[Operation] = []


def _load() -> list[Operation]:
    if OPERATIONS:
        return OPERATIONS
    ops = [
        Operation("health_health", "GET", "/api/public/health", _A + "health.raw_client.RawHealthClient", "health",
                  answer=_sdk("health.types.HealthResponse")),
        Operation("projects_get", "GET", "/api/public/projects", _A + "projects.raw_client.RawProjectsClient", "get",
                  answer=_sdk("projects.types.Projects")),
        Operation("datasets_list", "GET", "/api/public/v2/datasets", _A + "datasets.raw_client.RawDatasetsClient",
                  "list", answer=_sdk("datasets.types.PaginatedDatasets")),
        Operation("datasets_create", "POST", "/api/public/v2/datasets", _A + "datasets.raw_client.RawDatasetsClient",
                  "create", body=_sdk("datasets.types.CreateDatasetRequest"), answer=_sdk("commons.types.Dataset")),
        Operation("datasets_get", "GET", "/api/public/v2/datasets/{datasetName}",
                  _A + "datasets.raw_client.RawDatasetsClient", "get", answer=_sdk("commons.types.Dataset")),
        Operation("datasetItems_create", "POST", "/api/public/dataset-items",
                  _A + "dataset_items.raw_client.RawDatasetItemsClient", "create",
                  body=_sdk("dataset_items.types.CreateDatasetItemRequest"), answer=_sdk("commons.types.DatasetItem")),
        Operation("datasetItems_list", "GET", "/api/public/dataset-items",
                  _A + "dataset_items.raw_client.RawDatasetItemsClient", "list",
                  answer=_sdk("dataset_items.types.PaginatedDatasetItems")),
        Operation("datasetItems_get", "GET", "/api/public/dataset-items/{id}",
                  _A + "dataset_items.raw_client.RawDatasetItemsClient", "get",
                  answer=_sdk("commons.types.DatasetItem")),
        Operation("scores_create", "POST", "/api/public/scores", _A + "scores.raw_client.RawScoresClient", "create",
                  body=_sdk("scores.types.CreateScoresRequest"), answer=_sdk("scores.types.CreateScoresResponse")),
        Operation("experiments_list", "GET", "/api/public/experiments",
                  _A + "experiments.raw_client.RawExperimentsClient", "list",
                  answer=_sdk("experiments.types.ExperimentsResponse")),
        Operation("experiments_listItems", "GET", "/api/public/experiment-items",
                  _A + "experiments.raw_client.RawExperimentsClient", "list_items",
                  answer=_sdk("experiments.types.ExperimentItemsResponse")),
        Operation("prompts_list", "GET", "/api/public/v2/prompts", _A + "prompts.raw_client.RawPromptsClient", "list",
                  answer=_sdk("prompts.types.PromptMetaListResponse")),
        Operation("prompts_create", "POST", "/api/public/v2/prompts", _A + "prompts.raw_client.RawPromptsClient",
                  "create", body=_sdk("prompts.types.CreatePromptRequest"), answer=_sdk("prompts.types.Prompt")),
        Operation("prompts_get", "GET", "/api/public/v2/prompts/{promptName}",
                  _A + "prompts.raw_client.RawPromptsClient", "get", answer=_sdk("prompts.types.Prompt")),
        # OTLP: protobuf is decoded by the server; the JSON form is the SDK's OtelResourceSpan list
        Operation("opentelemetry_exportTraces", "POST", "/api/public/otel/v1/traces",
                  _A + "opentelemetry.raw_client.RawOpentelemetryClient", "export_traces",
                  answer=_sdk("opentelemetry.types.OtelTraceResponse")),
    ]
    # literal paths before templated ones (/v2/datasets before /v2/datasets/{name})
    ops.sort(key=lambda o: o.template.count("{"))
    OPERATIONS.extend(ops)
    return OPERATIONS


def score_object_type() -> Any:
    """One CreateScoreRequest: the body of POST /api/public/scores on a server that takes one
    score per request (the list type's element)."""
    return _sdk("scores.types.CreateScoreRequest")


def match(method: str, path: str) -> tuple[Operation, dict[str, str]] | None:
    for op in _load():
        if op.method == method:
            hit = op.regex.match(path)
            if hit:
                return op, {k: unquote(v) for k, v in hit.groupdict().items()}
    return None


def _loc(err: dict[str, Any]) -> str:
    return "/".join(str(x) for x in err.get("loc", ())) or "<root>"


def _extras(obj: Any, where: str, out: list[str]) -> None:
    """Keys the SDK type does not declare (its models allow extras; the contract does not)."""
    import pydantic

    if isinstance(obj, pydantic.BaseModel):
        for k in (obj.model_extra or {}):
            out.append(f"{where}/{k}: not a field of {type(obj).__name__}")
        for name in type(obj).model_fields:
            _extras(getattr(obj, name), f"{where}/{name}", out)
    elif isinstance(obj, list | tuple):
        for i, x in enumerate(obj):
            _extras(x, f"{where}/{i}", out)


_ALIASES: dict[type, dict[str, tuple[str, Any]]] = {}
_ADAPTERS: dict[Any, Any] = {}


def _fields(model: type) -> dict[str, tuple[str, Any]]:
    """wire name -> (field name, annotation) of an SDK model (its FieldMetadata aliases)."""
    got = _ALIASES.get(model)
    if got is None:
        from langfuse.api.core.serialization import FieldMetadata

        got = {}
        for name, f in model.model_fields.items():
            alias = next((m.alias for m in f.metadata if isinstance(m, FieldMetadata)), None)
            got[alias or name] = (name, f.annotation)
        _ALIASES[model] = got
    return got


def _dealias(tp: Any, value: Any) -> Any:
    """The SDK's read-side renaming (wire names to field names), done once per type: the SDK's
    own generic walk costs more than the validation itself on a batch of scores."""
    import pydantic

    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _dealias(typing.get_args(tp)[0], value)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        models = [a for a in typing.get_args(tp) if isinstance(a, type) and issubclass(a, pydantic.BaseModel)]
        others = [a for a in typing.get_args(tp) if a not in models and a is not type(None)]
        if isinstance(value, dict) and models:
            merged: dict[str, tuple[str, Any]] = {}
            for m in models:
                merged.update(_fields(m))
            return _rename(merged, value)
        return _dealias(others[0], value) if len(others) == 1 else value
    if origin in (list, typing.List) and isinstance(value, list):  # noqa: UP006
        (arg,) = typing.get_args(tp) or (Any,)
        return [_dealias(arg, v) for v in value]
    if origin in (dict, typing.Dict) and isinstance(value, dict):  # noqa: UP006
        args = typing.get_args(tp)
        return {k: _dealias(args[1], v) for k, v in value.items()} if len(args) == 2 else value
    if isinstance(tp, type) and issubclass(tp, pydantic.BaseModel) and isinstance(value, dict):
        return _rename(_fields(tp), value)
    return value


def _rename(fields: dict[str, tuple[str, Any]], value: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in value.items():
        hit = fields.get(k)
        out[hit[0] if hit else k] = _dealias(hit[1], v) if hit else v
    return out


def violations(type_: Any, value: Any, where: str) -> list[str]:
    """What the SDK's type ``type_`` says is wrong with the JSON value ``value`` (empty: fine)."""
    import pydantic

    adapter = _ADAPTERS.get(type_)
    if adapter is None:
        adapter = _ADAPTERS[type_] = pydantic.TypeAdapter(type_)
    try:
        parsed = adapter.validate_python(_dealias(type_, value))
    except pydantic.ValidationError as e:
        return [f"{where}: {_loc(err)}: {err['msg']}" for err in e.errors()[:10]]
    out: list[str] = []
    _extras(parsed, where, out)
    return out


def query_violations(op: Operation, query: dict[str, str]) -> list[str]:
    import pydantic

    out = []
    for name in query:
        if name not in op.query:
            out.append(f"query {name}: not a parameter of {op.op_id}")
    for name, (annotation, required) in op.query.items():
        if name not in query:
            if required:
                out.append(f"query {name}: required")
            continue
        try:
            pydantic.TypeAdapter(annotation).validate_python(query[name])
        except pydantic.ValidationError as e:
            out.append(f"query {name}: {e.errors()[0]['msg']}")
    return out
