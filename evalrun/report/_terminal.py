"""Text from data (ids, model output, slice values, prompt names, history rows) carries no
control character to a terminal.

Every console view (the run report, the variant matrix, ``evalrun history``, a run's summary)
builds its cells with :func:`safe_text` (controls shown as escapes), so no string from data
reaches rich unescaped; report files (markdown, HTML and its charts) use
:func:`without_controls` (controls as U+FFFD), since a file is also read with ``cat``."""

from __future__ import annotations

import re

from rich.text import Text

# C0/C1 controls (ESC above all: colours, cursor moves, terminal hyperlinks), and the
# bidirectional marks and overrides that make text display in another order than it is
# ("Trojan Source"); \n and \t are kept
_BIDI = [0x200e, 0x200f, *range(0x202a, 0x202f), *range(0x2066, 0x206a)]
_CONTROLS = {c: f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"
             for c in [*range(0x00, 0x20), *range(0x7f, 0xa0), *_BIDI] if c not in (0x09, 0x0a)}


def visible(text: str) -> str:
    """``text`` with its control characters written as ``\\xNN`` / ``\\uNNNN`` escapes."""
    return text.translate(_CONTROLS)


def safe_text(text: str, style: str = "") -> Text:
    """A rich ``Text`` (never markup) of ``text`` with its control characters escaped."""
    return Text(visible(text), style=style)


#: control characters other than line breaks (NUL, ESC...), and bidirectional marks/overrides
CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def without_controls(text: str) -> str:
    """``text`` with its control characters replaced by U+FFFD (for report files)."""
    return CONTROL.sub("\ufffd", text)
