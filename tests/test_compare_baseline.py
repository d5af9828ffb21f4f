"""Baseline resolution on real run directories: results files, unfinished runs, outputs for scorers."""

from __future__ import annotations

import json
import shutil

import pytest

from evalrun.baseline import load_accepted, resolve_baseline, set_baseline
from evalrun.errors import UsageError
from tests.test_compare_cli import cli, project, runs


@pytest.fixture
def finished(tmp_path):
    root = project(tmp_path / "p", gates="")
    assert cli(root, "run", "eval.yaml", "-q").returncode == 0
    return root, runs(root)[-1]


def test_results_file_outside_a_run_has_no_eval_to_check(finished, tmp_path):
    root, run = finished
    copy = tmp_path / "elsewhere" / "baseline.jsonl"
    copy.parent.mkdir()
    shutil.copy(run / "results.jsonl", copy)
    bl = resolve_baseline(str(copy), eval_name="anything-else")
    assert bl.kind == "results" and bl.eval is None and len(bl.records) == 40
    inside = resolve_baseline(str(run / "results.jsonl"), eval_name="doubler")
    assert inside.eval == "doubler" and inside.run_id == run.name
    with pytest.raises(UsageError, match="baseline is a run of eval 'doubler', not 'other'"):
        resolve_baseline(str(run / "results.jsonl"), eval_name="other")


def test_unfinished_run_is_refused(finished):
    root, run = finished
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["status"] = "interrupted"
    (run / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UsageError, match="is interrupted"):
        resolve_baseline(str(run), eval_name="doubler")
    with pytest.raises(UsageError, match="no finished run of eval 'doubler'"):
        resolve_baseline("latest", eval_name="doubler", home=root / ".evalrun")


def test_accepted_file_round_trip_and_outputs(finished, tmp_path):
    root, run = finished
    dest, doc = set_baseline(str(run), root / ".evalrun", tmp_path / "bl.json")
    bl = load_accepted(dest)
    assert bl.kind == "accepted" and bl.eval == "doubler" and bl.run_id == run.name
    assert bl.metrics["records"] == 40 and bl.metrics["errors"] == 0
    outs = resolve_baseline(str(dest), eval_name="doubler").outputs()
    assert outs[("q03", 0)] == "6" and len(outs) == 40
    assert {r.item_id for r in bl.records} == {f"q{n:02d}" for n in range(1, 41)}
    assert bl.records[0].scores["exact_match"].passed is True
    tags = {r.item_id: r.metadata.get("tags") for r in bl.records}
    assert tags["q08"] == ["critical"]  # kept for no_regressions on tags


def test_accepted_keyword_without_a_file(finished):
    root, _ = finished
    with pytest.raises(UsageError, match="no accepted baseline for eval 'doubler'"):
        resolve_baseline("accepted", eval_name="doubler", home=root / ".evalrun")


@pytest.mark.parametrize(("content", "fragment"), [
    ('{"records": []}', "no 'evalrun_baseline' key"),
    ('{"evalrun_baseline": 7, "records": []}', "format 7"),
    ('{"evalrun_baseline": 1, "records": {}}', "'records' is not a list"),
    ('{"evalrun_baseline": 1, "records": [{"trial": 0}]}', "record 1"),
    ('{"evalrun_baseline": 1, "records": [{"item_id": "a", "scores": {"x": 3}}]}', "record 1"),
    ("\x00\x01binary", "binary"),
])
def test_corrupt_baseline_files(tmp_path, content, fragment):
    p = tmp_path / "bl.json"
    p.write_text(content)
    with pytest.raises(UsageError) as e:
        resolve_baseline(str(p), eval_name="doubler")
    assert fragment in str(e.value) and str(p) in str(e.value)
