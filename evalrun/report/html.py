"""The HTML report: one self-contained file (inline CSS and script, no network) with the
summary, the gates, inline SVG charts (see :mod:`evalrun.report.charts`), the slice table
(sortable) and every item, baseline next to candidate, filterable by status.

Everything a model or a dataset wrote reaches the page only through Jinja2 autoescaping, so
an output ``<script>alert(1)</script>`` shows as text; the template marks nothing ``safe``
(the charts arrive as Markup built from numbers, their text escaped where it is built).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from jinja2 import PackageLoader
from jinja2.sandbox import SandboxedEnvironment

from evalrun.report._common import (
    counts_line,
    expected_text,
    headline,
    input_text,
    item_scorer_pairs,
    metrics_line,
    output_text,
    reasons,
    scorer_rows,
    slice_cells,
)
from evalrun.report._terminal import without_controls

if TYPE_CHECKING:
    from evalrun.records import Record
    from evalrun.verdict import Verdict

TEXT_LIMIT = 20_000  # per output: a runaway generation should not make the page unusable


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
    items: list[dict[str, Any]] = []
    for it in cmp.items:
        items.append({
            "id": it.item_id, "status": it.status, "tags": it.tags,
            "failing": bool(it.candidate) and bool(it.failed or it.errored), "flaky": bool(it.flaky),
            "input": input_text(it, TEXT_LIMIT), "expected": expected_text(it, TEXT_LIMIT),
            "baseline": _outputs(it.baseline), "candidate": _outputs(it.candidate),
            "scores": item_scorer_pairs(it, scorers), "reasons": reasons(it.candidate)[:20],
        })
    count = {s: len(cmp.by_status(s)) for s in ("regressed", "improved", "flaky", "new", "removed")}
    filters = [{"key": "all", "label": "all", "count": len(items)}]
    if cmp.has_baseline:
        filters.append({"key": "regressed", "label": "regressed", "count": count["regressed"]})
    filters.append({"key": "failed", "label": "failed", "count": sum(1 for i in items if i["failing"])})
    filters.append({"key": "flaky", "label": "flaky", "count": sum(1 for i in items if i["flaky"])})
    if cmp.has_baseline:
        filters += [{"key": k, "label": k, "count": count[k]} for k in ("improved", "new", "removed")]
    return render_page(
        "report.html.j2",
        title=headline(verdict), verdict_word=verdict.word, baseline=cmp.baseline_info,
        counts=counts_line(verdict), metrics=metrics_line(cmp.metrics, cmp.baseline_metrics),
        notes=verdict.notes, scorer_rows=scorer_rows(verdict), gates=verdict.gates, policy=verdict.policy,
        items=items, filters=filters, version=__version__, charts=_charts(verdict),
        slices=verdict.slices, slice_rows=[(r, slice_cells(r, verdict.slices.has_baseline))
                                           for r in verdict.slices.rows] if verdict.slices is not None else [],
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
    )
