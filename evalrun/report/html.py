"""The HTML report: one self-contained file (inline CSS and script, no network), in the order
every report shares (issue 24): the verdict and its reason, the failing gates, the items
(regressions first and shown alone by default, each with a word diff of its output: removed
words ``<del>``, added ``<ins>``), the slices that moved, then the scorers, the other gates,
and, collapsed, the charts (see :mod:`evalrun.report.charts`) and every slice row (sortable).

Everything a model or a dataset wrote reaches the page only through Jinja2 autoescaping, so
an output ``<script>alert(1)</script>`` shows as text; the template marks nothing ``safe``
(the charts arrive as Markup built from numbers, their text escaped where it is built, and a
word diff as Markup whose every piece of text is escaped in :func:`_marked`).
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from jinja2 import PackageLoader
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup

from evalrun.report._common import (
    counts_line,
    diff_outputs,
    expected_text,
    headline,
    input_text,
    item_scorer_pairs,
    metrics_line,
    moved_slices,
    output_text,
    reasons,
    scorer_rows,
    short_label,
    slice_cells,
    trajectory_lines,
    verdict_error_lines,
    verdict_label,
    verdict_reason,
)
from evalrun.report._terminal import without_controls

if TYPE_CHECKING:
    from evalrun.compare import ItemDiff
    from evalrun.records import Record
    from evalrun.verdict import Verdict

TEXT_LIMIT = 20_000  # per output: a runaway generation should not make the page unusable
TOP_SLICES = 12  # slices that moved, up front (every row is in the collapsed table)
#: the items table's order: what a reviewer looks at first
STATUS_ORDER = {"regressed": 0, "flaky": 2, "improved": 3, "new": 4, "removed": 5, "unchanged": 6}


def _escape(text: str) -> str:
    """``text`` safe in HTML (``&``, ``<``, ``>``, both quotes), as Jinja2's autoescape does it."""
    return html.escape(text, quote=True)


def _marked(runs: list[tuple[str, str]], side: str) -> Markup:
    """One side of a word diff as HTML: ``old`` shows shared and removed words (``<del>``),
    ``new`` shared and added ones (``<ins>``). Every piece of text is escaped here."""
    keep, tag = ("-", "del") if side == "old" else ("+", "ins")
    out = []
    for op, text in runs:
        if op == "=":
            out.append(_escape(text))
        elif op == keep:
            out.append(f"<{tag}>{_escape(text)}</{tag}>")
    return Markup("".join(out))  # noqa: S704 -- every piece above is escaped


def _diffed(it: ItemDiff) -> tuple[list[str | Markup], list[str | Markup]]:
    """The baseline's and the candidate's outputs, as marked-up word diffs when each side has
    one trial and they differ (several trials, or a side missing: the plain texts)."""
    if len(it.baseline) == 1 and len(it.candidate) == 1:
        runs = diff_outputs(it)
        if runs is not None and any(op != "=" for op, _ in runs):
            return [_marked(runs, "old")], [_marked(runs, "new")]
    return list(_outputs(it.baseline)), list(_outputs(it.candidate))


def _rank(it: ItemDiff) -> int:
    if it.status == "unchanged" and it.candidate and (it.failed or it.errored):
        return 1  # failing, though not a regression: after the regressions
    return STATUS_ORDER.get(it.status, 6)


def _outputs(records: list[Record]) -> list[str]:
    if len(records) <= 1:
        return [output_text(records, TEXT_LIMIT)] if records else []
    return [f"[trial {r.trial}] " + output_text([r], TEXT_LIMIT) for r in records]


def _charts(verdict: Verdict) -> list[Any]:
    """The report's SVG charts: trends, score differences, slices (forest plot), latency."""
    from evalrun import stats
    from evalrun.report import charts

    cmp = verdict.comparison
    out: list[Any] = []
    if len(verdict.history) >= 2:
        for name in cmp.scorers:
            out.append(charts.trend_chart(name, verdict.history, cmp.run.get("run_id")))
    if cmp.has_baseline:
        for name, sc in cmp.scorers.items():
            if sc.base_items is None:
                continue
            diffs = [c.mean - b.mean for i, c in sc.cand_items.items()
                     if (b := sc.base_items.get(i)) is not None and c.mean is not None and b.mean is not None]
            bounded = all(-1.0 <= d <= 1.0 for d in diffs)
            out.append(charts.histogram(f"{name}: per-item score difference vs baseline ({len(diffs)} items)",
                                        "candidate − baseline (item mean)", diffs, bins=40 if bounded else 30,
                                        lim=(-1.0, 1.0) if bounded else None, chart_id=f"diff-{name}",
                                        mark_zero=True))
    if verdict.slices is not None:
        out.append(charts.forest_plot(verdict.slices.rows, verdict.slices.has_baseline))
    lat = [r.latency_ms for it in cmp.items for r in it.candidate if r.latency_ms is not None]
    if lat:
        top = stats.percentile(lat, 99) or max(lat)
        out.append(charts.histogram(f"latency per record ({len(lat)} records; the last bar holds all above p99)",
                                    "latency (ms)", [min(v, top) for v in lat], lim=(0.0, top * 1.0001 or 1.0),
                                    chart_id="latency"))
    return [c for c in out if c is not None]


def _env() -> SandboxedEnvironment:
    return SandboxedEnvironment(loader=PackageLoader("evalrun.report", "templates"), autoescape=True,
                                trim_blocks=True, lstrip_blocks=True)


def render_page(template: str, **context: Any) -> str:
    """``template`` rendered with ``context``; every control character (ESC, NUL...) and
    bidirectional override in the page becomes U+FFFD: model text is escaped for HTML and
    carries nothing for a terminal that shows the file either. One pass over the finished page
    (the templates and charts hold none of them), not a call per printed string."""
    return without_controls(_env().get_template(template).render(**context))


def render_html(verdict: Verdict) -> str:
    from evalrun._version import __version__

    cmp = verdict.comparison
    scorers = list(cmp.scorers)
    # regressions first, worst first (as every report lists them), then the rest by status
    worst = {it.item_id: k for k, it in enumerate(cmp.regressed)}
    ordered = sorted(cmp.items, key=lambda it: (_rank(it), worst.get(it.item_id, 0)))
    items: list[dict[str, Any]] = []
    for it in ordered:
        baseline, candidate = _diffed(it)
        items.append({
            "id": it.item_id, "status": it.status, "tags": it.tags,
            "failing": bool(it.candidate) and bool(it.failed or it.errored), "flaky": bool(it.flaky),
            "input": input_text(it, TEXT_LIMIT), "expected": expected_text(it, TEXT_LIMIT),
            "baseline": baseline, "candidate": candidate,
            "scores": item_scorer_pairs(it, scorers), "reasons": (trajectory_lines(it.candidate) + reasons(it.candidate))[:20],
        })
    count = {s: len(cmp.by_status(s)) for s in ("regressed", "improved", "flaky", "new", "removed")}
    filters = [{"key": "all", "label": "all", "count": len(items)}]
    if cmp.has_baseline:
        filters.append({"key": "regressed", "label": "regressed", "count": count["regressed"]})
    filters.append({"key": "failed", "label": "failed", "count": sum(1 for i in items if i["failing"])})
    filters.append({"key": "flaky", "label": "flaky", "count": sum(1 for i in items if i["flaky"])})
    if cmp.has_baseline:
        filters += [{"key": k, "label": k, "count": count[k]} for k in ("improved", "new", "removed")]
    # what the page shows before any click: the regressions when there are any, else every item
    default = "regressed" if cmp.has_baseline and count["regressed"] else "all"
    for i in items:
        i["shown"] = default == "all" or i["status"] == default
    rep = verdict.slices
    moved = moved_slices(rep.rows)[:TOP_SLICES] if rep is not None else []
    return render_page(
        "report.html.j2",
        title=headline(verdict), verdict_word=verdict.word, verdict_label=verdict_label(verdict),
        reason=verdict_reason(verdict), baseline=cmp.baseline_info,
        counts=counts_line(verdict), metrics=metrics_line(cmp.metrics, cmp.baseline_metrics),
        # how errors count, their first messages, baseline-errored items, why a run failed
        notes=verdict_error_lines(verdict) + verdict.notes, scorer_rows=scorer_rows(verdict),
        gates=verdict.gates, policy=verdict.policy,
        failed_gates=verdict.failed_gates, other_gates=[g for g in verdict.gates if not g.failed],
        items=items, filters=filters, default_filter=default, regressed_count=count["regressed"],
        version=__version__, charts=_charts(verdict),
        slices=rep, slice_rows=[(r, slice_cells(r, rep.has_baseline)) for r in rep.rows] if rep is not None else [],
        moved_slices=[(r, slice_cells(r, rep.has_baseline), short_label(r)) for r in moved] if rep is not None else [],
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
    )
