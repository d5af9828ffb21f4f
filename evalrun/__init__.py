"""evalrun: an eval and regression runner for LLM pipelines."""

from __future__ import annotations

__version__ = "0.1.0"

from evalrun.errors import RetryableError, UsageError
from evalrun.records import Item, Record, Score
from evalrun.targets import Output

__all__ = ["Item", "Output", "Record", "RetryableError", "Score", "UsageError", "__version__"]
