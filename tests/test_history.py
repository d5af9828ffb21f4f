"""Run history through the real CLI: five local runs, the HTML trend and the markdown trend
line, and a pull-request run on a fresh runner that only has the downloaded baseline artifact."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from scipy.stats import binomtest

from evalrun.history import HISTORY, merge, read_history_file
from tests.conftest import invoke_cli
from tests.test_slices import project


def five_runs(root: Path) -> list[Path]:
    """Three good runs, then two with the math regression, each with md and html reports."""
    for variant in ("good", "good", "good", "bad", "bad"):
        res = invoke_cli("run", "eval.yaml", "--report", "md", "--report", "html", cwd=root, env={"VARIANT": variant})
        assert res.returncode == 0, res.stdout + res.stderr
    from evalrun.store import list_runs

    runs = [r.path for r in list_runs(root / ".evalrun")]
    assert len(runs) == 5
    return runs


def test_partial_runs_are_not_points_of_the_trend(tmp_path):
    """--limit / --filter / --shard runs measure a part of the eval: history leaves them out."""
    root = project(tmp_path / "p", [])
    for args in ((), ("--limit", "10"), ("--filter", "tag=math"), ("--shard", "1/2"), ()):
        res = invoke_cli("run", "eval.yaml", "-q", *args, cwd=root, env={"VARIANT": "good"})
        assert res.returncode == 0, res.stderr
    data = json.loads(invoke_cli("history", "eval.yaml", "--json", cwd=root).stdout)
    assert len(data["runs"]) == 2 and all(e["scorers"]["exact_match"]["n"] == 120 for e in data["runs"])


def trend_points(html: str) -> list[tuple[str, str]]:
    """(class, tooltip) of each point of the first trend chart."""
    svg = re.search(r'<svg class="chart" id="trend-exact_match".*?</svg>', html, re.S)
    assert svg, "no trend chart"
    return re.findall(r'<circle class="(run|current)"[^>]*><title>([^<]*)</title>', svg.group(0))


def test_five_runs_in_history_html_trend_and_markdown(tmp_path):
    root = project(tmp_path / "p", ["exact_match.mean >= 0.5"])
    runs = five_runs(root)
    ids = [p.name for p in runs]

    res = invoke_cli("history", "eval.yaml", "--json", cwd=root)
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert [e["run_id"] for e in data["runs"]] == ids
    for e, mean in zip(data["runs"], (0.9, 0.9, 0.9, 0.85, 0.85), strict=True):
        s = e["scorers"]["exact_match"]
        assert s["n"] == 120 and s["mean"] == mean and s["ci95"][0] < mean < s["ci95"][1]
        assert s["pass_ci95"][0] < s["pass_rate"] < s["pass_ci95"][1]

    # the last run: 102 of 120 items pass, shown with its exact (Clopper-Pearson) interval
    ci = binomtest(102, 120).proportion_ci(0.95, method="exact")
    last = f"0.850 [{ci.low:.3f}, {ci.high:.3f}]"
    text = invoke_cli("history", "eval.yaml", cwd=root).stdout
    assert "tagged: 5 runs, oldest first" in text and all(i in text for i in ids)
    assert last in text and "exact_match: ███▁▁" in text
    last3 = json.loads(invoke_cli("history", "eval.yaml", "--last", "3", "--json", cwd=root).stdout)
    assert [e["run_id"] for e in last3["runs"]] == ids[2:]

    html = (runs[-1] / "report.html").read_text()
    points = trend_points(html)
    assert [c for c, _ in points] == ["run"] * 4 + ["current"]
    assert [t.split(":")[0] for _, t in points] == ids
    assert f"{last} (this run)" in points[-1][1]
    assert html.count('class="band"') == 1  # the interval band
    md = (runs[-1] / "report.md").read_text()
    assert "**Trend** (mean over the last 5 runs, oldest → newest):" in md
    assert "- exact\\_match ███▁▁ 0.900 → 0.850" in md


def test_a_pull_request_run_with_only_the_baseline_artifact_shows_earlier_runs(tmp_path):
    main = project(tmp_path / "main", ["exact_match.mean >= 0.5"])
    runs = five_runs(main)
    # what `gh run download ... --name evalrun-baseline` leaves: the run directory's files
    artifact = tmp_path / "runner" / "evalrun-baseline"
    shutil.copytree(runs[-1], artifact)
    assert len(read_history_file(artifact / HISTORY)) == 5
    pr = project(tmp_path / "pr", ["exact_match.mean >= 0.5"])  # a fresh checkout: no .evalrun
    res = invoke_cli("run", "eval.yaml", "--baseline", str(artifact), "--report", "md", "--report", "html", cwd=pr,
                  env={"VARIANT": "good"})
    assert res.returncode == 0, res.stdout + res.stderr
    run_dir = next((pr / ".evalrun" / "runs").iterdir())
    md = (run_dir / "report.md").read_text()
    assert "**Trend** (mean over the last 6 runs, oldest → newest):" in md and "███▁▁█" in md
    points = trend_points((run_dir / "report.html").read_text())
    assert [t.split(":")[0] for _, t in points] == [p.name for p in runs] + [run_dir.name]
    # the PR run's own history.jsonl carries the chain on, and `evalrun history` reads it
    data = json.loads(invoke_cli("history", "eval.yaml", "--json", cwd=pr).stdout)
    assert [e["run_id"] for e in data["runs"]] == [p.name for p in runs] + [run_dir.name]
    # pointing --baseline at the artifact works on a runner with no runs at all
    empty = project(tmp_path / "empty", ["exact_match.mean >= 0.5"])
    data = json.loads(invoke_cli("history", "eval.yaml", "--baseline", str(artifact), "--json", cwd=empty).stdout)
    assert len(data["runs"]) == 5


def test_the_accepted_baseline_file_carries_history(tmp_path):
    root = project(tmp_path / "p", ["exact_match.mean >= 0.5"])
    for _ in range(2):
        assert invoke_cli("run", "eval.yaml", cwd=root, env={"VARIANT": "good"}).returncode == 0
    dest = tmp_path / "committed" / "baseline.json"
    res = invoke_cli("baseline", "set", "latest", "--path", str(dest), cwd=root)
    assert res.returncode == 0, res.stderr
    doc = json.loads(dest.read_text())
    assert len(doc["history"]) == 2
    other = project(tmp_path / "clone", ["exact_match.mean >= 0.5"])
    (other / "eval.yaml").write_text((other / "eval.yaml").read_text() + f"baseline: {dest}\n")
    data = json.loads(invoke_cli("history", "eval.yaml", "--json", cwd=other).stdout)
    assert [e["source"] for e in data["runs"]] == ["history", "accepted"]
    assert data["runs"][1]["run_id"] == doc["run_id"] and data["runs"][1]["scorers"]["exact_match"]["mean"] == 0.9


def test_history_files_are_read_leniently_and_merged_by_run_id(tmp_path):
    f = tmp_path / HISTORY
    good = {"run_id": "a", "eval": "x", "started_at": "2026-01-01", "scorers": {"s": {"mean": 0.5}}}
    f.write_text(json.dumps(good) + "\n{torn\n" + json.dumps({"run_id": 3}) + "\n[]\n")
    assert read_history_file(f) == [good]
    merged = merge([{**good, "source": "history"}, {**good, "source": "run", "records": 9},
                    {**good, "run_id": "b", "eval": "other"}, {**good, "run_id": "c", "started_at": "2025"}], "x")
    assert [(e["run_id"], e.get("source")) for e in merged] == [("c", None), ("a", "run")]


def test_history_without_runs_and_bad_input(tmp_path):
    root = project(tmp_path / "p", [])
    res = invoke_cli("history", "eval.yaml", cwd=root)
    assert res.returncode == 0 and "no finished runs of eval 'tagged' yet" in res.stderr
    res = invoke_cli("history", "eval.yaml", "--baseline", str(tmp_path / "nope"), cwd=root)
    assert res.returncode == 2 and "no such file or folder" in res.stderr and "Traceback" not in res.stderr
    res = invoke_cli("history", "missing.yaml", cwd=root)
    assert res.returncode == 2 and "Traceback" not in res.stderr


@pytest.mark.slow
def test_history_survives_ephemeral_runners_through_the_action_step(tmp_path):
    """Five main runs, each on a fresh runner that only downloads the previous run's artifact
    (as .github/workflows/evalrun.yml does), then a pull-request run: all five earlier runs show."""
    from tests.test_github_action import run_step, suite

    artifact = ""
    ids = []
    for k in range(6):
        runner = tmp_path / f"runner{k}"
        suite(runner)
        r, out = run_step(runner, baseline=artifact)
        assert r.returncode == 0, r.stderr
        ids.append(Path(out["run_dir"]).name)
        if k < 5:  # main: upload the run directory as the baseline artifact
            artifact = str(tmp_path / f"artifact{k}")
            shutil.copytree(out["run_dir"], artifact)
    md = Path(out["report_path"]).read_text()
    assert "**Trend** (mean over the last 6 runs, oldest → newest):" in md
    points = trend_points(Path(out["html_report"]).read_text())
    assert [t.split(":")[0] for _, t in points] == ids and points[-1][0] == "current"


def test_comparing_an_earlier_run_again_shows_only_the_runs_before_it(tmp_path):
    root = project(tmp_path / "p", ["exact_match.mean >= 0.5"])
    runs = five_runs(root)
    res = invoke_cli("compare", runs[2].name, runs[0].name, "--report", "md", cwd=root)
    assert res.returncode == 0, res.stdout + res.stderr
    md = (runs[2] / "report.md").read_text()
    assert "**Trend** (mean over the last 3 runs, oldest → newest):" in md
    assert [e["run_id"] for e in read_history_file(runs[2] / HISTORY)] == [p.name for p in runs[:3]]


def test_the_better_source_wins_and_borrows_what_it_lacks():
    same_second = "2026-01-01T00:00:00+00:00"
    carried = [{"run_id": r, "eval": "x", "started_at": same_second, "started_ts": ts, "scorers": {},
                "source": "history"} for r, ts in (("r1", 5.0), ("r2", 6.0))]
    accepted = {"run_id": "r2", "eval": "x", "started_at": same_second, "started_ts": None,
                "scorers": {"s": {"mean": 1.0}}, "source": "accepted"}
    merged = merge([accepted, *carried], "x")
    assert [(e["run_id"], e["source"], e["started_ts"]) for e in merged] == [("r1", "history", 5.0),
                                                                            ("r2", "accepted", 6.0)]
    assert merged[1]["scorers"] == {"s": {"mean": 1.0}}
