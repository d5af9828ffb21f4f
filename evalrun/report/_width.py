"""The width of console tables."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


def table_console(file: Any = None) -> Console:
    """A console for tables: as wide as the terminal, or 200 columns when the output is piped
    (a CI log), where rich would otherwise cut every table to 80 and shorten ids to ``…``.
    ``COLUMNS`` in the environment still wins."""
    import os

    from rich.console import Console

    console = Console(file=file, highlight=False, soft_wrap=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(file=file, highlight=False, soft_wrap=False, width=200)
    return console
