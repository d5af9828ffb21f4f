"""The console report (rich), in the order a reviewer reads (issue 24): the verdict and its
reason, the failing gates, the regressed items with the change in their output, the slices
that moved, then everything else (scorers, counts, run metrics, the other gates and items).

The default layout is compact: it fits 100 columns with a baseline and 80 without one, by
stacking a difference over its interval and dropping secondary columns (baseline numbers,
McNemar p, detectable drop), and shows each regressed item as two lines, the second its
output's word diff (``[-removed-]{+added+}``, also coloured on a terminal). ``wide=True``
(``--wide``, and the ``report.txt`` file) shows every column and each item's input, expected,
baseline and new output in full."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, TextIO

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from evalrun.report._common import (
    clip_diff,
    counts_line,
    diff_outputs,
    expected_text,
    headline,
    input_text,
    item_scorer_pairs,
    metrics_line,
    moved_slices,
    output_text,
    scorer_rows,
    short_label,
    slice_cells,
    trajectory_lines,
    verdict_error_lines,
    verdict_label,
    verdict_reason,
)
from evalrun.report._terminal import safe_text, visible
from evalrun.report._width import table_console

if TYPE_CHECKING:
    from evalrun.compare import ItemDiff, Side
    from evalrun.gates import GateResult
    from evalrun.verdict import Verdict

TOP_ITEMS = 10
TOP_SLICES = 12
COMPACT_SLICES = 8
TEXT_LIMIT = 300
COMPACT_WIDTH = 100  # the compact layout's item lines fit this many columns (or the terminal's, if narrower)

_text = safe_text
_STYLE = {"pass": "green", "fail": "bold red", "skip": "yellow", "advisory": "yellow", "incomplete": "bold yellow"}
_MARK = {"pass": "✓", "fail": "✗", "skip": "–", "advisory": "!", "incomplete": "?"}


def _table(title: str, compact: bool) -> Table:
    # compact: the title is printed on its own line (a table's title wraps at the table's width)
    if compact:
        return Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    return Table(title=_text(title, style="bold"), title_justify="left", box=box.HEAVY_HEAD)


def _scorer_table(verdict: Verdict, wide: bool) -> Table:
    cmp = verdict.comparison
    t = _table("scorers", not wide)
    rows = scorer_rows(verdict)
    if cmp.has_baseline and wide:
        cols = ["scorer", "n", "mean", "baseline", "diff", "95% CI", "pass rate", "baseline", "diff", "95% CI",
                "regressed", "improved", "McNemar p", "detectable drop"]
    elif cmp.has_baseline:
        cols = ["scorer", "n", "mean", "diff [95% CI]", "pass rate", "diff [95% CI]", "regr.", "impr."]
    else:
        cols = ["scorer", "n", "mean", "95% CI", "pass rate"]
    if any(r.flaky for r in rows):
        cols.append("flaky")
    if any(r.errors for r in rows):
        cols.append("errors")
    for i, c in enumerate(cols):
        # a name wraps rather than losing its end (``has_fa…``); numbers never wrap mid-number
        t.add_column(c, justify="left" if i == 0 else "right", overflow="fold" if i == 0 else "ellipsis",
                     no_wrap=i != 0 and not (cmp.has_baseline and not wide))
    for r in rows:
        if cmp.has_baseline and wide:
            cells = [r.name, str(r.n), r.mean, r.base_mean, r.d_mean, r.ci_mean, r.pass_rate, r.base_pass, r.d_pass,
                     r.ci_pass, "" if r.regressions is None else str(r.regressions),
                     "" if r.improvements is None else str(r.improvements), r.mcnemar, r.mde]
        elif cmp.has_baseline:
            # the difference over its interval: two short lines instead of one wide one
            cells = [r.name, str(r.n), r.mean, f"{r.d_mean}\n{r.ci_mean}".strip(), r.pass_rate,
                     f"{r.d_pass}\n{r.ci_pass}".strip(), "" if r.regressions is None else str(r.regressions),
                     "" if r.improvements is None else str(r.improvements)]
        else:
            cells = [r.name, str(r.n), r.mean, r.ci_own, r.pass_rate]
        if "flaky" in cols:
            cells.append(str(r.flaky) if r.flaky else "")
        if "errors" in cols:
            cells.append(str(r.errors) if r.errors else "")
        t.add_row(*(_text(c) for c in cells))
    return t


def _slice_table(verdict: Verdict, wide: bool) -> tuple[str, Table] | None:
    rep = verdict.slices
    if rep is None or not rep.rows:
        return None
    if wide:
        rows = rep.rows[:TOP_SLICES]
        title = f"slices by {', '.join(rep.keys)} (by evidence of harm"
        title += f", top {len(rows)} of {len(rep.rows)})" if len(rep.rows) > len(rows) else ")"
    else:
        moved = moved_slices(rep.rows)
        rows = moved[:COMPACT_SLICES]
        if not rows:
            return None
        if rep.has_baseline:
            title = f"slices that moved ({len(rows)}" + (f" of {len(moved)}" if len(moved) > len(rows) else "")
            title += f", of {len(rep.rows)} rows; --wide: more)"
        else:
            title = f"slices, worst first ({len(rows)} of {len(rep.rows)} rows; --wide: more)"
    t = _table(title, not wide)
    if wide:
        cols = ["slice", "scorer", "n", "mean [95% CI]"]
        if rep.has_baseline:
            cols += ["baseline", "diff [95% CI]", "regressed", "improved"]
    else:
        cols = ["slice", "scorer", "n", "diff [95% CI]" if rep.has_baseline else "mean [95% CI]"]
        if rep.has_baseline:
            cols += ["regr."]
    cols.append("")
    for i, col in enumerate(cols):
        t.add_column(col, justify="right" if 1 < i < len(cols) - 1 else "left",
                      overflow="fold" if i < 2 else "ellipsis", no_wrap=1 < i < len(cols) - 1)
    for row in rows:
        c = slice_cells(row, rep.has_baseline)
        style = "bold red" if row.change == "drop" else "green" if row.change == "gain" else ""
        if wide:
            cells = [c.slice, c.scorer, c.n, c.mean]
            if rep.has_baseline:
                cells += [c.baseline, c.diff, c.regressed, c.improved]
            flag = c.flag
        else:
            cells = [short_label(row), c.scorer, c.n, c.diff if rep.has_baseline else c.mean]
            if rep.has_baseline:
                cells.append(c.regressed)
            flag = ", ".join(x for x in (row.change, "tiny" if row.tiny else "") if x)
        t.add_row(*(_text(x) for x in cells), _text(flag, style=style))
    return title, t


def _gate_line(g: GateResult) -> Text:
    line = Text("  ")
    line.append(f"{_MARK.get(g.verdict, '?')} {g.verdict.upper()}", style=_STYLE.get(g.verdict, ""))
    line.append(" ")
    line.append(visible(g.gate.text), style="bold")
    numbers = g.numbers()
    if numbers:
        line.append("  " + visible(numbers))
    if g.note:
        line.append(f"  ({visible(g.note)})", style="dim")
    return line


def _gates_table(verdict: Verdict) -> Table:
    t = Table(title=_text(f"gates ({verdict.policy})"), title_justify="left")
    for c in ("", "gate", "numbers", "note"):
        t.add_column(c, overflow="fold")
    for g in verdict.gates:
        t.add_row(_text(g.verdict.upper(), style=_STYLE.get(g.verdict, "")), _text(g.gate.text), _text(g.numbers()),
                  _text(g.note))
    return t


def diff_text(it: ItemDiff, limit: int | None) -> Text | None:
    """The item's output change as one line: ``[-removed-]{+added+}`` (git's word-diff
    markers, so the change shows without colour too), coloured on a terminal."""
    runs = diff_outputs(it)
    if runs is None:
        return None
    if all(op == "=" for op, _ in runs):
        return Text("(output unchanged) ", style="dim") + _text(output_text(it.candidate[:1], limit))
    if limit is not None:
        runs = clip_diff(runs, limit)
    out = Text()
    for op, text in runs:
        if op == "-":
            out.append("[-" + visible(text) + "-]", style="bold red strike")
        elif op == "+":
            out.append("{+" + visible(text) + "+}", style="bold green")
        else:
            out.append(visible(text))
    return out


def _brief(side: Side | None, binary: bool) -> str:
    if side is None:
        return "–"
    if binary or side.mean is None:
        return {"pass": "✓", "fail": "✗", "flaky": "~"}.get(side.state or "", "–")
    return f"{side.mean:.2f}"


def _changes(verdict: Verdict, it: ItemDiff) -> str:
    """The regressed scorers (or flaky / failing ones) as ``name ✓→✗`` / ``name 0.97→0.74``."""
    which = it.regressed or it.flaky or it.failed
    parts = []
    for name in which:
        sc = verdict.comparison.scorers.get(name)
        if sc is None:
            continue
        new = _brief(sc.cand_items.get(it.item_id), sc.binary)
        old = _brief(sc.base_items.get(it.item_id), sc.binary) if sc.base_items is not None else ""
        parts.append(f"{name} {old}→{new}" if old else f"{name} {new}")
    return " · ".join(parts)


def _item_block(console: Console, verdict: Verdict, title: str, items: list[ItemDiff], limit: int,
                wide: bool) -> None:
    if not items:
        return
    scorers = list(verdict.comparison.scorers)
    shown = items[:limit]
    console.print(_text(f"{title} ({len(items)}" + (f", top {len(shown)} shown)" if len(items) > len(shown) else ")"),
                        style="bold"))
    width = min(console.width, COMPACT_WIDTH)
    for it in shown:
        tags = f" [{', '.join(it.tags)}]" if it.tags else ""
        if not wide:
            head = _text(f"- {it.item_id}  ", style="bold") + _text(_changes(verdict, it))
            if tags:  # the tags give way first when the line is too long
                room = width - len(head) - 2
                head += _text(f"  {tags.strip()}" if len(tags) <= room else f"  {tags.strip()[:max(room - 1, 0)]}…"
                              if room > 8 else "", style="dim")
            console.print(head)
            line = diff_text(it, max(width - 4, 20))
            if line is None:
                line = _text(output_text(it.candidate or it.baseline, max(width - 4, 20)))
            console.print(Text("    ") + line, no_wrap=True, overflow="ellipsis", crop=True)
            for calls in trajectory_lines(it.candidate, max(width - 4, 20)):
                console.print(_text(f"    {calls}"), no_wrap=True, overflow="ellipsis", crop=True)
            continue
        which = f"  {', '.join(it.regressed or it.flaky or it.failed)}" if (it.regressed or it.flaky or it.failed) else ""
        console.print(_text(f"- {it.item_id}{tags}{which}", style="bold"))
        console.print(_text(f"    input:    {input_text(it, TEXT_LIMIT)}"))
        console.print(_text(f"    expected: {expected_text(it, TEXT_LIMIT)}"))
        if it.baseline:
            console.print(_text(f"    baseline: {output_text(it.baseline, TEXT_LIMIT)}"))
        console.print(_text(f"    new:      {output_text(it.candidate, TEXT_LIMIT)}"))
        change = diff_text(it, None) if it.baseline and it.candidate else None
        if change is not None:
            console.print(Text("    change:   ") + change)
        for calls in trajectory_lines(it.candidate, TEXT_LIMIT):
            console.print(_text(f"    {calls}"))
        scores = "; ".join(f"{s} {b} -> {c}" if b else f"{s} {c}" for s, b, c in item_scorer_pairs(it, scorers))
        console.print(_text(f"    scores:   {scores}"))


def _ids_line(console: Console, title: str, ids: list[str]) -> None:
    if ids:
        console.print(_text(f"{title} ({len(ids)}): " + ", ".join(ids[:20]) + (" …" if len(ids) > 20 else "")))


def print_console(verdict: Verdict, out: TextIO | None = None, console: Console | None = None, *,
                  wide: bool = False) -> None:
    console = console or table_console(out)
    cmp = verdict.comparison
    failed = verdict.failed_gates
    # 1. the verdict and why
    label = verdict_label(verdict)
    console.print(_text(f"{label} · ", style="bold red" if label != "PASS" else "bold green")
                  + _text(headline(verdict), style="bold"))
    console.print(_text(verdict_reason(verdict)))
    # 2. the failing gates
    if failed:
        console.print(_text("failing gates", style="bold"))
        for g in failed:
            console.print(_gate_line(g))
    # 3. the regressed items (or, without a baseline, the flaky ones), with their change
    if cmp.has_baseline:
        _item_block(console, verdict, "regressed items", cmp.regressed, TOP_ITEMS, wide)
    else:
        _item_block(console, verdict, "flaky items", cmp.by_status("flaky"), TOP_ITEMS, wide)
    # 4. the slices that moved
    slices = _slice_table(verdict, wide)
    if slices is not None:
        if not wide:
            console.print(_text(slices[0], style="bold"))
        console.print(slices[1])
    # 5. everything else
    for note in verdict.notes:
        console.print(_text(f"note: {note}", style="yellow"))
    if not wide:
        console.print(_text("scorers", style="bold"))
    console.print(_scorer_table(verdict, wide))
    console.print(_text(counts_line(verdict)))
    console.print(_text(metrics_line(cmp.metrics, cmp.baseline_metrics)))
    for line in verdict_error_lines(verdict):
        console.print(_text(line, style="red" if not line.startswith("errors left out") else "yellow"))
    if cmp.has_baseline:
        flaky = cmp.by_status("flaky")
        if flaky:
            console.print(_text(f"flaky items ({len(flaky)}): " + ", ".join(
                f"{it.item_id} ({', '.join(it.flaky)})" for it in flaky[:20]) + (" …" if len(flaky) > 20 else "")))
        _ids_line(console, "improved items", [it.item_id for it in cmp.by_status("improved")])
        for status in ("new", "removed"):
            _ids_line(console, f"{status} items", [it.item_id for it in cmp.by_status(status)])
    if verdict.gates:
        if wide:
            console.print(_gates_table(verdict))
        else:
            for g in verdict.gates:
                if not g.failed:
                    console.print(_gate_line(g))
        bad = sum(1 for g in failed if g.verdict == "fail")
        unjudged = len(failed) - bad  # incomplete gates: could not be judged, so not a pass
        why = ([f"{bad} of {len(verdict.gates)} gates failed"] if bad else []) + \
            ([f"{unjudged} could not be judged"] if unjudged else [])
        word = "FAIL" if bad else "INCOMPLETE" if unjudged else "PASS"
        console.print(_text(f"verdict: {word}" + (f" ({', '.join(why)})" if why else f" ({len(verdict.gates)} gates)"),
                            style="bold green" if word == "PASS" else "bold red"))


def render_console_text(verdict: Verdict, width: int = 160, *, wide: bool = True) -> str:
    """The console report as plain text (the ``console`` report file: every column)."""
    buf = io.StringIO()
    print_console(verdict, console=Console(file=buf, width=width, no_color=True, highlight=False,
                                           force_terminal=False), wide=wide)
    return buf.getvalue()

