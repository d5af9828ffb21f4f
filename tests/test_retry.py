"""The one retry policy: attempts, Retry-After within the cap, backoff within the cap."""

from __future__ import annotations

from evalrun._retry import MAX_WAIT, RetryPolicy


def test_attempts_and_waits():
    p = RetryPolicy(attempts=3, base=0.5)
    assert [p.retries_left(a) for a in (1, 2, 3)] == [True, True, False]
    assert not RetryPolicy(attempts=1).retries_left(1)
    for _ in range(200):
        assert 2.0 <= p.delay(1, asked=2.0) <= 2.2  # the server's time, a little more, never less
        assert MAX_WAIT <= p.delay(1, asked=3600) <= MAX_WAIT * 1.1
        assert 0.25 <= p.delay(1) <= 0.5 and 0.5 <= p.delay(2) <= 1.0
        assert MAX_WAIT / 2 <= p.delay(40) <= MAX_WAIT  # backoff stops growing at the cap
    assert p.too_long(MAX_WAIT + 1) and not p.too_long(MAX_WAIT) and not p.too_long(None)


def test_every_remote_caller_uses_the_policy():
    """The engine, the judge's client and the Langfuse client wait only through RetryPolicy."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "evalrun"
    for rel in ("engine.py", "openai_client.py", "langfuse/client.py"):
        text = (root / rel).read_text(encoding="utf-8")
        assert "RetryPolicy(" in text and "backoff(" not in text, rel
