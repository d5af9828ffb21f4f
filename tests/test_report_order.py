"""The reading order of every report (issue 24): the verdict and its reason, the failing
gates, the regressed items with the change in their output, the slices that moved, then
everything else; the slices ranked by evidence of harm; a compact console at 100 columns.

Checked on the 30-item suite the issue was found on (tests/suite30.py: 4 regressions, 54
slice rows, two failing gates), in process and through the real CLI."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from evalrun.report._common import clip_diff, moved_slices, word_diff
from evalrun.report.console import render_console_text
from tests.conftest import invoke_cli
from tests.suite30 import GATES, REGRESSIONS, _others, suite30_verdict

INTERVAL = re.compile(r"\[[-+]\d\.\d{3}, [-+]\d\.\d{3}\]")


def _first_index(lines: list[str], needle: str) -> int:
    return next(i for i, ln in enumerate(lines) if needle in ln)


# --- slices ranked by evidence of harm -------------------------------------------------------

def test_the_critical_slice_ranks_near_the_top_and_no_zero_change_above_a_drop():
    v = suite30_verdict()
    rows = v.slices.rows
    assert len(rows) == 54
    critical = [i for i, r in enumerate(rows) if r.label == "tag=critical"]
    # 1.0 -> 0.8 with 2 regressions: among the first rows (it was row 13+ ranked by the upper bound)
    assert min(critical) < 5, [(r.label, r.scorer) for r in rows[:8]]
    harmful = [i for i, r in enumerate(rows) if r.diff is not None and (r.diff.diff < 0 or r.regressions)]
    unchanged = [i for i, r in enumerate(rows) if r.diff is not None and r.diff.diff == 0 and not r.regressions]
    assert harmful and unchanged
    # a zero-width interval at 0 (nothing moved) never ranks above a negative estimate or a regression
    zero_width = [i for i in unchanged if rows[i].diff.lo == rows[i].diff.hi == 0]
    assert zero_width and max(harmful) < min(zero_width)
    # rows the interval is sure of come first, then the rest by the interval's upper end
    sure = [i for i, r in enumerate(rows) if r.change == "drop"]
    assert sure == list(range(len(sure)))
    spread = [i for i in harmful if rows[i].change != "drop" and rows[i].diff.has_interval
              and rows[i].diff.hi > rows[i].diff.lo]
    assert [rows[i].diff.hi for i in spread] == sorted(rows[i].diff.hi for i in spread)
    # a tiny slice's zero-width interval below 0 (two items that moved alike) has no known bound:
    # it ranks after every slice with a real interval, like a one-item slice
    degenerate = [i for i in harmful if rows[i].change != "drop" and rows[i].diff.lo == rows[i].diff.hi]
    assert degenerate and min(degenerate) > max(spread)


def test_moved_slices_are_the_harmful_and_the_changed_rows_in_rank_order():
    v = suite30_verdict()
    moved = moved_slices(v.slices.rows)
    assert moved == [r for r in v.slices.rows if r in moved]  # rank order kept
    assert all(r.diff.diff != 0 or r.regressions or r.improvements for r in moved)
    assert {r.label for r in moved} >= {"tag=critical", "tag=refunds", "metadata.language=en"}
    assert not any(r.label == "tag=gift-cards" for r in moved)  # nothing moved there


# --- word diff -------------------------------------------------------------------------------

def test_word_diff_marks_the_changed_words_only():
    assert word_diff("within 30 days of purchase", "within 14 days of purchase") == [
        ("=", "within "), ("-", "30"), ("+", "14"), ("=", " days of purchase")]
    # neighbouring changed words read as one change
    runs = word_diff("Die Kündigung ist jederzeit kostenlos.", "Die Kündigung kostet 10 Euro.")
    assert runs == [("=", "Die Kündigung "), ("-", "ist jederzeit kostenlos"), ("+", "kostet 10 Euro"), ("=", ".")]
    assert word_diff("same", "same") == [("=", "same")]
    assert word_diff("", "new") == [("+", "new")]
    big = "x" * 6000
    assert word_diff(big, big + "y") == [("-", big), ("+", big + "y")]  # not diffed: bounded time
    # the text is kept: joining the runs gives each side back
    a, b = "a b\nc  d", "a B\nc d e"
    runs = word_diff(a, b)
    assert "".join(t for op, t in runs if op != "+") == a and "".join(t for op, t in runs if op != "-") == b


def test_clip_diff_keeps_the_change_and_context_within_the_limit():
    old = "word " * 40 + "30 days" + " more" * 40
    new = "word " * 40 + "14 days" + " more" * 40
    runs = clip_diff(word_diff(old, new), 60)
    text = "".join(t for _, t in runs)
    assert len(text) <= 61 and ("-", "30") in runs and ("+", "14") in runs and text.startswith("…")


# --- the console -----------------------------------------------------------------------------

def test_console_first_25_lines_at_100_columns_answer_the_reviewer():
    v = suite30_verdict()
    text = render_console_text(v, width=100, wide=False)
    lines = text.splitlines()
    assert all(len(ln) <= 100 for ln in lines), max(lines, key=len)
    top = lines[:25]
    first = v.comparison.regressed[0]
    assert top[0].startswith("FAIL · support-qa")
    assert "2 of 4 gates failed" in top[1] and "4 of 30 paired items regressed" in top[1]
    gate = _first_index(top, "✗ FAIL exact_match.pass_rate >= 0.9")
    critical_gate = _first_index(top, "✗ FAIL no_regressions: {tag: critical}")
    item = _first_index(top, f"- {first.item_id} ")
    change = top[item + 1]
    assert "[-" in change and "{+" in change  # the highlighted change, right under the item
    slices = _first_index(top, "slices that moved")
    critical = _first_index(top, "tag=critical")
    assert 0 < gate < critical_gate < item < slices < critical < 25
    # everything else after
    assert _first_index(lines, "scorers") > slices
    assert _first_index(lines, "✓ PASS similarity.mean") > _first_index(lines, "scorers")
    assert lines[-1] == "verdict: FAIL (2 of 4 gates failed)"
    # nothing cut: scorer names and intervals whole (at 140 columns they were `has_fa…`, `[-0.27…`)
    for name in ("exact_match", "has_facts", "similarity"):
        assert any(ln.startswith(name) for ln in lines)
    assert len(INTERVAL.findall(text)) >= 6 and "…" not in "".join(lines[_first_index(lines, "scorers"):])


def test_every_regression_shows_its_change_in_the_console():
    text = render_console_text(suite30_verdict(), width=100, wide=False)
    assert "within [-30-]{+14+} days" in text
    assert "[-ist jederzeit kostenlos möglich-]{+kostet eine Gebühr von 10 Euro+}" in text
    assert "pendant [-deux ans-]{+un an+}" in text
    assert "takes [-5-]{+2+} to [-10 business days-]{+3 weeks+}" in text


def test_single_run_console_fits_80_columns():
    from evalrun.compare import compare
    from evalrun.slices import slice_report
    from evalrun.verdict import Verdict

    v = suite30_verdict()
    cmp = compare([it.candidate[0] for it in v.comparison.items], None, run={"run_id": "r1", "eval": "support-qa"})
    single = Verdict(cmp, [], "significant", slices=slice_report(cmp, ["tags", "metadata.language"]))
    lines = render_console_text(single, width=80, wide=False).splitlines()
    assert all(len(ln) <= 80 for ln in lines), max(lines, key=len)
    assert lines[0] == "PASS · support-qa · run r1" and "no baseline" in lines[1]
    assert any(ln.startswith("exact_match") and "[0.693, 0.962]" in ln for ln in lines)


def test_wide_console_has_every_column_and_the_full_items_in_the_same_order():
    v = suite30_verdict()
    lines = render_console_text(v, width=200).splitlines()
    text = "\n".join(lines)
    for col in ("McNemar p", "detectable drop", "baseline", "improved"):
        assert col in text
    first = v.comparison.regressed[0]
    order = [_first_index(lines, "FAIL · "), _first_index(lines, "✗ FAIL exact_match.pass_rate"),
             _first_index(lines, f"- {first.item_id} "), _first_index(lines, "    change:   "),
             _first_index(lines, "slices by tags"), _first_index(lines, "McNemar p"), _first_index(lines, "gates (")]
    assert order == sorted(order)


def test_hostile_output_stays_inert_in_the_compact_diff():
    v = suite30_verdict(hostile="\x1b[2J\x1b]8;;http://evil\x07click\u202e 14 days")
    text = render_console_text(v, width=100, wide=False)
    assert "\x1b" not in text and "\u202e" not in text and "\x07" not in text
    assert "\\x1b[2J" in text


# --- through the real CLI ----------------------------------------------------------------------

TARGET = '''
import json, os

OUT = json.load(open(os.path.join(os.path.dirname(__file__), "outputs.json")))

def answer(question):
    old, new = OUT[question]
    return new if os.environ.get("VARIANT") == "new" else old
'''


def suite30_project(root: Path) -> Path:
    """The 30-item suite as an eval file, a dataset and a python target (exact_match against
    the baseline's answers, sliced on tags and language, the issue's gates)."""
    root.mkdir(parents=True)
    outputs, items = {}, []
    for item, lang, tags, old, new in REGRESSIONS:
        outputs[f"Q {item}"] = (old, new)
        items.append({"id": item, "input": f"Q {item}", "expected_output": old,
                      "metadata": {"tags": tags, "language": lang}})
    for item, lang, tags, out in _others():
        outputs[f"Q {item}"] = (out, out)
        items.append({"id": item, "input": f"Q {item}", "expected_output": out,
                      "metadata": {"tags": tags, "language": lang}})
    import json

    (root / "outputs.json").write_text(json.dumps(outputs))
    (root / "tgt.py").write_text(TARGET)
    (root / "data.yaml").write_text(yaml.safe_dump({"items": items}, allow_unicode=True))
    gates = [g for g in GATES if not str(g).startswith(("similarity", "has_facts"))]
    (root / "eval.yaml").write_text(yaml.safe_dump({
        "name": "support-qa", "dataset": "data.yaml", "target": {"python": "tgt:answer"},
        "scorers": ["exact_match"], "slices": ["tags", "metadata.language"], "gates": gates}))
    return root


def test_cli_run_console_at_100_columns_leads_with_the_verdict_gate_and_change(tmp_path):
    root = suite30_project(tmp_path / "p")
    base = invoke_cli("run", "eval.yaml", "-q", cwd=root, env={"VARIANT": "old"})
    assert base.returncode == 0, base.stdout + base.stderr
    assert invoke_cli("baseline", "set", "latest", cwd=root).returncode == 0
    res = invoke_cli("run", "eval.yaml", cwd=root, env={"VARIANT": "new", "COLUMNS": "100"})
    assert res.returncode == 1, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert all(len(ln) <= 100 for ln in lines), max(lines, key=len)
    top = lines[:25]
    assert top[0].startswith("FAIL · support-qa · run ")
    assert _first_index(top, "✗ FAIL exact_match.pass_rate >= 0.9") < _first_index(top, "regressed items (4)")
    assert any("within [-30-]{+14+} days" in ln for ln in top)
    assert _first_index(top, "slices that moved") < _first_index(top, "tag=critical")
    wide = invoke_cli("compare", "latest", "--wide", cwd=root, env={"COLUMNS": "200"})
    assert wide.returncode == 1 and "McNemar p" in wide.stdout and "    change:   " in wide.stdout


# --- markdown and the PR comment -------------------------------------------------------------

def test_markdown_and_pr_comment_lead_with_verdict_failing_gate_and_the_highlighted_change():
    from evalrun.github import comment_body
    from evalrun.report.markdown import render_markdown

    v = suite30_verdict()
    md = render_markdown(v)
    body = comment_body(md, "evalrun")
    first = v.comparison.regressed[0]
    # the top of the comment: what GitHub shows before "show more" (a few thousand characters)
    top = body[:2500]
    assert "❌ evalrun: support-qa" in top.splitlines()[1] and "— failed" in top.splitlines()[1]
    assert "**2 of 4 gates failed · 4 of 30 paired items regressed, 0 improved**" in top
    assert "`exact_match.pass_rate >= 0.9`" in top
    row = next(ln for ln in top.splitlines() if ln.startswith(f"| `{first.item_id}`"))
    assert "<del>" in row and "<ins>" in row
    assert "within <del>30</del><ins>14</ins> days" in md
    sections = ["### Failing gates", "### Regressed items (4)", "### Slices that moved", "### Scorers",
                "### Other gates", "<details><summary>All slices"]
    at = [md.index(s) for s in sections]
    assert at == sorted(at), list(zip(sections, at, strict=True))
    moved = md.split("### Slices that moved")[1].split("### Scorers")[0]
    assert "| tag=critical |" in moved and "| tag=gift-cards |" not in moved  # only slices that moved


def test_markdown_diff_cell_is_inert():
    from evalrun.report.markdown import render_markdown

    md = render_markdown(suite30_verdict(hostile="<details><script>x</script> | @org/team 14 days"))
    row = next(ln for ln in md.splitlines() if ln.startswith("| `refund-window`"))
    assert "<script>" not in row and "&lt;script&gt;" in row and "<details>" not in row
    assert row.count(" | ") == 3 and "@org/team" not in row  # the pipe escaped, the mention defused


# --- HTML order, without a browser (the browser checks are in tests/test_report_browser.py) ---

def test_html_order_and_regressions_shown_first_by_default():
    from evalrun.report.html import render_html

    v = suite30_verdict()
    page = render_html(v)
    marks = ['id="verdict"', 'id="reason"', 'id="failing-gates"', 'id="items-section"', 'id="moved-slices"',
             'id="scorers"', 'id="gates"', 'id="charts-section"', 'id="all-slices"']
    at = [page.index(m) for m in marks]
    assert at == sorted(at)
    assert '<details id="charts-section">' in page and '<details id="all-slices">' in page  # collapsed
    rows = re.findall(r'<tr class="item" data-status="(\w+)"[^>]*?( hidden)?><td><code>([^<]*)</code>', page)
    assert [r[2] for r in rows[:4]] == [it.item_id for it in v.comparison.regressed]
    assert all(not r[1] for r in rows[:4]) and all(r[1] for r in rows[4:])  # only the regressions shown at first
    assert "within <del>30</del> days" in page and "within <ins>14</ins> days" in page


# --- history: a variant group is one row per variant, one point of the trend -------------------

def test_history_shows_a_variant_group_one_row_per_variant_and_one_trend_point(tmp_path):
    from tests.test_variants import project

    project(tmp_path, n=40)
    home = str(tmp_path / ".evalrun")
    plain = tmp_path / "plain.yaml"
    plain.write_text((tmp_path / "eval.yaml").read_text().split("variants:")[0])
    assert invoke_cli("run", "plain.yaml", "-q", "--output-dir", home, cwd=tmp_path).returncode == 0
    r = invoke_cli("run", "eval.yaml", "-q", "--output-dir", home, cwd=tmp_path)
    assert r.returncode == 1, r.stderr  # the worse variant fails its gate
    h = invoke_cli("history", "eval.yaml", "--output-dir", home, cwd=tmp_path, env={"COLUMNS": "220"})
    assert h.returncode == 0, h.stderr
    out = h.stdout
    rows = [ln for ln in out.splitlines() if "│" in ln and "run" not in ln.split("│")[0]]
    assert len(rows) == 4, out  # the plain run, then the group's three variants
    variants = [ln.split("│")[2].strip() for ln in rows]
    assert variants[0] == "" and variants[1].startswith("group ") and variants[1].endswith(": control (ref)")
    assert variants[2:] == ["worse", "pricey"]
    # the trend: the plain run and the group's reference, not the variants one after another
    trend = next(ln for ln in out.splitlines() if ln.startswith("exact_match: "))
    assert len(trend) == len("exact_match: ") + 2, trend
    assert "a variant group counts once" in out


# --- the run console says what the run spent -------------------------------------------------

def test_run_console_with_a_verdict_shows_judge_usage_cost_and_cache_hits(tmp_path):
    import json

    from tests.openai_server import OpenAIServer
    from tests.test_judge_cli import _suite

    suite = _suite(tmp_path)
    home = str(tmp_path / "home")
    with OpenAIServer() as srv:
        env = {"OPENAI_API_KEY": "sk-test-0000", "JUDGE_URL": srv.url, "COLUMNS": "100"}
        first = invoke_cli("run", "eval.yaml", "--output-dir", home, "--json", cwd=suite, env=env)
        assert first.returncode == 0, first.stderr
        calls = json.loads(first.stdout)["scorer_usage"]["judge"]["calls"]
        again = invoke_cli("run", "eval.yaml", "--output-dir", home, "--baseline", json.loads(first.stdout)["run_id"],
                           cwd=suite, env=env)
    assert again.returncode == 0, again.stderr
    out = again.stdout
    assert out.startswith("PASS · ") and "vs baseline" in out.splitlines()[0]  # the verdict view, not the summary
    judge = next(ln for ln in out.splitlines() if ln.startswith("judge: "))
    assert f"cache hits {calls}" in judge and "calls" not in judge.replace("cache hits", "")  # every verdict cached


# --- progress: the ETA waits for a warm-up and counts completed calls only --------------------

class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_eta_ignores_start_up_and_waits_for_a_warm_up(monkeypatch, capsys):
    from evalrun import progress as progress_mod

    clock = _Clock()
    monkeypatch.setattr(progress_mod.time, "monotonic", clock)
    p = progress_mod.Progress("lines", "suite", interval=0.0)
    p.start(100)
    clock.now += 5.0  # a model loading: no call completes for 5 s
    p.advance(1)
    assert p.eta() == "warming up"
    for _ in range(4):
        clock.now += 0.125  # exact in binary: no rounding at the warm-up's edge
        p.advance(1)
    assert p.eta() == "warming up"  # 4 completions after the first: still warming up
    for _ in range(6):
        clock.now += 0.125  # exact in binary: no rounding at the warm-up's edge
        p.advance(1)
    # 10 completions in the 1.25 s since the first: 8/s, 89 left -> 11 s (start-up counted: 11 in 6.25 s, 51 s)
    assert p.eta() == "11s"
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "suite: 1/100 (1%) ETA warming up errors 0"
    assert lines[-1] == "suite: 11/100 (11%) 8.0/s ETA 11s errors 0"
    p.advance(89)
    assert p.eta() == "0s"


def test_a_slice_of_new_items_neither_ranks_first_nor_counts_as_moved():
    from dataclasses import replace

    from evalrun.compare import compare
    from evalrun.slices import slice_report

    v = suite30_verdict()
    cand = [it.candidate[0] for it in v.comparison.items]
    base = [it.baseline[0] for it in v.comparison.items]
    extra = cand[-1]
    fresh = [replace(extra, item_id=f"fresh-{k}", metadata={"tags": ["brand-new"], "language": "en"},
                     scores={n: type(s)(0.0, False) for n, s in extra.scores.items()}) for k in range(3)]
    cmp = compare(cand + fresh, base, run={"run_id": "r", "eval": "e"}, baseline_info={"source": "b"})
    rows = slice_report(cmp, ["tags"]).rows
    new_rows = [i for i, r in enumerate(rows) if r.value == "brand-new"]
    assert new_rows and all(rows[i].diff is None for i in new_rows)  # nothing to pair them with
    assert min(new_rows) > max(i for i, r in enumerate(rows) if r.value == "critical")
    assert not any(r.value == "brand-new" for r in moved_slices(rows))
