"""Item assertion types: the base classes every check type subclasses, and the lazy registry.

A check type declares its ``type`` (the name in ``assert:`` lists), its ``Config`` (the
fields of one check, on top of :class:`CheckConfig`'s) and implements ``check`` (or
``check_batch`` when it works on many checks at once: an embedding model, a judge). The
registry maps each type to ``"module:Class"``, imported only when an item uses the type;
another package adds a type under the ``evalrun.assertions`` entry-point group.

Inversion (``not: true``), weights, ``informational`` and ``output:`` paths are applied by the
``assert`` scorer for every type alike, never by a type itself.
"""

from __future__ import annotations

import builtins
import re
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from evalrun import selectors
from evalrun.errors import UsageError
from evalrun.records import Score
from evalrun.scoring.base import entry_point_types, load_type

if TYPE_CHECKING:
    from evalrun.records import Item, Record
    from evalrun.scoring.base import ScorerContext

#: a check's name becomes the statistic ``assert.NAME``: it must read back from a gate
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")


class FinalScore(Score):
    """A verdict ``not:`` does not turn over: a missing output, a missing path, an empty answer
    fail a check and its inversion alike."""

    __slots__ = ()


class CheckConfig(BaseModel):
    """Fields every check has."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    type: str
    #: the statistic this check counts under (``assert.NAME``); default: its type
    name: str | None = None
    #: its share of the item's assertion score (``assertions.mean``)
    weight: float = Field(1.0, ge=0, allow_inf_nan=False)
    #: reported under its own name, but never fails the item or a run
    informational: bool = False
    #: passes when the check fails (a check that could not run stays an error)
    negate: bool = Field(False, alias="not")
    #: check a path into a structured output (``ticket.id``) instead of the whole output
    output: selectors.PathStr | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        if v is not None and not NAME.fullmatch(v):
            raise ValueError(f"name {v!r} may use letters, digits, '_' and '-' only (it becomes assert.{v})")
        return v

    @property
    def stat(self) -> str:
        return self.name or self.type


class Check:
    """Base class of check types: one instance per type per run, given every check of that type."""

    type: ClassVar[str]
    Config: ClassVar[builtins.type[CheckConfig]] = CheckConfig
    #: whether it keeps results in the content cache (judge verdicts, embeddings)
    uses_cache: ClassVar[bool] = False

    def __init__(self, ctx: ScorerContext, options: dict[str, Any]) -> None:
        self.ctx = ctx
        #: the ``assert`` scorer's section for this type (``judge:``, ``embedding:`` ...)
        self.options = options

    def validate(self, cfg: CheckConfig, item: Item) -> None:
        """More checks than the Config's (a regex compiles, a schema is a schema, the item has
        the metadata the check reads): ValueError saying what is wrong."""

    async def setup(self, configs: list[CheckConfig]) -> None:
        """Load what the checks need (a model, a rubric); UsageError for bad input. Before any call."""

    def check(self, cfg: Any, output: Any, record: Record) -> Score:  # pragma: no cover - overridden
        raise NotImplementedError

    async def check_batch(self, jobs: list[tuple[Any, Any, Record]]) -> list[Score]:
        """One Score per (config, output, record); by default ``check`` on each (one that raises
        is that check's error)."""
        out = []
        for cfg, output, rec in jobs:
            try:
                out.append(self.check(cfg, output, rec))
            except Exception as e:
                out.append(Score.failed(f"{type(e).__name__}: {e}"[:2000]))
        return out

    async def close(self) -> None:
        """Release what setup took."""


#: where each built-in check type lives; a module is imported only when an item uses the type
ASSERTION_TYPES: dict[str, str] = {
    "contains": "evalrun.scoring.assertions.text:Contains",
    "not_contains": "evalrun.scoring.assertions.text:NotContains",
    "regex": "evalrun.scoring.assertions.text:Regex",
    "equals": "evalrun.scoring.assertions.text:Equals",
    "numeric": "evalrun.scoring.assertions.text:Numeric",
    "json_schema": "evalrun.scoring.assertions.structured:JsonSchema",
    "json_path": "evalrun.scoring.assertions.structured:JsonPath",
    "python": "evalrun.scoring.assertions.custom:PythonCheck",
    "refusal": "evalrun.scoring.assertions.refusal:Refusal",
    "cites": "evalrun.scoring.assertions.cites:Cites",
    "similar": "evalrun.scoring.assertions.similar:Similar",
    "rubric": "evalrun.scoring.assertions.rubric:RubricCheck",
}

ENTRY_POINT_GROUP = "evalrun.assertions"
_plugins: dict[str, str] | None = None


def plugin_types() -> dict[str, str]:
    """Check types other packages declare in the ``evalrun.assertions`` entry-point group."""
    global _plugins
    if _plugins is None:
        _plugins = entry_point_types(ENTRY_POINT_GROUP, ASSERTION_TYPES)
    return _plugins


def assertion_types() -> dict[str, str]:
    return {**ASSERTION_TYPES, **plugin_types()}


def check_class(type_name: str) -> builtins.type[Check]:
    """The class of check type ``type_name`` (imported now); UsageError when unknown or broken."""
    spec = ASSERTION_TYPES.get(type_name) or plugin_types().get(type_name)
    if spec is None:
        from evalrun.errors import suggest

        raise UsageError(f"unknown assertion type '{type_name}'{suggest(type_name, assertion_types())}; "
                         f"types: {', '.join(assertion_types())}")
    cls: builtins.type[Check] = load_type(type_name, spec, Check, "assertion type")
    return cls
