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


def _group(e: dict[str, Any]) -> dict[str, str] | None:
    g = e.get("group")
    if not isinstance(g, dict) or not g.get("id"):
        return None
    return {k: str(g.get(k) or "") for k in ("id", "variant", "compare_to")}


def arrange(entries: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, str] | None]]:
    """The entries oldest first, a variant group's runs together at the place of its first one
    (its reference first): one row per variant, never a time series of variants."""
    out: list[tuple[dict[str, Any], dict[str, str] | None]] = []
    placed: set[str] = set()
    for e in entries:
        g = _group(e)
        if g is None:
            out.append((e, None))
            continue
        if g["id"] in placed:
            continue
        placed.add(g["id"])
        members = [(x, gx) for x in entries if (gx := _group(x)) is not None and gx["id"] == g["id"]]
        members.sort(key=lambda m: m[1]["variant"] != m[1]["compare_to"])  # the reference first, else as run
        out += members
    return out


def trend_points(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One point per run, and one per variant group (its reference variant, else its first run):
    the variants of one group ran side by side, not one after another."""
    points, seen = [], set()
    for e, g in arrange(entries):
        if g is not None:
            if g["id"] in seen:
                continue
            seen.add(g["id"])
        points.append(e)
    return points


def print_history(eval_name: str, entries: list[dict[str, Any]], console: Console | None = None) -> None:
    if console is None:
        console = table_console()
    names = scorer_names(entries)
    rows = arrange(entries)
    grouped = any(g is not None for _, g in rows)
    t = Table(title=safe_text(f"{eval_name}: {len(entries)} runs, oldest first (mean [95% CI])"
                              + ("; a variant group's runs one row per variant" if grouped else "")),
              title_justify="left")
    cols = ["run", *(["variant"] if grouped else []), "started (UTC)", "commit", "source", *names]
    for c in cols:
        t.add_column(c, justify="right" if c in names else "left", no_wrap=True)
    last_group = None
    for e, g in rows:
        started = str(e.get("started_at") or "")[:16].replace("T", " ")
        variant = []
        if grouped:
            if g is None:
                variant = [""]
            else:
                ref = " (ref)" if g["variant"] and g["variant"] == g["compare_to"] else ""
                variant = [("group " + g["id"] + ": " if g["id"] != last_group else "  ") + g["variant"] + ref]
        last_group = g["id"] if g is not None else None
        t.add_row(safe_text(str(e.get("run_id") or "")), *(safe_text(v) for v in variant), safe_text(started),
                  safe_text(str(e.get("commit") or "")[:10]), safe_text(str(e.get("source") or "")),
                  *(safe_text(_cell(e, n)) for n in names))
    console.print(t)
    points = trend_points(entries)
    for n in names:
        console.print(safe_text(f"{n}: {sparkline(means(points, n))}"))
    if grouped:
        console.print(safe_text("(trend: one point per run; a variant group counts once, by its reference variant)"))
