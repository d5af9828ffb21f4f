"""The one control-character filter: which characters of text from data (model output, ids,
keys, server messages) must never reach a terminal, a report file or a CI log as they are,
and its two renderings.

C0 controls but tab and line feed (ESC above all: colours, cursor moves, hyperlinks), DEL,
the C1 controls U+0080-U+009F (U+009B is a CSI on some terminals), the bidirectional marks
and overrides that make text display in another order than it is ("Trojan Source"), and
what no UTF-8 or XML file can hold (lone surrogates, U+FFFE, U+FFFF). Carriage return is
kept in files (Windows line ends) and escaped on a terminal."""

from __future__ import annotations

import re

_BIDI = [0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]

#: what report files (markdown, HTML and its charts, JUnit, job summaries) replace by U+FFFD
CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069"
                     "\u2028\u2029\ud800-\udfff\ufffe\uffff]")

# a terminal gets escapes instead (so a console line still shows what was there)
_ESCAPES = {c: f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"
            for c in [*range(0x00, 0x20), *range(0x7F, 0xA0), *_BIDI] if c not in (0x09, 0x0A)}
# one line: line breaks as the escapes a reader knows
_ONE_LINE = {**_ESCAPES, ord("\n"): "\\n", ord("\r"): "\\r", 0x0B: "\\v", 0x0C: "\\f", 0x2028: "\\u2028",
             0x2029: "\\u2029"}


def without_controls(text: str) -> str:
    """``text`` with its control characters replaced by U+FFFD (for files)."""
    return CONTROL.sub("\ufffd", text)


def visible(text: str) -> str:
    """``text`` with its control characters written as ``\\xNN`` / ``\\uNNNN`` escapes (for a
    terminal; line feeds and tabs kept)."""
    return text.translate(_ESCAPES)


def one_line(text: str) -> str:
    """``text`` on one line with every control character escaped (an error message)."""
    return text.translate(_ONE_LINE)
