"""Custom scorers written in Python: ``{type: python, function: module:function}``.

The function receives any of ``output``, ``expected_output``, ``input``, ``metadata`` and
``record`` that it names as parameters, may be async, and returns a Score, a bool, a
number, or a mapping ``{value, passed, reason}``.
"""

from __future__ import annotations

import asyncio
import inspect
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from evalrun._user_modules import import_user_module
from evalrun.records import Record, Score
from evalrun.scoring.base import Scorer, ScorerConfig

PARAMS = ("output", "expected_output", "input", "metadata", "record")


class PythonScorerConfig(ScorerConfig):
    function: str


def to_score(value: Any, threshold: float | None) -> Score:
    if isinstance(value, Score):
        return value
    if isinstance(value, bool):
        return Score(1.0 if value else 0.0, value)
    if isinstance(value, int | float):
        v = float(value)
        return Score(v, v >= threshold if threshold is not None else None)
    if isinstance(value, dict) and "value" in value:
        raw = value.get("value")
        passed = value.get("passed")
        if passed is None and threshold is not None and isinstance(raw, int | float):
            passed = raw >= threshold
        return Score(None if raw is None else float(raw), passed, value.get("reason"))
    raise TypeError(f"scorer returned {type(value).__name__}; expected Score, bool, number or {{value, passed, reason}}")


class PythonScorer(Scorer):
    """Calls a user function per record."""

    type = "python"
    langfuse_data_type = "NUMERIC"
    Config = PythonScorerConfig
    config: PythonScorerConfig
    batch_size = 512
    _thread: ThreadPoolExecutor | None = None

    async def setup(self) -> None:
        spec = self.config.function
        module_name, sep, attr = spec.partition(":")
        if not sep or not attr:
            raise self.ctx.error(f"function must look like 'module:function' (got {spec!r})", "function", "__value__")
        try:
            module = import_user_module(module_name, self.ctx.base_dir)
        except Exception as e:
            raise self.ctx.error(f"scorer module '{module_name}' not importable: {type(e).__name__}: {e}",
                                 "function", "__value__") from None
        fn = getattr(module, attr, None)
        if not callable(fn):
            raise self.ctx.error(f"scorer function '{attr}' not found in '{module_name}'", "function", "__value__")
        if inspect.isclass(fn):
            # a class: one instance for the run (load a model once in __init__), called per record
            try:
                instance = fn()
            except Exception as e:
                raise self.ctx.error(f"scorer class '{attr}' could not be created: {type(e).__name__}: {e}",
                                     "function", "__value__") from None
            if not callable(instance):
                raise self.ctx.error(f"scorer class '{attr}' has no __call__ method", "function", "__value__")
            fn = instance.__call__
        params = inspect.signature(fn).parameters
        self.wants = [p for p in PARAMS if p in params]
        if not self.wants:
            raise self.ctx.error(f"scorer function '{attr}' must take some of: {', '.join(PARAMS)}",
                                 "function", "__value__")
        self.fn = fn
        self.is_async = inspect.iscoroutinefunction(fn)

    def _kwargs(self, r: Record) -> dict[str, Any]:
        all_ = {"output": r.output, "expected_output": r.expected_output, "input": r.input,
                "metadata": r.metadata, "record": r}
        return {k: all_[k] for k in self.wants}

    async def _one(self, r: Record) -> Score:
        try:
            return to_score(await self.fn(**self._kwargs(r)), self.config.threshold)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # evalrun's own stop (Ctrl-C, a failed write)
            return Score.failed("the scorer raised CancelledError")
        except BaseException as e:  # SystemExit, KeyboardInterrupt... too: one record's failure stays on it
            return Score.failed(f"{type(e).__name__}: {e}")

    def _one_sync(self, r: Record) -> Score:
        try:
            return to_score(self.fn(**self._kwargs(r)), self.config.threshold)
        except BaseException as e:  # on the scorer's own thread, SystemExit belongs to this record too
            return Score.failed(f"{type(e).__name__}: {e}")

    async def score_batch(self, records: list[Record]) -> list[Score]:
        if self.is_async:
            return list(await asyncio.gather(*(self._one(r) for r in records)))
        # a plain function runs on this scorer's own thread: a slow one does not hold up the
        # event loop (targets, progress, Ctrl-C), and it is never called from two threads at once
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix=f"evalrun-scorer-{self.name}")

        def score_all() -> list[Score]:
            out = []
            for r in records:
                if self.ctx.cancelled:  # Ctrl-C: the run is saving what it has, stop here
                    raise RuntimeError("cancelled")
                out.append(self._one_sync(r))
            return out

        return await asyncio.get_running_loop().run_in_executor(self._thread, score_all)

    async def close(self) -> None:
        if self._thread is not None:
            self._thread.shutdown(wait=False)
            self._thread = None
