"""Run history as text: the ``evalrun history`` table and the one-line unicode trend."""

from __future__ import annotations

import math
from typing import Any

from rich.console import Console
from rich.table import Table

from evalrun.report._common import interval, num
from evalrun.report._terminal import safe_text
from evalrun.report._width import table_console

BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float | None]) -> str:
    """``▁▂▃▅▆▇`` over ``values`` (min to max of the finite ones); a missing value is a space."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return ""
    lo, hi = min(finite), max(finite)
    out = []
    for v in values:
        if v is None or not math.isfinite(v):
            out.append(" ")
        elif hi - lo < 1e-12:
            out.append(BARS[3])
        else:
            out.append(BARS[min(len(BARS) - 1, int((v - lo) / (hi - lo) * len(BARS)))])
    return "".join(out)


def scorer_names(entries: list[dict[str, Any]]) -> list[str]:
    names: list[str] = []
    for e in entries:
        names += [n for n in (e.get("scorers") or {}) if n not in names]
    return names


def means(entries: list[dict[str, Any]], scorer: str) -> list[float | None]:
    return [((e.get("scorers") or {}).get(scorer) or {}).get("mean") for e in entries]


def _cell(e: dict[str, Any], scorer: str) -> str:
    s = (e.get("scorers") or {}).get(scorer)
    if not s or s.get("mean") is None:
        return "–"
    ci = s.get("ci95") or [None, None]
    return f"{num(s['mean'])} {interval(ci[0], ci[1], signed=False)}"


def print_history(eval_name: str, entries: list[dict[str, Any]], console: Console | None = None) -> None:
    if console is None:
        console = table_console()
    names = scorer_names(entries)
    t = Table(title=safe_text(f"{eval_name}: {len(entries)} runs, oldest first (mean [95% CI])"), title_justify="left")
    for c in ("run", "started (UTC)", "commit", "source", *names):
        t.add_column(c, justify="right" if c in names else "left", no_wrap=True)
    for e in entries:
        started = str(e.get("started_at") or "")[:16].replace("T", " ")
        t.add_row(safe_text(str(e.get("run_id") or "")), safe_text(started),
                  safe_text(str(e.get("commit") or "")[:10]), safe_text(str(e.get("source") or "")),
                  *(safe_text(_cell(e, n)) for n in names))
    console.print(t)
    for n in names:
        console.print(safe_text(f"{n}: {sparkline(means(entries, n))}"))
