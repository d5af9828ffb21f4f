"""The Scorer protocol, the context scorers get, and the registry of scorer types.

A scorer is built from its config section, prepared once per run (``setup``: load a model,
check a rubric, so bad input fails before any target call), then called with batches of
records whose target call succeeded. It returns one :class:`Score` per record, in order.
"""

from __future__ import annotations

import builtins
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from evalrun.errors import UsageError

if TYPE_CHECKING:
    from evalrun.records import Record, Score
    from evalrun.store import Cache


class ScorerConfig(BaseModel):
    """Fields every scorer section has. Each scorer type subclasses it with its own fields."""

    model_config = ConfigDict(extra="forbid")

    type: str
    name: str | None = None
    #: ``passed`` threshold on ``value`` for scorers with a continuous value
    threshold: float | None = Field(None, allow_inf_nan=False)


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
    """Base class of built-in scorers. Subclasses set ``type``/``Config`` and implement
    ``score_batch`` (or ``score_one`` for simple per-record logic)."""

    type: ClassVar[str]
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

    async def setup(self) -> None:
        """Load what the scorer needs; raise UsageError for bad input. Called before any target call."""

    async def score_batch(self, records: list[Record]) -> list[Score]:
        return [self.score_one(r) for r in records]

    def score_one(self, record: Record) -> Score:  # pragma: no cover - overridden
        raise NotImplementedError

    async def close(self) -> None:
        """Release resources (HTTP clients, thread pools)."""

    def summary_extra(self) -> dict[str, Any]:
        """Scorer-level numbers for summary.json (judge agreement, cache hits...)."""
        return {}


# type name -> "module:Class"; modules are imported only when a config uses the type, so
# heavy dependencies (torch, openai) stay out of runs that do not need them.
SCORER_TYPES: dict[str, str] = {
    "exact_match": "evalrun.scoring.match:ExactMatch",
    "contains": "evalrun.scoring.match:Contains",
    "regex": "evalrun.scoring.match:Regex",
    "numeric": "evalrun.scoring.match:Numeric",
    "json_match": "evalrun.scoring.match:JsonMatch",
    "python": "evalrun.scoring.custom:PythonScorer",
    "embedding_similarity": "evalrun.scoring.embedding:EmbeddingSimilarity",
    "llm_judge": "evalrun.scoring.judge:LLMJudge",
}


def scorer_class(type_name: str) -> type[Scorer]:
    module_name, _, attr = SCORER_TYPES[type_name].partition(":")
    return getattr(importlib.import_module(module_name), attr)
