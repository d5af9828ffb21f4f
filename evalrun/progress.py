"""Progress of a run: a rich bar on a terminal, plain periodic lines elsewhere (CI logs).

The rate and the ETA come from completed calls only, counted from the first completion (the
time before it is start-up: a model loading, connections opening), and only after a warm-up
(:data:`WARMUP_CALLS` completions and :data:`WARMUP_SECONDS` since the first): before that
the ETA says ``warming up`` instead of a wild guess (``0.3/s ETA 82s`` for an 8 s run)."""

from __future__ import annotations

import sys
import time
from typing import Any

#: completions after the first one, and seconds since it, before a rate and an ETA are shown
WARMUP_CALLS = 5
WARMUP_SECONDS = 1.0


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
        self._last_line = 0.0
        self._last_done = -1
        self._t_first: float | None = None  # when the first call of this process completed
        self._done_first = 0

    @staticmethod
    def auto(quiet: bool, stream: Any = None) -> str:
        stream = stream or sys.stderr
        if quiet:
            return "off"
        return "bar" if stream.isatty() else "lines"

    def start(self, total: int, done: int = 0) -> None:
        self.total, self.done = total, done
        self._t0 = self._last_line = time.monotonic()
        if self.mode == "bar":
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
            )
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"), TextColumn("ETA {task.fields[eta]}"),
                TimeElapsedColumn(), TextColumn("{task.fields[errors]}"),
                console=Console(stderr=True), transient=False, refresh_per_second=8)
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=total, completed=done, rate="", errors="",
                                            eta="warming up")

    def _rate(self, now: float | None = None) -> float | None:
        """Completed calls per second since the first completion; None during the warm-up."""
        if self._t_first is None:
            return None
        now = time.monotonic() if now is None else now
        el, n = now - self._t_first, self.done - self._done_first
        if n < WARMUP_CALLS or el < WARMUP_SECONDS:
            return None
        return n / el

    def eta(self, now: float | None = None) -> str:
        """``12s`` once warmed up, ``warming up`` before, ``0s`` when done."""
        if self.done >= self.total:
            return "0s"
        rate = self._rate(now)
        if rate is None:
            return "warming up"
        return f"{(self.total - self.done) / rate:.0f}s" if rate > 0 else "?"

    def advance(self, n: int, errors: int = 0) -> None:
        if self._t_first is None and n > 0:
            # the first completion: start-up ends here; the rate counts the calls after it
            self._t_first, self._done_first = time.monotonic(), self.done + n
        self.done += n
        self.errors += errors
        if self.mode == "bar":
            err = f"[red]{self.errors} errors" if self.errors else ""
            rate = self._rate()
            self._bar.update(self._task, completed=self.done, rate="" if rate is None else f"{rate:.1f}/s",
                             errors=err, eta=self.eta())
        elif self.mode == "lines":
            now = time.monotonic()
            if now - self._last_line >= self.interval:
                self._last_line = now
                self._line()

    def _line(self) -> None:
        self._last_done = self.done
        rate = self._rate()
        pct = 100.0 * self.done / self.total if self.total else 100.0
        speed = "" if rate is None else f" {rate:.1f}/s"
        print(f"{self.label}: {self.done}/{self.total} ({pct:.0f}%){speed} ETA {self.eta()} errors {self.errors}",
              file=sys.stderr, flush=True)

    def stop(self) -> None:
        if self.mode == "bar" and self._bar is not None:
            self._bar.stop()
        elif self.mode == "lines" and self._last_done != self.done:
            self._line()
