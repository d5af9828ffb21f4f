"""Judge rubrics: YAML files holding a Jinja2 prompt template and a grading scheme.

A rubric is either built in (``evalrun/scoring/judge/rubrics/<name>.yaml``, shipped in the
wheel) or a path relative to the eval file. It is validated and its templates compiled in a
sandboxed Jinja2 environment when the run is prepared, so a typo fails before any target
call, with the rubric file and line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from evalrun import _json
from evalrun._yaml import Located, load_located, read_text
from evalrun.errors import UsageError
from evalrun.prompts import TemplateIssue, compile_template, jinja_env

if TYPE_CHECKING:
    import jinja2

BUILTIN_DIR = Path(__file__).with_name("rubrics")

#: what a pointwise template may use
POINTWISE_VARS = frozenset({"input", "output", "expected_output", "metadata", "item_id", "trial", "criteria"})
#: what a pairwise template may use besides the pointwise variables
PAIRWISE_VARS = POINTWISE_VARS | {"output_a", "output_b", "baseline_output"}

# Used when a rubric has no pairwise_prompt of its own: the rubric's criteria decide.
DEFAULT_PAIRWISE_PROMPT = """\
Compare two responses to the same request and decide which one is better by these criteria:
{{ criteria }}

[Request]
{{ input }}
{% if expected_output is not none %}
[Reference answer]
{{ expected_output }}
{% endif %}
[Response A]
{{ output_a }}
[End of response A]

[Response B]
{{ output_b }}
[End of response B]

Judge the content only: ignore the order of the responses and their length. Answer "tie"
when neither is better.
"""


class _RubricFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str = ""
    criteria: str = ""
    system: str | None = None
    prompt: str = Field(min_length=1)
    pairwise_prompt: str | None = None
    #: an integer scale [low, high]; the score is normalised to 0..1
    scale: tuple[int, int] | None = None
    #: named verdicts and the score (0..1) each one is worth
    choices: dict[str, float] | None = None
    threshold: float | None = Field(None, ge=0, le=1)
    #: fields an item must have; "a|b" means either. Records without them are skipped.
    requires: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_scheme(self) -> _RubricFile:
        if (self.scale is None) == (self.choices is None):
            raise ValueError("a rubric needs exactly one of 'scale: [low, high]' or 'choices: {name: score}'")
        if self.scale is not None:
            lo, hi = self.scale
            if hi <= lo or hi - lo > 100:
                raise ValueError(f"scale must be [low, high] with low < high and at most 100 steps (got {list(self.scale)})")
        if self.choices is not None:
            if len(self.choices) < 2:
                raise ValueError("choices needs at least two verdicts")
            bad = [k for k, v in self.choices.items() if not 0 <= v <= 1]
            if bad:
                raise ValueError(f"choice scores must lie in 0..1 (check {', '.join(bad)})")
        return self


@dataclass
class Rubric:
    """A loaded rubric with its compiled templates."""

    name: str
    path: Path
    description: str
    criteria: str
    system: str | None
    scale: tuple[int, int] | None
    choices: dict[str, float] | None
    threshold: float
    requires: list[str]
    prompt: jinja2.Template
    pairwise_prompt: jinja2.Template
    fingerprint: str

    @property
    def kind(self) -> str:
        return "scale" if self.scale else "choices"

    def normalise(self, score: int) -> float:
        lo, hi = self.scale or (0, 1)
        return (score - lo) / (hi - lo)

    def missing_field(self, record_vars: dict[str, Any]) -> str | None:
        """The first required field this record lacks (as written in the rubric), or None."""
        for req in self.requires:
            if not any(_lookup(record_vars, alt.strip()) is not None for alt in req.split("|")):
                return req
        return None


def _lookup(data: dict[str, Any], dotted: str) -> Any:
    cur: Any = data
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return None if cur == "" else cur


def builtin_names() -> list[str]:
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


def describe_builtins() -> list[dict[str, Any]]:
    """Name, grading and description of each built-in rubric (for ``evalrun scorers list``)."""
    out = []
    for name in builtin_names():
        path = BUILTIN_DIR / f"{name}.yaml"
        data = load_located(read_text(path, "rubric"), str(path)).data or {}
        if data.get("scale"):
            grading = f"scale {data['scale'][0]}..{data['scale'][1]}"
        else:
            grading = "choices " + "/".join(map(str, data.get("choices") or {}))
        out.append({"name": name, "grading": grading, "threshold": data.get("threshold"),
                    "requires": data.get("requires") or [], "description": data.get("description", "")})
    return out


def resolve_rubric_path(ref: str, base_dir: Path) -> Path | None:
    """Where rubric ``ref`` lives: a built-in name, or a path relative to the eval file."""
    if "/" not in ref and "\\" not in ref and not ref.endswith((".yaml", ".yml")):
        p = BUILTIN_DIR / f"{ref}.yaml"
        return p if p.is_file() else None
    p = Path(ref).expanduser()
    return p if p.is_absolute() else base_dir / p


def _environment() -> jinja2.Environment:
    def finalize(value: Any) -> Any:
        # a structured input or output prints as JSON, which a judge model reads better than repr
        if isinstance(value, dict | list | tuple):
            return _json.json_pretty(value).rstrip("\n")
        return value

    env: jinja2.Environment = jinja_env(finalize)
    return env


def _first_line(located: Located, key: str, source: list[str]) -> int:
    """File line of the template's first line (a block scalar starts on the next line)."""
    line, col = located.where((key, "__value__"))
    if line is None:
        return 1
    if line - 1 < len(source):
        head = source[line - 1][(col or 1) - 1:].lstrip()
        if head[:1] in ("|", ">"):
            return line + 1
    return line


def _compile(env: jinja2.Environment, located: Located, source: list[str], key: str, text: str,
             allowed: frozenset[str]) -> jinja2.Template:
    from jinja2 import meta, nodes

    first = _first_line(located, key, source)
    try:
        template, ast = compile_template(env, text)
    except TemplateIssue as e:
        message = {"syntax": f"template syntax error in '{key}': {e.message}",
                   "error": f"template error in '{key}': {e.message}",
                   "unavailable": f"{e.message} in '{key}' (a rubric is one template)"}.get(e.kind, f"{e.message} in '{key}'")
        raise UsageError(message, located.file, first + e.line - 1) from None
    unknown = meta.find_undeclared_variables(ast) - allowed - set(env.globals)
    if unknown:
        name = sorted(unknown)[0]
        line = next((n.lineno for n in ast.find_all(nodes.Name) if n.name == name), 1)
        raise UsageError(f"unknown variable '{name}' in '{key}' (a template sees: {', '.join(sorted(allowed))})",
                         located.file, first + line - 1)
    return template


def load_rubric(ref: str, base_dir: Path, locate: Any = None) -> Rubric:
    """Load and compile rubric ``ref``; ``locate(message)`` points errors about the reference
    itself (unknown rubric) at the eval file."""
    path = resolve_rubric_path(ref, base_dir)
    if path is None or not path.is_file():
        msg = (f"unknown rubric '{ref}' (built-in: {', '.join(builtin_names())}; or a path to a .yaml file "
               "relative to the eval file)")
        if path is not None:
            msg = f"rubric file {path} not found"
        raise locate(msg) if locate else UsageError(msg)
    text = read_text(path, "rubric")
    located = load_located(text, str(path))
    if not isinstance(located.data, dict):
        raise UsageError("a rubric is a mapping with 'prompt' and 'scale' or 'choices'", str(path))
    try:
        spec = _RubricFile.model_validate(located.data)
    except ValidationError as e:
        first = e.errors()[0]
        if not first["loc"]:  # a rule about the whole rubric, not one key
            raise located.error(first["msg"].removeprefix("Value error, ")) from None
        from evalrun.config import validation_to_usage

        raise validation_to_usage(e, _RubricFile, located) from None
    env = _environment()
    source = text.splitlines()
    prompt = _compile(env, located, source, "prompt", spec.prompt, POINTWISE_VARS)
    if spec.pairwise_prompt is not None:
        pairwise = _compile(env, located, source, "pairwise_prompt", spec.pairwise_prompt, PAIRWISE_VARS)
    else:
        pairwise = env.from_string(DEFAULT_PAIRWISE_PROMPT)
    if spec.threshold is not None:
        threshold = spec.threshold
    else:
        threshold = 0.5 if spec.choices else 0.75
    from evalrun.store import content_key

    return Rubric(name=path.stem, path=path, description=spec.description.strip(),
                  criteria=spec.criteria.strip() or spec.description.strip(), system=spec.system,
                  scale=spec.scale, choices=spec.choices, threshold=threshold, requires=spec.requires,
                  prompt=prompt, pairwise_prompt=pairwise, fingerprint=content_key(text))
