"""Slices: per-slice paired statistics (checked against scipy), the gate selector, and the
'only one tag regressed' suite through the real CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats as sps

from evalrun.compare import compare
from evalrun.errors import UsageError
from evalrun.gates import evaluate, parse_gates
from evalrun.records import Record, Score
from evalrun.report.markdown import LIMIT, render_markdown
from evalrun.slices import TINY, slice_report
from evalrun.verdict import Verdict
from tests.conftest import invoke_cli

TAGS = ["math", "geo", "hist", "code"]


def tag_of(n: int) -> str:
    return TAGS[n // 30]


def base_ok(n: int) -> bool:
    return n % 10 != 3  # 10% failures in every tag


def bad_ok(n: int) -> bool:
    return base_ok(n) and not (tag_of(n) == "math" and n % 5 == 1)  # math: 30% failures


def worse_ok(n: int) -> bool:
    # math: 50% failures, a drop that stays significant when the table's six rows are one family
    return bad_ok(n) and not (tag_of(n) == "math" and n % 5 == 2)


def rec(n: int, ok: bool, meta: dict | None = None, value: float | None = None) -> Record:
    v = float(ok) if value is None else value
    return Record(f"q{n:03d}", 0, str(n), str(2 * n), "x", None, 10.0 + n, None, {"em": Score(v, ok)},
                  meta if meta is not None else {"tags": [tag_of(n)], "language": "de" if n % 2 else "en"})


def suite_comparison():
    base = [rec(n, base_ok(n)) for n in range(120)]
    cand = [rec(n, worse_ok(n)) for n in range(120)]
    return compare(cand, base, run={"run_id": "r2", "eval": "demo"}, baseline_info={"source": "r1", "run_id": "r1"})


def test_only_the_regressed_tag_is_named_first_with_scipy_checked_numbers():
    cmp = suite_comparison()
    rep = slice_report(cmp, ["tags", "metadata.language"])
    first = rep.rows[0]
    assert (first.key, first.value, first.scorer) == ("tags", "math", "em")
    assert first.change == "drop" and first.regressions == 12 and first.improvements == 0
    ids = [n for n in range(120) if tag_of(n) == "math"]
    c = np.array([float(worse_ok(n)) for n in ids])
    b = np.array([float(base_ok(n)) for n in ids])
    # pass/fail data: Agresti & Min's paired interval (half a count added to each cell of the
    # 2x2 table, then Wald), written out here from the paper; McNemar's exact p from scipy
    worse, better, n = int(np.sum(c < b)), int(np.sum(c > b)), len(c)
    p12, p21 = (worse + 0.5) / (n + 2), (better + 0.5) / (n + 2)
    half = sps.norm.ppf(0.975) * math.sqrt(((p12 + p21) - (p12 - p21) ** 2) / (n + 2))
    assert first.diff.diff == pytest.approx(float(np.mean(c - b)))
    assert (first.diff.lo, first.diff.hi) == (pytest.approx(p21 - p12 - half, abs=1e-9),
                                              pytest.approx(p21 - p12 + half, abs=1e-9))
    assert first.diff.p_value == pytest.approx(sps.binomtest(worse, worse + better, 0.5).pvalue, rel=1e-6)
    # the candidate's own interval: exact (Clopper-Pearson) on the slice's items, as summary.json
    m, mlo, mhi = first.mean, first.lo, first.hi
    ref = sps.binomtest(int(c.sum()), len(c)).proportion_ci(0.95, method="exact")
    assert m == pytest.approx(c.mean()) and (mlo, mhi) == (pytest.approx(ref.low), pytest.approx(ref.high))
    # the other tags did not move
    others = [r for r in rep.rows if r.key == "tags" and r.value != "math"]
    assert len(others) == 3 and all(r.diff.diff == 0 and r.change == "" for r in others)
    assert {r.value for r in rep.rows if r.key == "metadata.language"} == {"de", "en"}
    data = rep.to_dict()
    assert data["rows"][0]["selector"] == "tag=math" and data["rows"][0]["paired_mean"]["ci95"][1] < 0


def test_tiny_slices_are_shown_and_marked_and_sort_after_clear_drops():
    base = [rec(n, base_ok(n)) for n in range(120)] + [rec(500, True, {"tags": ["rare"]})]
    cand = [rec(n, bad_ok(n)) for n in range(120)] + [rec(500, False, {"tags": ["rare"]})]
    rep = slice_report(compare(cand, base, baseline_info={"source": "b"}), ["tags"])
    rare = next(r for r in rep.rows if r.value == "rare")
    # one item that went pass -> fail: an honest interval that spans most of [-1, 1], no "drop"
    assert rare.tiny and rare.n == 1 < TINY and rare.diff.lo < 0 < rare.diff.hi and rare.change == ""
    assert rep.rows[0].value == "math"  # a one-item -1.0 with a wide interval does not outrank a measured drop


def test_items_with_several_tags_sit_in_each_slice_and_trials_average_per_item():
    base, cand = [], []
    for n in range(12):
        meta = {"tags": ["a", "b"] if n < 6 else ["b"]}
        for t in range(3):
            base.append(Record(f"i{n}", t, "x", "y", "o", None, 1.0, None, {"em": Score(1.0, True)}, meta))
            ok = not (n < 6 and t == 0)
            cand.append(Record(f"i{n}", t, "x", "y", "o", None, 1.0, None, {"em": Score(float(ok), ok)}, meta))
    rep = slice_report(compare(cand, base, baseline_info={"source": "b"}), ["tag"])
    rows = {r.value: r for r in rep.rows}
    assert rows["a"].n == 6 and rows["b"].n == 12  # items, not trials
    assert rows["a"].diff.diff == pytest.approx(-1 / 3) and rows["b"].diff.diff == pytest.approx(-1 / 6)


def test_without_a_baseline_slices_show_means_worst_first():
    cand = [rec(n, bad_ok(n)) for n in range(120)]
    rep = slice_report(compare(cand, None), ["tags"])
    assert rep.rows[0].value == "math" and rep.rows[0].diff is None and rep.rows[0].regressions is None


# --- the gate selector ----------------------------------------------------------------------

def test_slice_gate_fails_while_the_pooled_gate_passes():
    cmp = suite_comparison()
    gates = parse_gates(["em.mean >= baseline - 0.15", "em.mean[tag=math] >= baseline - 0.02",
                         "em.pass_rate[metadata.language=de] >= 0.7", "em.pass_rate[tags=geo] >= 0.95"],
                        scorers=["em"])
    res = evaluate(gates, cmp, "significant")
    assert [r.verdict for r in res] == ["pass", "fail", "pass", "fail"]
    assert res[1].n == 30 and res[1].ci[1] < -0.02 and res[1].gate.selector == "[tag=math]"
    assert res[2].value == pytest.approx(np.mean([worse_ok(n) for n in range(1, 120, 2)]))


@pytest.mark.parametrize("gate, message", [
    ("em.mean[tag=maths] >= 0.5", "no item has tag=maths (did you mean 'math'?); values: code, geo, hist, math"),
    ("em.mean[metadata.languge=de] >= 0.5", "no item has metadata.languge (did you mean 'metadata.language'?)"),
    ("em.mean[metadata.language=dee] >= 0.5", "no item has metadata.language=dee (did you mean 'de'?)"),
])
def test_unknown_slice_key_or_value_is_a_usage_error_with_a_suggestion(gate, message):
    gates = parse_gates([gate], scorers=["em"], locate=lambda msg, i: UsageError(msg, "eval.yaml", 7 + i))
    with pytest.raises(UsageError) as e:
        evaluate(gates, suite_comparison())
    assert str(e.value).startswith(f"eval.yaml:7: gate '{gate}': ") and message in str(e.value)


@pytest.mark.parametrize("gate, message", [
    ("em.mean[lang=de] >= 0.5", "unknown slice key 'lang' (did you mean 'metadata.lang'?)"),
    ("em.mean[tag] >= 0.5", "a slice selector is [KEY=VALUE]"),
    ("errors[tag=math] <= 2", "errors is run-wide"),
    ("em.mean >= 0.5 [tag=math]", "a slice selector goes right after the statistic"),
    ("em.maen[tag=math] >= 0.5", "unknown statistic 'maen' (did you mean 'mean'?)"),
])
def test_malformed_selectors_fail_when_parsed(gate, message):
    with pytest.raises(UsageError) as e:
        parse_gates([gate], scorers=["em"])
    assert message in str(e.value)


def test_markdown_slice_table_is_compact_and_within_budget():
    base, cand = [], []
    for n in range(3000):  # 600 slices: the markdown shows the worst ten
        meta = {"tags": [f"t{n % 600}"], "note": "|*_" * 50}
        base.append(rec(n, True, meta))
        cand.append(rec(n, n % 600 != 7, meta))
    cmp = compare(cand, base, baseline_info={"source": "b"})
    v = Verdict(cmp, [], "significant", slices=slice_report(cmp, ["tags", "metadata.note"]))
    md = render_markdown(v)
    assert len(md) <= LIMIT
    # up front the two rows that moved (t7 and the pooled note slice), every row collapsed below
    assert "### Slices that moved (2; by tags, metadata.note, most evidence of harm first)" in md
    table = md.split("### Slices that moved")[1].split("\n\n")[1]
    assert table.splitlines()[2].startswith("| tag=t7 | em | 5 |")
    assert len(table.splitlines()) == 4
    full = md.split("<details><summary>All slices by tags, metadata.note (601 rows, top 60 of 601)</summary>")[1]
    assert full.split("\n\n")[1].splitlines()[2].startswith("| tag=t7 | em | 5 |")
    assert "541 more slice rows" in md


# --- through the CLI ------------------------------------------------------------------------

TARGET = '''
import os

TAGS = ["math", "geo", "hist", "code"]

def answer(x):
    n = int(x)
    wrong = n % 10 == 3 or (os.environ.get("VARIANT") in ("bad", "worse") and TAGS[n // 30] == "math" and n % 5 == 1)
    wrong = wrong or (os.environ.get("VARIANT") == "worse" and TAGS[n // 30] == "math" and n % 5 == 2)
    return str(2 * n + 1) if wrong else str(2 * n)
'''


def project(root: Path, gates: list, slices: str = "slices: [tags, metadata.language]\n") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "tgt.py").write_text(TARGET)
    items = [{"id": f"q{n:03d}", "input": str(n), "expected_output": str(2 * n),
              "metadata": {"tags": [tag_of(n)], "language": "de" if n % 2 else "en"}} for n in range(120)]
    (root / "data.yaml").write_text(yaml.safe_dump({"items": items}))
    (root / "eval.yaml").write_text("name: tagged\ndataset: data.yaml\ntarget:\n  python: tgt:answer\n"
                                    "scorers:\n  - exact_match\n" + slices + yaml.safe_dump({"gates": gates}))
    return root


def test_one_regressed_tag_through_the_cli(tmp_path):
    gates = ["exact_match.mean >= baseline - 0.15", "exact_match.mean[tag=math] >= baseline - 0.02",
             "exact_match.pass_rate[metadata.language=de] >= 0.7"]
    root = project(tmp_path / "p", gates)
    env = {"VARIANT": "good"}
    first = invoke_cli("run", "eval.yaml", cwd=root, env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert invoke_cli("baseline", "set", "latest", cwd=root).returncode == 0
    bad = invoke_cli("run", "eval.yaml", "--report", "md", "--report", "json", "--report", "html", cwd=root,
                  env={"VARIANT": "worse"})
    assert bad.returncode == 1, bad.stdout + bad.stderr
    out = bad.stdout
    table = out.split("slices that moved (")[1]
    first_row = table.splitlines()[3]  # the title's end, the header, its rule, then the worst slice
    assert "tag=math" in first_row and "drop" in first_row and "-0.400" in first_row
    assert "✓ PASS exact_match.mean >= baseline - 0.15" in out
    assert "✗ FAIL exact_match.mean[tag=math] >= baseline - 0.02" in out
    assert "✓ PASS exact_match.pass_rate[metadata.language=de]" in out
    run_dir = next(p for p in sorted((root / ".evalrun" / "runs").iterdir()) if (p / "report.md").exists())
    md = (run_dir / "report.md").read_text()
    slice_lines = [ln for ln in md.split("### Slices")[1].splitlines() if ln.startswith("| ")]
    assert slice_lines[1].startswith("| tag=math | exact\\_match | 30 |") and "**significant drop**" in slice_lines[1]
    data = json.loads((run_dir / "comparison.json").read_text())
    top = data["slices"]["rows"][0]
    assert top["selector"] == "tag=math" and top["change"] == "drop" and top["regressions"] == 12
    html = (run_dir / "report.html").read_text()
    assert '<table id="slices" class="sortable">' in html and 'id="forest"' in html

    # --slice on compare adds a key the eval file does not list
    again = invoke_cli("compare", "latest", "--slice", "metadata.language", cwd=root)
    assert again.returncode == 1 and "metadata.language=de" in again.stdout


def test_unknown_slice_value_in_a_gate_is_exit_2_at_its_line_before_the_run(tmp_path):
    root = project(tmp_path / "p", ["exact_match.mean >= 0.5", "exact_match.mean[tag=maths] >= 0.5"])
    res = invoke_cli("run", "eval.yaml", cwd=root, env={"VARIANT": "good"})
    assert res.returncode == 2, res.stdout + res.stderr
    err = res.stderr.strip().splitlines()[-1]
    lines = (root / "eval.yaml").read_text().splitlines()
    line_no = next(i + 1 for i, ln in enumerate(lines) if "maths" in ln)
    assert err.startswith(f"evalrun: error: eval.yaml:{line_no}:") and "did you mean 'math'?" in err
    assert "Traceback" not in res.stderr
    assert not (root / ".evalrun" / "runs").exists()  # checked against the dataset: no call was made


def test_a_slice_the_run_filtered_out_is_exit_2_when_judged_and_the_run_is_kept(tmp_path):
    root = project(tmp_path / "p", ["exact_match.mean[tag=math] >= 0.5"])
    res = invoke_cli("run", "eval.yaml", "--filter", "tag=geo", cwd=root, env={"VARIANT": "good"})
    assert res.returncode == 2, res.stdout + res.stderr
    err = res.stderr.strip().splitlines()[-1]
    assert "eval.yaml:" in err and "no item has tag=math; values: geo" in err and "Traceback" not in res.stderr
    runs = list((root / ".evalrun" / "runs").iterdir())
    assert len(runs) == 1 and (runs[0] / "summary.json").is_file()


def test_bad_slice_keys_are_exit_2_before_anything_runs(tmp_path):
    root = project(tmp_path / "p", [], slices="slices: [tags, category]\n")
    res = invoke_cli("run", "eval.yaml", cwd=root)
    assert res.returncode == 2 and "eval.yaml:" in res.stderr
    assert "unknown slice key 'category' (did you mean 'metadata.category'?)" in res.stderr
    root2 = project(tmp_path / "q", [])
    res = invoke_cli("run", "eval.yaml", "--slice", "tgas", cwd=root2)
    assert res.returncode == 2 and "--slice tgas: unknown slice key 'tgas' (did you mean 'tags'?)" in res.stderr
    assert not (root2 / ".evalrun" / "runs").exists() or not list((root2 / ".evalrun" / "runs").iterdir())
