"""Redaction that fails closed, for text that leaves production (harvested traces).

Detection and transformation are separate: each detector finds spans of one kind (its name is
what the report counts), then every span is replaced by ``[KIND]``. The whole value is walked,
keys and strings at any depth, so a chat transcript (``messages: [{role, content}]``) is
covered like a plain string. Anything the walker cannot handle (an object that is not JSON data,
nesting too deep) or any detector exception raises :class:`RedactionFailed`: the caller drops
the item and counts it; it is never written unredacted.

Built-in detectors: emails, phone numbers, payment card numbers (Luhn-checked), IBANs (mod-97
checked), IPv4 and IPv6 addresses, API keys and tokens (OpenAI/Anthropic-style ``sk-``, AWS
access keys, GitHub, Slack, Google, JWTs, bearer tokens, Langfuse keys), plus custom patterns.
Person names need a model: an optional detector wraps Presidio when it is installed.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

MAX_DEPTH = 64


class RedactionFailed(Exception):
    """A value could not be redacted with certainty (the caller drops it)."""


Detector = Callable[[str], Iterable[tuple[int, int]]]


def _regex(pattern: str, flags: int = 0, check: Callable[[str], bool] | None = None) -> Detector:
    rx = re.compile(pattern, flags)

    def find(text: str) -> Iterable[tuple[int, int]]:
        for m in rx.finditer(text):
            g = m.group(0)
            if check is None or check(g):
                yield m.start(), m.end()
    return find


def luhn_ok(number: str) -> bool:
    digits = [int(c) for c in number if c.isdigit()]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban_ok(text: str) -> bool:
    s = re.sub(r"\s+", "", text).upper()
    if not 15 <= len(s) <= 34:
        return False
    moved = s[4:] + s[:4]
    try:
        return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1
    except ValueError:
        return False


def _ipv4_ok(text: str) -> bool:
    return all(0 <= int(p) <= 255 for p in text.split("."))


BUILTIN: dict[str, Detector] = {
    "email": _regex(r"(?<![\w.+-])[\w.+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})+"),
    "api_key": _regex(
        r"(?:\bsk-(?:ant-|proj-|lf-)?[A-Za-z0-9_-]{16,}|\bpk-lf-[A-Za-z0-9-]{8,}|\bAKIA[0-9A-Z]{16}\b"
        r"|\bgh[pousr]_[A-Za-z0-9]{30,}|\bxox[abpr]-[A-Za-z0-9-]{10,}|\bAIza[0-9A-Za-z_-]{35}"
        r"|\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"
        r"|(?<=[Bb]earer )[A-Za-z0-9._~+/-]{16,}=*)"),
    "card": _regex(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)", check=luhn_ok),
    "iban": _regex(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b", check=iban_ok),
    "ip": _regex(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])", check=_ipv4_ok),
    "ipv6": _regex(r"(?<![:\w])(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}(?![:\w])"),
    "phone": _regex(r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?)?\d{2,4}(?:[ .-]\d{2,4}){2,4}(?![\w])",
                    check=lambda s: 9 <= sum(c.isdigit() for c in s) <= 15),
}
#: the order detectors run in: a card number is not also a phone number
ORDER = ["api_key", "email", "iban", "card", "ipv6", "ip", "phone"]


def presidio_detector(entities: list[str] | None = None) -> Detector:
    """Person names and more through Presidio (``pip install presidio-analyzer``), when installed."""
    try:
        from presidio_analyzer import AnalyzerEngine  # type: ignore[import-not-found]  # optional, untyped
    except ImportError as e:
        raise RedactionFailed(f"the names detector needs presidio-analyzer: {e}") from None
    engine = AnalyzerEngine()
    wanted = entities or ["PERSON"]

    def find(text: str) -> Iterable[tuple[int, int]]:
        for r in engine.analyze(text=text, entities=wanted, language="en"):
            yield r.start, r.end
    return find


@dataclass
class Redactor:
    detectors: dict[str, Detector]
    counts: Counter[str] = field(default_factory=Counter)  # kind -> spans replaced
    fields: Counter[str] = field(default_factory=Counter)  # "kind@path" -> spans replaced

    @classmethod
    def build(cls, kinds: list[str] | None = None, custom: dict[str, str] | None = None,
              names: bool = False) -> Redactor:
        """``kinds`` of the built-in detectors (default all), ``custom`` patterns by name, and
        Presidio's person names when ``names``. A bad custom pattern raises ValueError."""
        chosen = kinds if kinds is not None else ORDER
        unknown = [k for k in chosen if k not in BUILTIN]
        if unknown:
            raise ValueError(f"unknown detector {unknown[0]!r} (built-in: {', '.join(ORDER)})")
        detectors = {k: BUILTIN[k] for k in ORDER if k in chosen}
        for name, pattern in (custom or {}).items():
            try:
                detectors[name] = _regex(pattern)
            except re.error as e:
                raise ValueError(f"custom pattern {name!r}: {e}") from None
        if names:
            detectors["person"] = presidio_detector()
        return cls(detectors)

    def text(self, value: str, path: str = "") -> str:
        spans: list[tuple[int, int, str]] = []
        for kind, detect in self.detectors.items():
            try:
                found = list(detect(value))
            except Exception as e:  # a detector that breaks must not let the text through
                raise RedactionFailed(f"detector {kind} failed: {type(e).__name__}") from None
            for a, b in found:
                if not any(a < e and s < b for s, e, _ in spans):  # first detector wins an overlap
                    spans.append((a, b, kind))
        if not spans:
            return value
        out, last = [], 0
        for a, b, kind in sorted(spans):
            out.append(value[last:a])
            out.append(f"[{kind.upper()}]")
            last = b
            self.counts[kind] += 1
            self.fields[f"{kind}@{path or '$'}"] += 1
        out.append(value[last:])
        return "".join(out)

    def value(self, v: Any, path: str = "", depth: int = 0) -> Any:
        """``v`` with every string (and mapping key) redacted; raises RedactionFailed for what
        is not JSON data."""
        if depth > MAX_DEPTH:
            raise RedactionFailed(f"{path or '$'}: nested deeper than {MAX_DEPTH}")
        if isinstance(v, str):
            return self.text(v, path)
        if v is None or isinstance(v, bool | int | float):
            return v
        if isinstance(v, dict):
            return {self.text(str(k), path): self.value(x, f"{path}.{k}" if path else str(k), depth + 1)
                    for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [self.value(x, f"{path}[]", depth + 1) for x in v]
        raise RedactionFailed(f"{path or '$'}: a {type(v).__name__} is not JSON data")

    def report(self) -> dict[str, Any]:
        """What was redacted, by kind and where; never the values."""
        return {"by_kind": dict(sorted(self.counts.items())), "by_field": dict(sorted(self.fields.items()))}
