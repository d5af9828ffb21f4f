"""evalrun owns the Langfuse wire format it writes; this pins every constant against the
installed langfuse SDK, so an SDK that changes its format fails here, not in a user's project."""

from __future__ import annotations

import re
from pathlib import Path

from evalrun.langfuse import wire

REPO = Path(__file__).resolve().parent.parent


def test_attribute_names_match_the_sdk():
    from langfuse._client.attributes import LangfuseOtelSpanAttributes as A

    pairs = {
        wire.TYPE: A.OBSERVATION_TYPE, wire.METADATA: A.OBSERVATION_METADATA, wire.LEVEL: A.OBSERVATION_LEVEL,
        wire.STATUS_MESSAGE: A.OBSERVATION_STATUS_MESSAGE, wire.INPUT: A.OBSERVATION_INPUT,
        wire.OUTPUT: A.OBSERVATION_OUTPUT, wire.MODEL: A.OBSERVATION_MODEL,
        wire.MODEL_PARAMETERS: A.OBSERVATION_MODEL_PARAMETERS, wire.VERSION: A.VERSION,
        wire.USAGE_DETAILS: A.OBSERVATION_USAGE_DETAILS, wire.COST_DETAILS: A.OBSERVATION_COST_DETAILS,
        wire.PROMPT_NAME: A.OBSERVATION_PROMPT_NAME, wire.PROMPT_VERSION: A.OBSERVATION_PROMPT_VERSION,
        wire.ENVIRONMENT: A.ENVIRONMENT, wire.IS_APP_ROOT: A.IS_APP_ROOT,
        wire.EXPERIMENT_ID: A.EXPERIMENT_ID, wire.EXPERIMENT_NAME: A.EXPERIMENT_NAME,
        wire.EXPERIMENT_DESCRIPTION: A.EXPERIMENT_DESCRIPTION, wire.EXPERIMENT_METADATA: A.EXPERIMENT_METADATA,
        wire.EXPERIMENT_DATASET_ID: A.EXPERIMENT_DATASET_ID, wire.EXPERIMENT_ITEM_ID: A.EXPERIMENT_ITEM_ID,
        wire.EXPERIMENT_ITEM_VERSION: A.EXPERIMENT_ITEM_VERSION,
        wire.EXPERIMENT_ITEM_EXPECTED_OUTPUT: A.EXPERIMENT_ITEM_EXPECTED_OUTPUT,
        wire.EXPERIMENT_ITEM_METADATA: A.EXPERIMENT_ITEM_METADATA,
        wire.EXPERIMENT_ITEM_ROOT_OBSERVATION_ID: A.EXPERIMENT_ITEM_ROOT_OBSERVATION_ID,
    }
    assert all(ours == sdk for ours, sdk in pairs.items()), {o: s for o, s in pairs.items() if o != s}


def test_environment_propagation_and_ids_match_the_sdk():
    from langfuse import Langfuse
    from langfuse._client import propagation
    from langfuse._client.constants import LANGFUSE_SDK_EXPERIMENT_ENVIRONMENT

    assert wire.EXPERIMENT_ENVIRONMENT == LANGFUSE_SDK_EXPERIMENT_ENVIRONMENT
    assert wire.BAGGAGE_PREFIX == propagation.LANGFUSE_BAGGAGE_PREFIX
    assert wire.TRACE_ID_BAGGAGE == propagation.LANGFUSE_TRACE_ID_BAGGAGE_KEY
    for key, attr in wire.PROPAGATED.items():
        assert propagation._get_propagated_context_key(key) == wire.PROPAGATED_CONTEXT_PREFIX + key
        assert propagation._get_propagated_baggage_key(key) == wire.BAGGAGE_PREFIX + key
        assert propagation._get_propagated_span_key(key) == attr
    for seed in ("evalrun:r:q1:0", "é/ü", ""):
        if seed:
            assert wire.trace_id(seed) == Langfuse.create_trace_id(seed=seed)


def test_metadata_and_values_encode_as_the_sdk_encodes_them():
    import json

    from langfuse._client.attributes import _serialize, create_span_attributes

    meta = {"a": "text", "n": 3, "nested": {"x": [1, 2]}, "none": None}
    sdk = create_span_attributes(input={"q": 1}, output="out", metadata=meta, level="ERROR",
                                 status_message="bad", observation_type="span")
    ours = wire.observation_attributes(kind="span", input={"q": 1}, output="out", metadata=meta, level="ERROR",
                                       status_message="bad")
    assert set(ours) == set(sdk)
    # same JSON values (spacing may differ: Langfuse parses them)
    assert {k: json.loads(v) if k != wire.TYPE and v.startswith(("{", "[", '"')) else v for k, v in ours.items()} == \
        {k: json.loads(v) if k != wire.TYPE and v.startswith(("{", "[", '"')) else v for k, v in sdk.items()}
    assert json.loads(wire.serialize({"k": [1.5, None]})) == json.loads(_serialize({"k": [1.5, None]}))


def test_evalrun_never_imports_the_sdks_private_modules():
    offenders = []
    for p in (REPO / "evalrun").rglob("*.py"):
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"\blangfuse\._\w+", line) and ("import" in line or "from" in line):
                offenders.append(f"{p.relative_to(REPO)}:{i}: {line.strip()}")
    assert offenders == []


def test_ids_keep_their_formula():
    """Pushed ids are upsert keys: a run half-pushed by an older evalrun must get the same ids."""
    import hashlib
    import json

    for parts in (("ab" * 16, "experiment-item-task"), ("t", "score", "exact_match", 2), ("é", 'q"x', "a\\b")):
        old = hashlib.sha256(json.dumps(parts, separators=(",", ":"), default=str).encode()).hexdigest()
        assert wire.digest(*parts, n=32) == old[:32]
