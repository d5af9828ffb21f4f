"""The Scorer protocol, the context scorers get, and the registry of scorer types.

A scorer is built from its config section, prepared once per run (``setup``: load a model,
check a rubric, so bad input fails before any target call), then called with batches of
records whose target call succeeded. It returns one :class:`Score` per record, in order.
"""

from __future__ import annotations

import builtins
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from evalrun import selectors
from evalrun.errors import UsageError
from evalrun.records import Score

if TYPE_CHECKING:
    from evalrun.records import Item, Record
    from evalrun.store import Cache


class ScorerConfig(BaseModel):
    """Fields every scorer section has. Each scorer type subclasses it with its own fields."""

    model_config = ConfigDict(extra="forbid")

    type: str
    name: str | None = None
    #: ``passed`` threshold on ``value`` for scorers with a continuous value
    threshold: float | None = Field(None, allow_inf_nan=False)
    #: score only the items this holds for (``tag=refusal``, ``metadata.kind=json``, a list of
    #: them: all must hold); the others get no score under this scorer (not applicable)
    when: str | list[str] | dict[str, str] | None = None
    #: where the reference comes from instead of ``expected_output`` (``metadata.must_contain``,
    #: ``input.question``, ``expected_output.answer``)
    expected: str | None = None
    #: score a path into a structured output (``answer.ticket_id``) instead of the whole output
    output: selectors.PathStr | None = None
    #: reported, but never fails an item, the Actions pass rate or a gate
    informational: bool = False

    @field_validator("when")
    @classmethod
    def _when(cls, v: Any) -> Any:
        if v is not None:
            selectors.parse_when(v)
        return v

    @field_validator("expected")
    @classmethod
    def _expected(cls, v: str | None) -> str | None:
        return None if v is None else selectors.check_source(v)

    @property
    def conditions(self) -> tuple[selectors.Condition, ...]:
        return selectors.parse_when(self.when) if self.when is not None else ()
    #: the share of records this scorer may fail on before the run counts as failed (exit 3);
    #: default 5% (summary.DEFAULT_ERROR_BUDGET); failing on every record always does
    error_budget: float | None = Field(None, ge=0, le=1)


@dataclass
class ScorerContext:
    """What a scorer may use besides its config."""

    base_dir: Path  # the eval file's folder: relative paths in scorer configs start here
    cache: Cache | None = None
    #: per-run counters a scorer adds to (judge calls, tokens, cost); lands in summary.json
    usage: dict[str, Any] = field(default_factory=dict)
    #: baseline outputs by (item_id, trial), when the run has a baseline (pairwise judges)
    baseline_outputs: dict[tuple[str, int], Any] | None = None
    #: stop flag: set on Ctrl-C so long scorers can stop early
    cancelled: bool = False
    #: builds a file:line UsageError pointing into this scorer's section of the eval file
    locate: Callable[..., UsageError] | None = None
    #: values the ``${VAR}``s of this scorer's section expand to: masked in its error texts
    secrets: list[str] = field(default_factory=list)

    def error(self, message: str, *field_path: str | int) -> UsageError:
        """A UsageError for ``message`` at this scorer's section (or a field inside it)."""
        if self.locate is None:
            return UsageError(message)
        return self.locate(message, *field_path)


class Scorer:
    """Base class of scorers. A subclass declares everything about itself: ``type`` (the name in
    eval files), ``Config`` (its section's fields), ``uses_cache``, ``langfuse_data_type``,
    ``batch_size``; and implements ``score_batch`` (or ``score_one`` for per-record logic).
    Another package adds one through the ``evalrun.scorers`` entry-point group
    (``my_type = "my_package.module:MyScorer"``)."""

    type: ClassVar[str]
    #: whether it keeps results in the content cache (embeddings, judge verdicts): the run
    #: opens the cache when a scorer or the target needs it
    uses_cache: ClassVar[bool] = False
    # builtins.type: the class attribute `type` above hides the builtin in this class body
    Config: ClassVar[builtins.type[ScorerConfig]] = ScorerConfig
    #: how many records the engine hands over at once at most
    batch_size: ClassVar[int] = 256
    #: the Langfuse score data type of this scorer's value, whatever the values of a run are
    #: (BOOLEAN: the verdict as 1/0; NUMERIC: the value, the verdict beside it as ``<name>.passed``;
    #: CATEGORICAL: a label); ``langfuse: {score_types: {name: TYPE}}`` overrides it per scorer
    langfuse_data_type: ClassVar[str] = "NUMERIC"

    def __init__(self, config: ScorerConfig, ctx: ScorerContext) -> None:
        self.config = config
        self.ctx = ctx
        self.name = config.name or config.type
        self.conditions = config.conditions
        #: whether some records are not this scorer's to score (``when:``, or by the scorer's own rule)
        self.scoped = bool(self.conditions)
        self._output_path = selectors.parse_path(config.output) if config.output else None
        self._expected_path = selectors.parse_path(config.expected) if config.expected else None

    @classmethod
    def needs_cache(cls, config: ScorerConfig) -> bool:
        """Whether a scorer with this config keeps results in the content cache."""
        return cls.uses_cache

    def stat_names(self) -> list[str]:
        """The score names this scorer gives: its own (an assert scorer: each item check's too)."""
        return [self.name]

    def informational_names(self) -> list[str]:
        """Which of :meth:`stat_names` are reported but never blocking."""
        return [self.name] if self.config.informational else []

    def check_items(self, items: list[Item]) -> None:
        """Check what items carry for this scorer (UsageError at the item's line). Before any call."""

    async def setup(self) -> None:
        """Load what the scorer needs; raise UsageError for bad input. Called before any target call."""

    def applies(self, record: Record) -> bool:
        """Whether this scorer scores ``record`` (``when:``); the others get no score from it."""
        return selectors.holds(self.conditions, record.metadata)

    def not_applicable(self, record: Record) -> list[str]:
        """The score names this scorer would not give ``record`` (for a failed call)."""
        return [] if self.applies(record) else [self.name]

    def view(self, record: Record) -> Record | Score:
        """The record as this scorer sees it: ``output:`` and ``expected:`` applied (a copy), or
        the Score when the output has no such path (a failure, never a pass)."""
        if self._output_path is None and self._expected_path is None:
            return record
        from evalrun._json import loads

        output, expected = record.output, record.expected_output
        if self._output_path is not None:
            data = output
            if isinstance(data, str):
                try:
                    data = loads(data)
                except ValueError:
                    return Score(0.0, False, f"output is not JSON, so it has no {self.config.output}")
            found = selectors.find(data, self._output_path)
            if not found:
                return Score(0.0, False, f"output has no {self.config.output}")
            output = found[0] if len(found) == 1 else found
        if self._expected_path is not None:
            head, rest = self._expected_path[0], self._expected_path[1:]
            source = {"expected_output": record.expected_output, "metadata": record.metadata,
                      "input": record.input}[str(head)]
            found = selectors.find(source, rest) if rest else ([source] if source is not None else [])
            expected = found[0] if len(found) == 1 else (found or None)
        return replace(record, output=output, expected_output=expected, scores={})

    async def score_batch(self, records: list[Record]) -> list[Score]:
        return [self.score_one(r) for r in records]

    def score_one(self, record: Record) -> Score:  # pragma: no cover - overridden
        raise NotImplementedError

    async def close(self) -> None:
        """Release resources (HTTP clients, thread pools)."""

    def summary_extra(self) -> dict[str, Any]:
        """Scorer-level numbers for summary.json (judge agreement, cache hits...)."""
        return {}


#: where each built-in scorer class lives, by its ``type``; a module is imported only when a
#: config uses the type, so heavy dependencies (torch, openai) stay out of runs that do not need
#: them. Each class's own ``type`` must equal its key (checked when loaded, and by a test).
BUILTIN_SCORERS: dict[str, str] = {
    "exact_match": "evalrun.scoring.match:ExactMatch",
    "contains": "evalrun.scoring.match:Contains",
    "regex": "evalrun.scoring.match:Regex",
    "numeric": "evalrun.scoring.match:Numeric",
    "json_match": "evalrun.scoring.match:JsonMatch",
    "python": "evalrun.scoring.custom:PythonScorer",
    "embedding_similarity": "evalrun.scoring.embedding:EmbeddingSimilarity",
    "llm_judge": "evalrun.scoring.judge.scorer:LLMJudge",
    "judge_panel": "evalrun.scoring.judge.panel:JudgePanel",
    "assert": "evalrun.scoring.assertions:AssertScorer",
    "tool_calls": "evalrun.scoring.tool_calls:ToolCalls",
}


ENTRY_POINT_GROUP = "evalrun.scorers"
_plugins: dict[str, str] | None = None


def entry_point_types(group: str, taken: dict[str, str]) -> dict[str, str]:
    """name -> ``module:Class`` of the entry points in ``group``; a name ``taken`` by a built-in
    stays the built-in's."""
    from importlib.metadata import entry_points

    return {ep.name: ep.value for ep in entry_points(group=group) if ep.name not in taken}


def load_type(type_name: str, spec: str, base: builtins.type[Any], what: str) -> Any:
    """The class ``spec`` (``module:Class``) names, imported now; UsageError unless it is a
    subclass of ``base`` declaring ``type = type_name``."""
    module_name, _, attr = spec.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise UsageError(f"{what} '{type_name}' ({spec}) cannot be loaded: {type(e).__name__}: {e}") from None
    if not (isinstance(cls, builtins.type) and issubclass(cls, base)) or getattr(cls, "type", None) != type_name:
        raise UsageError(f"{what} '{type_name}' ({spec}) is not an evalrun {base.__name__} subclass "
                         f"declaring type = {type_name!r}")
    return cls


def plugin_scorers() -> dict[str, str]:
    """Scorers other packages declare in the ``evalrun.scorers`` entry-point group (name ->
    ``module:Class``), read once; a name taken by a built-in stays the built-in's."""
    global _plugins
    if _plugins is None:
        _plugins = entry_point_types(ENTRY_POINT_GROUP, BUILTIN_SCORERS)
    return _plugins


def scorer_types() -> dict[str, str]:
    """Every scorer type an eval file may name: the built-ins, then the plugins'."""
    return {**BUILTIN_SCORERS, **plugin_scorers()}


def is_scorer_type(type_name: str) -> bool:
    # the entry points are read only for a name that is not a built-in
    return type_name in BUILTIN_SCORERS or type_name in plugin_scorers()


def scorer_class(type_name: str) -> type[Scorer]:
    """The class of scorer type ``type_name`` (imported now); a plugin whose entry point does not
    name a Scorer subclass declaring that ``type`` is a UsageError."""
    spec = BUILTIN_SCORERS.get(type_name) or plugin_scorers().get(type_name)
    if spec is None:
        raise UsageError(f"unknown scorer type '{type_name}'")
    cls: type[Scorer] = load_type(type_name, spec, Scorer, "scorer type")
    return cls
