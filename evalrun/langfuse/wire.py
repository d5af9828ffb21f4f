"""Langfuse's wire format as evalrun writes it: OTel span attribute names, context and baggage
keys, and how ids and values are encoded. Owned here, not imported from the SDK's private
modules; ``tests/test_langfuse_wire.py`` pins every constant against the installed SDK.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

# span attributes Langfuse's OTel ingestion reads
TYPE = "langfuse.observation.type"
METADATA = "langfuse.observation.metadata"
LEVEL = "langfuse.observation.level"
STATUS_MESSAGE = "langfuse.observation.status_message"
INPUT = "langfuse.observation.input"
OUTPUT = "langfuse.observation.output"
MODEL = "langfuse.observation.model.name"
MODEL_PARAMETERS = "langfuse.observation.model.parameters"
USAGE_DETAILS = "langfuse.observation.usage_details"
COST_DETAILS = "langfuse.observation.cost_details"
PROMPT_NAME = "langfuse.observation.prompt.name"
PROMPT_VERSION = "langfuse.observation.prompt.version"
ENVIRONMENT = "langfuse.environment"
#: the version Langfuse shows on a trace and its observations (else the resource's service.version)
VERSION = "langfuse.version"
IS_APP_ROOT = "langfuse.internal.is_app_root"
EXPERIMENT_ID = "langfuse.experiment.id"
EXPERIMENT_NAME = "langfuse.experiment.name"
EXPERIMENT_DESCRIPTION = "langfuse.experiment.description"
EXPERIMENT_METADATA = "langfuse.experiment.metadata"
EXPERIMENT_DATASET_ID = "langfuse.experiment.dataset.id"
EXPERIMENT_ITEM_ID = "langfuse.experiment.item.id"
EXPERIMENT_ITEM_VERSION = "langfuse.experiment.item.version"
EXPERIMENT_ITEM_EXPECTED_OUTPUT = "langfuse.experiment.item.expected_output"
EXPERIMENT_ITEM_METADATA = "langfuse.experiment.item.metadata"
EXPERIMENT_ITEM_ROOT_OBSERVATION_ID = "langfuse.experiment.item.root_observation_id"

#: the environment experiment traces live in (kept out of production views)
EXPERIMENT_ENVIRONMENT = "sdk-experiment"

#: the SDK propagates experiment attributes to child spans through OTel context values named
#: ``langfuse.propagated.<key>`` and, across processes, baggage entries ``langfuse_<key>``
PROPAGATED_CONTEXT_PREFIX = "langfuse.propagated."
BAGGAGE_PREFIX = "langfuse_"
#: the baggage entry by which a span claims its trace: the SDK marks no later span of that trace
#: as an app root (``start_as_current_observation`` sets it)
TRACE_ID_BAGGAGE = "langfuse_trace_id"
#: propagated key -> the span attribute it becomes on every child span
PROPAGATED = {
    "experiment_id": EXPERIMENT_ID,
    "experiment_name": EXPERIMENT_NAME,
    "experiment_metadata": EXPERIMENT_METADATA,
    "experiment_dataset_id": EXPERIMENT_DATASET_ID,
    "experiment_item_id": EXPERIMENT_ITEM_ID,
    "experiment_item_metadata": EXPERIMENT_ITEM_METADATA,
    "experiment_item_root_observation_id": EXPERIMENT_ITEM_ROOT_OBSERVATION_ID,
}

#: the instrumentation scope name Langfuse accepts spans under, and the SDK's identifying headers
SCOPE_NAME = "langfuse-sdk"
SDK_NAME = "python"
HEADER_SDK_NAME = "x-langfuse-sdk-name"
HEADER_SDK_VERSION = "x-langfuse-sdk-version"
HEADER_PUBLIC_KEY = "x-langfuse-public-key"


def sdk_headers(public_key: str) -> dict[str, str]:
    """The headers the langfuse SDK identifies itself with (version: the installed SDK)."""
    try:
        from importlib.metadata import version

        sdk_version = version("langfuse")
    except Exception:  # not installed: the push itself reports that
        sdk_version = "unknown"
    return {HEADER_SDK_NAME: SDK_NAME, HEADER_SDK_VERSION: sdk_version, HEADER_PUBLIC_KEY: public_key}


def trace_id(seed: str) -> str:
    """A 32-hex trace id derived from ``seed`` exactly as the SDK's ``create_trace_id(seed=...)``."""
    return hashlib.sha256(seed.encode("utf-8")).digest()[:16].hex()


def digest(*parts: Any, n: int) -> str:
    """``n`` hex digits of the sha256 of ``parts`` as compact JSON: the ids of a pushed run
    (spans, scores, experiment) come from this, so the formula must never change."""
    if all(type(p) is int or (type(p) is str and p.isascii() and p.isprintable() and '"' not in p
                               and "\\" not in p) for p in parts):
        text = ("[" + ",".join(str(p) if type(p) is int else f'"{p}"' for p in parts) + "]").encode()
    else:
        text = json.dumps(parts, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(text).hexdigest()[:n]


def span_id(*parts: Any) -> str:
    """A 16-hex span id derived from ``parts``."""
    return digest(*parts, n=16)


def _dumps(obj: Any) -> str:
    try:
        import orjson

        return orjson.dumps(obj, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except (ImportError, TypeError):  # ints beyond 64 bits and the like
        return json.dumps(_finite(obj), ensure_ascii=False, default=str)


def _finite(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def serialize(obj: Any) -> str | None:
    """An attribute value: strings as they are, anything else as JSON (NaN/inf as strings)."""
    if obj is None or isinstance(obj, str):
        return obj
    return _dumps(_finite(obj) if isinstance(obj, float) else obj)


def metadata_attributes(metadata: dict[str, Any]) -> dict[str, str]:
    """Observation metadata as the SDK writes it: one attribute per key, each value JSON."""
    out = {}
    for k, v in metadata.items():
        if v is None:
            continue
        out[f"{METADATA}.{k}"] = _dumps(v)
    return out


def observation_attributes(*, kind: str, input: Any = None, output: Any = None,
                           metadata: dict[str, Any] | None = None, level: str | None = None,
                           status_message: str | None = None) -> dict[str, Any]:
    attrs = {TYPE: kind, LEVEL: level, STATUS_MESSAGE: status_message, INPUT: serialize(input),
             OUTPUT: serialize(output), **metadata_attributes(metadata or {})}
    return {k: v for k, v in attrs.items() if v is not None}


#: how a Langfuse media reference reaches a target: this mapping in place of the reference string
MEDIA_TYPE = "langfuse_media"


def resolve_media(value: Any, refs: dict[str, dict[str, Any]]) -> Any:
    """``value`` with every string that is a known media reference (``@@@langfuseMedia:...@@@``)
    replaced by ``{"type": "langfuse_media", "reference", "media_id", "content_type",
    "content_length", "url"}`` (``url``: Langfuse's signed download link)."""
    if isinstance(value, str):
        return refs.get(value, value)
    if isinstance(value, dict):
        return {k: resolve_media(v, refs) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_media(v, refs) for v in value]
    return value


def media_references(value: Any) -> Any:
    """The reverse for what goes back to Langfuse: the reference string, never the content or
    a signed URL that expires."""
    if isinstance(value, dict):
        if value.get("type") == MEDIA_TYPE and isinstance(value.get("reference"), str):
            return value["reference"]
        return {k: media_references(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [media_references(v) for v in value]
    return value


DATA_URI_MARK = ";base64,"


def without_data_uris(value: Any) -> Any:
    """``value`` with each base64 data URI replaced by a short description of it."""
    if isinstance(value, str):
        if value.startswith("data:") and DATA_URI_MARK in value[:100]:
            head, _, data = value.partition(",")
            size = len(data) * 3 // 4 - data[-2:].count("=")
            return f"[{head[5:].split(';')[0] or 'media'}, {size} bytes: see experiment-item-task]"
        return value
    if isinstance(value, dict):
        return {k: without_data_uris(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_data_uris(v) for v in value]
    return value
