"""evalrun: an eval and regression runner for LLM pipelines.

The library API: :func:`run` an eval file and :func:`compare` a saved run with a baseline
(what ``evalrun run`` and ``evalrun compare`` call), and the types a pipeline or a scorer
uses: :class:`Output`, :class:`Item`, :class:`Record`, :class:`Score`, :class:`Scorer`,
:class:`ScorerConfig`, the errors and :class:`ExitCode`."""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

from evalrun._version import __version__

__all__ = ["EvalrunError", "ExitCode", "Item", "Output", "Record", "RetryableError", "RunFailed", "RunResult",
           "Score", "Scorer", "ScorerConfig", "UsageError", "__version__", "compare", "run"]

# the public names load on first use, so `evalrun --help` does not pay for asyncio & co.
_LAZY = {"Item": "evalrun.records", "Record": "evalrun.records", "Score": "evalrun.records",
         "Output": "evalrun.targets", "Scorer": "evalrun.scoring.base", "ScorerConfig": "evalrun.scoring.base",
         "EvalrunError": "evalrun.errors", "ExitCode": "evalrun.errors", "RetryableError": "evalrun.errors",
         "RunFailed": "evalrun.errors", "UsageError": "evalrun.errors",
         "run": "evalrun.api", "compare": "evalrun.api", "RunResult": "evalrun.api"}

if TYPE_CHECKING:
    from evalrun.api import RunResult, compare, run
    from evalrun.errors import EvalrunError, ExitCode, RetryableError, RunFailed, UsageError
    from evalrun.records import Item, Record, Score
    from evalrun.scoring.base import Scorer, ScorerConfig
    from evalrun.targets import Output


class _Package(types.ModuleType):
    """``evalrun.compare`` is the library function, though a submodule of that name exists: when
    the import system binds the submodule to the package, the name stays the function's (the
    module is still ``import evalrun.compare`` / ``from evalrun.compare import ...``)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if _LAZY.get(name) == "evalrun.api" and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'evalrun' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
