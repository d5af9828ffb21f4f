"""Inline SVG charts for the HTML report: no CDN, no JavaScript, one self-contained page.

Each function returns :class:`markupsafe.Markup` built here from numbers; every piece of
text that can come from a user (scorer names, slice values, run ids) goes through
``escape``, so the template can insert a chart without marking anything else safe.

Sizes are fixed and independent of the number of records (histograms bin, the forest plot
and the trend cap their rows), so a 20,000-record report carries the same few kB of SVG as a
20-record one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from markupsafe import Markup
from markupsafe import escape as _escape

from evalrun.report._terminal import without_controls


def escape(text: Any) -> Markup:
    """HTML-escaped, control characters as U+FFFD (run ids and labels come from data)."""
    return _escape(without_controls(str(text)))

W, H = 560, 260
PAD_L, PAD_R, PAD_T, PAD_B = 56, 16, 34, 44
BLUE, RED, GREEN, GREY, INK = "#0969da", "#cf222e", "#1a7f37", "#8c959f", "#1f2328"
FOREST_ROWS = 30
TREND_RUNS = 40


def _f(x: float) -> str:
    return f"{x:.1f}"


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo] if math.isfinite(lo) else []
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=10 * mag)
    start = math.ceil(lo / step - 1e-9) * step
    out: list[float] = []
    v = start
    while v <= hi + step * 1e-9 and len(out) < 12:
        out.append(round(v, 10))
        v += step
    return out


def _tick(v: float) -> str:
    v += 0.0  # no "-0" label
    if abs(v) >= 1000:
        return f"{v / 1000:.4g}k"  # counts: 12.5k, not 1.25e+04
    return f"{v:.3g}"


class _Frame:
    """A plot area with linear x and y scales, axes, ticks, a title and axis labels."""

    def __init__(self, title: str, x_label: str, y_label: str, xlim: tuple[float, float], ylim: tuple[float, float],
                 *, height: int = H, pad_left: int = PAD_L, chart_id: str = "") -> None:
        self.h = height
        self.pl = pad_left
        self.x0, self.x1 = xlim
        self.y0, self.y1 = ylim
        if self.x1 <= self.x0:
            self.x0, self.x1 = self.x0 - 0.5, self.x0 + 0.5
        if self.y1 <= self.y0:
            self.y0, self.y1 = self.y0 - 0.5, self.y0 + 0.5
        self.parts: list[str] = []
        self.title, self.x_label, self.y_label, self.id = title, x_label, y_label, chart_id

    def x(self, v: float) -> float:
        return self.pl + (v - self.x0) / (self.x1 - self.x0) * (W - self.pl - PAD_R)

    def y(self, v: float) -> float:
        return PAD_T + (self.y1 - v) / (self.y1 - self.y0) * (self.h - PAD_T - PAD_B)

    def add(self, svg: str) -> None:
        self.parts.append(svg)

    def axes(self, *, x_ticks: Sequence[tuple[float, str]] | None = None, y_ticks: bool = True) -> None:
        bottom, left = self.h - PAD_B, self.pl
        g = [f'<line x1="{left}" y1="{bottom}" x2="{W - PAD_R}" y2="{bottom}" stroke="{INK}"/>',
             f'<line x1="{left}" y1="{PAD_T}" x2="{left}" y2="{bottom}" stroke="{INK}"/>']
        if y_ticks:
            for v in _nice_ticks(self.y0, self.y1):
                yy = _f(self.y(v))
                g.append(f'<line x1="{left - 4}" y1="{yy}" x2="{W - PAD_R}" y2="{yy}" stroke="#eaeef2"/>'
                         f'<text x="{left - 6}" y="{yy}" text-anchor="end" dominant-baseline="middle">{_tick(v)}</text>')
        ticks = x_ticks if x_ticks is not None else [(v, _tick(v)) for v in _nice_ticks(self.x0, self.x1)]
        for v, label in ticks:
            xx = _f(self.x(v))
            g.append(f'<line x1="{xx}" y1="{bottom}" x2="{xx}" y2="{bottom + 4}" stroke="{INK}"/>'
                     f'<text x="{xx}" y="{bottom + 16}" text-anchor="middle">{escape(label)}</text>')
        self.parts[:0] = g

    def svg(self) -> Markup:
        mid_y = (PAD_T + self.h - PAD_B) / 2
        head = (f'<svg class="chart" id="{escape(self.id)}" viewBox="0 0 {W} {self.h}" width="{W}" height="{self.h}" '
                f'role="img" aria-label="{escape(self.title)}" font-size="11" font-family="system-ui, sans-serif" '
                f'fill="{INK}"><title>{escape(self.title)}</title>'
                f'<text x="{W / 2}" y="18" text-anchor="middle" font-size="13" font-weight="600">'
                f'{escape(self.title)}</text>'
                f'<text x="{(self.pl + W - PAD_R) / 2}" y="{self.h - 8}" text-anchor="middle">'
                f'{escape(self.x_label)}</text>')
        if self.y_label:  # the forest plot labels its rows instead
            head += (f'<text transform="translate(13 {_f(mid_y)}) rotate(-90)" text-anchor="middle">'
                     f'{escape(self.y_label)}</text>')
        return Markup(head + "".join(self.parts) + "</svg>")


def _finite(*xs: Any) -> bool:
    return all(isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in xs)


def trend_chart(scorer: str, entries: list[dict[str, Any]], current_run: str | None) -> Markup | None:
    """A scorer's mean over the history with its 95% interval band; the current run highlighted."""
    pts = []
    for e in entries[-TREND_RUNS:]:
        s: dict[str, Any] = (e.get("scorers") or {}).get(scorer) or {}
        m = s.get("mean")
        ci: list[Any] = s.get("ci95") or [None, None]
        if m is not None and _finite(m):
            lo, hi = (ci[0], ci[1]) if len(ci) == 2 and _finite(ci[0], ci[1]) else (m, m)
            pts.append((e.get("run_id") or "", float(m), float(lo), float(hi)))
    if not pts:
        return None
    ys = [p[2] for p in pts] + [p[3] for p in pts]
    y0, y1 = min(ys), max(ys)
    span = max(y1 - y0, 0.02)
    fr = _Frame(f"{scorer}: mean over the last {len(pts)} runs (95% interval)", "run (oldest → newest)", "mean",
                (-0.5, len(pts) - 0.5), (y0 - span * 0.1, y1 + span * 0.1), chart_id=f"trend-{scorer}")
    step = max(1, math.ceil(len(pts) / 10))
    fr.axes(x_ticks=[(i, str(i + 1)) for i in range(0, len(pts), step)])
    upper = " ".join(f"{_f(fr.x(i))},{_f(fr.y(p[3]))}" for i, p in enumerate(pts))
    lower = " ".join(f"{_f(fr.x(i))},{_f(fr.y(p[2]))}" for i, p in reversed(list(enumerate(pts))))
    fr.add(f'<polygon class="band" points="{upper} {lower}" fill="{BLUE}" fill-opacity="0.15" stroke="none"/>')
    fr.add(f'<polyline points="{" ".join(f"{_f(fr.x(i))},{_f(fr.y(p[1]))}" for i, p in enumerate(pts))}" '
           f'fill="none" stroke="{BLUE}" stroke-width="1.5"/>')
    for i, (rid, m, lo, hi) in enumerate(pts):
        cur = rid == current_run
        xx = _f(fr.x(i))
        fr.add(f'<line x1="{xx}" y1="{_f(fr.y(lo))}" x2="{xx}" y2="{_f(fr.y(hi))}" stroke="{BLUE}" '
               f'stroke-opacity="0.5"/>')
        fr.add(f'<circle class="{"current" if cur else "run"}" cx="{xx}" cy="{_f(fr.y(m))}" r="{6 if cur else 3.5}" '
               f'fill="{RED if cur else BLUE}"><title>{escape(rid)}: {m:.3f} [{lo:.3f}, {hi:.3f}]'
               f'{" (this run)" if cur else ""}</title></circle>')
    return fr.svg()


def histogram(title: str, x_label: str, values: Sequence[float], *, bins: int = 30,
              lim: tuple[float, float] | None = None, chart_id: str = "", mark_zero: bool = False) -> Markup | None:
    """Counts of ``values`` in equal bins (the y axis says how many)."""
    vals = [float(v) for v in values if _finite(v)]
    if not vals:
        return None
    lo, hi = lim if lim is not None else (min(vals), max(vals))
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    width = (hi - lo) / bins
    counts = [0] * bins
    for v in vals:
        k = min(bins - 1, max(0, int((v - lo) / width)))
        counts[k] += 1
    fr = _Frame(title, x_label, "count", (lo, hi), (0, max(counts) * 1.08), chart_id=chart_id)
    fr.axes()
    base = fr.y(0)
    for k, c in enumerate(counts):
        if not c:
            continue
        x_a, x_b = fr.x(lo + k * width), fr.x(lo + (k + 1) * width)
        yy = fr.y(c)
        fr.add(f'<rect x="{_f(x_a + 0.5)}" y="{_f(yy)}" width="{_f(max(x_b - x_a - 1, 1))}" height="{_f(base - yy)}" '
               f'fill="{BLUE}"><title>{lo + k * width:.3g} to {lo + (k + 1) * width:.3g}: {c}</title></rect>')
    if mark_zero and lo < 0 < hi:
        fr.add(f'<line x1="{_f(fr.x(0))}" y1="{PAD_T}" x2="{_f(fr.x(0))}" y2="{_f(base)}" stroke="{GREY}" '
               f'stroke-dasharray="4 3"/>')
    return fr.svg()


def forest_plot(rows: list[Any], has_baseline: bool) -> Markup | None:
    """Per-slice differences against the baseline with 95% intervals (or, without a baseline,
    each slice's mean with its interval), worst first."""
    pts = []
    for r in rows[:FOREST_ROWS]:
        if has_baseline and r.diff is not None:
            d = r.diff
            lo, hi = (d.lo, d.hi) if d.has_interval else (d.diff, d.diff)
            pts.append((r, d.diff, lo, hi))
        elif not has_baseline and _finite(r.mean):
            lo, hi = (r.lo, r.hi) if _finite(r.lo, r.hi) else (r.mean, r.mean)
            pts.append((r, r.mean, lo, hi))
    if not pts:
        return None
    row_h = 18
    height = PAD_T + PAD_B + row_h * len(pts)
    xs = [p[2] for p in pts] + [p[3] for p in pts] + ([0.0] if has_baseline else [])
    x0, x1 = min(xs), max(xs)
    span = max(x1 - x0, 0.02)
    title = ("slices: paired difference vs baseline (95% interval)" if has_baseline
             else "slices: mean (95% interval)")
    fr = _Frame(title, "candidate − baseline (mean)" if has_baseline else "mean", "", (x0 - span * 0.05,
                x1 + span * 0.05), (0, len(pts)), height=height, pad_left=220, chart_id="forest")
    fr.axes(y_ticks=False)
    if has_baseline:
        zx = _f(fr.x(0))
        fr.add(f'<line x1="{zx}" y1="{PAD_T}" x2="{zx}" y2="{height - PAD_B}" stroke="{GREY}" stroke-dasharray="4 3"/>')
    for i, (r, m, lo, hi) in enumerate(pts):
        yy = _f(PAD_T + row_h * (i + 0.5))
        color = RED if r.change == "drop" else GREEN if r.change == "gain" else BLUE
        label = f"{r.label} · {r.scorer} (n={r.n}{', tiny' if r.tiny else ''})"
        if len(label) > 40:
            label = label[:39] + "…"
        fr.add(f'<text x="{fr.pl - 6}" y="{yy}" text-anchor="end" dominant-baseline="middle">{escape(label)}</text>')
        dash = ' stroke-dasharray="3 2"' if r.tiny else ""  # a tiny slice's interval, drawn dashed
        fr.add(f'<line x1="{_f(fr.x(lo))}" y1="{yy}" x2="{_f(fr.x(hi))}" y2="{yy}" stroke="{color}" '
               f'stroke-width="2"{dash}/>')
        fr.add(f'<rect x="{_f(fr.x(m) - 4)}" y="{_f(float(yy) - 4)}" width="8" height="8" fill="{color}">'
               f'<title>{escape(r.label)} · {escape(r.scorer)}: {m:+.3f} [{lo:+.3f}, {hi:+.3f}], n={r.n}</title></rect>')
    return fr.svg()
