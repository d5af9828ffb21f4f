"""Structured checks: the output parses as JSON and follows a JSON Schema (``json_schema``), or
a path in it holds a value (``json_path``: ``ticket.id``, ``$.items[*].sku``, ``a['x.y']``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from evalrun import _json, selectors
from evalrun.records import Item, Record, Score
from evalrun.scoring.assertions.registry import Check, CheckConfig, FinalScore
from evalrun.scoring.assertions.text import ok, parse_json_output


class JsonSchemaConfig(CheckConfig):
    #: the schema itself, or a .json file (relative to the eval file)
    schema_: dict[str, Any] | str = Field(alias="schema")


class JsonSchema(Check):
    """The output is JSON that the schema accepts (``jsonschema``, the draft the schema names)."""

    type = "json_schema"
    Config = JsonSchemaConfig

    def _validator(self, cfg: JsonSchemaConfig) -> Any:
        cache: dict[str, Any] = self.__dict__.setdefault("_validators", {})
        key = _json.canonical(cfg.schema_)
        v = cache.get(key)
        if v is None:
            try:
                import jsonschema
            except ImportError:
                from evalrun._version import DISTRIBUTION

                raise ValueError("json_schema checks need the jsonschema package: "
                                 f"pip install '{DISTRIBUTION}[assertions]'") from None
            schema = cfg.schema_
            if isinstance(schema, str):
                path = Path(schema)
                path = path if path.is_absolute() else self.ctx.base_dir / path
                try:
                    schema = _json.loads(path.read_text(encoding="utf-8"))
                except (OSError, ValueError) as e:
                    raise ValueError(f"schema file {schema!r} cannot be read as JSON: {e}") from None
            if not isinstance(schema, dict):
                raise ValueError("schema must be a JSON object")
            cls = jsonschema.validators.validator_for(schema)
            try:
                cls.check_schema(schema)
            except jsonschema.SchemaError as e:
                raise ValueError(f"not a valid JSON Schema: {e.message}") from None
            v = cache[key] = cls(schema)
        return v

    def validate(self, cfg: JsonSchemaConfig, item: Item) -> None:  # type: ignore[override]  # (its own Config)
        self._validator(cfg)

    def check(self, cfg: JsonSchemaConfig, output: Any, record: Record) -> Score:
        data, why = parse_json_output(output)
        if why:  # not JSON at all: a failure, inverted or not
            return FinalScore(0.0, False, why)
        error = next(iter(self._validator(cfg).iter_errors(data)), None)
        if error is None:
            return ok()
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        return Score(0.0, False, f"schema: at {where}: {error.message[:200]}")


class JsonPathConfig(CheckConfig):
    path: str
    #: the value the path must hold (absent: the path must exist and not be null)
    value: Any = None
    #: with a ``[*]`` path: any one value (default) or all of them must equal ``value``
    match: Literal["any", "all"] = "any"

    @model_validator(mode="after")
    def _path(self) -> JsonPathConfig:
        selectors.parse_path(self.path)
        return self


class JsonPath(Check):
    """The output is JSON, and ``path`` holds ``value`` (or holds something)."""

    type = "json_path"
    Config = JsonPathConfig

    def check(self, cfg: JsonPathConfig, output: Any, record: Record) -> Score:
        data, why = parse_json_output(output)
        if why:  # not JSON at all: a failure, inverted or not
            return FinalScore(0.0, False, why)
        found = [v for v in selectors.find(data, cfg.path) if v is not None]
        if not found:
            return Score(0.0, False, f"no value at {cfg.path}")
        if "value" not in cfg.model_fields_set:
            return ok()
        hits = [v == cfg.value for v in found]
        if all(hits) if cfg.match == "all" else any(hits):
            return ok()
        shown = _json.canonical(found[0])
        return Score(0.0, False, f"{cfg.path} is {shown[:80]}, not {_json.canonical(cfg.value)[:80]}")
