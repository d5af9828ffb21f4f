"""``python`` checks: ``{type: python, function: module:function, value: ...}``. The function
takes any of ``output``, ``value`` (the check's own value), ``input``, ``metadata``, ``record``
that it names, and returns what a python scorer may (a bool, a number, a Score, a mapping)."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from evalrun._user_modules import import_user_module
from evalrun.records import Item, Record, Score
from evalrun.scoring.assertions.registry import Check, CheckConfig
from evalrun.scoring.custom import to_score

PARAMS = ("output", "value", "input", "metadata", "record")


class PythonCheckConfig(CheckConfig):
    function: str
    value: Any = None
    #: a number returned passes at or above this
    threshold: float | None = None


class PythonCheck(Check):
    """A function of yours, called once per check (on a thread: a slow one does not stall the run)."""

    type = "python"
    Config = PythonCheckConfig

    def _function(self, spec: str) -> tuple[Any, list[str]]:
        cache: dict[str, tuple[Any, list[str]]] = self.__dict__.setdefault("_functions", {})
        if spec in cache:
            return cache[spec]
        module_name, sep, attr = spec.partition(":")
        if not sep or not attr:
            raise ValueError(f"function must look like 'module:function' (got {spec!r})")
        try:
            module = import_user_module(module_name, self.ctx.base_dir)
        except Exception as e:
            raise ValueError(f"module '{module_name}' not importable: {type(e).__name__}: {e}") from None
        fn = getattr(module, attr, None)
        if not callable(fn):
            raise ValueError(f"function '{attr}' not found in '{module_name}'")
        wants = [p for p in PARAMS if p in inspect.signature(fn).parameters]
        if not wants:
            raise ValueError(f"function '{attr}' must take some of: {', '.join(PARAMS)}")
        if inspect.iscoroutinefunction(fn):
            raise ValueError(f"function '{attr}' is async; a python check is a plain function")
        cache[spec] = (fn, wants)
        return fn, wants

    def validate(self, cfg: PythonCheckConfig, item: Item) -> None:  # type: ignore[override]  # (its own Config)
        self._function(cfg.function)

    def check(self, cfg: PythonCheckConfig, output: Any, record: Record) -> Score:
        fn, wants = self._function(cfg.function)
        given = {"output": output, "value": cfg.value, "input": record.input, "metadata": record.metadata,
                 "record": record}
        try:
            result = fn(**{k: given[k] for k in wants})
            sc = to_score(result, cfg.threshold)
        except BaseException as e:  # on the check's thread: one record's failure stays on it
            return Score.failed(f"{type(e).__name__}: {e}"[:2000])
        if sc.passed is False and not sc.reason:
            sc = Score(sc.value, False, f"{cfg.function} returned {str(result)[:80]}", extra=sc.extra)
        return sc

    async def check_batch(self, jobs: list[tuple[Any, Any, Record]]) -> list[Score]:
        return await asyncio.to_thread(lambda: [self.check(c, o, r) for c, o, r in jobs])
