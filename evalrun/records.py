"""The data that flows through a run: dataset items, scores and records."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

from evalrun import _json


def stable_id(value: Any) -> str:
    """A short id derived from the canonical JSON of ``value``: same input, same id."""
    return hashlib.sha256(_json.canonical(value).encode()).hexdigest()[:16]


@dataclass(slots=True)
class Item:
    """One golden example. ``expected_output`` is a list when any of several answers is right."""

    id: str
    input: Any
    expected_output: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str | None = None  # "path:line" where the item was read, for messages and annotations

    @property
    def expected_list(self) -> list[Any]:
        """The accepted answers as a list (empty when the item has none)."""
        if self.expected_output is None:
            return []
        if isinstance(self.expected_output, list):
            return self.expected_output
        return [self.expected_output]

    @property
    def tags(self) -> list[str]:
        tags = self.metadata.get("tags") or []
        return [str(t) for t in tags] if isinstance(tags, list) else [str(tags)]


@dataclass(slots=True)
class Score:
    """What one scorer says of one record.

    ``value`` is a number in most scorers (1.0/0.0 for match scorers); ``passed`` is the
    scorer's verdict; ``error`` is set instead when the scorer itself failed on this record.
    ``extra`` carries scorer-specific data (judge samples and agreement, for instance).
    """

    value: float | None
    passed: bool | None = None
    reason: str | None = None
    error: str | None = None
    extra: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        # a NaN or infinite score is a scorer error, never a silent null or a poisoned mean
        v = self.value
        if isinstance(v, float | int) and not isinstance(v, bool) and not math.isfinite(v):
            self.error = self.error or f"the scorer gave a score that is not a finite number ({v})"
            self.value, self.passed = None, None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"value": self.value, "passed": self.passed, "reason": self.reason}
        if self.error is not None:
            d["error"] = self.error
        if self.extra:
            d["extra"] = self.extra
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Score:
        return cls(d.get("value"), d.get("passed"), d.get("reason"), d.get("error"), d.get("extra"))

    @classmethod
    def failed(cls, error: str) -> Score:
        return cls(None, None, None, error)


@dataclass(slots=True)
class Record:
    """One (item, trial) of a run: what went in, what came out, and how it scored."""

    item_id: str
    trial: int
    input: Any
    expected_output: Any = None
    output: Any = None
    error: dict[str, str] | None = None  # {"type": ..., "message": ...}; no traceback
    latency_ms: float | None = None
    usage: dict[str, Any] | None = None  # tokens / cost_usd as the target reported them
    scores: dict[str, Score] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    attempts: int = 1
    started_at: float | None = None
    #: what the target reported beside the output (chat: model, finish_reason, prompt)
    target_metadata: dict[str, Any] | None = None

    @property
    def key(self) -> tuple[str, int]:
        return (self.item_id, self.trial)

    @property
    def expected_list(self) -> list[Any]:
        if self.expected_output is None:
            return []
        if isinstance(self.expected_output, list):
            return self.expected_output
        return [self.expected_output]

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "item_id": self.item_id,
            "trial": self.trial,
            "input": self.input,
            "expected_output": self.expected_output,
            "output": self.output,
            "error": self.error,
            "latency_ms": self.latency_ms,
            "usage": self.usage,
            "scores": {k: s.to_dict() for k, s in self.scores.items()},
            "attempts": self.attempts,
            "started_at": self.started_at,
        }
        if self.metadata:
            d["metadata"] = self.metadata
        if self.target_metadata:
            d["target_metadata"] = self.target_metadata
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Record:
        return cls(
            item_id=str(d["item_id"]),
            trial=int(d.get("trial", 0)),
            input=d.get("input"),
            expected_output=d.get("expected_output"),
            output=d.get("output"),
            error=d.get("error"),
            latency_ms=d.get("latency_ms"),
            usage=d.get("usage"),
            scores={k: Score.from_dict(v) for k, v in (d.get("scores") or {}).items()},
            metadata=d.get("metadata") or {},
            attempts=d.get("attempts", 1),
            started_at=d.get("started_at"),
            target_metadata=d.get("target_metadata"),
        )
