"""Retry timing shared by everything that calls a remote service (HTTP targets, the judge,
Langfuse): the server's Retry-After, and exponential backoff with jitter."""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from typing import Any


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


def backoff(attempt: int, base: float = 0.5, cap: float = 30.0) -> float:
    """Exponential backoff with jitter: somewhere in the upper half of base * 2^(attempt-1),
    so clients that failed together do not retry together."""
    top = min(cap, base * 2 ** (attempt - 1))
    return random.uniform(top / 2, top)
