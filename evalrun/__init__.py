"""evalrun: an eval and regression runner for LLM pipelines."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from evalrun._version import __version__

__all__ = ["Item", "Output", "Record", "RetryableError", "Score", "UsageError", "__version__"]

# the public names load on first use, so `evalrun --help` does not pay for asyncio & co.
_LAZY = {"Item": "evalrun.records", "Record": "evalrun.records", "Score": "evalrun.records",
         "Output": "evalrun.targets", "RetryableError": "evalrun.errors", "UsageError": "evalrun.errors"}

if TYPE_CHECKING:
    from evalrun.errors import RetryableError, UsageError
    from evalrun.records import Item, Record, Score
    from evalrun.targets import Output


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'evalrun' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
