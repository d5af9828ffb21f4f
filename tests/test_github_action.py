"""The composite action's run step, executed by bash as the runner executes it: inputs
arrive as environment variables, evalrun writes the step outputs, and the step's exit code is
the gate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import REPO
from tests.test_github import DATA, parse_env_file

ACTION = REPO / ".github" / "actions" / "evalrun" / "action.yml"


def run_step(root: Path, **inputs: str) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    action = yaml.safe_load(ACTION.read_text())
    step = next(s for s in action["runs"]["steps"] if s.get("id") == "run")
    names = {"config": "EVAL_CONFIG", "baseline": "EVAL_BASELINE", "concurrency": "EVAL_CONCURRENCY",
             "shard": "EVAL_SHARD", "push-to-langfuse": "EVAL_PUSH", "args": "EVAL_ARGS"}
    assert {v for k, v in step["env"].items() if k != "EVAL_BASELINE_PATH"} == {f"${{{{ inputs.{k} }}}}" for k in names}
    defaults = {k: str(v.get("default", "")) for k, v in action["inputs"].items()}
    env = {**os.environ, "GITHUB_ACTIONS": "true", "GITHUB_JOB": "eval", "RUNNER_TEMP": str(root / "tmp"),
           "GITHUB_OUTPUT": str(root / "gh_output"), "GITHUB_STEP_SUMMARY": str(root / "gh_summary.md"),
           "GITHUB_WORKSPACE": str(root), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for name, var in names.items():
        env[var] = inputs.get(name.replace("-", "_"), defaults[name])
    (root / "gh_output").unlink(missing_ok=True)
    # the runner runs a bash step as: bash --noprofile --norc -eo pipefail {0}
    script = root / "step.sh"
    script.write_text(step["run"])
    r = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)], cwd=root, env=env,
                       capture_output=True, text=True, timeout=300)
    out = parse_env_file((root / "gh_output").read_text()) if (root / "gh_output").exists() else {}
    return r, out


def suite(root: Path, gates: str = "") -> None:
    (root / "data").mkdir(parents=True)
    (root / "data" / "items.yaml").write_text(DATA)
    (root / "tgt.py").write_text("def answer(x):\n    return x.upper()\n")
    (root / "evalrun.yaml").write_text("name: act\ndataset: data/items.yaml\ntarget:\n  python: tgt:answer\n"
                                       "scorers: [exact_match]\n" + gates)


def test_action_step_runs_and_sets_outputs(tmp_path):
    suite(tmp_path)
    r, out = run_step(tmp_path, concurrency="2")
    assert r.returncode == 0, r.stderr
    assert out["verdict"] == "pass" and out["pass_rate"] == "0.666667"
    assert out["report_path"] == str(tmp_path / ".evalrun" / "reports" / "eval" / "report.md")
    assert Path(out["html_report"]).is_file() and out["html_report"].endswith(".evalrun/reports/eval/report.html")
    assert "<html" in Path(out["html_report"]).read_text().lower()
    assert (Path(out["run_dir"]) / "results.jsonl").is_file()
    assert (tmp_path / "gh_summary.md").read_text().strip()


def test_action_step_fails_on_a_gate_and_passes_args(tmp_path):
    suite(tmp_path, gates="gates:\n  - exact_match.pass_rate >= 0.9\n")
    r, out = run_step(tmp_path, args="--limit\n2\n")  # one argument per line
    assert r.returncode == 1, r.stderr  # the step fails: so does the job
    assert out["verdict"] == "fail"
    assert "::error title=evalrun gate failed%3A exact_match.pass_rate >= 0.9" in r.stderr
    assert out["html_report"]  # the report is there for the artifact step even so
    assert json.loads((Path(out["run_dir"]) / "summary.json").read_text())["records"] == 2


def test_action_step_shard_and_baseline(tmp_path):
    suite(tmp_path, gates="gates:\n  - exact_match.pass_rate >= 0.9\n")
    r, first = run_step(tmp_path, shard="1/2")
    assert r.returncode == 0, r.stderr  # a shard defers its gates to the merge
    assert first["report_path"].endswith(".evalrun/reports/eval-shard-1-of-2/report.md")
    r, second = run_step(tmp_path, shard="2/2")
    assert r.returncode == 0, r.stderr
    merged = subprocess.run([sys.executable, "-m", "evalrun", "merge", first["run_dir"], second["run_dir"], "-q",
                             "--output-dir", str(tmp_path / ".evalrun")], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert merged.returncode == 1, merged.stderr  # the merged run is gated
    r, out = run_step(tmp_path, baseline=first["run_dir"])
    assert r.returncode == 1 and out["verdict"] == "fail"
    assert "baseline" in Path(out["report_path"]).read_text().lower()


def test_bad_input_in_the_action_is_exit_2(tmp_path):
    suite(tmp_path)
    r, out = run_step(tmp_path, config="missing.yaml")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "missing.yaml" in r.stderr
    assert out == {}
