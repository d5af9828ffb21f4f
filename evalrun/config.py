"""The eval file: its schema (pydantic v2) and loading it with file:line errors.

Values may use ``${VAR}`` and ``${VAR:-default}``; they are expanded from the environment
after parsing, so positions stay exact. The manifest keeps the file's text unexpanded, so a
secret given through the environment never lands in a run directory.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from evalrun import _json
from evalrun._secrets import VAR
from evalrun._yaml import Located, load_located, read_text
from evalrun.errors import UsageError, key_path, shown_key, suggest
from evalrun.overrides import apply_overrides, check_overrides, override_for
from evalrun.prices import Price
from evalrun.prompts import numbers_from_text, params_problem, role_problem
from evalrun.scoring.base import ScorerConfig, is_scorer_type, scorer_class, scorer_types
from evalrun.selectors import key_error, normalize_key
from evalrun.store import content_key

DEFAULT_FILE = "evalrun.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HttpTarget(_Strict):
    url: str
    method: Literal["POST", "PUT", "GET"] = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
    #: wrap the input as ``{input_key: input}`` instead of sending it as the whole body
    input_key: str | None = None
    #: dotted path to the output in the JSON response ("" = the whole body)
    output_path: str = "output"
    #: dotted path to token usage in the response, if any
    usage_path: str | None = None
    #: dotted path to the tool calls the pipeline made (any format evalrun.toolcalls reads)
    tool_calls_path: Annotated[str | None, AfterValidator(check_dotted_path)] = None
    #: dotted path to a whole trajectory ({tool_calls, spans, steps, truncated})
    trajectory_path: Annotated[str | None, AfterValidator(check_dotted_path)] = None


def check_http_url(v: str) -> str:
    """A base URL must be http(s) with a host, and no whitespace or control character (a line
    break would end the request line); shared by the judge and the chat target."""
    if urlparse(v).scheme not in ("http", "https") or not urlparse(v).netloc:
        raise ValueError("base_url must be an http(s) URL like https://api.openai.com/v1")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7f for c in v):
        raise ValueError("base_url may not hold spaces, line breaks or control characters")
    return v


def check_dotted_path(v: str | None) -> str | None:
    """A dotted path into a JSON answer (``choices.0.message.content``): no empty step."""
    if v and any(not part for part in v.split(".")):
        raise ValueError(f"'{v}' has an empty step; a dotted path reads like choices.0.message.content")
    return v


def check_env_name(v: str) -> str:
    """``api_key_env`` names a variable; a key pasted there would land in the manifest."""
    if not v.replace("_", "").isalnum() or v[0].isdigit():
        raise ValueError("api_key_env names an environment variable (like OPENAI_API_KEY), not a key")
    return v


#: an http(s) URL with a host (an OpenAI-compatible server's base_url)
HttpUrlStr = Annotated[str, AfterValidator(check_http_url)]
#: the name of an environment variable (that holds a key; never the key itself)
EnvName = Annotated[str, AfterValidator(check_env_name)]


class ChatMessage(_Strict):
    role: str = Field(min_length=1)
    #: a Jinja2 template (sandboxed) that sees ``input``, ``metadata`` and ``item_id``
    content: str

    @field_validator("role")
    @classmethod
    def _known_role(cls, v: str) -> str:
        problem = role_problem(v)
        if problem:
            raise ValueError(problem)
        return v


class ChatTarget(_Strict):
    """A model called through an OpenAI-compatible ``POST {base_url}/chat/completions``."""

    #: optional when the prompt's config names one
    model: str | None = Field(None, min_length=1)
    base_url: HttpUrlStr = "https://api.openai.com/v1"
    api_key_env: EnvName = "OPENAI_API_KEY"
    messages: list[ChatMessage] | None = None
    #: ``langfuse://name@label`` / ``langfuse://name@3`` or a local file (``prompts/x.yaml``)
    prompt: str | None = None
    #: request parameters (temperature, max_tokens, ...), over the prompt's own
    params: dict[str, Any] = Field(default_factory=dict)
    #: parse the answer as JSON and take this dotted path as the output
    output_path: Annotated[str | None, AfterValidator(check_dotted_path)] = None
    #: USD per million tokens, added to / overriding the built-in table
    prices: dict[str, Price] = Field(default_factory=dict)
    #: tools the model may call (OpenAI function schemas: {type: function, function: {name,
    #: description, parameters}}); a prompt file's or Langfuse prompt's ``tools`` otherwise
    tools: list[dict[str, Any]] | None = None
    #: auto | none | required | {type: function, function: {name: ...}}
    tool_choice: str | dict[str, Any] | None = None
    #: model turns of the tool loop at most; a loop still calling tools then ends as truncated
    max_steps: int = Field(8, ge=1, le=100)
    #: ``module:function(name, arguments, input)`` answering tool calls, instead of the items'
    #: ``tool_results``
    tool_results: str | None = None

    @field_validator("params")
    @classmethod
    def _sendable(cls, v: dict[str, Any]) -> dict[str, Any]:
        v = numbers_from_text(v)  # an environment variable's number arrives as text
        bad = params_problem(v)
        if bad is not None:
            raise ValueError(f"{bad[0]} {bad[1]}" if bad[0] else bad[1])
        return v

    @model_validator(mode="after")
    def _one_source(self) -> ChatTarget:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("chat target needs exactly one of: messages, prompt")
        if self.messages is not None and not self.messages:
            raise ValueError("messages is empty")
        if "messages" in self.params or "model" in self.params:
            raise ValueError("params may not set messages or model (use the chat keys)")
        if "tools" in self.params or "tool_choice" in self.params:
            raise ValueError("params may not set tools or tool_choice (use the chat keys tools: and tool_choice:)")
        if self.tool_results is not None and ":" not in self.tool_results:
            raise ValueError("tool_results must look like 'module:function'")
        return self


TARGET_KINDS = ("python", "exec", "http", "chat")


class TargetConfig(_Strict):
    python: str | None = None
    exec: str | list[str] | None = None
    http: HttpTarget | None = None
    chat: ChatTarget | None = None
    timeout: float = Field(30.0, gt=0)
    retries: int = Field(2, ge=0, le=20)
    #: first retry delay in seconds; doubles each attempt, with full jitter, capped at 30 s
    backoff: float = Field(0.5, ge=0, le=60)
    #: exec targets: parse stdout as JSON and take the output (and usage) from these paths
    output_path: str | None = None
    usage_path: str | None = None
    #: exec targets: where the tool calls / a whole trajectory are in stdout's JSON
    tool_calls_path: Annotated[str | None, AfterValidator(check_dotted_path)] = None
    trajectory_path: Annotated[str | None, AfterValidator(check_dotted_path)] = None
    env: dict[str, str] = Field(default_factory=dict)
    #: cache target outputs by a content hash of (target, input); off by default because
    #: the target is what is under test
    cache: bool = False
    #: python targets: keep the OpenTelemetry spans the pipeline emits during each call as the
    #: record's trajectory (needs opentelemetry-sdk; the langfuse SDK brings it)
    capture_spans: bool = False

    @model_validator(mode="after")
    def _exactly_one(self) -> TargetConfig:
        kinds = [k for k in TARGET_KINDS if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("target needs exactly one of: " + ", ".join(TARGET_KINDS)
                             + (f" (got {', '.join(kinds)})" if kinds else ""))
        if self.python is not None and ":" not in self.python:
            raise ValueError("python target must look like 'module:function'")
        if self.capture_spans and self.python is None:
            raise ValueError("capture_spans works for python targets (exec/http targets report a trajectory "
                             "through trajectory_path)")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in TARGET_KINDS if getattr(self, k) is not None)


class LangfuseSettings(_Strict):
    push: bool = False
    #: a push that is not delivered fails the command (exit 3), as ``--push-required`` does
    required: bool = False
    run_name: str | None = None
    description: str | None = None
    dataset_name: str | None = None
    #: the live trace context for target calls (default: on when the run is pushed)
    trace_context: bool | None = None
    #: extra keys on the experiment's metadata (model, prompt version...)
    metadata: dict[str, str | int | float | bool] | None = None
    #: who reports a target call's cost and tokens to Langfuse: "auto" (the pipeline when it
    #: traced a generation of its own for the call, else evalrun), "evalrun" or "pipeline"
    cost: Literal["auto", "evalrun", "pipeline"] = "auto"
    #: the version Langfuse shows on the run's traces and observations (a pipeline or prompt version)
    version: str | None = None
    #: a scorer's Langfuse data type, overriding the one its class declares
    score_types: dict[str, Literal["NUMERIC", "BOOLEAN", "CATEGORICAL"]] | None = None


#: the longest eval (and variant) name: it names files (the accepted baseline, history), and
#: a file name holds 255 bytes at most
MAX_NAME = 100


class EvalConfig(_Strict):
    name: str = Field(min_length=1)
    description: str | None = None
    dataset: str
    target: TargetConfig
    concurrency: int = Field(16, ge=1, le=10_000)
    rate: float | None = Field(None, gt=0)
    repeat: int = Field(1, ge=1, le=1000)
    scorers: list[ScorerConfig] = Field(default_factory=list)
    #: fraction of records whose target call may fail before the run counts as failed (exit 3);
    #: default 5% (summary.DEFAULT_ERROR_BUDGET); a run where every call failed always does
    error_budget: float | None = Field(None, ge=0, le=1)
    #: leave target and scorer errors out of every number instead of counting them as failures
    #: (every report then says so)
    exclude_errors: bool = False
    gates: list[Any] = Field(default_factory=list)
    #: how a relative gate decides (gates.py): significant (default), point or strict
    gate_policy: Literal["significant", "point", "strict"] = "significant"
    #: a metadata key grouping items that are not independent (same document, conversation or
    #: template): intervals become cluster-robust over its values
    cluster: str | None = Field(None, min_length=1)
    #: slice keys (tags, metadata.KEY): per-slice results in every report
    slices: list[str] = Field(default_factory=list)
    baseline: str | None = None
    langfuse: LangfuseSettings | None = None
    #: candidates run side by side over the same items: name -> {dotted.key: value} overrides
    variants: dict[str, dict[str, Any]] | None = None
    #: the variant every other one is paired with (default: the first)
    compare_to: str | None = None
    #: the variants whose gates decide the exit code (default: all)
    gate_variants: list[str] | None = None

    @field_validator("slices")
    @classmethod
    def _slice_keys(cls, v: list[str]) -> list[str]:

        for key in v:
            if normalize_key(key) is None:
                raise ValueError(key_error(key))
        return v

    @field_validator("name")
    @classmethod
    def _name_is_a_filename(cls, v: str) -> str:
        if len(v) > MAX_NAME:
            raise ValueError(f"name is {len(v):,} characters long; at most {MAX_NAME}")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", v):
            raise ValueError("name may use letters, digits, '.', '_' and '-' only")
        return v

    @property
    def variant_names(self) -> list[str]:
        return list(self.variants or {})

    @property
    def reference_variant(self) -> str | None:
        """The variant the others are compared with: ``compare_to``, else the first."""
        return self.compare_to or (self.variant_names[0] if self.variants else None)


#: keys that say how variants are run; a variant cannot override them
VARIANT_KEYS = ("variants", "compare_to", "gate_variants")


@dataclass
class LoadedConfig:
    """An eval config with where it came from."""

    config: EvalConfig
    path: Path
    located: Located
    text: str
    #: ``--set`` values applied over the file, as given (recorded in the manifest)
    overrides: dict[str, Any] = field(default_factory=dict)
    #: the variant this config is (its overrides applied), None for the file as written
    variant: str | None = None

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    @property
    def fingerprint(self) -> str:
        return "sha256:" + content_key(self.config.model_dump(mode="json"))

    def error(self, message: str, *path: str | int) -> UsageError:
        return self.located.error(message, path)

    def resolve(self, rel: str) -> Path:
        """A path from the eval file, relative to its folder."""
        p = Path(rel).expanduser()
        return p if p.is_absolute() else self.base_dir / p


_VAR = VAR  # ${VAR}, ${VAR:-default}, $$


def expand_env(value: str, on_missing: Any) -> str:
    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, default = m.group(1), m.group(2)
        v = os.environ.get(name)
        if v is None or (v == "" and default is not None):
            if default is not None:
                return default
            raise on_missing(f"environment variable {name} is not set (use ${{{name}:-default}} for a default)")
        return v

    return _VAR.sub(sub, value)


def _expand_tree(data: Any, located: Located, path: tuple = ()) -> Any:
    if isinstance(data, str):
        if "$" not in data:
            return data
        return expand_env(data, lambda msg: located.error(msg, path + ("__value__",)) if path else located.error(msg))
    if isinstance(data, dict):
        return {k: _expand_tree(v, located, path + (k,)) for k, v in data.items()}
    if isinstance(data, list):
        return [_expand_tree(v, located, path + (i,)) for i, v in enumerate(data)]
    return data


def validation_to_usage(err: ValidationError, model: type[BaseModel], located: Located,
                        prefix: tuple = (), data: Any = None) -> UsageError:
    """The first pydantic error as one file:line message. ``data`` is what was validated
    (default: the file's data under ``prefix``)."""
    e = err.errors()[0]
    kind = e["type"]
    if data is None:
        data = located.data
        for part in prefix:
            data = data[part] if isinstance(data, dict | list) else None
    loc = data_path(e["loc"], data, keep_last=kind == "missing")
    path = prefix + loc
    field = key_path(loc) or "value"
    if kind == "extra_forbidden":
        owner = _model_at(model, loc[:-1])
        allowed = set(owner.model_fields) if owner else set()
        name = str(loc[-1]) if loc else ""
        msg = f"unknown key {shown_key(name)}{suggest(name, allowed)}"
        if owner is not None and not suggest(name, allowed):
            msg += f"; allowed: {', '.join(sorted(allowed))}"
    elif kind == "missing":
        msg = f"missing required key '{field}'"
    else:
        got = e.get("input")
        shown = "" if isinstance(got, dict | list) else f" (got {_cut(repr(got))})"
        msg = f"{field}: {e['msg'].removeprefix('Value error, ')}{shown}"
        path = path + ("__value__",) if path else path
    return located.error(msg, path)


def _cut(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + f"… ({len(text):,} characters)"


def data_path(loc: tuple[Any, ...], data: Any, keep_last: bool = False) -> tuple[Any, ...]:
    """The keys of a pydantic error location that are keys of ``data`` (the validated input):
    the union-member tags pydantic puts between them (``str``, ``function-after[...]``) are
    left out, and a key holding ``[`` stays. ``keep_last``: the last key is kept though absent
    (a missing key)."""
    out: list[Any] = []
    cur = data
    for i, part in enumerate(loc):
        if isinstance(cur, dict) and part in cur:
            out.append(part)
            cur = cur[part]
        elif isinstance(cur, list) and isinstance(part, int) and -len(cur) <= part < len(cur):
            out.append(part)
            cur = cur[part]
        elif keep_last and i == len(loc) - 1:
            out.append(part)
    return tuple(out)


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    cur: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        field = cur.model_fields.get(part) if isinstance(cur, type) and issubclass(cur, BaseModel) else None
        if field is None:
            return None
        ann = field.annotation
        cur = next((a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type) and issubclass(a, BaseModel)), ann)
    return cur if isinstance(cur, type) and issubclass(cur, BaseModel) else None


def _scorer_section(entry: Any, i: int, located: Located) -> ScorerConfig:
    where = ("scorers", i)
    if isinstance(entry, str):
        entry = {"type": entry}
    if not isinstance(entry, dict):
        raise located.error("a scorer is a type name or a mapping with 'type'", where)
    type_name = entry.get("type")
    if type_name is None:
        raise located.error("scorer needs a 'type'" + (f" (one of {', '.join(scorer_types())})"), where)
    if not is_scorer_type(type_name):
        raise located.error(f"unknown scorer type '{type_name}'{suggest(type_name, scorer_types().keys())}",
                            where + ("type", "__value__"))
    try:
        cls = scorer_class(type_name)
    except UsageError as e:  # a plugin whose entry point is broken
        raise located.error(e.message, where + ("type", "__value__")) from None
    try:
        return cls.Config.model_validate(entry)
    except ValidationError as e:
        raise validation_to_usage(e, cls.Config, located, where, data=entry) from None


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None, *,
                variant: str | None = None) -> LoadedConfig:
    """Read, expand and validate an eval file; every problem is a UsageError with file:line.

    ``variant`` names an entry of the file's ``variants:``: its overrides are applied first,
    with errors pointing at the override's line. ``overrides`` (``--set``: dotted key -> value)
    then replace values after expansion and before validation; a problem with an overridden
    value names the ``--set`` instead of a line."""
    p = Path(path or DEFAULT_FILE)
    if path is None and not p.exists():
        raise UsageError(f"no {DEFAULT_FILE} here; pass an eval file: evalrun run path/to/eval.yaml")
    text = read_text(p, "eval file")
    located = load_located(text, str(p))
    data = located.data
    if data is None:
        raise UsageError("eval file is empty", str(p))
    if not isinstance(data, dict):
        raise located.error("eval file must be a mapping (name:, dataset:, target:, scorers:)")
    if variant is not None:
        located = _variant_located(located, variant)
        data = located.data
    data = _expand_tree(data, located)
    overrides = check_overrides(overrides)
    if overrides:
        data = apply_overrides(data, overrides)
    raw_scorers = data.get("scorers") or []
    if not isinstance(raw_scorers, list):
        raise _blame(located.error("scorers must be a list", ("scorers", "__value__")), ("scorers",), overrides)
    body = {k: v for k, v in data.items() if k != "scorers"}
    try:
        config = EvalConfig.model_validate(body)
    except ValidationError as e:
        first = data_path(e.errors()[0]["loc"], body, keep_last=True)
        raise _blame(validation_to_usage(e, EvalConfig, located, data=body), first, overrides) from None
    scorers = []
    for i, entry in enumerate(raw_scorers):
        try:
            scorers.append(_scorer_section(entry, i, located))
        except UsageError as e:
            raise _blame(e, ("scorers", i), overrides) from None
    seen: dict[str, int] = {}
    for i, sc in enumerate(scorers):
        name = sc.name or sc.type
        if name in seen:
            raise located.error(f"two scorers are named '{name}' (give one a distinct 'name')", ("scorers", i))
        seen[name] = i
    config.scorers = scorers
    _check_variants(config, located)
    return LoadedConfig(config=config, path=p, located=located, text=text, overrides=overrides, variant=variant)


def _blame(err: UsageError, path: tuple[Any, ...], overrides: dict[str, Any]) -> UsageError:
    """``err`` said of the ``--set`` that put the bad value there, when one did."""
    key = override_for(path, overrides)
    if key is None:
        return err
    return UsageError(f"--set {key}={_json.canonical(overrides[key])}: {err.message}")


def _check_override_key(variant: str, key: Any, located: Located) -> None:
    # the eval's name pairs runs with baselines, the dataset gives every variant the same
    # items (the pairing needs them); the variant keys say how variants run
    if str(key).split(".")[0] in (*VARIANT_KEYS, "name", "dataset"):
        raise located.error(f"variant '{variant}' cannot override '{key}' (variants share the eval's name, "
                            "dataset and variant settings)", ("variants", variant, key))


def _check_variants(cfg: EvalConfig, located: Located) -> None:
    if cfg.variants is None:
        for key in ("compare_to", "gate_variants"):
            if getattr(cfg, key) is not None:
                raise located.error(f"{key} needs a 'variants:' section", (key,))
        return
    if not cfg.variants:
        raise located.error("variants: needs at least one variant (control: {} is the file as written)",
                            ("variants", "__value__"))
    names = list(cfg.variants)
    for name, overrides in cfg.variants.items():
        if len(name) > MAX_NAME:
            raise located.error(f"variant name is {len(name):,} characters long; at most {MAX_NAME}",
                                ("variants", name))
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
            raise located.error(f"variant name '{name}' may use letters, digits, '.', '_' and '-' only",
                                ("variants", name))
        for key in overrides:
            _check_override_key(name, key, located)
    if cfg.compare_to is not None and cfg.compare_to not in cfg.variants:
        raise located.error(f"compare_to: no variant named '{cfg.compare_to}'{suggest(cfg.compare_to, names)}",
                            ("compare_to", "__value__"))
    for i, g in enumerate(cfg.gate_variants or []):
        if g not in cfg.variants:
            raise located.error(f"gate_variants: no variant named '{g}'{suggest(g, names)}",
                                ("gate_variants", i))


def _variant_located(located: Located, variant: str) -> Located:
    """The file's data with ``variant``'s overrides applied; an overridden value's position is
    its override's, so a bad value is reported where the variant sets it."""

    variants = located.data.get("variants")
    if not isinstance(variants, dict) or not variants:
        raise located.error(f"no variants in this eval file (asked for variant '{variant}')")
    if variant not in variants:
        raise located.error(f"no variant named '{variant}'{suggest(variant, list(map(str, variants)))}; "
                            f"variants: {', '.join(map(str, variants))}", ("variants",))
    overrides = variants[variant] or {}
    where = ("variants", variant)
    if not isinstance(overrides, dict):
        raise located.error(f"variant '{variant}' must be a mapping of dotted keys to values", where)
    for key in overrides:
        _check_override_key(variant, key, located)
    try:
        data = apply_overrides(located.data, overrides)
    except UsageError as e:
        # the message reads "--set KEY: problem" (the same module serves --set)
        text = e.message.removeprefix("--set ")
        key = text.partition(":")[0]
        raise located.error(f"variant '{variant}': {text}", where + ((key,) if key in overrides else ())) from None
    marks = dict(located.marks)
    for key in overrides:
        path = _mark_path(located.data, str(key))
        for k in [m for m in marks if m[:len(path)] == path]:
            del marks[k]  # positions inside the replaced value no longer describe it
        marks[path] = located.marks[where + (key,)]
        marks[path + ("__value__",)] = located.marks[where + (key, "__value__")]
    return Located(data, marks, located.file)


def _mark_path(data: Any, key: str) -> tuple[Any, ...]:
    """The position path of dotted ``key`` in ``data``: a list index as a number, a negative one
    (``scorers.-1``, counted from the end) as the index it stands for."""
    path: list[Any] = []
    node = data
    for part in key.split("."):
        step: Any = part
        if isinstance(node, list) and part.lstrip("-").isdigit():
            step = int(part) + (len(node) if part.startswith("-") else 0)
        path.append(step)
        try:
            node = node[step] if isinstance(node, (list, dict)) else None
        except (IndexError, KeyError, TypeError):
            node = None
    return tuple(path)


def config_json(loaded: LoadedConfig) -> dict[str, Any]:
    """The eval file as data for the manifest: unexpanded, so secrets stay in the environment."""
    import json

    # the standard parser: a non-finite number the file holds (.inf, .nan) stays a string
    return json.loads(_json.canonical(loaded.located.data), parse_constant=str)
