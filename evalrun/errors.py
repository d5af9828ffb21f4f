"""Exit codes, and the errors that map to them: user input (2) and infrastructure (3)."""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum
from typing import Literal

from evalrun._text import one_line

# how a run ended: ``finished`` (every item attempted, within the error budget), ``interrupted``
# (Ctrl-C / SIGTERM; partial results saved), ``failed`` (infrastructure beyond the error budget)
RunStatus = Literal["finished", "interrupted", "failed"]


class ExitCode(IntEnum):
    """Every exit code evalrun uses: the only place they are spelled out."""

    OK = 0
    GATE_FAILED = 1
    USAGE = 2
    RUN_FAILED = 3
    #: ran, no gate failed, but a gate could not be judged (no pairs, no interval, too few
    #: clusters, too many baseline errors): not a pass, and not a measured regression either
    INCOMPLETE = 4
    INTERRUPTED = 130

    @classmethod
    def of_run(cls, status: str, passed: bool = True, incomplete: bool = False) -> ExitCode:
        """A run's exit code: an interrupted or failed run says so, any other is judged by its
        gates (``incomplete``: it did not pass only because a gate could not be judged)."""
        if status == "interrupted":
            return cls.INTERRUPTED
        if status == "failed":
            return cls.RUN_FAILED
        if passed:
            return cls.OK
        return cls.INCOMPLETE if incomplete else cls.GATE_FAILED


# what GitHub outputs (``verdict``) say of a run that did not get as far as its gates
VERDICT_WORD = {"finished": "pass", "failed": "error", "interrupted": "interrupted"}


def verdict_word(status: str, passed: bool = True, incomplete: bool = False) -> str:
    """``pass`` | ``fail`` | ``incomplete`` | ``error`` | ``interrupted``: the one-word verdict of a run."""
    if status == "finished":
        return "pass" if passed else "incomplete" if incomplete else "fail"
    return VERDICT_WORD.get(status, "error")


def suggest(word: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' when something close is among ``choices``, else ''."""
    import difflib

    close = difflib.get_close_matches(str(word), sorted(map(str, choices)), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


_PLAIN_KEY = __import__("re").compile(r"[A-Za-z0-9_-]{1,80}")


def shown_key(key: object) -> str:
    """One key of a config path as an error message shows it: ``'name'`` when it is plain
    text; else JSON-quoted (control characters escaped, inert in a terminal) and cut to 80
    characters, so a key holding ``[``, a quote, an escape sequence or a megabyte shows as
    what it is."""
    text = str(key)
    if text.isprintable() and "'" not in text and len(text) <= 80:
        return f"'{text}'"
    import json

    return json.dumps(text if len(text) <= 80 else text[:80] + "…")


def key_path(parts: Iterable[object]) -> str:
    """A config path (``("scorers", 0, "threshold")``) as ``scorers.0.threshold``; a key that
    is not plain (a dot, ``[``, control characters, too long) is quoted as by :func:`shown_key`."""
    return ".".join(str(p) if isinstance(p, int) or _PLAIN_KEY.fullmatch(str(p)) else shown_key(p)
                    for p in parts)


class EvalrunError(Exception):
    exit_code: int = ExitCode.GATE_FAILED


class UsageError(EvalrunError):
    """Unusable input: config, dataset, CLI usage, target not importable. Exit code 2.

    Rendered as one line ``file:line:col: message`` where a location is known.
    """

    exit_code = ExitCode.USAGE

    def __init__(self, message: str, file: str | None = None, line: int | None = None,
                 col: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.col = col

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = str(self.file)
            if self.line:
                where += f":{self.line}"
                if self.col:
                    where += f":{self.col}"
            where += ": "
        # one line whatever the message quotes (a gate, an id, a value with line breaks in it)
        return one_line(where + self.message)


class RunFailed(EvalrunError):
    """The run could not complete (infrastructure beyond the error budget). Exit code 3."""

    exit_code = ExitCode.RUN_FAILED


class RetryableError(Exception):
    """Raise from a target to ask evalrun to retry the call (with backoff, or after
    ``retry_after`` seconds when the service said how long to wait)."""

    def __init__(self, message: str = "", retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
