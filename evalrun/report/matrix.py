"""Reports of a variant group (:class:`~evalrun.variants.GroupVerdict`): per scorer a column per
variant with its own numbers and its paired difference from the reference variant, run-level
cost and latency, each variant's gates, and the items side by side.

The numbers are the ones each variant's :class:`~evalrun.verdict.Verdict` holds (through
:func:`~evalrun.report._common.scorer_rows`), so a matrix never disagrees with ``evalrun
compare`` of the same two runs. Every text a model or a dataset wrote is made inert the same
way the single-run reports do it (rich Text, markdown ``cell``, Jinja2 autoescaping, XML).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

from rich.console import Console
from rich.table import Table

from evalrun.report._common import (
    expected_text,
    gate_mark,
    input_text,
    num,
    output_text,
    p_text,
    score_brief,
    scorer_rows,
    signed,
)
from evalrun.report._terminal import safe_text
from evalrun.report._width import table_console

if TYPE_CHECKING:
    from evalrun.compare import ItemDiff
    from evalrun.records import Record
    from evalrun.report._common import ScorerRow
    from evalrun.verdict import GroupVerdict, VariantResult

TOP_ITEMS = 10
TEXT_LIMIT = 300
HTML_TEXT_LIMIT = 20_000


@dataclass
class Section:
    title: str
    rows: list[tuple[str, list[str]]]  # (row label, one cell per variant)


def _header(r: VariantResult, gv: GroupVerdict) -> str:
    return f"{r.name} (ref)" if r.name == gv.reference else r.name


@dataclass
class VariantHead:
    """What a variant is, for its column's header: name, prompt ``name@version``, model."""

    name: str  # with " (ref)" for the reference
    prompt: str  # "" without a prompt
    model: str  # the chat model, else the target (``python vt:worse``)


def variant_head(r: VariantResult, gv: GroupVerdict) -> VariantHead:
    """From the variant's manifest (one read): the resolved prompt and the model it called."""
    m = r.run_dir.read_manifest()
    prompt = ""
    info = m.get("prompt") or {}
    if info.get("name"):
        prompt = str(info["name"]) + (f"@{info['version']}" if info.get("version") is not None else "")
    target = (m.get("config") or {}).get("target") or {}
    chat = target.get("chat") or {}
    if not prompt and chat.get("prompt"):
        prompt = str(chat["prompt"])
    model = str(m.get("target_model") or chat.get("model") or "")
    if not model:
        kind = str(m.get("target") or "")
        spec = target.get(kind)
        model = f"{kind} {spec}" if isinstance(spec, str) else kind
    return VariantHead(_header(r, gv), prompt, model)


def _mark(d: Any) -> str:
    """``▼`` / ``▲`` when the paired 95% interval is below / above zero."""
    if d is None or not d.n or not d.has_interval:
        return ""
    return "▼" if d.hi < 0 else "▲" if d.lo > 0 else ""


def _rows_by_variant(gv: GroupVerdict) -> tuple[list[dict[str, ScorerRow]], list[str]]:
    """Each variant's scorer rows by name, and every scorer name in first-seen order."""
    per = [{row.name: row for row in scorer_rows(r.paired)} for r in gv.results]
    names: list[str] = []
    for rows in per:
        names += [n for n in rows if n not in names]
    return per, names


def summary_rows(gv: GroupVerdict) -> list[tuple[str, list[str]]]:
    """The one-glance matrix: per scorer (and cost) one cell per variant: the mean, and for a
    variant other than the reference its difference from it with ``▼``/``▲`` when the paired
    interval excludes zero."""
    per, names = _rows_by_variant(gv)
    out = []
    for name in names:
        cells = []
        for r, rows in zip(gv.results, per, strict=True):
            row = rows.get(name)
            if row is None:
                cells.append("–")
                continue
            sc = r.paired.comparison.scorers.get(name)
            pm = sc.paired("mean") if sc is not None else None
            if r.name == gv.reference or not row.d_mean:
                cells.append(row.mean)
            else:
                cells.append(f"{row.mean} ({row.d_mean}{_mark(pm.diff if pm is not None else None)})")
        out.append((name, cells))
    ref = gv.result(gv.reference).paired.comparison.metrics.get("cost_usd")
    costs = []
    for r in gv.results:
        c = r.paired.comparison.metrics.get("cost_usd")
        if r.name == gv.reference or c is None or ref is None:
            costs.append(_money(c))
        else:
            costs.append(f"{_money(c)} ({'+' if c >= ref else '-'}${abs(c - ref):.4f})")
    out.append(("cost", costs))
    out.append(("gates", [gate_word(r) for r in gv.results]))
    return out


def scorer_sections(gv: GroupVerdict) -> list[Section]:
    """One section per scorer: the variant's own numbers, then its paired difference from the reference."""
    per, names = _rows_by_variant(gv)
    out = []
    for name in names:
        cells: dict[str, list[str]] = {k: [] for k in ("mean", "95% CI", "pass rate", "Δ mean vs ref", "95% CI ",
                                                       "Δ pass rate vs ref", "95% CI  ", "p (paired)",
                                                       "regressed", "improved", "McNemar p", "detectable drop")}
        for r, rows in zip(gv.results, per, strict=True):
            row = rows.get(name)
            sc = r.paired.comparison.scorers.get(name)
            pm = sc.paired("mean") if sc is not None else None
            cells["mean"].append(row.mean if row else "–")
            cells["95% CI"].append(row.ci_own if row else "–")
            cells["pass rate"].append(row.pass_rate if row else "–")
            if row is None or r.name == gv.reference:  # nothing to set against the reference
                for k in list(cells)[3:]:
                    cells[k].append("")
                continue
            cells["Δ mean vs ref"].append(row.d_mean)
            cells["95% CI "].append(row.ci_mean)
            cells["Δ pass rate vs ref"].append(row.d_pass)
            cells["95% CI  "].append(row.ci_pass)
            cells["p (paired)"].append("" if pm is None or not pm.diff.n else p_text(pm.diff.p_value, 4))
            cells["regressed"].append("" if row.regressions is None else str(row.regressions))
            cells["improved"].append("" if row.improvements is None else str(row.improvements))
            cells["McNemar p"].append(row.mcnemar)
            cells["detectable drop"].append(row.mde)
        out.append(Section(name, [(k.strip(), v) for k, v in cells.items()]))
    return out


def _money(x: float | None) -> str:
    return "–" if x is None else f"${x:.4f}"


def run_section(gv: GroupVerdict) -> Section:
    """Records, errors, cost and latency of each variant (differences from the reference), and its gates."""
    ref = gv.result(gv.reference).paired.comparison.metrics
    rows: dict[str, list[str]] = {k: [] for k in ("records", "errors", "cost", "Δ cost vs ref", "latency p95 ms",
                                                  "Δ p95 vs ref", "gates")}
    for r in gv.results:
        m = r.paired.comparison.metrics
        rows["records"].append(str(m["records"]))
        rows["errors"].append(str(m["errors"]))
        rows["cost"].append(_money(m.get("cost_usd")))
        rows["latency p95 ms"].append(num(m.get("latency_p95_ms"), 0))
        same = r.name == gv.reference
        dc = None if same or m.get("cost_usd") is None or ref.get("cost_usd") is None else m["cost_usd"] - ref["cost_usd"]
        rows["Δ cost vs ref"].append("" if dc is None else (f"+${dc:.4f}" if dc >= 0 else f"-${-dc:.4f}"))
        dl = (None if same or m.get("latency_p95_ms") is None or ref.get("latency_p95_ms") is None
              else m["latency_p95_ms"] - ref["latency_p95_ms"])
        rows["Δ p95 vs ref"].append("" if dl is None else signed(round(dl) + 0.0, 0))
        rows["gates"].append(gate_word(r))
    return Section("run", list(rows.items()))


def gate_word(r: VariantResult) -> str:
    if not r.gates:
        return "no gates"
    failed = sum(1 for g in r.gates if g.failed)
    word = f"FAIL ({failed} of {len(r.gates)})" if failed else f"pass ({len(r.gates)})"
    return word if r.gated else f"{word}, not gating"


def headline(gv: GroupVerdict) -> str:
    vs = f"gates vs baseline {gv.gate_baseline.get('run_id') or gv.gate_baseline.get('source')}" \
        if gv.gate_baseline else f"gates vs '{gv.reference}'"
    return f"{gv.eval} · group {gv.group_id} · {len(gv.results)} variants, compared with '{gv.reference}' · {vs}"


# ----------------------------------------------------------------------------- console


def _table(gv: GroupVerdict, sec: Section) -> Table:
    t = Table(title=safe_text(sec.title), title_justify="left")
    t.add_column("")
    for r in gv.results:
        t.add_column(safe_text(_header(r, gv)), justify="right")
    for label, cells in sec.rows:
        if any(cells):
            t.add_row(safe_text(label), *(safe_text(c) for c in cells))
    return t


def _items_block(console: Console, r: VariantResult, gv: GroupVerdict) -> None:
    from evalrun.report.console import diff_text

    cmp = r.paired.comparison
    items = cmp.regressed
    if not items:
        return
    shown = items[:TOP_ITEMS]
    console.print(safe_text(f"{r.name}: regressed vs {gv.reference} ({len(items)}"
                       + (f", top {len(shown)} shown)" if len(items) > len(shown) else ")"), style="bold"))
    for it in shown:
        tags = f"  [{', '.join(it.tags)}]" if it.tags else ""
        console.print(safe_text(f"- {it.item_id}{tags}  {', '.join(it.regressed)}"))
        console.print(safe_text(f"    {gv.reference}: {output_text(it.baseline, TEXT_LIMIT)}"))
        console.print(safe_text(f"    {r.name}: {output_text(it.candidate, TEXT_LIMIT)}"))
        change = diff_text(it, TEXT_LIMIT)
        if change is not None:
            console.print(safe_text("    change: ") + change)


def _summary_table(gv: GroupVerdict) -> Table:
    """Scorers down, variants across; each variant's header says what it is (prompt, model)."""
    t = Table(title=safe_text("scorer × variant (mean, difference from the reference; ▼▲ significant)"),
              title_justify="left")
    t.add_column("")
    for r in gv.results:
        h = variant_head(r, gv)
        t.add_column(safe_text("\n".join(x for x in (h.name, h.prompt, h.model) if x)), justify="right",
                     overflow="fold")
    for label, cells in summary_rows(gv):
        t.add_row(safe_text(label), *(safe_text(c, style="bold red" if "▼" in c or c.startswith("FAIL") else "")
                                      for c in cells))
    return t


def print_console(gv: GroupVerdict, out: TextIO | None = None, console: Console | None = None) -> None:
    """In the order every report shares: the verdict, the one-glance matrix, the failing gates,
    the regressed items with their change, then the detail tables and every gate."""
    console = console or table_console(out)
    failing = [r.name for r in gv.results if r.failed]
    console.print(safe_text(f"{'FAIL' if failing else 'PASS'} · ", style="bold red" if failing else "bold green")
                  + safe_text(headline(gv), style="bold"))
    console.print(_summary_table(gv))
    for r in gv.results:
        for g in r.gates:
            if g.failed:
                console.print(safe_text(f"  ✗ {r.name}: FAIL ", style="bold red") + safe_text(
                    f"{g.gate.text}  {g.numbers()}" + ("" if r.gated else "  (not gating)")))
    for r in gv.results:
        if r.name != gv.reference:
            _items_block(console, r, gv)
    for sec in scorer_sections(gv):
        console.print(_table(gv, sec))
    console.print(_table(gv, run_section(gv)))
    for note in gv.notes:
        console.print(safe_text(f"note: {note}", style="yellow"))
    style = {"pass": "green", "fail": "bold red", "skip": "yellow", "advisory": "yellow", "incomplete": "bold yellow"}
    for r in gv.results:
        if not r.gates:
            continue
        t = Table(title=safe_text(f"gates of {r.name} ({gv.policy})" + ("" if r.gated else ", not gating")),
                  title_justify="left")
        for c in ("", "gate", "numbers", "note"):
            t.add_column(c)
        for g in r.gates:
            t.add_row(safe_text(g.verdict.upper(), style=style.get(g.verdict, "")), safe_text(g.gate.text), safe_text(g.numbers()),
                      safe_text(g.note))
        console.print(t)
    failing = [r.name for r in gv.results if r.failed]
    console.print(safe_text(f"verdict: {'FAIL' if failing else 'PASS'}" + (f" (gates failed: {', '.join(failing)})"
                                                                      if failing else ""),
                       style="bold red" if failing else "bold green"))


def render_console_text(gv: GroupVerdict, width: int = 160) -> str:
    buf = io.StringIO()
    print_console(gv, console=Console(file=buf, width=width, no_color=True, highlight=False, force_terminal=False))
    return buf.getvalue()


# ----------------------------------------------------------------------------- markdown


def render_markdown(gv: GroupVerdict) -> str:
    from evalrun.report.markdown import LIMIT, cell, code

    mark = {"passed": "✅", "failed": "❌"}.get(gv.word, "⚠️")
    lines = [f"## {mark} evalrun: {cell(headline(gv), 400)} — {gv.word}", ""]
    # the one-glance matrix first, each variant's header saying what it is
    vheads = [variant_head(r, gv) for r in gv.results]
    lines += ["| | " + " | ".join("<br>".join(cell(x, 120) for x in (h.name, h.prompt, h.model) if x) for h in vheads)
              + " |", "|---|" + "--:|" * len(vheads)]
    lines += [f"| {cell(label)} | " + " | ".join(cell(c) for c in cells) + " |" for label, cells in summary_rows(gv)]
    lines += ["", "*Mean per scorer; in brackets the difference from the reference, ▼/▲ where its paired 95% "
              "interval excludes zero.*", ""]
    for r in gv.results:
        for g in r.gates:
            if g.failed:
                lines.append(f"- ❌ **{cell(r.name)}**: {code(g.gate.text)} {cell(g.numbers(), 300)}"
                             + ("" if r.gated else " (not gating)"))
    lines.append("")
    heads = [cell(_header(r, gv)) for r in gv.results]
    for sec in [*scorer_sections(gv), run_section(gv)]:
        lines += [f"### {cell(sec.title)}", "", "| | " + " | ".join(heads) + " |",
                  "|---|" + "--:|" * len(heads)]
        lines += [f"| {cell(label)} | " + " | ".join(cell(c) for c in cells) + " |" for label, cells in sec.rows
                  if any(cells)]
        lines.append("")
    for r in gv.results:
        if not r.gates:
            continue
        lines += [f"### Gates of {cell(r.name)} ({gv.policy}){'' if r.gated else ', not gating'}", "",
                  "| | gate | numbers | note |", "|---|---|---|---|"]
        lines += [f"| {gate_mark(g.verdict)} {g.verdict} | {code(g.gate.text)} | {cell(g.numbers(), 400)} | "
                  f"{cell(g.note, 400)} |" for g in r.gates]
        lines.append("")
    for note in gv.notes:
        lines += [f"> {cell(note, 500)}", ""]
    for r in gv.results:
        items = r.paired.comparison.regressed if r.name != gv.reference else []
        if not items:
            continue
        lines += [f"### {cell(r.name)}: regressed vs {cell(gv.reference)} ({len(items)})", "",
                  f"| item | expected | {cell(gv.reference)} | {cell(r.name)} |", "|---|---|---|---|"]
        for it in items[:TOP_ITEMS * 3]:
            tags = f"<br>{cell(', '.join(it.tags), 60)}" if it.tags else ""
            lines.append(f"| {code(it.item_id[:80])}{tags} | {cell(expected_text(it))} | "
                         f"{cell(output_text(it.baseline))} | {cell(output_text(it.candidate))} |")
        if len(items) > TOP_ITEMS * 3:
            lines.append(f"\n*… and {len(items) - TOP_ITEMS * 3} more (see the HTML or JSON report).*")
        lines.append("")
    text = "\n".join(lines) + "\n"
    if len(text) > LIMIT:
        text = text[: LIMIT - 80] + "\n\n*(report truncated to fit GitHub's size limit)*\n"
    return text


# ----------------------------------------------------------------------------- HTML


def _outputs(records: list[Record]) -> str:
    if len(records) <= 1:
        return output_text(records, HTML_TEXT_LIMIT)
    return "\n".join(f"[trial {r.trial}] " + output_text([r], HTML_TEXT_LIMIT) for r in records)


def side_by_side(gv: GroupVerdict) -> tuple[list[str], list[dict[str, Any]]]:
    """Every item with each variant's output and scores; ``differ`` when outputs or scores differ."""
    scorers: list[str] = []
    for r in gv.results:
        scorers += [s for s in r.paired.comparison.scorers if s not in scorers]
    by_variant: list[dict[str, ItemDiff]] = [{it.item_id: it for it in r.paired.comparison.items if it.candidate}
                                             for r in gv.results]
    order: list[str] = []
    seen: set[str] = set()
    for m in by_variant:
        for iid in m:
            if iid not in seen:
                seen.add(iid)
                order.append(iid)
    rows = []
    for iid in order:
        its = [m.get(iid) for m in by_variant]
        first = next(it for it in its if it is not None)
        cells = []
        for r, it in zip(gv.results, its, strict=True):
            recs = it.candidate if it is not None else []
            scores = [(s, score_brief(recs, s)) for s in scorers]
            output = _outputs(recs) if recs else "(not run)"
            cells.append({"variant": r.name, "output": output, "scores": scores,
                          "regressed": bool(it is not None and it.regressed),
                          "failing": bool(it is not None and (it.failed or it.errored)),
                          "_key": (output, tuple(b for _, b in scores))})
        differ = len({c["_key"] for c in cells}) > 1
        for c in cells:
            c.pop("_key")
        rows.append({"id": iid, "tags": first.tags, "input": input_text(first, HTML_TEXT_LIMIT),
                     "expected": expected_text(first, HTML_TEXT_LIMIT), "cells": cells, "differ": differ,
                     "regressed": any(c["regressed"] for c in cells)})
    return scorers, rows


def render_html(gv: GroupVerdict) -> str:
    from evalrun._version import __version__
    from evalrun.report.html import render_page

    scorers, items = side_by_side(gv)
    sections = [*scorer_sections(gv), run_section(gv)]
    filters = [{"key": "all", "label": "all", "count": len(items)},
               {"key": "differ", "label": "where they differ", "count": sum(1 for i in items if i["differ"])},
               {"key": "regressed", "label": "regressed in a variant", "count": sum(1 for i in items if i["regressed"])}]
    return render_page(
        "matrix.html.j2", title=headline(gv), verdict_word=gv.word, variants=[_header(r, gv) for r in gv.results],
        heads=[variant_head(r, gv) for r in gv.results], summary=summary_rows(gv),
        failed_gates=[(r, g) for r in gv.results for g in r.gates if g.failed],
        sections=sections, results=gv.results, policy=gv.policy, notes=gv.notes, items=items, filters=filters,
        version=__version__, generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"))


# ----------------------------------------------------------------------------- JUnit, JSON


def render_junit(gv: GroupVerdict) -> str:
    """One suite of testcases named ``variant/item``, one of ``variant/gate``."""
    import xml.etree.ElementTree as ET

    from evalrun.report.junit import _finish_suite, _item_case, _suite, _timestamp, _x

    root = ET.Element("testsuites")
    ts = _timestamp(gv.result(gv.reference).paired.comparison.run.get("started_at"))
    items = _suite(root, f"{gv.eval} variants", 0, "evalrun", ts)
    props = ET.SubElement(items, "properties")
    for k, v in (("group_id", gv.group_id), ("compare_to", gv.reference), ("gate_policy", gv.policy),
                 ("verdict", gv.word)):
        ET.SubElement(props, "property", {"name": k, "value": _x(str(v))})
    tests = failures = errors = 0
    total = 0.0
    for r in gv.results:
        cmp = r.paired.comparison
        classname = f"evalrun.{gv.eval}.{r.name}"
        for it in cmp.items:
            if not it.candidate:
                continue
            f, e, secs = _item_case(items, it, classname, list(cmp.scorers), name=f"{r.name}/{it.item_id}")
            tests, failures, errors, total = tests + 1, failures + f, errors + e, total + secs
    _finish_suite(items, tests, failures, errors, total)
    gates = _suite(root, f"{gv.eval} variant gates", 1, "evalrun", ts)
    ET.SubElement(gates, "properties")
    n = gfail = 0
    for r in gv.results:
        for g in r.gates:
            n += 1
            case = ET.SubElement(gates, "testcase", {"name": _x(f"{r.name}/{g.gate.text}"),
                                                     "classname": f"evalrun.{gv.eval}.{r.name}.gates", "time": "0"})
            if g.failed and r.gated:
                gfail += 1
                el = ET.SubElement(case, "failure", {"message": _x(g.numbers()[:500]), "type": "gate"})
                el.text = _x(f"{g.gate.text}\n{g.numbers()}\n{g.note}")
            elif g.failed:
                ET.SubElement(case, "skipped", {"message": _x(f"failed, but {r.name} is not in gate_variants")})
    _finish_suite(gates, n, gfail, 0, 0.0)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def render(gv: GroupVerdict, fmt: str) -> str:
    if fmt == "md":
        return render_markdown(gv)
    if fmt == "junit":
        return render_junit(gv)
    if fmt == "html":
        return render_html(gv)
    if fmt == "json":
        from evalrun._json import json_pretty

        return json_pretty(gv.to_dict())
    return render_console_text(gv)
