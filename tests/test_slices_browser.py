"""The HTML report's charts in a real headless Chromium: every chart laid out at a sane size
with drawn marks and readable text, a screenshot taken, no console message; the slice table
sorts on click. The helpers are shared with tests/test_report.py and the HTML benchmark."""

from __future__ import annotations

import html as html_mod
import json
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from evalrun.compare import compare
from evalrun.gates import evaluate, parse_gates
from evalrun.records import Record, Score
from evalrun.report.html import render_html
from evalrun.slices import slice_report
from evalrun.verdict import Verdict

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium)")

# appended to a copy of the report: measures what the browser laid out, once the parser has
# reached the end of the page (getBoundingClientRect forces style and layout), every collapsed
# section opened
PROBE = """<script>(function () {
  var out = {charts: [], ms: 0, clicks: null};
  // the charts and the full slice table sit in collapsed sections: open them, as a reader would
  Array.prototype.forEach.call(document.querySelectorAll("details"), function (d) { d.open = true; });
  Array.prototype.forEach.call(document.querySelectorAll("svg.chart"), function (s) {
    var r = s.getBoundingClientRect(), b = s.getBBox();
    var texts = Array.prototype.slice.call(s.querySelectorAll("text"));
    out.charts.push({id: s.id, width: r.width, height: r.height, top: r.top + window.scrollY, left: r.left,
      content: [b.width, b.height],
      marks: s.querySelectorAll("rect,circle,polyline,polygon,line").length,
      texts: texts.length, shown_texts: texts.filter(function (t) { return t.getBBox().width > 0; }).length,
      title: (s.querySelector("title") || {}).textContent || ""});
  });
  out.ms = performance.now();  // parsed and laid out (the loop above forced layout)
  var th = document.querySelector("#slices thead th");
  if (th) {
    th.click(); th.click();  // slice column, descending
    out.clicks = Array.prototype.map.call(document.querySelectorAll("#slices tbody tr"),
                                          function (tr) { return tr.cells[0].textContent; });
  }
  var pre = document.createElement("pre"); pre.id = "probe"; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();</script>"""


def _chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--no-first-run", "--disable-extensions", f"--user-data-dir={profile}", "--enable-logging=stderr",
         "--v=0", *args], capture_output=True, text=True, timeout=180)


def console_messages(stderr: str) -> list[str]:
    """What the page wrote to its console (Chromium logs each as a CONSOLE line)."""
    return [ln for ln in stderr.splitlines() if ":CONSOLE" in ln]


def probe(report: Path, width: int = 1280) -> tuple[dict, list[str]]:
    """Load a copy of ``report`` with the probe appended: (measurements, console messages)."""
    copy = report.with_name(report.stem + ".probe.html")
    copy.write_text(report.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    proc = _chromium(f"--window-size={width},1000", "--dump-dom", copy.as_uri(), profile=report.parent / "chrome-probe")
    assert proc.returncode == 0, proc.stderr[-2000:]
    m = re.search(r'<pre id="probe">(.*?)</pre>', proc.stdout, re.S)
    assert m, "the probe did not run"
    return json.loads(html_mod.unescape(m.group(1))), console_messages(proc.stderr)


def screenshot(report: Path, png: Path, width: int = 1280, height: int = 2400) -> tuple[int, int, list[str]]:
    """Screenshot ``report`` into ``png``: (width, height, console messages)."""
    proc = _chromium(f"--window-size={width},{height}", f"--screenshot={png}", "--hide-scrollbars", report.as_uri(),
                     profile=report.parent / "chrome-shot")
    assert proc.returncode == 0 and png.is_file(), proc.stderr[-2000:]
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    w, h = struct.unpack(">II", data[16:24])
    return w, h, console_messages(proc.stderr)


def assert_charts_rendered(found: dict, expected_ids: set[str]) -> None:
    charts = {c["id"]: c for c in found["charts"]}
    assert expected_ids <= set(charts), sorted(charts)
    for c in charts.values():
        assert 300 <= c["width"] <= 1280 and 150 <= c["height"] <= 1200, c  # laid out, at a readable size
        assert c["content"][0] > 0.8 * c["width"] and c["content"][1] > 0.6 * c["height"], c  # drawn, not empty
        assert c["marks"] >= 3 and c["texts"] >= 3 and c["shown_texts"] == c["texts"], c  # axes, labels
        assert c["title"], c


def rich_verdict(items: int = 160, history_runs: int = 5) -> Verdict:
    """A compared run with tags, a language, latency and a history: every chart has data."""
    base, cand = [], []
    for i in range(items):
        meta = {"tags": [["math", "geo", "hist", "code"][i % 4]], "language": "de" if i % 3 else "en"}
        ok_b = i % 10 != 3
        ok_c = ok_b and not (i % 4 == 0 and i % 3 == 1)
        sim_b = 0.5 + (i % 7) / 14
        base.append(Record(f"q{i}", 0, f"question {i}", "a", "x", None, 40.0 + (i * 37) % 300, None,
                           {"em": Score(float(ok_b), ok_b), "sim": Score(sim_b, sim_b >= 0.7)}, meta))
        sim_c = sim_b - (0.1 if i % 4 == 0 else 0.0)
        cand.append(Record(f"q{i}", 0, f"question {i}", "a", "<b>y</b>", None, 45.0 + (i * 53) % 400, None,
                           {"em": Score(float(ok_c), ok_c), "sim": Score(sim_c, sim_c >= 0.7)}, meta))
    cmp = compare(cand, base, run={"run_id": "run-now", "eval": "demo"},
                  baseline_info={"source": "run-before", "run_id": "run-before"})
    history = [{"run_id": f"run-{k}", "started_at": f"2026-01-0{k + 1}", "scorers": {
        "em": {"mean": 0.85 + 0.01 * k, "ci95": [0.8 + 0.01 * k, 0.9 + 0.01 * k]},
        "sim": {"mean": 0.7, "ci95": [0.65, 0.75]}}} for k in range(history_runs - 1)]
    history.append({"run_id": "run-now", "scorers": {
        "em": {"mean": cmp.scorers["em"].candidate["mean"], "ci95": cmp.scorers["em"].candidate["ci95"]},
        "sim": {"mean": cmp.scorers["sim"].candidate["mean"], "ci95": cmp.scorers["sim"].candidate["ci95"]}}})
    gates = parse_gates(["em.mean[tag=math] >= baseline - 0.02"], scorers=["em", "sim"])
    return Verdict(cmp, evaluate(gates, cmp), "significant", slices=slice_report(cmp, ["tags", "metadata.language"]),
                   history=history)


EVERY_CHART = {"trend-em", "trend-sim", "diff-em", "diff-sim", "forest", "latency"}


@needs_chromium
def test_every_chart_renders_with_a_screenshot_and_no_console_message(tmp_path):
    report = tmp_path / "report.html"
    report.write_text(render_html(rich_verdict()), encoding="utf-8")
    found, console = probe(report)
    assert console == []
    assert_charts_rendered(found, EVERY_CHART)
    trend = next(c for c in found["charts"] if c["id"] == "trend-em")
    assert "mean over the last 5 runs" in trend["title"]
    # sorting: the slice column, clicked twice, is in descending order
    assert found["clicks"] == sorted(found["clicks"], reverse=True) and len(found["clicks"]) == 12
    # the charts are collapsed under the items: screenshot the page with them open, down to the last
    opened = tmp_path / "opened.html"
    opened.write_text(report.read_text(encoding="utf-8").replace("<details ", "<details open "), encoding="utf-8")
    height = int(max(c["top"] + c["height"] for c in found["charts"])) + 50
    w, h, console = screenshot(opened, tmp_path / "report.png", height=height)
    assert (w, h) == (1280, height) and console == []
    assert (tmp_path / "report.png").stat().st_size > 20_000  # a picture, not a blank page
    assert all(c["top"] < h for c in found["charts"])  # the charts are in the screenshot


@needs_chromium
def test_forest_plot_and_trend_survive_hostile_names(tmp_path):
    v = rich_verdict()
    evil = '<script>alert("x")</script>'
    for r in v.slices.rows:
        r.value = evil
    for e in v.history:
        e["run_id"] = evil + e["run_id"]
    page = render_html(v)
    assert evil not in page and page.count("<script") == 1
    report = tmp_path / "report.html"
    report.write_text(page, encoding="utf-8")
    found, console = probe(report)
    assert console == []
    assert_charts_rendered(found, {"forest"})
