"""Reports of runs and comparisons: console, markdown, junit, html, json. One module per
format; this one is the dispatch: which formats exist, where each goes by default, and writing
the reports a run asked for (``--report FORMAT[:PATH]``)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from evalrun.errors import UsageError, suggest

if TYPE_CHECKING:
    from evalrun.store import RunDir
    from evalrun.verdict import Verdict

FORMATS = ("console", "md", "junit", "html", "json")
DEFAULT_FILES = {"md": "report.md", "junit": "junit.xml", "html": "report.html", "json": "comparison.json",
                 "console": "report.txt"}


@dataclass(frozen=True)
class ReportSpec:
    format: str
    path: str | None  # None: the default (stdout for console, a file in the run directory otherwise); "-": stdout


def parse_report_specs(specs: list[str] | None) -> list[ReportSpec]:
    out = []
    for spec in specs or []:
        fmt, sep, path = spec.partition(":")
        fmt = fmt.strip().lower()
        if fmt == "markdown":
            fmt = "md"
        if fmt not in FORMATS:
            raise UsageError(f"--report {spec}: unknown format '{fmt}'{suggest(fmt, FORMATS)}; "
                             f"formats: {', '.join(FORMATS)} (FORMAT[:PATH])")
        if sep and not path.strip():
            raise UsageError(f"--report {spec}: empty path after ':'")
        out.append(ReportSpec(fmt, path.strip() if sep else None))
    return out


def write_reports(verdict: Verdict, specs: list[ReportSpec], run_dir: RunDir, *, console: bool = True,
                  out: TextIO | None = None) -> None:
    """Write each report; the console one always goes to ``out`` unless ``console`` is False
    (--quiet, --json), and to a file as well when a ``console:PATH`` asks for it."""
    out = out or sys.stdout
    if console:
        from evalrun.report.console import print_console

        print_console(verdict, out)
    write_files(specs, lambda fmt: render(verdict, fmt), run_dir.path, verdict.written, out)


def write_files(specs: list[ReportSpec], rendered: Callable[[str], str], folder: Path,
                written: list[tuple[str, str]], out: TextIO) -> None:
    """Each report of ``specs`` but the console's own: to its path, ``-`` (``out``), or its
    default file in ``folder``; ``(format, path)`` of each file written appended to ``written``.
    Shared by a run's reports and a variant group's matrix."""
    from evalrun.store import write_text_atomic

    for spec in specs:
        if spec.format == "console" and spec.path in (None, "-"):
            continue
        text = rendered(spec.format)
        if spec.path == "-":
            out.write(text)
            out.flush()
            continue
        path = Path(spec.path) if spec.path else folder / DEFAULT_FILES[spec.format]
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(path, text)  # a symlink planted at the path is replaced, not followed
        except OSError as e:
            raise UsageError(f"cannot write the {spec.format} report: {e.strerror}", str(path)) from None
        written.append((spec.format, str(path)))


def render(verdict: Verdict, fmt: str) -> str:
    if fmt == "md":
        from evalrun.report.markdown import render_markdown

        return render_markdown(verdict)
    if fmt == "junit":
        from evalrun.report.junit import render_junit

        return render_junit(verdict)
    if fmt == "html":
        from evalrun.report.html import render_html

        return render_html(verdict)
    if fmt == "json":
        from evalrun.report.json import render_json

        return render_json(verdict)
    from evalrun.report.console import render_console_text

    return render_console_text(verdict)
