"""Variants: several candidates of one eval run over the same items in one command, compared
side by side with the paired statistics a baseline comparison gets, gated, reported; sharded,
merged, killed and resumed as one group. Everything through the real CLI: in this process
(the ``cli`` fixture's :func:`invoke_cli`), in a subprocess where a signal is the point."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from tests.conftest import invoke_cli, run_cli

TARGETS = '''
import asyncio, os
from evalrun import Output

def _answer(q):
    return q["a"]

async def control(q):
    return Output(_answer(q), cost_usd=0.001)

async def worse(q):
    # wrong on every other math item; right everywhere else
    if "math" in q["tags"] and q["n"] % 2 == 0:
        return Output("wrong", cost_usd=0.001)
    return Output(_answer(q), cost_usd=0.001)

async def pricey(q):
    return Output(_answer(q), cost_usd=0.01)

async def slow(q):
    # a resume that only has to finish the group sets SLOW_TARGET_S=0
    await asyncio.sleep(float(os.environ.get("SLOW_TARGET_S", "0.03")))
    return q["a"]
'''

N_ITEMS = 200


def items(n: int = N_ITEMS) -> list[dict]:
    out = []
    for i in range(n):
        tags = ["math"] if i % 4 == 0 else ["text"]
        out.append({"id": f"q{i:03d}", "input": {"a": f"ans{i}", "tags": tags, "n": i // 4},
                    "expected_output": f"ans{i}", "metadata": {"tags": tags}})
    return out


BASE = """name: qa
dataset: data.jsonl
target:
  python: vt:control
concurrency: 8
scorers: [exact_match]
"""

VARIANTS = """variants:
  control: {}
  worse: {target.python: "vt:worse"}
  pricey: {target.python: "vt:pricey"}
compare_to: control
gates:
  - exact_match.pass_rate >= baseline - 2%
  - no_regressions: {tag: math}
"""


def project(root: Path, extra: str = VARIANTS, n: int = N_ITEMS, base: str = BASE) -> Path:
    (root / "vt.py").write_text(TARGETS)
    (root / "data.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items(n)))
    (root / "eval.yaml").write_text(base + extra)
    return root


def run(root: Path, *args: str, timeout: float = 180):
    return invoke_cli("run", *args, "--output-dir", str(root / ".evalrun"), cwd=root, timeout=timeout)


def groups(root: Path) -> list[Path]:
    """Groups oldest first: ids start with their start second, so groups started within the same
    second are ordered by the exact start time their group.json holds."""
    g = root / ".evalrun" / "groups"
    if not g.is_dir():
        return []
    return sorted(g.iterdir(), key=lambda p: (p.name[:15], json.loads((p / "group.json").read_text())["started_ts"]))


def no_runs(root: Path) -> bool:
    runs = root / ".evalrun" / "runs"  # the output folder may be checked (created) up front
    return not runs.exists() or not any(runs.iterdir())


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines() if line.strip()]


def test_three_variants_worse_one_fails_its_gate_with_a_significant_paired_difference(tmp_path):
    project(tmp_path)
    r = run(tmp_path, "eval.yaml", "--report", "json", "--report", "md", "--report", "html", "--report", "junit")
    assert r.returncode == 1, r.stderr
    [gdir] = groups(tmp_path)
    group = json.loads((gdir / "group.json").read_text())
    assert list(group["variants"]) == ["control", "worse", "pricey"] and group["compare_to"] == "control"
    assert group["status"] == "finished"

    # one run directory per variant, the same 200 items in each
    home = tmp_path / ".evalrun" / "runs"
    ids = {}
    for name, run_id in group["variants"].items():
        m = json.loads((home / run_id / "manifest.json").read_text())
        assert m["group"]["id"] == gdir.name and m["group"]["variant"] == name and m["status"] == "finished"
        ids[name] = sorted(x["item_id"] for x in records(home / run_id))
        assert len(ids[name]) == N_ITEMS
    assert ids["control"] == ids["worse"] == ids["pricey"]

    doc = json.loads((gdir / "comparison.json").read_text())
    v = doc["variants"]
    assert doc["verdict"] == "fail"
    assert v["worse"]["verdict"] == "fail" and v["control"]["verdict"] == "pass" and v["pricey"]["verdict"] == "pass"
    worse = v["worse"]["comparison"]["scorers"]["exact_match"]
    # every other math item regressed: the 25 items q000, q008, q016, ...
    expected_regressions = sorted(f"q{i:03d}" for i in range(0, N_ITEMS, 8))
    assert sorted(worse["regressions"]) == expected_regressions and worse["improvements"] == []
    paired = worse["paired"]["pass_rate"]
    assert paired["diff"] == pytest.approx(-25 / N_ITEMS)
    assert paired["ci95"][1] < 0 and paired["p_value"] < 0.001  # significant
    # the paired numbers, recomputed here: pass/fail pairs get the Agresti-Min interval (half a
    # count in each cell of the 2x2 table, then Wald) and McNemar's exact test (a binomial test)
    worse_n, better_n, big_n = 25, 0, N_ITEMS + 2
    centre = (better_n - worse_n) / big_n
    se = np.sqrt(((better_n + worse_n + 1) / big_n - centre ** 2) / big_n)
    z = sps.norm.ppf(0.975)
    assert paired["ci95"] == pytest.approx([centre - z * se, centre + z * se], abs=1e-6)
    mcnemar = sps.binomtest(25, 25, 0.5).pvalue
    assert worse["mcnemar_p"] == pytest.approx(mcnemar, abs=1e-6) and paired["p_value"] == pytest.approx(
        mcnemar, abs=1e-6)  # both ~6e-8: the report keeps 6 decimals
    gates = {g["gate"]: g for g in v["worse"]["gates"]}
    assert gates["exact_match.pass_rate >= baseline - 2%"]["verdict"] == "fail"
    assert gates["exact_match.pass_rate >= baseline - 2%"]["note"].startswith("significant")
    nr = next(g for g in v["worse"]["gates"] if g["gate"].startswith("no_regressions"))
    assert nr["verdict"] == "fail" and sorted(nr["items"]) == expected_regressions
    # the expensive variant: no regressions, ten times the cost
    pricey = v["pricey"]["comparison"]
    assert pricey["scorers"]["exact_match"]["regressions"] == []
    assert pricey["metrics"]["cost_usd"] == pytest.approx(2.0)
    assert v["control"]["comparison"]["metrics"]["cost_usd"] == pytest.approx(0.2)
    assert v["control"]["comparison"]["baseline"] is None  # the reference is not paired with itself

    # console: the matrix, the cost difference, the regressions, the verdict
    out = r.stdout
    assert re.search(r"control \(ref\).*worse.*pricey", out)
    assert "+$1.8000" in out and "$2.0000" in out
    assert "worse: regressed vs control (25" in out
    assert "verdict: FAIL (gates failed: worse)" in out
    rows = [[c.strip() for c in line.strip("│ ").split("│")] for line in out.splitlines() if "│" in line]
    assert ["pass rate", "100.0%", "87.5%", "100.0%"] in rows
    assert ["regressed", "", "25", "0"] in rows

    md = (gdir / "report.md").read_text()
    assert "### exact\\_match" in md and "worse: regressed vs control (25)" in md and "+$1.8000" in md

    # JUnit: testcases named variant/item; the worse variant's regressions fail
    root = ET.fromstring((gdir / "junit.xml").read_text())
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert len([n for n in cases if "/" in n and n.split("/")[1].startswith("q")]) == 3 * N_ITEMS
    assert cases["worse/q000"].find("failure") is not None and cases["control/q000"].find("failure") is None
    assert cases["pricey/q008"].find("failure") is None
    assert cases["worse/exact_match.pass_rate >= baseline - 2%"].find("failure") is not None

    # HTML: every item side by side, the differing ones marked for the filter
    html = (gdir / "report.html").read_text()
    assert html.count('class="item"') == N_ITEMS
    assert html.count('data-differ="1"') == 25  # only where the worse variant answered otherwise
    assert "where they differ" in html


def test_html_differ_filter_marks_only_items_whose_outputs_or_scores_differ(tmp_path):
    project(tmp_path, extra="""variants:
  control: {}
  worse: {target.python: "vt:worse"}
  pricey: {target.python: "vt:pricey"}
""", n=40)
    r = run(tmp_path, "eval.yaml", "--report", "html", "-q")
    assert r.returncode == 0, r.stderr
    html = (groups(tmp_path)[0] / "report.html").read_text()
    rows = re.findall(r'<tr class="item" data-differ="(\d)" data-regressed="(\d)">\s*<td><code>(q\d+)</code>', html)
    assert len(rows) == 40
    differ = sorted(i for d, _, i in rows if d == "1")
    assert differ == [f"q{i:03d}" for i in range(0, 40, 8)]
    assert all(reg == d for d, reg, _ in rows)


def test_variant_subset_and_gate_variants(tmp_path):
    project(tmp_path, extra=VARIANTS + "gate_variants: [pricey]\n", n=40)
    # worse fails its gates but does not gate: exit 0
    r = run(tmp_path, "eval.yaml", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["verdict"]["variants"]["worse"]["verdict"] == "fail"
    assert doc["verdict"]["variants"]["worse"]["gated"] is False and doc["verdict"]["verdict"] == "pass"
    # --variant runs a subset (the reference is still compared with)
    r = run(tmp_path, "eval.yaml", "--variant", "control", "--variant", "worse", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert sorted(doc["variants"]) == ["control", "worse"]
    g = json.loads((groups(tmp_path)[-1] / "group.json").read_text())
    assert list(g["variants"]) == ["control", "worse"]
    # without compare_to: the first variant is the reference
    r = run(tmp_path, "eval.yaml", "--variant", "worse", "--variant", "pricey", "--json")
    assert json.loads(r.stdout)["verdict"]["compare_to"] == "worse"


def test_bad_variants_are_one_line_errors_with_file_and_line(tmp_path):
    project(tmp_path, extra="variants:\n  a: {}\n  b: {target.timeout: -1}\n")
    r = run(tmp_path, "eval.yaml")
    assert r.returncode == 2
    assert r.stderr.strip() == "evalrun: error: eval.yaml:9:23: target.timeout: Input should be greater than 0 (got -1)"
    assert no_runs(tmp_path)  # nothing ran

    project(tmp_path, extra="variants:\n  a: {}\n  b: {target.python: 'vt:nope'}\n")
    r = run(tmp_path, "eval.yaml")
    assert r.returncode == 2 and "target function 'nope' not found" in r.stderr and "eval.yaml:9:" in r.stderr
    assert no_runs(tmp_path)

    for extra, msg in [("variants:\n  a: {}\ncompare_to: b\n", "eval.yaml:9:13: compare_to: no variant named 'b'"),
                       ("variants:\n  a: {}\ngate_variants: [a, c]\n", "eval.yaml:9:20: gate_variants: no variant"),
                       ("variants:\n  a: {dataset: x.jsonl}\n", "eval.yaml:8:7: variant 'a' cannot override 'dataset'"),
                       ("variants:\n  a: {name: other}\n", "variant 'a' cannot override 'name'"),
                       ("compare_to: a\n", "compare_to needs a 'variants:' section")]:
        project(tmp_path, extra=extra)
        r = run(tmp_path, "eval.yaml")
        assert r.returncode == 2 and msg in r.stderr and "Traceback" not in r.stderr, (extra, r.stderr)
    project(tmp_path, extra="variants:\n  a: {}\n  b: {}\n")
    r = run(tmp_path, "eval.yaml", "--variant", "c")
    assert r.returncode == 2 and "--variant c: no such variant" in r.stderr
    project(tmp_path, extra="")
    r = run(tmp_path, "eval.yaml", "--variant", "c")
    assert r.returncode == 2 and "--variant needs a 'variants:' section" in r.stderr


def test_shards_slice_items_the_same_for_every_variant_and_merge_restores_the_group(tmp_path):
    project(tmp_path, n=60)
    full = run(tmp_path, "eval.yaml", "--report", "json", "-q")
    assert full.returncode == 1
    full_doc = json.loads((groups(tmp_path)[0] / "comparison.json").read_text())
    shard_ids = []
    for i in (1, 2):
        r = run(tmp_path, "eval.yaml", "--shard", f"{i}/2", "--json")
        assert r.returncode == 0, r.stderr  # no gates on a shard
        doc = json.loads(r.stdout)
        shard_ids.append(doc["group_id"])
        per_variant = [sorted(x["item_id"] for x in records(tmp_path / ".evalrun" / "runs" / s["run_id"]))
                       for s in doc["variants"].values()]
        assert per_variant[0] == per_variant[1] == per_variant[2] and 0 < len(per_variant[0]) < 60
    r = invoke_cli("merge", *shard_ids, "--output-dir", str(tmp_path / ".evalrun"), "--report", "json", "--json",
                cwd=tmp_path)
    assert r.returncode == 1, r.stderr  # the worse variant's gate, judged on the merged group
    gid = json.loads(r.stdout)["group_id"]
    assert gid not in shard_ids
    merged = json.loads((tmp_path / ".evalrun" / "groups" / gid / "comparison.json").read_text())
    assert [m["group_id"] for m in json.loads((tmp_path / ".evalrun" / "groups" / gid / "group.json").read_text())[
        "merged_from"]] == shard_ids
    for name in ("control", "worse", "pricey"):
        a, b = merged["variants"][name]["comparison"], full_doc["variants"][name]["comparison"]
        x, y = a["scorers"]["exact_match"], b["scorers"]["exact_match"]
        for sc in (x, y):  # item lists follow file order, which the shards change
            for k in ("regressions", "improvements", "flaky"):
                sc.get(k, []).sort()
        assert x == y
        assert [g["verdict"] for g in merged["variants"][name]["gates"]] == \
            [g["verdict"] for g in full_doc["variants"][name]["gates"]]


def _start(root: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.Popen([sys.executable, "-m", "evalrun", "run", "eval.yaml", "--output-dir",
                             str(root / ".evalrun")], cwd=root, env=env, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def _wait_records(root: Path, n: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = root / ".evalrun" / "runs"
        if runs.is_dir():
            total = sum((d / "results.jsonl").read_text().count("\n") for d in runs.iterdir()
                        if (d / "results.jsonl").exists())
            if total >= n:
                return
        time.sleep(0.05)
    raise AssertionError("records did not appear")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_kill_and_resume_finishes_every_variant_exactly_once_per_item_and_trial(tmp_path, sig):
    slow = "variants:\n  a: {}\n  b: {target.timeout: 20}\n  c: {target.retries: 1}\n"
    project(tmp_path, extra=slow + "repeat: 2\n", n=40,
            base=BASE.replace("vt:control", "vt:slow").replace("concurrency: 8", "concurrency: 4"))
    p = _start(tmp_path)
    _wait_records(tmp_path, 30)
    p.send_signal(sig)
    _, err = p.communicate(timeout=60)
    assert p.returncode == (130 if sig == signal.SIGINT else -signal.SIGKILL), err
    [gdir] = groups(tmp_path)
    group = json.loads((gdir / "group.json").read_text())
    runs = tmp_path / ".evalrun" / "runs"
    partial = {n: len(records(runs / rid)) if (runs / rid / "results.jsonl").exists() else 0
               for n, rid in group["variants"].items()}
    assert sum(partial.values()) < 3 * 80
    if sig == signal.SIGINT:
        assert f"evalrun run --resume {gdir.name}" in err
        assert group["status"] == "interrupted"
        assert all(json.loads((runs / rid / "manifest.json").read_text())["status"] == "interrupted"
                   for rid in group["variants"].values())

    # resume by a variant's run id (or the group id): the whole group finishes
    some_run = next(iter(group["variants"].values()))
    r = run_cli("run", "--resume", some_run, "--output-dir", str(tmp_path / ".evalrun"), "--json", cwd=tmp_path,
                timeout=180, env={"SLOW_TARGET_S": "0"})
    assert r.returncode == 0, r.stderr
    group = json.loads((gdir / "group.json").read_text())
    assert group["status"] == "finished" and len(groups(tmp_path)) == 1
    expected = sorted((f"q{i:03d}", t) for i in range(40) for t in range(2))
    for rid in group["variants"].values():
        keys = [(x["item_id"], x["trial"]) for x in records(runs / rid)]
        assert sorted(keys) == expected  # every (item, trial) exactly once: no duplicate, none missing
        assert json.loads((runs / rid / "summary.json").read_text())["records"] == 80
    r = run_cli("run", "--resume", gdir.name, "--output-dir", str(tmp_path / ".evalrun"), cwd=tmp_path)
    assert r.returncode == 2 and "already finished" in r.stderr


SHARED_TARGETS = '''
import asyncio, threading
from pathlib import Path

_active = 0
_peak = 0

async def tracked(q):
    global _active, _peak
    _active += 1
    _peak = max(_peak, _active)
    Path("peak.txt").write_text(str(_peak))
    await asyncio.sleep(0.05)
    _active -= 1
    return q["a"]

async def tracked2(q):
    return await tracked(q)
'''


def test_variants_share_one_concurrency_limit_and_one_rate_and_run_interleaved(tmp_path):
    project(tmp_path, n=24, extra="variants:\n  a: {}\n  b: {target.python: 'vs:tracked2'}\n  c: {}\n",
            base=BASE.replace("vt:control", "vs:tracked").replace("concurrency: 8", "concurrency: 4"))
    (tmp_path / "vs.py").write_text(SHARED_TARGETS)
    r = run(tmp_path, "eval.yaml", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    # one limit for the three variants together, not four calls each
    assert int((tmp_path / "peak.txt").read_text()) <= 4
    spans = {}
    for name, s in doc["variants"].items():
        recs = records(tmp_path / ".evalrun" / "runs" / s["run_id"])
        assert len(recs) == 24
        spans[name] = (min(x["started_at"] for x in recs), max(x["started_at"] + x["latency_ms"] / 1000 for x in recs))
    # interleaved, not one after another: every variant starts before any variant has finished
    assert max(s for s, _ in spans.values()) < min(e for _, e in spans.values())

    # the start rate is shared too: 3 x 8 calls at 40/s are spaced over at least 23 intervals
    project(tmp_path, n=8, extra="rate: 40\nvariants:\n  a: {}\n  b: {}\n  c: {}\n",
            base=BASE.replace("vt:control", "vs:tracked"))
    r = run(tmp_path, "eval.yaml", "--json")
    assert r.returncode == 0, r.stderr
    starts = sorted(x["started_at"] for s in json.loads(r.stdout)["variants"].values()
                    for x in records(tmp_path / ".evalrun" / "runs" / s["run_id"]))
    assert len(starts) == 24 and starts[-1] - starts[0] >= 23 / 40 * 0.95


def test_with_an_accepted_baseline_every_variant_is_gated_against_it(tmp_path):
    project(tmp_path, n=40)
    r = run(tmp_path, "eval.yaml", "--variant", "control", "--json")
    assert r.returncode == 0, r.stderr
    control_run = json.loads(r.stdout)["variants"]["control"]["run_id"]
    r = invoke_cli("baseline", "set", control_run, "--output-dir", str(tmp_path / ".evalrun"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = run(tmp_path, "eval.yaml", "--json")
    assert r.returncode == 1, r.stderr
    v = json.loads(r.stdout)["verdict"]
    assert v["gate_baseline"]["run_id"] == control_run
    # the reference is now judged too (against the accepted run), not skipped
    assert [g["verdict"] for g in v["variants"]["control"]["gates"]] == ["pass", "pass"]
    assert v["variants"]["worse"]["verdict"] == "fail" and v["variants"]["pricey"]["verdict"] == "pass"


HOSTILE = '''
async def control(q):
    return q["a"]

async def evil(q):
    return "<script>alert(1)</script> | **bold** `tick`" if q["n"] == 0 else q["a"]
'''


def test_model_text_is_inert_in_the_matrix_reports(tmp_path):
    project(tmp_path, n=8, extra="variants:\n  control: {}\n  evil: {target.python: 'vt:evil'}\n")
    (tmp_path / "vt.py").write_text(HOSTILE)
    r = run(tmp_path, "eval.yaml", "-q", "--report", "html", "--report", "md", "--report", "junit")
    assert r.returncode == 0, r.stderr
    g = groups(tmp_path)[0]
    html = (g / "report.html").read_text()
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    md = (g / "report.md").read_text()
    assert "<script>" not in md and "\\*\\*bold\\*\\*" in md and "&lt;script&gt;" in md
    ET.fromstring((g / "junit.xml").read_text())  # well-formed XML


def test_an_override_that_cannot_apply_points_at_its_variant_line(tmp_path):
    project(tmp_path, extra="variants:\n  a: {}\n  b: {scorers.3.threshold: 0.5}\n")
    r = run(tmp_path, "eval.yaml")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.startswith("evalrun: error: eval.yaml:9:7: variant 'b': scorers.3.threshold:"), r.stderr


def test_in_github_actions_the_matrix_is_the_job_summary_and_failed_gates_name_their_variant(tmp_path):
    from tests.test_github import parse_env_file

    project(tmp_path, n=40)
    env = {"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(tmp_path / "gh_output"),
           "GITHUB_STEP_SUMMARY": str(tmp_path / "gh_summary.md"), "GITHUB_WORKSPACE": str(tmp_path)}
    r = invoke_cli("run", "eval.yaml", "--output-dir", str(tmp_path / ".evalrun"), cwd=tmp_path, env=env)
    assert r.returncode == 1, r.stderr
    summary = (tmp_path / "gh_summary.md").read_text()
    assert "3 variants, compared with 'control'" in summary and "worse: regressed vs control (5)" in summary
    out = parse_env_file((tmp_path / "gh_output").read_text())
    [g] = groups(tmp_path)
    assert out["verdict"] == "fail" and out["run_id"] == g.name
    assert Path(out["report_path"]).read_text().strip() == summary.strip()
    errors = [line for line in r.stderr.splitlines() if line.startswith("::error")]
    assert errors and all("title=[worse] evalrun gate failed" in line for line in errors)
    assert any("item q008 regressed" in line for line in errors)


def test_a_variant_pair_gets_exactly_what_evalrun_compare_gives_the_same_two_runs(tmp_path):
    project(tmp_path, n=40)
    r = run(tmp_path, "eval.yaml", "--report", "json", "-q")
    assert r.returncode == 1, r.stderr
    [g] = groups(tmp_path)
    group = json.loads((g / "comparison.json").read_text())
    runs = json.loads((g / "group.json").read_text())["variants"]
    r = invoke_cli("compare", runs["worse"], runs["control"], "--report", f"json:{tmp_path / 'pair.json'}",
                "--output-dir", str(tmp_path / ".evalrun"), cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    pair = json.loads((tmp_path / "pair.json").read_text())
    mine = group["variants"]["worse"]
    assert mine["comparison"]["scorers"] == pair["comparison"]["scorers"]
    assert mine["comparison"]["counts"] == pair["comparison"]["counts"]
    assert [(x["gate"], x["verdict"], x["ci95"]) for x in mine["gates"]] == \
        [(x["gate"], x["verdict"], x["ci95"]) for x in pair["gates"]]


def test_group_refs_resolve_without_shadowing_plain_runs(tmp_path):
    from evalrun.store import RunDir
    from evalrun.variants import find_group

    project(tmp_path, n=8, extra="variants:\n  a: {}\n  b: {}\n")
    r = run(tmp_path, "eval.yaml", "-q", "--json")
    assert r.returncode == 0, r.stderr
    gid = json.loads(r.stdout)["group_id"]
    home = tmp_path / ".evalrun"
    assert find_group(gid, home).id == gid and find_group(gid[:-2], home).id == gid  # id, prefix of an id
    assert find_group(f"{gid}.b", home).id == gid and find_group(str(home / "groups" / gid), home).id == gid
    # a plain run is a run, even when its id shares a prefix with the group's
    (tmp_path / "eval.yaml").write_text(BASE)
    r = run(tmp_path, "eval.yaml", "-q", "--json")
    plain = json.loads(r.stdout)["run_id"]
    assert RunDir(home / "runs" / plain).exists()
    assert find_group(plain, home) is None and find_group("latest", home) is None


def test_a_bad_value_set_through_a_negative_index_points_at_its_variant_line(tmp_path):
    """``scorers.-1.threshold`` is the last scorer's: a bad value there is reported on the line of
    the variant that sets it, as for a plain index (the position was lost for ``-1``)."""
    base = BASE.replace("scorers: [exact_match]", "scorers: [exact_match, {type: numeric, tolerance: 0.1}]")
    for key in ("scorers.-1.tolerance", "scorers.1.tolerance"):
        project(tmp_path, base=base, extra=f"variants:\n  a: {{}}\n  b: {{{key}: -3}}\n")
        r = run(tmp_path, "eval.yaml")
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert r.stderr.startswith("evalrun: error: eval.yaml:9:"), (key, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1
        assert no_runs(tmp_path)


def test_a_target_that_edits_its_input_changes_no_other_variants_items(tmp_path):
    """The group reads its dataset once, but each variant's run gets its own items: a target
    that edits its input in place changes neither what the other variant is given nor what
    was saved of it."""
    project(tmp_path, n=6, extra="variants:\n  a: {}\n  b: {}\n")
    (tmp_path / "vt.py").write_text(TARGETS + "\ndef editing(q):\n    q['seen'] = q.get('seen', 0) + 1\n"
                                    "    return str(q['seen'])\n")
    (tmp_path / "eval.yaml").write_text((tmp_path / "eval.yaml").read_text().replace("vt:control", "vt:editing"))
    r = run(tmp_path, "eval.yaml", "-q")
    assert r.returncode == 0, r.stderr
    runs = list((tmp_path / ".evalrun" / "runs").iterdir())
    assert len(runs) == 2
    for rd in runs:
        recs = records(rd)
        assert len(recs) == 6 and all(x["output"] == "1" for x in recs), [x["output"] for x in recs]


def test_a_dataset_that_cannot_be_read_saves_the_group_as_failed(tmp_path):
    project(tmp_path, extra="variants:\n  a: {}\n  b: {}\n")
    (tmp_path / "data.jsonl").unlink()
    r = run(tmp_path, "eval.yaml", "-q")
    assert r.returncode == 2 and "dataset not found" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    docs = [json.loads((g / "group.json").read_text()) for g in groups(tmp_path)]
    assert [(d["status"], bool(d.get("finished_at"))) for d in docs] == [("failed", True)]
