"""The console report (rich): scorers against the baseline, gates, the worst regressed items."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, TextIO

from rich.console import Console
from rich.table import Table

from evalrun.report._common import (
    counts_line,
    expected_text,
    headline,
    input_text,
    item_scorer_pairs,
    metrics_line,
    output_text,
    scorer_rows,
    slice_cells,
)
from evalrun.report._terminal import safe_text
from evalrun.report._width import table_console

if TYPE_CHECKING:
    from evalrun.verdict import Verdict

TOP_ITEMS = 10
TOP_SLICES = 12
TEXT_LIMIT = 300


def _scorer_table(verdict: Verdict) -> Table:
    cmp = verdict.comparison
    t = Table(title=_text(headline(verdict)), title_justify="left")
    rows = scorer_rows(verdict)
    if cmp.has_baseline:
        cols = ["scorer", "n", "mean", "baseline", "diff", "95% CI", "pass rate", "baseline", "diff", "95% CI",
                "regressed", "improved", "McNemar p", "detectable drop"]
    else:
        cols = ["scorer", "n", "mean", "95% CI", "pass rate"]
    if any(r.flaky for r in rows):
        cols.append("flaky")
    for i, c in enumerate(cols):
        t.add_column(c, justify="left" if i == 0 else "right")
    for r in rows:
        if cmp.has_baseline:
            cells = [r.name, str(r.n), r.mean, r.base_mean, r.d_mean, r.ci_mean, r.pass_rate, r.base_pass, r.d_pass,
                     r.ci_pass, "" if r.regressions is None else str(r.regressions),
                     "" if r.improvements is None else str(r.improvements), r.mcnemar, r.mde]
        else:
            cells = [r.name, str(r.n), r.mean, r.ci_own, r.pass_rate]
        if "flaky" in cols:
            cells.append(str(r.flaky) if r.flaky else "")
        t.add_row(*(_text(c) for c in cells))
    return t


def _slice_table(verdict: Verdict) -> Table | None:
    rep = verdict.slices
    if rep is None or not rep.rows:
        return None
    shown = rep.rows[:TOP_SLICES]
    more = f", worst {len(shown)} of {len(rep.rows)}" if len(rep.rows) > len(shown) else ""
    t = Table(title=_text(f"slices by {', '.join(rep.keys)} (worst first{more})"), title_justify="left")
    cols = ["slice", "scorer", "n", "mean [95% CI]"]
    if rep.has_baseline:
        cols += ["baseline", "diff [95% CI]", "regressed", "improved"]
    cols.append("")
    for i, col in enumerate(cols):
        t.add_column(col, justify="right" if 1 < i < len(cols) - 1 else "left")
    for row in shown:
        c = slice_cells(row, rep.has_baseline)
        cells = [c.slice, c.scorer, c.n, c.mean]
        if rep.has_baseline:
            cells += [c.baseline, c.diff, c.regressed, c.improved]
        style = "bold red" if row.change == "drop" else "green" if row.change == "gain" else ""
        t.add_row(*(_text(x) for x in cells), _text(c.flag, style=style))
    return t


def _gates_table(verdict: Verdict) -> Table:
    t = Table(title=_text(f"gates ({verdict.policy})"), title_justify="left")
    for c in ("", "gate", "numbers", "note"):
        t.add_column(c)
    style = {"pass": "green", "fail": "bold red", "skip": "yellow", "advisory": "yellow"}
    for g in verdict.gates:
        t.add_row(_text(g.verdict.upper(), style=style.get(g.verdict, "")), _text(g.gate.text), _text(g.numbers()),
                  _text(g.note))
    return t


_text = safe_text


def _item_block(console: Console, verdict: Verdict, title: str, items: list, limit: int) -> None:
    if not items:
        return
    scorers = list(verdict.comparison.scorers)
    shown = items[:limit]
    console.print(_text(f"{title} ({len(items)}" + (f", top {len(shown)} shown)" if len(items) > len(shown) else ")"),
                       style="bold"))
    for it in shown:
        tags = f"  [{', '.join(it.tags)}]" if it.tags else ""
        which = f"  {', '.join(it.regressed or it.flaky or it.failed)}" if (it.regressed or it.flaky or it.failed) else ""
        console.print(_text(f"- {it.item_id}{tags}{which}", style="bold"))
        console.print(_text(f"    input:    {input_text(it, TEXT_LIMIT)}"))
        console.print(_text(f"    expected: {expected_text(it, TEXT_LIMIT)}"))
        if it.baseline:
            console.print(_text(f"    baseline: {output_text(it.baseline, TEXT_LIMIT)}"))
        console.print(_text(f"    new:      {output_text(it.candidate, TEXT_LIMIT)}"))
        scores = "; ".join(f"{s} {b} -> {c}" if b else f"{s} {c}" for s, b, c in item_scorer_pairs(it, scorers))
        console.print(_text(f"    scores:   {scores}"))


def print_console(verdict: Verdict, out: TextIO | None = None, console: Console | None = None) -> None:
    console = console or table_console(out)
    cmp = verdict.comparison
    console.print(_scorer_table(verdict))
    console.print(_text(counts_line(verdict)))
    console.print(_text(metrics_line(cmp.metrics, cmp.baseline_metrics)))
    slices = _slice_table(verdict)
    if slices is not None:
        console.print(slices)
    if cmp.has_baseline:
        _item_block(console, verdict, "regressed items", cmp.regressed, TOP_ITEMS)
        flaky = cmp.by_status("flaky")
        if flaky:
            console.print(_text(f"flaky items ({len(flaky)}): " + ", ".join(
                f"{it.item_id} ({', '.join(it.flaky)})" for it in flaky[:20]) + (" …" if len(flaky) > 20 else "")))
        for status in ("new", "removed"):
            ids = [it.item_id for it in cmp.by_status(status)]
            if ids:
                console.print(_text(f"{status} items ({len(ids)}): " + ", ".join(ids[:20]) + (" …" if len(ids) > 20 else "")))
    else:
        flaky = cmp.by_status("flaky")
        if flaky:
            _item_block(console, verdict, "flaky items", flaky, TOP_ITEMS)
    for note in verdict.notes:
        console.print(_text(f"note: {note}", style="yellow"))
    if verdict.gates:
        console.print(_gates_table(verdict))
        failed = len(verdict.failed_gates)
        console.print(_text(f"verdict: {'FAIL' if failed else 'PASS'}"
                           + (f" ({failed} of {len(verdict.gates)} gates failed)" if failed else
                              f" ({len(verdict.gates)} gates)"),
                           style="bold red" if failed else "bold green"))


def render_console_text(verdict: Verdict, width: int = 160) -> str:
    buf = io.StringIO()
    print_console(verdict, console=Console(file=buf, width=width, no_color=True, highlight=False,
                                           force_terminal=False))
    return buf.getvalue()
