"""Reports: markdown size budget and escaping, JUnit against the published schema, HTML
escaping and filters in a real headless Chromium, JSON and console content."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from evalrun.compare import compare
from evalrun.gates import evaluate, parse_gates
from evalrun.records import Record, Score
from evalrun.report.console import render_console_text
from evalrun.report.html import render_html
from evalrun.report.json import render_json
from evalrun.report.junit import render_junit
from evalrun.report.markdown import LIMIT, render_markdown
from evalrun.verdict import Verdict

XSD = Path(__file__).parent / "data" / "junit.xsd"
HOSTILE = "<script>alert(1)</script>"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def r(item, ok, *, trial=0, output="ok", error=None, tags=None, reason=None):
    scores = {} if error else {"em": Score(float(ok), ok, reason)}
    return Record(item, trial, f"question {item}", f"answer {item}", None if error else output,
                  {"type": error, "message": "took too long"} if error else None, 12.5, None, scores,
                  {"tags": tags} if tags else {})


def make_verdict(n_regressed=3, output_len=10, gates=None) -> Verdict:
    base, cand = [], []
    for i in range(n_regressed):
        base.append(r(f"reg{i}", True, output=f"good {i}"))
        cand.append(r(f"reg{i}", False, output=("x|*_`" * output_len)[:output_len * 5] + f" bad {i}",
                      reason="not equal", tags=["critical"] if i == 0 else None))
    base += [r("hostile", True, output="fine"), r("same", True), r("imp", False), r("err", True), r("gone", True)]
    cand += [r("hostile", False, output=HOSTILE + "\x00\x07 | pipe"), r("same", True), r("imp", True),
             r("err", None, error="Timeout"), r("fresh", False, output="new one")]
    for t in range(3):
        base.append(r("wobbly", True, trial=t))
        cand.append(r("wobbly", t != 1, trial=t))
    # the single-trial items get a trial count of 1; give "same" etc. only one: the mix is what matters here
    cmp = compare(cand, base, run={"run_id": "run-2", "eval": "demo", "started_at": "2026-01-02T03:04:05+00:00"},
                  baseline_info={"source": "run-1", "run_id": "run-1", "eval": "demo"})
    gate_list = parse_gates(gates if gates is not None else
                            ["em.pass_rate >= 0.9", "em.mean >= baseline - 0.02", {"no_regressions": {"tag": "critical"}},
                             "errors <= 50%"], scorers=["em"], repeat=3)
    return Verdict(cmp, evaluate(gate_list, cmp, "significant"), "significant")


def test_markdown_small_report():
    md = render_markdown(make_verdict())
    assert md.startswith("## ❌ evalrun: demo · run run-2 vs baseline run-1 — failed")
    assert "### Failing gates (significant)" in md and "### Regressed items (5)" in md
    assert md.index("### Failing gates") < md.index("### Regressed items") < md.index("### Scorers")
    assert "### Flaky items (1)" in md and "**New items (1):** `fresh`" in md and "**Removed items (1):** `gone`" in md
    # a model's output cannot open HTML or break the table
    assert HOSTILE not in md and "&lt;script&gt;alert(1)&lt;/script&gt;" in md
    row = next(line for line in md.splitlines() if line.startswith("| `hostile`"))
    assert row.count(" | ") == 3  # four cells (item, change, expected, scores): the '|' in the output is escaped
    assert "\\|" in row


def test_markdown_stays_under_github_limit_and_says_what_it_left_out():
    v = make_verdict(n_regressed=3000, output_len=200)
    md = render_markdown(v)
    assert len(md) <= LIMIT
    m = re.search(r"… and (\d+) more regressed items not shown", md)
    assert m, md[-500:]
    section = md.split("### Regressed items")[1].split("###")[0]
    shown = sum(1 for line in section.splitlines() if line.startswith("| `"))
    assert shown + int(m.group(1)) == 3002  # 3000 + hostile + err: every regressed item is counted
    assert shown > 50
    assert "### Failing gates" in md and "em.mean >= baseline - 0.02" in md  # the summary always survives
    assert "### Scorers" in md and md.index("### Scorers") > md.index("### Regressed items")


def test_junit_validates_against_published_schema(tmp_path):
    xmlschema = pytest.importorskip("xmlschema")
    schema = xmlschema.XMLSchema(str(XSD))
    v = make_verdict()
    xml = render_junit(v)
    path = tmp_path / "junit.xml"
    path.write_text(xml, encoding="utf-8")
    schema.validate(str(path))  # raises with the offending element when invalid
    import xml.etree.ElementTree as ET

    root = ET.parse(path).getroot()
    items, gates = root.findall("testsuite")
    cases = {c.get("name"): c for c in items.findall("testcase")}
    # one testcase per item that ran (the removed one did not)
    assert set(cases) == {i.item_id for i in v.comparison.items if i.candidate}
    assert cases["reg0"].find("failure").get("type") == "regressed"
    assert "not equal" in cases["reg0"].find("failure").text
    assert cases["err"].find("error").get("type") == "Timeout"
    assert cases["wobbly"].find("failure").get("type") == "flaky"
    assert cases["same"].find("failure") is None and cases["imp"].find("failure") is None
    assert int(items.get("tests")) == len(cases)
    assert int(items.get("failures")) == sum(1 for c in cases.values() if c.find("failure") is not None)
    assert HOSTILE in cases["hostile"].find("failure").text  # escaped by the XML writer, intact when read
    assert [c.get("name") for c in gates.findall("testcase") if c.find("failure") is not None] == \
        [g.gate.text for g in v.failed_gates]


def test_junit_schema_rejects_what_it_should(tmp_path):
    xmlschema = pytest.importorskip("xmlschema")
    schema = xmlschema.XMLSchema(str(XSD))
    bad = render_junit(make_verdict()).replace("<properties", "<props", 1).replace("</properties>", "</props>", 1)
    assert not schema.is_valid(bad)


def test_json_report_is_the_comparison_as_data():
    data = json.loads(render_json(make_verdict()))
    assert data["verdict"] == "fail"
    assert {g["gate"] for g in data["gates"]} >= {"em.pass_rate >= 0.9"}
    assert data["comparison"]["counts"]["regressed"] == 5
    item = next(i for i in data["comparison"]["items"] if i["item_id"] == "hostile")
    assert item["candidate"][0]["output"].startswith(HOSTILE)
    assert data["comparison"]["scorers"]["em"]["paired"]["pass_rate"]["n"] > 0


def test_console_report_shows_items_and_gates():
    text = render_console_text(make_verdict())
    assert "regressed items (5)" in text and "expected: answer reg0" in text
    assert "baseline: good 0" in text and "new:" in text
    assert "FAIL" in text and "no_regressions: {tag: critical}" in text and "verdict: FAIL" in text
    assert "flaky items (1): wobbly" in text and "new items (1): fresh" in text


def test_html_escapes_model_output():
    html = render_html(make_verdict())
    assert HOSTILE not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.count("<script") == 1  # only the report's own filter script
    assert "http://" not in html and "https://" not in html  # self-contained: nothing fetched


def _dump_dom(path: Path, fragment: str = "") -> str:
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--no-first-run", "--disable-extensions", f"--user-data-dir={path.parent / 'chrome-profile'}",
         "--dump-dom", path.as_uri() + fragment],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def _rows(dom: str) -> dict[str, bool]:
    """item id -> visible, from the DOM Chromium rendered."""
    out = {}
    for m in re.finditer(r'<tr class="item"([^>]*)>\s*<td><code>([^<]*)</code>', dom):
        out[m.group(2)] = "hidden" not in m.group(1)
    return out


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium)")
def test_html_in_headless_chromium(tmp_path):
    path = tmp_path / "report.html"
    path.write_text(render_html(make_verdict()), encoding="utf-8")
    dom = _dump_dom(path)
    # the hostile output is text in a <pre>, not an element
    assert re.search(r'<pre class="out-new"><ins>&lt;script&gt;alert\(1\)&lt;/script&gt;', dom)  # in its diff
    assert dom.count("<script") == 1
    rows = _rows(dom)
    # every item is in the page, the regressions first and alone shown at first
    assert len(rows) == 10 and {k for k, v in rows.items() if v} == {"reg0", "reg1", "reg2", "hostile", "err"}
    assert list(rows)[:5] == [it.item_id for it in make_verdict().comparison.regressed]
    assert "5 of 10 items shown" in dom
    every = _rows(_dump_dom(path, "#filter=all"))
    assert len(every) == 10 and all(every.values()) and "10 of 10 items shown" in _dump_dom(path, "#filter=all")

    regressed = _rows(_dump_dom(path, "#filter=regressed"))
    assert {k for k, v in regressed.items() if v} == {"reg0", "reg1", "reg2", "hostile", "err"}
    flaky = _rows(_dump_dom(path, "#filter=flaky"))
    assert {k for k, v in flaky.items() if v} == {"wobbly"}
    failed = _rows(_dump_dom(path, "#filter=failed"))
    assert {k for k, v in failed.items() if v} == {"reg0", "reg1", "reg2", "hostile", "err", "fresh"}

    # the charts: laid out at sane sizes with marks and labels, in a screenshot, no console message
    from tests.test_slices_browser import assert_charts_rendered, probe, screenshot

    found, console = probe(path)
    assert console == []
    assert_charts_rendered(found, {"diff-em", "latency"})
    width, height, console = screenshot(path, tmp_path / "report.png")
    assert (width, height) == (1280, 2400) and console == []
    assert all(c["top"] + c["height"] < height for c in found["charts"])
