"""Text bound for a terminal: control characters from ids, model output, slice values, prompt
names and history rows are shown as escapes, never sent to the terminal.

Every console view (the run report, the variant matrix, ``evalrun history``, a run's summary)
builds its cells with :func:`safe_text`, so no string from data reaches rich unescaped."""

from __future__ import annotations

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
