"""What a judge is asked to answer and how its answer is read.

The verdict is a JSON object ``{"reasoning": ..., <key>: ...}`` where ``<key>`` is ``score``
(an integer on the rubric's scale), ``choice`` (one of the rubric's named verdicts) or
``winner`` (pairwise: A, B or tie). Servers that honour ``response_format`` return exactly
that; for the others the parser looks for the object in prose, code fences, or as
``key: value`` text, and rejects anything that is not a valid verdict so it can be retried.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from evalrun.openai_client import MalformedResponse
from evalrun.scoring.judge.rubric import Rubric

PAIRWISE_OPTIONS = ["A", "B", "tie"]


class MalformedVerdict(MalformedResponse):
    """The judge's answer holds no valid verdict."""


@dataclass(frozen=True)
class Shape:
    """The verdict a call asks for: its key and allowed values."""

    key: str  # score | choice | winner
    options: tuple[Any, ...]

    @classmethod
    def pointwise(cls, rubric: Rubric) -> Shape:
        if rubric.scale:
            lo, hi = rubric.scale
            return cls("score", tuple(range(lo, hi + 1)))
        return cls("choice", tuple(rubric.choices or ()))

    @classmethod
    def pairwise(cls) -> Shape:
        return cls("winner", tuple(PAIRWISE_OPTIONS))

    def schema(self) -> dict[str, Any]:
        kind = "integer" if self.key == "score" else "string"
        return {
            "type": "object",
            "properties": {"reasoning": {"type": "string"},
                           self.key: {"type": kind, "enum": list(self.options)}},
            "required": ["reasoning", self.key],
            "additionalProperties": False,
        }

    def response_format(self, mode: str) -> dict[str, Any] | None:
        if mode == "json_schema":
            return {"type": "json_schema",
                    "json_schema": {"name": f"verdict_{self.key}", "strict": True, "schema": self.schema()}}
        if mode == "json_object":
            return {"type": "json_object"}
        return None

    def instructions(self) -> str:
        """Appended to every prompt: servers without structured output still see the shape."""
        shown = ", ".join(json.dumps(o) for o in self.options)
        return ("Think step by step, then reply with JSON only, in exactly this shape:\n"
                f'{{"reasoning": "<your reasoning>", "{self.key}": <one of {shown}>}}')

    def coerce(self, raw: Any) -> Any:
        """The allowed option ``raw`` denotes, or MalformedVerdict."""
        if self.key == "score":
            if isinstance(raw, bool):
                raise MalformedVerdict(f"score {raw!r} is not a number")
            try:
                num = float(raw)
            except (TypeError, ValueError):
                raise MalformedVerdict(f"score {raw!r} is not a number") from None
            if num.is_integer() and int(num) in self.options:
                return int(num)
            raise MalformedVerdict(f"score {raw!r} is outside {self.options[0]}..{self.options[-1]}")
        text = _norm(str(raw))
        for opt in self.options:
            if _norm(opt) == text:
                return opt
        raise MalformedVerdict(f"{self.key} {str(raw)[:60]!r} is not one of {', '.join(map(str, self.options))}")


def _norm(s: str) -> str:
    return re.sub(r"[\s_-]+", "_", s.strip().strip("\"'*.").casefold())


_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)
_REASON_KEYS = ("reasoning", "reason", "explanation", "rationale", "thoughts")


def parse_verdict(content: str, shape: Shape) -> tuple[Any, str | None]:
    """(verdict, reasoning) from a judge's message text."""
    if not content or not content.strip():
        raise MalformedVerdict("empty answer")
    for obj in _json_objects(content):
        value = _get(obj, shape.key)
        if value is None:
            continue
        reason = next((str(obj[k]) for k in _REASON_KEYS if isinstance(obj.get(k), str)), None)
        return shape.coerce(value), reason
    # last resort: "score: 4" / "Verdict: correct" in prose
    keys = {"score": "score|rating|grade", "choice": "choice|verdict|label|answer",
            "winner": "winner|better|verdict"}[shape.key]
    pattern = rf"(?i)\b(?:{keys})\b\**\s*[:=]\s*\**\s*[\"']?([\w .-]+?)[\"']?\s*(?:/\s*\d+)?\**\s*(?:$|[\n,;])"
    # the last one: models tend to conclude with the verdict
    m = next(reversed(list(re.finditer(pattern, content))), None)
    if m is not None:
        reason = content[: m.start()].rstrip(" \t\n*#_").strip() or None  # drop markdown before the label
        return shape.coerce(m.group(1)), reason
    raise MalformedVerdict(f"no {shape.key} found in the answer: {content.strip()[:120]!r}")


def _get(obj: dict[str, Any], key: str) -> Any:
    if key in obj:
        return obj[key]
    lowered = {str(k).casefold(): v for k, v in obj.items()}
    return lowered.get(key)


def _json_objects(text: str) -> list[dict[str, Any]]:
    """JSON objects in ``text``: the whole text, fenced blocks, then any {...} inside prose."""
    found: list[dict[str, Any]] = []
    candidates = [text.strip()] + [m.group(1).strip() for m in _FENCE.finditer(text)]
    for c in candidates:
        try:
            obj = json.loads(c)
        except ValueError:
            continue
        if isinstance(obj, dict):
            found.append(obj)
    if found:
        return found
    decoder = json.JSONDecoder()
    i = text.find("{")
    while i != -1:
        try:
            obj, end = decoder.raw_decode(text, i)
        except ValueError:
            i = text.find("{", i + 1)
            continue
        if isinstance(obj, dict):
            found.append(obj)
        i = text.find("{", end)
    return found


@dataclass
class Aggregate:
    verdict: Any
    agreement: float
    votes: dict[str, int]


def majority(verdicts: list[Any], worth: dict[Any, float]) -> Aggregate:
    """The most frequent verdict; a tie between verdicts goes to the one worth less, so a
    split judge never rounds a record up."""
    counts = Counter(verdicts)
    top = max(counts.values())
    winner = min((v for v, c in counts.items() if c == top), key=lambda v: worth[v])
    return Aggregate(winner, top / len(verdicts), {str(k): c for k, c in counts.items()})
