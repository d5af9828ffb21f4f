"""The console view of one run's summary: a table per scorer, errors, latency and usage."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rich.console import Console
from rich.table import Table

from evalrun.report._terminal import safe_text, visible
from evalrun.report._width import table_console


def _fmt(x: Any, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def scorer_table(summary: Mapping[str, Any]) -> Table:
    t = Table(title=safe_text(f"{summary.get('eval')} · run {summary.get('run_id')} · {summary.get('status')}"),
              title_justify="left")
    t.add_column("scorer")
    t.add_column("n", justify="right")
    t.add_column("mean", justify="right")
    t.add_column("95% CI", justify="right")
    t.add_column("pass rate", justify="right")
    t.add_column("errors", justify="right")
    for name, s in summary.get("scorers", {}).items():
        lo, hi = (s.get("ci95") or [None, None])[:2]
        n = str(s["n"]) + (f" ({s['clusters']} clusters)" if s.get("clusters") is not None else "")
        t.add_row(safe_text(name), n, _fmt(s.get("mean")), f"[{_fmt(lo)}, {_fmt(hi)}]",
                  "–" if s.get("pass_rate") is None else f"{100 * s['pass_rate']:.1f}%",
                  # its own errors and the target's: each a failure here (unless the eval file excludes them)
                  str(errs) if (errs := int(s.get("errors") or 0) + int(s.get("target_errors") or 0)) else "")
    return t


def footer_lines(summary: Mapping[str, Any]) -> list[str]:
    from rich.markup import escape

    from evalrun.report._common import budget_line, error_lines

    lines = []
    n, planned = summary.get("records", 0), summary.get("planned")
    lines.append(f"records: {n}" + (f"/{planned}" if planned and planned != n else "")
                 + f" · items: {summary.get('items', 0)}")
    if summary.get("errors"):
        kinds = escape(visible(", ".join(f"{k} ×{v}" for k, v in (summary.get("error_types") or {}).items())))
        lines.append(f"[red]target errors: {summary['errors']} ({100 * (summary.get('error_rate') or 0):.1f}%): {kinds}")
    budget = summary.get("error_budget")
    found = error_lines(summary.get("scorers") or {}, summary.get("error_samples"), bool(summary.get("exclude_errors")),
                        summary.get("failure"), budget)
    for line in found:
        lines.append(("[yellow]" if line.startswith("errors left out") else "[red]") + escape(visible(line)))
    if budget and not any(line.startswith("error budget") for line in found):
        lines.append(escape(visible(budget_line(budget))))  # printed on every run, errors or not
    for name, s in (summary.get("scorers") or {}).items():
        if s.get("ci_note"):  # a constant scorer: say why its interval is a point
            lines.append(f"{name}: {s['ci_note']}")
    lat = summary.get("latency_ms")
    if lat:
        lines.append(f"latency: p50 {lat['p50']:.0f} ms · p95 {lat['p95']:.0f} ms")
    if summary.get("prompt"):
        from evalrun.prompts import describe

        lines.append("prompt: " + escape(visible(describe(summary["prompt"]))))  # a name from Langfuse is not markup
    from rich.markup import escape

    lines += [escape(visible(line)) for line in usage_lines(summary)]
    return lines


def usage_lines(summary: Mapping[str, Any], records: Iterable[Any] | None = None) -> list[str]:
    """What the run spent, as plain text: the target's usage (tokens, cost; with ``records``,
    how many calls came from the cache), then each scorer kind's (judge calls, cache hits,
    tokens and cost; embeddings computed vs cached)."""
    lines = []
    usage = summary.get("usage") or {}
    parts = [f"{k} {v:g}" for k, v in usage.items() if isinstance(v, int | float) and not isinstance(v, bool)]
    if records is not None:
        recs = list(records)
        hits = sum(1 for r in recs if (r.usage or {}).get("cached") is True)
        if hits:
            parts.append(f"target cache hits {hits} of {len(recs)}")
    if parts:
        lines.append("usage: " + " · ".join(parts))
    for kind, counts in (summary.get("scorer_usage") or {}).items():
        if not isinstance(counts, dict):
            continue
        shown = {k: v for k, v in counts.items() if isinstance(v, int | float) and not isinstance(v, bool) and v}
        if shown:
            lines.append(f"{kind}: " + " · ".join(f"{k.replace('_', ' ')} {v:g}" for k, v in shown.items()))
    return lines


def print_run_summary(summary: Mapping[str, Any], console: Console | None = None) -> None:
    console = console or table_console()
    console.print(scorer_table(summary))
    for line in footer_lines(summary):
        console.print(line)
