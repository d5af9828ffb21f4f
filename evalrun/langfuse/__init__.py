"""Langfuse: datasets in (``langfuse://name``), runs out (experiment runs with traces and scores),
baseline runs read back.

Nothing here imports the langfuse SDK or OpenTelemetry at module level: this package is imported
only when a run touches Langfuse, and even then the SDK loads inside the function that needs it.

- :mod:`evalrun.langfuse.client`: keys from the environment, the SDK's REST client, one retry
  policy (Retry-After, backoff, a deadline).
- :mod:`evalrun.langfuse.datasets`: load, push and pull datasets.
- :mod:`evalrun.langfuse.push`: send a run as an experiment run, with its state in the run dir.
- :mod:`evalrun.langfuse.baseline`: read a pushed run back as Records.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from evalrun.datasets import Dataset
    from evalrun.records import Record


def load_langfuse_dataset(ref: str) -> Dataset:
    """``langfuse://<name>[?version=<ISO timestamp>]`` as a Dataset (ARCHIVED items dropped)."""
    from evalrun.langfuse.datasets import load_dataset

    return load_dataset(ref)


def load_langfuse_baseline(ref: str) -> list[Record]:
    """``langfuse://<dataset>/<run-name>``: that experiment run's items as Records, scores filled."""
    from evalrun.langfuse.baseline import read_baseline

    return read_baseline(ref)
