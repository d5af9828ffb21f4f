"""The markdown report (GitHub-flavoured), for job summaries and PR comments.

GitHub refuses a comment above 65,536 characters, so the report is built to a budget: the
summary and gates always fit, and item lists stop early with a line saying how many were
left out.
"""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING

from evalrun.report._common import (
    counts_line,
    expected_text,
    failing_items,
    gate_mark,
    headline,
    item_scorer_pairs,
    metrics_line,
    output_text,
    scorer_rows,
    slice_cells,
)
from evalrun.report._terminal import without_controls

if TYPE_CHECKING:
    from evalrun.compare import ItemDiff
    from evalrun.verdict import Verdict

LIMIT = 65_000
TOP_SLICES = 10
TREND_RUNS = 20
CELL_LIMIT = 200
_MD_SPECIAL = re.compile(r"([\\`*_\[\]{}#+!~|])")


_LINE_BREAKS = re.compile(r"\r\n|[\n\r\u2028\u2029\x0b\x0c\x85]")
# @user, @org/team: a zero-width joiner after the @ keeps the text but never pings anyone
_MENTION = re.compile(r"@(?=[A-Za-z0-9])")


def _no_mentions(text: str) -> str:
    return _MENTION.sub("@\u2060", text)


def cell(text: str, limit: int = CELL_LIMIT) -> str:
    """Text safe inside a table cell: markdown and HTML inert, one line, bounded, no @mentions."""
    if len(text) > limit:
        text = text[:limit] + "…"
    text = html.escape(without_controls(text), quote=False)
    text = _MD_SPECIAL.sub(r"\\\1", text)
    return _no_mentions(_LINE_BREAKS.sub("<br>", text))


def code(text: str) -> str:
    """Inline code that stays one table cell: no backtick to close it early, no line break to
    end the row, pipes escaped (GitHub splits cells on them even inside code)."""
    text = _LINE_BREAKS.sub(" ", without_controls(text).replace("`", "'")).replace("|", "\\|")
    return "`" + _no_mentions(text) + "`"


def _scorers(verdict: Verdict) -> list[str]:
    has_b = verdict.comparison.has_baseline
    rows = scorer_rows(verdict)
    if has_b:
        out = ["| scorer | n | mean | baseline | diff (95% CI) | pass rate | baseline | diff (95% CI) "
               "| regressed | improved | McNemar p | detectable drop |",
               "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
        for r in rows:
            out.append(f"| {cell(r.name)} | {r.n} | {r.mean} | {r.base_mean} | {r.d_mean} {r.ci_mean} | "
                       f"{r.pass_rate} | {r.base_pass} | {r.d_pass} {r.ci_pass} | "
                       f"{'' if r.regressions is None else r.regressions} | "
                       f"{'' if r.improvements is None else r.improvements} | {r.mcnemar} | {r.mde} |")
    else:
        out = ["| scorer | n | mean | 95% CI | pass rate |", "|---|--:|--:|--:|--:|"]
        for r in rows:
            out.append(f"| {cell(r.name)} | {r.n} | {r.mean} | {r.ci_own} | {r.pass_rate} |")
    return out


def _trend(verdict: Verdict) -> list[str]:
    """One unicode trend per scorer over the run history (this run last)."""
    from evalrun.report.history import means, sparkline

    entries = verdict.history[-TREND_RUNS:]
    if len(entries) < 2:
        return []
    out = ["", f"**Trend** (mean over the last {len(entries)} runs, oldest → newest):", ""]
    for name in verdict.comparison.scorers:
        vals = means(entries, name)
        known = [v for v in vals if v is not None]
        if len(known) < 2:
            continue
        out.append(f"- {cell(name, 80)} {sparkline(vals)} {known[0]:.3f} → {known[-1]:.3f}")
    return out if len(out) > 3 else []


def _slices(verdict: Verdict) -> list[str]:
    rep = verdict.slices
    if rep is None or not rep.rows:
        return []
    shown = rep.rows[:TOP_SLICES]
    more = f", worst {len(shown)} of {len(rep.rows)}" if len(rep.rows) > len(shown) else ""
    out = ["", f"### Slices by {cell(', '.join(rep.keys), 200)} (worst first{more})", ""]
    if rep.has_baseline:
        out += ["| slice | scorer | n | mean (95% CI) | baseline | diff (95% CI) | regressed | improved | |",
                "|---|---|--:|--:|--:|--:|--:|--:|---|"]
    else:
        out += ["| slice | scorer | n | mean (95% CI) | |", "|---|---|--:|--:|---|"]
    for row in shown:
        c = slice_cells(row, rep.has_baseline)
        flag = f"**{c.flag}**" if row.change == "drop" else c.flag
        if rep.has_baseline:
            out.append(f"| {cell(c.slice, 80)} | {cell(c.scorer, 60)} | {c.n} | {c.mean} | {c.baseline} | {c.diff} | "
                       f"{c.regressed} | {c.improved} | {flag} |")
        else:
            out.append(f"| {cell(c.slice, 80)} | {cell(c.scorer, 60)} | {c.n} | {c.mean} | {flag} |")
    if len(rep.rows) > len(shown):
        out += ["", f"*… {len(rep.rows) - len(shown)} more slice rows in the HTML and JSON reports.*"]
    return out


def _gates(verdict: Verdict) -> list[str]:
    if not verdict.gates:
        return []
    out = ["", f"### Gates ({verdict.policy})", "", "| | gate | numbers | note |", "|---|---|---|---|"]
    for g in verdict.gates:
        out.append(f"| {gate_mark(g.verdict)} {g.verdict} | {code(g.gate.text)} | {cell(g.numbers(), 400)} | "
                   f"{cell(g.note, 400)} |")
    return out


def _item_row(it: ItemDiff, scorers: list[str], with_baseline: bool) -> str:
    scores = "<br>".join(cell(f"{s}: {b} → {c}" if with_baseline and b else f"{s}: {c}", 80)
                         for s, b, c in item_scorer_pairs(it, scorers) if c != "–" or b)
    tags = f"<br>{cell(', '.join(it.tags), 60)}" if it.tags else ""
    row = f"| {code(it.item_id[:80])}{tags} | {cell(expected_text(it))} | "
    if with_baseline:
        row += f"{cell(output_text(it.baseline))} | "
    return row + f"{cell(output_text(it.candidate))} | {scores} |"


def _item_table(title: str, items: list[ItemDiff], verdict: Verdict, budget: int) -> tuple[list[str], int]:
    """A section listing ``items`` in at most ``budget`` characters; the rest is counted, not dropped silently."""
    if not items:
        return [], 0
    with_b = verdict.comparison.has_baseline
    scorers = list(verdict.comparison.scorers)
    head = ["", f"### {title} ({len(items)})", "",
            "| item | expected | baseline output | new output | scores |" if with_b else
            "| item | expected | output | scores |",
            "|---|---|---|---|---|" if with_b else "|---|---|---|---|"]
    used = sum(len(x) + 1 for x in head)
    lines = list(head)
    shown = 0
    reserve = 120  # room for the "N more" line
    for it in items:
        row = _item_row(it, scorers, with_b)
        if used + len(row) + 1 + reserve > budget:
            break
        lines.append(row)
        used += len(row) + 1
        shown += 1
    if shown == 0:
        lines = ["", f"### {title} ({len(items)})", ""]
        used = sum(len(x) + 1 for x in lines)
    if shown < len(items):
        more = f"\n*… and {len(items) - shown} more {title.lower()} not shown here (see the HTML or JSON report).*"
        lines.append(more)
        used += len(more) + 1
    return lines, used


def _id_list(title: str, ids: list[str], budget: int) -> list[str]:
    if not ids:
        return []
    text = f"\n**{title} ({len(ids)}):** "
    parts: list[str] = []
    for i, x in enumerate(ids):
        piece = code(x[:80])
        if len(text) + sum(len(p) + 2 for p in parts) + len(piece) + 40 > budget:
            parts.append(f"… and {len(ids) - i} more")
            break
        parts.append(piece)
    return [text + ", ".join(parts)]


def render_markdown(verdict: Verdict, limit: int = LIMIT) -> str:
    cmp = verdict.comparison
    mark = {"passed": "✅", "failed": "❌"}.get(verdict.word, "⚠️")
    head = [f"## {mark} evalrun: {cell(headline(verdict), 300)} — {verdict.word}", ""]
    if cmp.baseline_info:
        head.append(f"Baseline: {code(str(cmp.baseline_info.get('source')))} · {cell(counts_line(verdict))}")
    else:
        head.append(f"No baseline · {cell(counts_line(verdict))}")
    head += ["", cell(metrics_line(cmp.metrics, cmp.baseline_metrics), 500), ""]
    head += _scorers(verdict)
    head += _trend(verdict)
    head += _slices(verdict)
    head += _gates(verdict)
    for note in verdict.notes:
        head += ["", f"> {cell(note, 500)}"]
    text = "\n".join(head) + "\n"
    budget = limit - len(text) - 200
    sections: list[tuple[str, list[ItemDiff]]] = []
    if cmp.has_baseline:
        sections.append(("Regressed items", cmp.regressed))
    sections.append(("Flaky items", cmp.by_status("flaky")))
    sections.append(("Failing items" if not cmp.has_baseline else "Other failing items", failing_items(verdict)))
    body: list[str] = []
    for title, items in sections:
        lines, used = _item_table(title, items, verdict, max(budget, 0))
        body += lines
        budget -= used
    if cmp.has_baseline:
        for title, ids in (("Improved", [i.item_id for i in cmp.by_status("improved")]),
                           ("New items", cmp.new_items), ("Removed items", cmp.removed_items)):
            lines = _id_list(title, ids, max(budget, 0))
            body += lines
            budget -= sum(len(x) + 1 for x in lines)
    if body:
        text += "\n".join(body) + "\n"
    if len(text) > limit:  # only if even the summary is that large (thousands of scorers)
        text = text[: limit - 80] + "\n\n*(report truncated to fit GitHub's size limit)*\n"
    return text
