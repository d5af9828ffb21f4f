"""The one retry policy of everything that calls a remote service (targets through the engine,
the judge's OpenAI-compatible client, the Langfuse client): the server's Retry-After when it
gives one, else exponential backoff with jitter; never a single wait longer than
:data:`MAX_WAIT`."""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: the longest evalrun waits between two attempts, whoever asks: a Retry-After beyond it is
#: waited this long (the engine, the judge) or given up on (a Langfuse push, resent later with
#: ``evalrun push``), and backoff stops growing here. One answer cannot stall a run for long.
MAX_WAIT = 60.0


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` calls at most (1: no retry); between them the server's Retry-After (capped at
    ``cap``, plus up to 10% so clients told the same time do not all come back at once) or
    jittered exponential backoff from ``base`` seconds."""

    attempts: int
    base: float = 0.5
    cap: float = MAX_WAIT

    def retries_left(self, attempt: int) -> bool:
        """Whether another attempt follows attempt number ``attempt`` (1-based)."""
        return attempt < self.attempts

    def too_long(self, asked: float | None) -> bool:
        """The server asked for a wait beyond the cap (callers that can resume later give up)."""
        return asked is not None and asked > self.cap

    def delay(self, attempt: int, asked: float | None = None) -> float:
        """Seconds to wait after attempt number ``attempt`` failed; ``asked``: the Retry-After."""
        if asked is not None:
            # never shorter than asked, never longer than the cap
            return min(asked * random.uniform(1.0, 1.1), self.cap)
        return backoff(attempt, self.base, self.cap)


def retry_after(headers: Mapping[str, Any] | Any) -> float | None:
    """Seconds the server asks us to wait (``retry-after-ms``, ``Retry-After`` in seconds or
    as an HTTP date), or None. Header names are matched without regard to case."""
    if not headers:
        return None
    found = {str(k).lower(): str(v).strip() for k, v in dict(headers).items()}
    ms = found.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = found.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    import email.utils  # an HTTP date is rare; the email package is a dozen modules to load

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def backoff(attempt: int, base: float = 0.5, cap: float = MAX_WAIT) -> float:
    """Exponential backoff with jitter: somewhere in the upper half of base * 2^(attempt-1),
    so clients that failed together do not retry together."""
    top = min(cap, base * 2 ** (attempt - 1))
    return random.uniform(top / 2, top)
