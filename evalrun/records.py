"""The data that flows through a run: dataset items, scores and records."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

from evalrun import _json


def scrub_text(value: Any) -> tuple[Any, bool]:
    """``value`` with every string that UTF-8 cannot hold (lone surrogates, as a decoder with
    ``surrogateescape`` or a JSON ``"\\ud800"`` makes) repaired: each bad code point becomes
    U+FFFD. Returns (value, whether anything changed); unchanged values are returned as is."""
    if isinstance(value, str):
        if value.isascii():  # O(1): no surrogate possible
            return value, False
        try:
            value.encode("utf-8")
            return value, False
        except UnicodeEncodeError:
            return _replace_surrogates(value), True
    if isinstance(value, list):
        out, changed = [], False
        for v in value:
            v2, c = scrub_text(v)
            out.append(v2)
            changed |= c
        return (out, True) if changed else (value, False)
    if isinstance(value, dict):
        d, changed = {}, False
        for k, v in value.items():
            k2, ck = scrub_text(k)
            v2, cv = scrub_text(v)
            d[k2] = v2
            changed |= ck or cv
        return (d, True) if changed else (value, False)
    return value, False


def _replace_surrogates(text: str) -> str:
    return "".join("\ufffd" if 0xD800 <= ord(ch) <= 0xDFFF else ch for ch in text)


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
    #: the item's own checks (``assert:``), as written: the ``assert`` scorer validates and runs them
    asserts: list[dict[str, Any]] | None = None
    #: "path:line" of each check in ``asserts`` (for messages; empty: the item's own line)
    assert_sources: tuple[str, ...] = ()
    #: the tool calls the pipeline should make (``[{name, arguments}]``), for the tool_calls scorer
    expected_tool_calls: list[dict[str, Any]] | None = None
    #: what the tools answer in a chat target's tool loop: ``{name: result | [{arguments, result}]}``
    tool_results: dict[str, Any] | None = None

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
    #: what producing this score cost (judge calls: model, tokens, cost_usd); saved with the
    #: record under ``scorer_usage``, not part of the score itself (a cached verdict is the same
    #: verdict, at no cost)
    usage: dict[str, Any] | None = field(default=None, compare=False)
    #: reported, but never fails an item, the Actions pass rate or a gate
    informational: bool = False
    #: more scores this one stands for (one per item assertion): the engine files each under
    #: its own name beside this one; never saved as part of this score
    children: dict[str, Score] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        # a NaN or infinite score is a scorer error, never a silent null or a poisoned mean
        v = self.value
        if v is None or v.__class__ is bool:
            return
        if isinstance(v, float | int) and not math.isfinite(v):
            self.error = self.error or f"the scorer gave a score that is not a finite number ({v})"
            self.value, self.passed = None, None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"value": self.value, "passed": self.passed, "reason": self.reason}
        if self.error is not None:
            d["error"] = self.error
        if self.extra:
            d["extra"] = self.extra
        if self.informational:
            d["informational"] = True
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Score:
        return cls(d.get("value"), d.get("passed"), d.get("reason"), d.get("error"), d.get("extra"),
                   informational=d.get("informational") is True)

    @classmethod
    def failed(cls, error: str) -> Score:
        return cls(None, None, None, error)


#: the record fields that must have a JSON type when present (a bool is never a number here)
_FIELD_TYPES = (("latency_ms", (int, float)), ("started_at", (int, float)), ("error", dict), ("usage", dict),
                ("scores", dict), ("metadata", dict), ("attempts", int), ("target_metadata", dict))


#: the longest text output stored with a record: past it the output is cut, and the record's
#: ``target_metadata`` says so (``output_truncated``) with the full length (``output_chars``)
MAX_OUTPUT_CHARS = 1_000_000


def capped_output(output: Any, metadata: dict[str, Any] | None) -> tuple[Any, dict[str, Any] | None]:
    """(output, target metadata) as a record stores them: a text output past
    ``MAX_OUTPUT_CHARS`` is cut there, its full length recorded in the metadata."""
    if type(output) is not str or len(output) <= MAX_OUTPUT_CHARS:
        return output, metadata
    return output[:MAX_OUTPUT_CHARS], {**(metadata or {}), "output_truncated": True, "output_chars": len(output)}


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
    #: the item's expected tool calls (``[{name, arguments}]``), when it has some
    expected_tool_calls: list[dict[str, Any]] | None = None
    #: what the pipeline did on the way: ``trajectory.Trajectory.to_dict()`` (tool calls, span steps)
    trajectory: dict[str, Any] | None = None
    # fields whose text could not be stored as UTF-8 (lone surrogates) and was repaired
    # (a tuple: the usual empty one is shared, not one more object per record for the GC to scan)
    repaired: tuple[str, ...] = ()
    #: the scorers (and item assertions, ``assert.NAME``) that do not apply to this record: set on
    #: a failed call, which counts as failed only under the checks its item has
    not_applicable: tuple[str, ...] = ()

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
            "scores": {k: s.to_dict() for k, s in self.scores.items()} if self.scores else {},
            "attempts": self.attempts,
            "started_at": self.started_at,
        }
        if self.metadata:
            d["metadata"] = self.metadata
        if self.target_metadata:
            d["target_metadata"] = self.target_metadata
        if self.expected_tool_calls is not None:
            d["expected_tool_calls"] = self.expected_tool_calls
        if self.trajectory is not None:
            d["trajectory"] = self.trajectory
        if self.repaired:
            d["repaired"] = list(self.repaired)
        if self.not_applicable:
            d["not_applicable"] = list(self.not_applicable)
        if self.scores:  # (an unscored record, as the pending journal writes it, has none)
            spent = {k: s.usage for k, s in self.scores.items() if s.usage}
            if spent:
                d["scorer_usage"] = spent
        return d

    def scrub(self) -> None:
        """Repair text UTF-8 cannot hold (each bad code point becomes U+FFFD) in every field
        and note which fields were changed, so one odd string can never fail a write."""
        for name in ("item_id", "input", "expected_output", "output", "error", "usage", "metadata",
                     "target_metadata", "expected_tool_calls", "trajectory"):
            value, changed = scrub_text(getattr(self, name))
            if changed:
                setattr(self, name, value)
                if name not in self.repaired:
                    self.repaired = (*self.repaired, name)
        for sname, sc in list(self.scores.items()):
            fixed = False
            for attr in ("reason", "error", "extra"):
                value, changed = scrub_text(getattr(sc, attr))
                if changed:
                    setattr(sc, attr, value)
                    fixed = True
            key, kchanged = scrub_text(sname)
            if kchanged:
                self.scores[key] = self.scores.pop(sname)
            if (fixed or kchanged) and "scores" not in self.repaired:
                self.repaired = (*self.repaired, "scores")

    @classmethod
    def from_dict(cls, d: Any) -> Record:
        """A record read back from results.jsonl (its scorers' usage included). Raises
        ValueError saying what is wrong when the line is not a record evalrun wrote."""
        rec = cls._from_dict(d)
        for name, usage in (d.get("scorer_usage") or {}).items():
            if name in rec.scores and isinstance(usage, dict):
                rec.scores[name].usage = usage
        return rec

    @classmethod
    def _from_dict(cls, d: Any) -> Record:
        """A record read back from results.jsonl. Raises ValueError saying what is wrong when
        the line is not a record evalrun wrote (hand-edited or foreign lines)."""
        if not isinstance(d, dict):
            raise ValueError(f"a record is a JSON object, not {type(d).__name__}")
        item_id = d.get("item_id")
        if not isinstance(item_id, str) or not item_id:
            raise ValueError("record has no item_id string")
        trial = d.get("trial", 0)
        if not isinstance(trial, int) or isinstance(trial, bool) or trial < 0:
            raise ValueError(f"record trial must be a whole number >= 0 (got {trial!r})")
        for name, kinds in _FIELD_TYPES:
            v = d.get(name)
            if v is not None and (v.__class__ is bool or not isinstance(v, kinds)):
                raise ValueError(f"record field {name!r} has the wrong type ({type(v).__name__})")
        scores = d.get("scores") or {}
        for k, v in scores.items():
            if not isinstance(v, dict):
                raise ValueError(f"score {k!r} is not an object")
            val = v.get("value")
            if val is not None and (val.__class__ is bool or not isinstance(val, (int, float))):
                raise ValueError(f"score {k!r} value must be a number or null (got {val!r})")
            passed = v.get("passed")
            if passed is not None and passed.__class__ is not bool:
                raise ValueError(f"score {k!r} passed must be true, false or null")
        err = d.get("error")
        if err is not None and not all(isinstance(x, str) for x in err.values()):
            raise ValueError("record error values must be strings")
        repaired = d.get("repaired") or []
        na = d.get("not_applicable") or []
        expected_calls, trajectory = d.get("expected_tool_calls"), d.get("trajectory")
        if expected_calls is not None and not isinstance(expected_calls, list):
            raise ValueError("record expected_tool_calls must be a list")
        if trajectory is not None:
            from evalrun.trajectory import Trajectory

            Trajectory.from_dict(trajectory)  # raises ValueError saying what is wrong
        return cls(
            item_id=item_id,
            trial=trial,
            input=d.get("input"),
            expected_output=d.get("expected_output"),
            output=d.get("output"),
            error=err,
            latency_ms=d.get("latency_ms"),
            usage=d.get("usage"),
            scores={str(k): Score.from_dict(v) for k, v in scores.items()},
            metadata=d.get("metadata") or {},
            attempts=int(d["attempts"]) if d.get("attempts") is not None else 1,
            started_at=d.get("started_at"),
            target_metadata=d.get("target_metadata"),
            expected_tool_calls=expected_calls,
            trajectory=trajectory,
            repaired=tuple(str(x) for x in repaired) if isinstance(repaired, list) else (),
            not_applicable=tuple(str(x) for x in na) if isinstance(na, list) else (),
        )
