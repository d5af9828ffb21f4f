"""Text from data (ids, model output, slice values, prompt names, history rows) carries no
control character to a terminal.

Every console view (the run report, the variant matrix, ``evalrun history``, a run's summary)
builds its cells with :func:`safe_text` (controls shown as escapes), so no string from data
reaches rich unescaped; report files (markdown, HTML and its charts) use
:func:`without_controls` (controls as U+FFFD), since a file is also read with ``cat``."""

from __future__ import annotations

from rich.text import Text

from evalrun._text import visible, without_controls

__all__ = ["safe_text", "visible", "without_controls"]


def safe_text(text: str, style: str = "") -> Text:
    """A rich ``Text`` (never markup) of ``text`` with its control characters escaped."""
    return Text(visible(text), style=style)
