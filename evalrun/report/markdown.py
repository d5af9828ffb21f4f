"""The markdown report (GitHub-flavoured), for job summaries and PR comments, in the order
every report shares (see :func:`render_markdown`).

GitHub refuses a comment above 65,536 characters, so the report is built to a budget: the
summary and gates always fit, and item lists stop early with a line saying how many were
left out.
"""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING

from evalrun.report._common import (
    clip_diff,
    counts_line,
    diff_outputs,
    expected_text,
    failing_items,
    gate_mark,
    headline,
    item_scorer_pairs,
    metrics_line,
    moved_slices,
    output_text,
    scorer_rows,
    short_label,
    slice_cells,
    trajectory_lines,
    verdict_error_lines,
    verdict_reason,
)
from evalrun.report._terminal import without_controls

if TYPE_CHECKING:
    from evalrun.compare import ItemDiff
    from evalrun.verdict import Verdict

LIMIT = 65_000
TOP_SLICES = 10  # slices that moved, up front
ALL_SLICES = 60  # every slice row, in a collapsed section at the end
DIFF_CHARS = 400  # a regressed item's change, one table cell
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
    from evalrun.report.history import means, sparkline, trend_points

    entries = trend_points(verdict.history)[-TREND_RUNS:]  # a variant group counts once
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


def _slice_table(rows: list, has_baseline: bool, compact: bool) -> list[str]:
    if has_baseline:
        out = ["| slice | scorer | n | mean (95% CI) | baseline | diff (95% CI) | regressed | improved | |",
               "|---|---|--:|--:|--:|--:|--:|--:|---|"] if not compact else [
               "| slice | scorer | n | diff (95% CI) | regressed | |", "|---|---|--:|--:|--:|---|"]
    else:
        out = ["| slice | scorer | n | mean (95% CI) | |", "|---|---|--:|--:|---|"]
    for row in rows:
        c = slice_cells(row, has_baseline)
        flag = f"**{c.flag}**" if row.change == "drop" else c.flag
        if has_baseline and compact:
            out.append(f"| {cell(short_label(row), 80)} | {cell(c.scorer, 60)} | {c.n} | {c.diff} | {c.regressed} | "
                       f"{flag} |")
        elif has_baseline:
            out.append(f"| {cell(c.slice, 80)} | {cell(c.scorer, 60)} | {c.n} | {c.mean} | {c.baseline} | {c.diff} | "
                       f"{c.regressed} | {c.improved} | {flag} |")
        else:
            out.append(f"| {cell(c.slice, 80)} | {cell(c.scorer, 60)} | {c.n} | {c.mean} | {flag} |")
    return out


def _moved_slices(verdict: Verdict) -> list[str]:
    """The slices that moved, by evidence of harm (without a baseline: the worst), up front."""
    rep = verdict.slices
    if rep is None or not rep.rows:
        return []
    moved = moved_slices(rep.rows)
    shown = moved[:TOP_SLICES]
    if not shown:
        return ["", f"*No slice moved ({len(rep.rows)} slice rows by {cell(', '.join(rep.keys), 200)}).*"]
    what = "Slices that moved" if rep.has_baseline else "Slices, worst first"
    more = f"{len(shown)} of {len(moved)}" if len(moved) > len(shown) else f"{len(shown)}"
    out = ["", f"### {what} ({more}; by {cell(', '.join(rep.keys), 200)}, most evidence of harm first)", ""]
    return out + _slice_table(shown, rep.has_baseline, compact=True)


def _all_slices(verdict: Verdict) -> list[str]:
    """Every slice row (up to ALL_SLICES), collapsed."""
    rep = verdict.slices
    if rep is None or not rep.rows:
        return []
    shown = rep.rows[:ALL_SLICES]
    more = f", top {len(shown)} of {len(rep.rows)}" if len(rep.rows) > len(shown) else ""
    out = ["", f"<details><summary>All slices by {cell(', '.join(rep.keys), 200)} ({len(rep.rows)} rows{more})"
           "</summary>", ""]
    out += _slice_table(shown, rep.has_baseline, compact=False)
    if len(rep.rows) > len(shown):
        out += ["", f"*… {len(rep.rows) - len(shown)} more slice rows in the HTML and JSON reports.*"]
    return out + ["", "</details>"]


def _gates(verdict: Verdict, failed: bool) -> list[str]:
    """The failing gates (up front), or the others (further down)."""
    gates = [g for g in verdict.gates if g.failed == failed]
    if not gates:
        return []
    title = "Failing gates" if failed else ("Other gates" if verdict.failed_gates else "Gates")
    out = ["", f"### {title} ({verdict.policy})", "", "| | gate | numbers | note |", "|---|---|---|---|"]
    for g in gates:
        out.append(f"| {gate_mark(g.verdict)} {g.verdict} | {code(g.gate.text)} | {cell(g.numbers(), 400)} | "
                   f"{cell(g.note, 400)} |")
    return out


def diff_cell(it: ItemDiff, limit: int = DIFF_CHARS) -> str:
    """An item's change, baseline -> new, as one table cell: removed words ``<del>``, added
    ``<ins>`` (GitHub shows them struck through and underlined); every word escaped."""
    runs = diff_outputs(it)
    if runs is None:
        return cell(output_text(it.candidate or it.baseline), limit)
    if all(op == "=" for op, _ in runs):
        return "*(output unchanged)* " + cell(output_text(it.candidate[:1]), limit)
    out = []
    for op, text in clip_diff(runs, limit):
        piece = cell(text, limit)
        out.append(f"<del>{piece}</del>" if op == "-" else f"<ins>{piece}</ins>" if op == "+" else piece)
    return "".join(out)


def _diff_row(it: ItemDiff, scorers: list[str]) -> str:
    which = it.regressed or it.flaky or it.failed
    scores = "<br>".join(cell(f"{s}: {b} → {c}" if b else f"{s}: {c}", 80)
                         for s, b, c in item_scorer_pairs(it, scorers) if (not which or s in which) and (c != "–" or b))
    tags = f"<br>{cell(', '.join(it.tags), 60)}" if it.tags else ""
    return f"| {code(it.item_id[:80])}{tags} | {diff_cell(it)} | {cell(expected_text(it))} | {scores} |"


def _item_row(it: ItemDiff, scorers: list[str], with_baseline: bool) -> str:
    scores = "<br>".join(cell(f"{s}: {b} → {c}" if with_baseline and b else f"{s}: {c}", 80)
                         for s, b, c in item_scorer_pairs(it, scorers) if c != "–" or b)
    tags = f"<br>{cell(', '.join(it.tags), 60)}" if it.tags else ""
    calls = "".join("<br>" + cell(line, 300) for line in trajectory_lines(it.candidate))
    scores += calls
    row = f"| {code(it.item_id[:80])}{tags} | {cell(expected_text(it))} | "
    if with_baseline:
        row += f"{cell(output_text(it.baseline))} | "
    return row + f"{cell(output_text(it.candidate))} | {scores} |"


def _item_table(title: str, items: list[ItemDiff], verdict: Verdict, budget: int,
                diff: bool = False) -> tuple[list[str], int]:
    """A section listing ``items`` in at most ``budget`` characters; the rest is counted, not
    dropped silently. ``diff``: one column with the change of the output (regressed items)."""
    if not items:
        return [], 0
    with_b = verdict.comparison.has_baseline
    scorers = list(verdict.comparison.scorers)
    if diff:
        cols = ["| item | change (baseline → new) | expected | scores |", "|---|---|---|---|"]
    elif with_b:
        cols = ["| item | expected | baseline output | new output | scores |", "|---|---|---|---|---|"]
    else:
        cols = ["| item | expected | output | scores |", "|---|---|---|---|"]
    head = ["", f"### {title} ({len(items)})", "", *cols]
    used = sum(len(x) + 1 for x in head)
    lines = list(head)
    shown = 0
    reserve = 120  # room for the "N more" line
    for it in items:
        row = _diff_row(it, scorers) if diff else _item_row(it, scorers, with_b)
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
    """The report in the reviewer's order (issue 24): the verdict and its reason, the failing
    gates, the regressed items with the change of their output, the slices that moved, then
    everything else (scorers, the other gates, notes, trend, every slice collapsed, the other
    item lists). Built to GitHub's comment budget: what does not fit is counted, never dropped
    silently, and the top always fits first."""
    cmp = verdict.comparison
    mark = {"passed": "✅", "failed": "❌"}.get(verdict.word, "⚠️")
    top = [f"## {mark} evalrun: {cell(headline(verdict), 300)} — {verdict.word}", "",
           f"**{cell(verdict_reason(verdict), 300)}**"]
    # how errors count, their first messages, baseline-errored items, why a run failed: always shown
    for line in verdict_error_lines(verdict):
        top += ["", f"> {cell(line, 500)}"]
    top += _gates(verdict, failed=True)
    rest = _moved_slices(verdict)
    rest += ["", "### Scorers", ""]
    if cmp.baseline_info:
        rest.append(f"Baseline: {code(str(cmp.baseline_info.get('source')))} · {cell(counts_line(verdict))}")
    else:
        rest.append(f"No baseline · {cell(counts_line(verdict))}")
    rest += ["", cell(metrics_line(cmp.metrics, cmp.baseline_metrics), 500), ""]
    rest += _scorers(verdict)
    rest += _gates(verdict, failed=False)
    for note in verdict.notes:
        rest += ["", f"> {cell(note, 500)}"]
    trend = _trend(verdict)
    if trend:
        rest += ["", "<details><summary>Trend</summary>", *trend, "", "</details>"]
    rest += _all_slices(verdict)
    top_text = "\n".join(top) + "\n"
    rest_text = "\n".join(rest) + "\n"
    budget = limit - len(top_text) - len(rest_text) - 200
    regressed: list[str] = []
    if cmp.has_baseline:
        regressed, used = _item_table("Regressed items", cmp.regressed, verdict, max(budget, 0), diff=True)
        budget -= used
    text = top_text + ("\n".join(regressed) + "\n" if regressed else "") + rest_text
    sections: list[tuple[str, list[ItemDiff]]] = [("Flaky items", cmp.by_status("flaky")),
                                                  ("Failing items" if not cmp.has_baseline else "Other failing items",
                                                   failing_items(verdict))]
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
