"""Baselines, gates and reports through the real CLI: run, baseline set, compare, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import invoke_cli

TARGET = '''
import os

def answer(x):
    n = int(x)
    if os.environ.get("VARIANT") == "bad" and n % 4 == 0:
        return "<script>alert(1)</script>" if n == 8 else str(2 * n + 1)
    return str(2 * n)
'''

GATES = """
gates:
  - exact_match.pass_rate >= 0.7
  - exact_match.mean >= baseline - 0.02
  - errors <= 2%
  - latency_p95_ms <= 4000
  - no_regressions: {tag: critical}
gate_policy: significant
"""


def project(root: Path, gates: str = GATES, extra: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "tgt.py").write_text(TARGET)
    items = [{"id": f"q{n:02d}", "input": str(n), "expected_output": str(2 * n),
              "metadata": {"tags": ["critical"] if n % 8 == 0 else ["normal"]}} for n in range(1, 41)]
    (root / "data.yaml").write_text(yaml.safe_dump({"items": items}))
    (root / "eval.yaml").write_text("name: doubler\ndataset: data.yaml\ntarget:\n  python: tgt:answer\n"
                                    "scorers:\n  - exact_match\n" + gates + extra)
    return root


def cli(root: Path, *args: str, bad: bool = False):
    return invoke_cli(*args, cwd=root, env={"VARIANT": "bad" if bad else "good"}, timeout=120)


def runs(root: Path) -> list[Path]:
    from evalrun.store import list_runs

    return [r.path for r in list_runs(root / ".evalrun")]


def test_accepted_baseline_then_a_regression_fails_the_gates(tmp_path):
    root = project(tmp_path / "p")
    first = cli(root, "run", "eval.yaml")
    assert first.returncode == 0, first.stderr
    # first run: nothing to compare with; absolute gates are judged, relative ones skipped
    assert "– SKIP exact_match.mean >= baseline - 0.02" in first.stdout and "no baseline" in first.stdout
    s = cli(root, "baseline", "set", "latest")
    assert s.returncode == 0, s.stderr
    bl_file = root / ".evalrun" / "baseline" / "doubler.json"
    doc = json.loads(bl_file.read_text())
    assert doc["eval"] == "doubler" and len(doc["records"]) == 40
    assert set(doc["records"][0]) >= {"item_id", "trial", "scores", "output"} and "input" not in doc["records"][0]

    same = cli(root, "run", "eval.yaml")
    assert same.returncode == 0, same.stdout + same.stderr
    assert "40 paired items, 0 regressed" in same.stdout

    worse = cli(root, "run", "eval.yaml", bad=True)
    assert worse.returncode == 1, worse.stdout + worse.stderr
    out = worse.stdout
    assert "vs baseline" in out and "10 regressed" in out
    assert "✗ FAIL exact_match.mean >= baseline - 0.02" in out
    assert "✗ FAIL no_regressions: {tag: critical}" in out and "q08, q16, q24, q32, q40" in out
    assert "✓ PASS exact_match.pass_rate >= 0.7" in out
    assert "{+<script>alert(1)</script>+}" in out  # console shows the text as is, in its diff
    assert "verdict: FAIL (2 of 5 gates failed)" in out


def test_baseline_refs_reports_and_compare(tmp_path):
    root = project(tmp_path / "p")
    assert cli(root, "run", "eval.yaml", "-q").returncode == 0
    base_dir = runs(root)[-1]
    reports = tmp_path / "out"
    r = cli(root, "run", "eval.yaml", "--baseline", str(base_dir), "--report", f"md:{reports}/r.md",
            "--report", f"junit:{reports}/j.xml", "--report", f"html:{reports}/r.html", "--report", "json",
            "--json", bad=True)
    assert r.returncode == 1, r.stderr
    verdict = json.loads(r.stdout)["verdict"]
    assert verdict["verdict"] == "fail" and verdict["counts"]["regressed"] == 10
    assert verdict["baseline"]["run_id"] == base_dir.name
    cand_dir = runs(root)[-1]
    assert (reports / "r.md").read_text().startswith("## ❌ evalrun: doubler")
    assert "<testsuites>" in (reports / "j.xml").read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in (reports / "r.html").read_text()
    data = json.loads((cand_dir / "comparison.json").read_text())
    assert data["comparison"]["counts"]["regressed"] == 10

    # the same comparison, afterwards, from every kind of REF
    for ref in (base_dir.name, str(base_dir), str(base_dir / "results.jsonl")):
        c = cli(root, "compare", cand_dir.name, ref, "--json")
        assert c.returncode == 1, c.stderr
        assert json.loads(c.stdout)["counts"]["regressed"] == 10
    # latest = the newest finished run of this eval: the bad one itself
    c = cli(root, "compare", cand_dir.name, "latest", "--json")
    assert json.loads(c.stdout)["counts"]["regressed"] == 0 and c.returncode == 0
    # no BASELINE and no accepted baseline: the previous run
    c = cli(root, "compare", cand_dir.name, "--report", "md:-")
    assert c.returncode == 1 and "10 regressed" in c.stdout and "## ❌ evalrun" in c.stdout


def test_significant_policy_lets_noise_pass_and_point_does_not(tmp_path):
    # 1 of 40 items drops: -0.025 on the point estimate, past the -0.02 margin, but well inside noise
    gate = "gates:\n  - exact_match.mean >= baseline - 0.02\n"
    for policy, code in (("significant", 0), ("point", 1)):
        root = project(tmp_path / policy, gates=gate + f"gate_policy: {policy}\n")
        (root / "tgt.py").write_text(TARGET.replace('n % 4 == 0', 'n == 7'))
        assert cli(root, "run", "eval.yaml", "-q").returncode == 0
        r = cli(root, "run", "eval.yaml", "--baseline", "latest", bad=True)
        assert r.returncode == code, r.stdout + r.stderr
        if policy == "significant":
            assert "not significant" in r.stdout and "detectable drop" in r.stdout


def test_baseline_path_from_eval_file(tmp_path):
    root = project(tmp_path / "p", extra="baseline: baselines/doubler.json\n")
    assert cli(root, "run", "eval.yaml", "-q").returncode == 0
    s = cli(root, "baseline", "set", "latest")
    assert s.returncode == 0 and (root / "baselines" / "doubler.json").is_file(), s.stderr
    shown = cli(root, "baseline", "show", "eval.yaml")
    assert "40 records" in shown.stdout
    r = cli(root, "run", "eval.yaml", "--report", "json:-", "-q", bad=True)
    assert r.returncode == 1
    assert json.loads(r.stdout)["comparison"]["baseline"]["kind"] == "accepted"


def test_passing_gates_exit_zero_and_quiet_prints_nothing(tmp_path):
    root = project(tmp_path / "p", gates="gates:\n  - exact_match.pass_rate >= 0.5\n  - errors <= 0\n")
    r = cli(root, "run", "eval.yaml", "-q", bad=True)
    assert r.returncode == 0 and r.stdout == "" and r.stderr == ""


def test_baseline_set_refuses_unfinished_and_unknown_runs(tmp_path):
    root = project(tmp_path / "p")
    r = cli(root, "baseline", "set", "nope")
    assert r.returncode == 2 and "no run 'nope'" in r.stderr
    r = cli(root, "compare", "latest")
    assert r.returncode == 2 and r.stderr.count("\n") == 1


@pytest.mark.parametrize("fmt", ["md", "junit", "html", "json"])
def test_default_report_paths_are_in_the_run_directory(tmp_path, fmt):
    root = project(tmp_path / "p", gates="")
    r = cli(root, "run", "eval.yaml", "--report", fmt)
    assert r.returncode == 0, r.stderr
    name = {"md": "report.md", "junit": "junit.xml", "html": "report.html", "json": "comparison.json"}[fmt]
    path = runs(root)[-1] / name
    assert path.is_file() and f"{fmt} report: " in r.stderr
