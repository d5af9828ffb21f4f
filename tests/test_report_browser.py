"""The HTML report's first screen in a real headless Chromium (issue 24), on the 30-item suite
(tests/suite30.py): at 1280 x 800 the verdict, the failing gates and the first regressed item
with its highlighted change are visible without scrolling, nothing is clipped sideways, and
the sections come in the reviewer's order; at 390 px (a phone) the page does not widen past
the screen. Screenshots at both widths, no console message. The variant matrix shows its
scorer x variant summary, with each variant's prompt and model, in its first screen."""

from __future__ import annotations

import html as html_mod
import json
import re
from pathlib import Path

from evalrun.report.html import render_html
from tests.suite30 import suite30_verdict
from tests.test_slices_browser import _chromium, console_messages, needs_chromium, screenshot

# appended to a copy of the report: where things are on the first screen, once the page's own
# script has run (the default filter applied)
LAYOUT = """<script>(function () {
  function box(el) {
    if (!el) return null;
    var r = el.getBoundingClientRect();
    return {top: r.top, bottom: r.bottom, left: r.left, right: r.right, width: r.width, height: r.height,
            text: (el.textContent || "").replace(/\\s+/g, " ").trim().slice(0, 200)};
  }
  var out = {vw: window.innerWidth, vh: window.innerHeight, page_width: document.documentElement.scrollWidth,
             sections: {}, clipped: []};
  out.verdict = box(document.getElementById("verdict"));
  out.reason = box(document.getElementById("reason"));
  out.gates = Array.prototype.map.call(document.querySelectorAll("#failing-gates tr.gate"), box);
  var first = Array.prototype.filter.call(document.querySelectorAll("#items tr.item"), function (tr) {
    return !tr.hidden; })[0];
  out.first_item = box(first);
  out.first_item_status = first ? first.dataset.status : null;
  out.first_item_id = first ? first.querySelector("code").textContent : null;
  out.ins = box(first && first.querySelector("pre.out-new ins"));
  out.heads = Array.prototype.map.call(document.querySelectorAll("#summary th.variant-head"), box);
  out.summary = box(document.getElementById("summary"));
  out.matrix_gates = box(document.querySelector("#failing-gates li"));
  out.del = box(first && first.querySelector("pre.out-baseline del"));
  ["failing-gates", "items-section", "moved-slices", "scorers", "gates", "charts-section", "all-slices",
   "matrix-summary"].forEach(function (id) {
    var el = document.getElementById(id);
    if (el) out.sections[id] = el.getBoundingClientRect().top + window.scrollY;
  });
  // anything whose content is wider than its box and cut off (not a scroll box of its own)
  Array.prototype.forEach.call(document.querySelectorAll("table, td, th, pre, code, h1, h2, p, section, div"),
    function (el) {
      var st = getComputedStyle(el);
      if (el.offsetParent === null || st.overflowX === "auto" || st.overflowX === "scroll") return;
      if (el.scrollWidth > el.clientWidth + 1 && st.overflowX === "hidden")
        out.clipped.push(el.tagName + "#" + el.id + "." + el.className);
    });
  out.scroll_boxes = Array.prototype.filter.call(document.querySelectorAll(".scroll"), function (el) {
    return el.offsetParent !== null && el.scrollWidth > el.clientWidth + 1; }).map(function (el) {
      return (el.firstElementChild || el).id || el.className; });
  var pre = document.createElement("pre"); pre.id = "layout"; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();</script>"""


def layout(report: Path, width: int, height: int) -> tuple[dict, list[str]]:
    """Measure ``report`` in a viewport of exactly ``width`` x ``height``: an iframe of that
    size (a headless window's own viewport is never below 500 px wide and loses its toolbar's
    height), whose probe writes into the frame around it (same origin: file access allowed)."""
    copy = report.with_name(f"{report.stem}.{width}.layout.html")
    probe = LAYOUT.replace('document.body.appendChild(pre);', 'parent.document.body.appendChild(pre);')
    copy.write_text(report.read_text(encoding="utf-8").replace("</body>", probe + "</body>"), encoding="utf-8")
    frame = report.with_name(f"{report.stem}.{width}.frame.html")
    frame.write_text(f'<!DOCTYPE html><html><body style="margin:0"><iframe src="{copy.name}" width="{width}" '
                     f'height="{height}" style="border:0;display:block"></iframe></body></html>', encoding="utf-8")
    proc = _chromium(f"--window-size={width + 200},{height + 300}", "--hide-scrollbars",
                     "--allow-file-access-from-files", "--dump-dom", frame.as_uri(),
                     profile=report.parent / f"chrome-layout-{width}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    m = re.search(r'<pre id="layout">(.*?)</pre>', proc.stdout, re.S)
    assert m, "the layout probe did not run"
    return json.loads(html_mod.unescape(m.group(1))), console_messages(proc.stderr)


def on_first_screen(b: dict | None, found: dict) -> bool:
    return b is not None and b["height"] > 0 and b["top"] >= 0 and b["bottom"] <= found["vh"] \
        and b["left"] >= 0 and b["right"] <= found["vw"]


@needs_chromium
def test_first_screen_at_1280x800_has_verdict_failing_gates_and_first_regression(tmp_path):
    v = suite30_verdict()
    report = tmp_path / "report.html"
    report.write_text(render_html(v), encoding="utf-8")
    found, console = layout(report, 1280, 800)
    assert console == []
    assert (found["vw"], found["vh"]) == (1280, 800), found
    assert on_first_screen(found["verdict"], found) and found["verdict"]["text"].startswith("FAIL · support-qa")
    assert on_first_screen(found["reason"], found) and "2 of 4 gates failed" in found["reason"]["text"]
    assert len(found["gates"]) == 2 and all(on_first_screen(g, found) for g in found["gates"]), found["gates"]
    assert "exact_match.pass_rate >= 0.9" in found["gates"][0]["text"]
    # the first item shown is the worst regression, with its change marked, all on the first screen
    first = v.comparison.regressed[0]
    assert found["first_item_status"] == "regressed" and found["first_item_id"] == first.item_id
    assert on_first_screen(found["first_item"], found), found["first_item"]
    assert on_first_screen(found["ins"], found) and on_first_screen(found["del"], found)
    # the reviewer's order, then everything else
    s = found["sections"]
    order = ["failing-gates", "items-section", "moved-slices", "scorers", "gates", "charts-section", "all-slices"]
    assert [k for k in order if k in s] == order and [s[k] for k in order] == sorted(s[k] for k in order), s
    # no horizontal clipping at 1280 px: the page is as wide as the window, no table scrolls sideways
    assert found["page_width"] <= 1280 and found["clipped"] == [] and found["scroll_boxes"] == [], found
    # opened, the charts and the full slice table fit too
    opened = tmp_path / "opened.html"
    opened.write_text(report.read_text(encoding="utf-8").replace("<details ", "<details open "), encoding="utf-8")
    wide, console = layout(opened, 1280, 800)
    assert console == [] and wide["page_width"] <= 1280 and wide["clipped"] == [] and wide["scroll_boxes"] == []
    w, h, console = screenshot(report, tmp_path / "first-screen.png", width=1280, height=800)
    assert (w, h) == (1280, 800) and console == []
    assert (tmp_path / "first-screen.png").stat().st_size > 20_000  # a picture, not a blank page


@needs_chromium
def test_phone_width_390_keeps_the_page_within_the_screen(tmp_path):
    report = tmp_path / "report.html"
    report.write_text(render_html(suite30_verdict()), encoding="utf-8")
    found, console = layout(report, 390, 844)
    assert console == []
    assert found["vw"] == 390 and found["page_width"] <= 390, found["page_width"]
    assert on_first_screen(found["verdict"], found) and on_first_screen(found["reason"], found)
    assert found["first_item_status"] == "regressed" and found["clipped"] == []
    w, h, console = screenshot(report, tmp_path / "phone.png", width=390, height=844)
    assert (w, h) == (390, 844) and console == []


@needs_chromium
def test_hostile_first_regression_is_text_and_still_first(tmp_path):
    evil = '<img src=x onerror=alert(1)><script>alert(2)</script> 14 days'
    report = tmp_path / "report.html"
    report.write_text(render_html(suite30_verdict(hostile=evil)), encoding="utf-8")
    page = report.read_text()
    assert "<img src=x" not in page and page.count("<script") == 1
    found, console = layout(report, 1280, 800)
    assert console == []
    assert found["first_item_status"] == "regressed" and on_first_screen(found["first_item"], found)
