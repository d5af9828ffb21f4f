"""Errors that map to exit codes: user input (2) and infrastructure (3)."""

from __future__ import annotations


class EvalrunError(Exception):
    exit_code = 1


_ONE_LINE = {ord("\n"): "\\n", ord("\r"): "\\r", 0x85: "\\x85", 0x2028: "\\u2028", 0x2029: "\\u2029",
             0x0B: "\\v", 0x0C: "\\f"}


class UsageError(EvalrunError):
    """Unusable input: config, dataset, CLI usage, target not importable. Exit code 2.

    Rendered as one line ``file:line:col: message`` where a location is known.
    """

    exit_code = 2

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
        return (where + self.message).translate(_ONE_LINE)


class RunFailed(EvalrunError):
    """The run could not complete (infrastructure beyond the error budget). Exit code 3."""

    exit_code = 3


class RetryableError(Exception):
    """Raise from a target to ask evalrun to retry the call (with backoff, or after
    ``retry_after`` seconds when the service said how long to wait)."""

    def __init__(self, message: str = "", retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
