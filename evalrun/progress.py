"""Progress of a run: a rich bar on a terminal, plain periodic lines elsewhere (CI logs)."""

from __future__ import annotations

import sys
import time
from typing import Any


class Progress:
    """done/total, rate, ETA and errors. ``mode`` is ``bar``, ``lines`` or ``off``."""

    def __init__(self, mode: str, label: str, interval: float = 5.0) -> None:
        self.mode = mode
        self.label = label
        self.interval = interval
        self.total = 0
        self.done = 0
        self.errors = 0
        self._bar: Any = None
        self._task: Any = None
        self._t0 = 0.0
        self._start_done = 0
        self._last_line = 0.0
        self._last_done = -1

    @staticmethod
    def auto(quiet: bool, stream: Any = None) -> str:
        stream = stream or sys.stderr
        if quiet:
            return "off"
        return "bar" if stream.isatty() else "lines"

    def start(self, total: int, done: int = 0) -> None:
        self.total, self.done, self._start_done = total, done, done
        self._t0 = self._last_line = time.monotonic()
        if self.mode == "bar":
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"), TextColumn("ETA"), TimeRemainingColumn(),
                TimeElapsedColumn(), TextColumn("{task.fields[errors]}"),
                console=Console(stderr=True), transient=False, refresh_per_second=8)
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=total, completed=done, rate="", errors="")

    def _rate(self) -> float:
        el = time.monotonic() - self._t0
        return (self.done - self._start_done) / el if el > 0 else 0.0

    def advance(self, n: int, errors: int = 0) -> None:
        self.done += n
        self.errors += errors
        if self.mode == "bar":
            err = f"[red]{self.errors} errors" if self.errors else ""
            self._bar.update(self._task, completed=self.done, rate=f"{self._rate():.1f}/s", errors=err)
        elif self.mode == "lines":
            now = time.monotonic()
            if now - self._last_line >= self.interval:
                self._last_line = now
                self._line()

    def _line(self) -> None:
        self._last_done = self.done
        rate = self._rate()
        left = self.total - self.done
        eta = f"{left / rate:.0f}s" if rate > 0 else "?"
        pct = 100.0 * self.done / self.total if self.total else 100.0
        print(f"{self.label}: {self.done}/{self.total} ({pct:.0f}%) {rate:.1f}/s ETA {eta} errors {self.errors}",
              file=sys.stderr, flush=True)

    def stop(self) -> None:
        if self.mode == "bar" and self._bar is not None:
            self._bar.stop()
        elif self.mode == "lines" and self._last_done != self.done:
            self._line()
