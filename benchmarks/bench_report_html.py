"""HTML report benchmark: a 20,000-record run with charts, slices and a 20-run history, loaded
in headless Chromium.

Data: bench_compare's candidate and baseline (three scorers, ~10% of items flipped, 1% target
errors), with two slice keys (a 12-value category and the tags) and 20 earlier runs.

Measured, as the median of ``--repeat`` loads:

- the file's size;
- Python render time (compare and slices excluded: their cost is bench_compare's);
- in-page time: ``performance.now()`` when a script at the end of the page has forced layout
  of every chart, i.e. navigation start to a parsed, styled and laid-out page;
- wall time of the whole ``chromium --dump-dom`` process (browser start included).

Against two references in the same run: the *ideal* (an empty page: browser start and
nothing else) and the *fair baseline* (the same report without charts and the slice table,
i.e. the page before they existed). The charts' own share is the difference between the two
reports.

Usage: python benchmarks/bench_report_html.py [--items 20000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_compare import SCORERS, make_run  # noqa: E402

from evalrun.compare import compare  # noqa: E402
from evalrun.report import html as html_report  # noqa: E402
from evalrun.slices import slice_report  # noqa: E402
from evalrun.verdict import Verdict  # noqa: E402
from tests.test_slices_browser import CHROMIUM, probe  # noqa: E402


def history(cmp, runs: int) -> list[dict]:
    out = []
    for k in range(runs - 1):
        out.append({"run_id": f"run-{k:02d}", "started_at": f"2026-01-{k + 1:02d}", "scorers": {
            s: {"mean": 0.6 + 0.005 * k, "ci95": [0.59 + 0.005 * k, 0.61 + 0.005 * k]} for s in SCORERS}})
    out.append({"run_id": "cand", "scorers": {s: {"mean": cmp.scorers[s].candidate["mean"],
                                                  "ci95": cmp.scorers[s].candidate["ci95"]} for s in SCORERS}})
    return out


def load(path: Path, repeat: int) -> tuple[float, float]:
    """Median in-page ms and median process wall seconds over ``repeat`` loads."""
    in_page, wall = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        found, console = probe(path)
        wall.append(time.perf_counter() - t0)
        assert console == [], console
        in_page.append(found["ms"])
    return statistics.median(in_page), statistics.median(wall)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    if CHROMIUM is None:
        sys.exit("chromium not installed (apt-get install chromium)")
    base = make_run(a.items, 1, 1, 0.0)
    cand = make_run(a.items, 1, 2, 0.1)
    for r in base + cand:
        r.metadata = {**(r.metadata or {}), "category": f"cat{int(r.item_id[4:]) % 12:02d}"}
    cmp = compare(cand, base, run={"run_id": "cand", "eval": "bench"}, baseline_info={"source": "base"},
                  scorers=SCORERS)
    slices = slice_report(cmp, ["tags", "metadata.category"])
    full = Verdict(cmp, [], "significant", slices=slices, history=history(cmp, 20))
    plain = Verdict(cmp, [], "significant")

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        rows = []
        t_render = []
        for _ in range(a.repeat):
            t0 = time.perf_counter()
            text = html_report.render_html(full)
            t_render.append(time.perf_counter() - t0)
        charts_only = sum(len(str(c)) for c in html_report._charts(full))
        (d / "full.html").write_text(text, encoding="utf-8")
        t_plain = []
        for _ in range(a.repeat):
            t0 = time.perf_counter()
            plain_text = html_report.render_html(plain)
            t_plain.append(time.perf_counter() - t0)
        (d / "plain.html").write_text(plain_text, encoding="utf-8")
        (d / "empty.html").write_text("<!DOCTYPE html><title>x</title><body></body>", encoding="utf-8")
        for name, label, render_s in (("empty", "ideal: empty page", 0.0),
                                      ("plain", "fair baseline: no charts", statistics.median(t_plain)),
                                      ("full", "report with charts", statistics.median(t_render))):
            ms, wall = load(d / f"{name}.html", a.repeat)
            rows.append((label, (d / f"{name}.html").stat().st_size, render_s, ms, wall))

    print(f"{a.items} items, {len(cand) + len(base)} records in both runs, {len(slices.rows)} slice rows, "
          f"20 runs of history; medians of {a.repeat}")
    print(f"{'page':<28}{'size MB':>9}{'render s':>10}{'in-page s':>11}{'process s':>11}")
    for label, size, render_s, ms, wall in rows:
        print(f"{label:<28}{size / 1e6:>9.2f}{render_s:>10.2f}{ms / 1000:>11.2f}{wall:>11.2f}")
    print(f"charts' SVG: {charts_only / 1e3:.1f} kB")


if __name__ == "__main__":
    main()
