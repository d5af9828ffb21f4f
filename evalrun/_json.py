"""JSON helpers: one canonical form for hashing, one fast form for writing records."""

from __future__ import annotations

import json
import re
from types import ModuleType
from typing import Any

from evalrun._text import CONTROL

_orjson: ModuleType | None
try:  # orjson is several times faster on the hot path of writing records
    import orjson as _orjson
except ImportError:  # pragma: no cover - orjson is a declared dependency
    _orjson = None


def canonical(value: Any) -> str:
    """Sorted keys, no spaces: the text that content hashes and ids are computed from."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def dumps_line(value: Any) -> bytes:
    """One JSON line (with the newline) for an append-only .jsonl file."""
    if _orjson is not None:
        try:  # the common case first: plain JSON types, string keys (a fifth faster without options;
            # OPT_APPEND_NEWLINE is slower than the concatenation for record-sized lines)
            return _orjson.dumps(value) + b"\n"
        except TypeError:
            pass
        try:
            return _orjson.dumps(value, default=str, option=_orjson.OPT_NON_STR_KEYS) + b"\n"
        except TypeError:
            pass  # integers beyond 64 bits and the like: the standard module writes them
    return (json.dumps(value, ensure_ascii=False, default=str) + "\n").encode()


def key(value: Any) -> bytes | str:
    """A key for ``value`` (equal data, equal key): sorted-key JSON, at C speed when it can."""
    if _orjson is not None:
        try:
            return _orjson.dumps(value, option=_orjson.OPT_SORT_KEYS)
        except TypeError:
            pass
    return canonical(value)


def is_plain(value: Any) -> bool:
    """Whether ``value`` is plain JSON data: JSON types, string keys, text UTF-8 can hold (one
    C-speed pass; False when it cannot tell)."""
    if _orjson is None:
        return False
    try:
        _orjson.dumps(value)
    except TypeError:
        return False
    return True


def loads(data: str | bytes) -> Any:
    if _orjson is not None:
        return _orjson.loads(data)
    return json.loads(data)


def as_text(value: Any) -> str:
    """How a non-string output is compared as text: its canonical JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return canonical(value)


def json_pretty(value: Any) -> str:
    """Indented JSON for a person or a report file: control characters JSON itself leaves raw
    (C1, bidirectional overrides, U+2028) written as ``\\uXXXX`` escapes, the same text to a
    parser and inert in a terminal."""
    text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    return CONTROL.sub(_json_escape, text) + "\n"


def _json_escape(m: re.Match[str]) -> str:
    return f"\\u{ord(m.group()):04x}"


def dumps_strict(value: Any) -> bytes:
    """JSON bytes, raising TypeError for values JSON cannot hold (no silent str())."""
    if _orjson is not None:
        try:
            return _orjson.dumps(value, option=_orjson.OPT_NON_STR_KEYS)
        except TypeError as e:
            if "Integer exceeds 64-bit range" not in str(e):
                raise
    return json.dumps(value).encode()
