"""The library API: evalrun.run / evalrun.compare, what ``evalrun run`` and ``evalrun compare`` call."""

from __future__ import annotations

import json
import sys

import pytest

import evalrun
from evalrun import ExitCode, UsageError

TARGETS = '''
def echo(x):
    return x

def shout(x):
    return x.upper()
'''


@pytest.fixture
def project(tmp_path, monkeypatch):
    """An eval folder: two items, an exact-match scorer, a no-regressions gate."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "api_targets", raising=False)
    (tmp_path / "api_targets.py").write_text(TARGETS)
    items = [{"id": "a", "input": "yes", "expected_output": "yes"},
             {"id": "b", "input": "no", "expected_output": "no"}]
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    for name, fn in (("echo", "echo"), ("shout", "shout")):
        (tmp_path / f"{name}.yaml").write_text(
            f"name: api\ndataset: data.jsonl\ntarget:\n  python: api_targets:{fn}\n"
            "scorers: [{type: exact_match}]\ngates:\n  - no_regressions\n  - exact_match.pass_rate >= 0.5\n")
    return tmp_path


def test_run_then_a_regressing_run_fails_its_gate(project):
    home = project / ".evalrun"
    first = evalrun.run(project / "echo.yaml", home=home)
    assert isinstance(first, evalrun.RunResult)
    assert first.status == "finished" and first.passed and first.exit_code == ExitCode.OK
    assert first.summary["scorers"]["exact_match"]["pass_rate"] == 1.0
    assert sorted(r.item_id for r in first.records()) == ["a", "b"]
    assert first.manifest()["eval"] == "api"
    assert (home / "runs" / first.run_id / "summary.json").is_file()

    second = evalrun.run(str(project / "shout.yaml"), home=home, baseline=first.run_id, reports=["md"])
    assert second.status == "finished"
    assert second.exit_code == ExitCode.GATE_FAILED and not second.passed
    assert second.verdict is not None
    assert [g.gate.text for g in second.verdict.failed_gates] == ["no_regressions", "exact_match.pass_rate >= 0.5"]
    assert sorted(second.verdict.comparison.by_status("regressed"), key=lambda d: d.item_id)[0].item_id == "a"
    written = dict(second.verdict.written)
    assert (home / "runs" / second.run_id / "report.md").as_posix() == written["md"].replace("\\", "/")

    # the same verdict from the saved runs
    again = evalrun.compare(second.run_id, first.run_id, home=home)
    assert not again.passed and again.exit_code == ExitCode.GATE_FAILED
    assert [g.gate.text for g in again.failed_gates] == [g.gate.text for g in second.verdict.failed_gates]
    # run directories as paths (what a RunResult holds), as the CLI takes them as text
    by_path = evalrun.compare(second.run_dir.path, first.run_dir.path, home=home)
    assert [g.gate.text for g in by_path.failed_gates] == [g.gate.text for g in second.verdict.failed_gates]
    with pytest.raises(UsageError, match="run=3: expected text or a path"):
        evalrun.compare(3, home=home)  # type: ignore[arg-type]  # (the wrong type on purpose)


def test_bad_input_is_a_usage_error_before_any_run(project):
    home = project / ".evalrun"
    with pytest.raises(UsageError, match="report"):
        evalrun.run(project / "echo.yaml", home=home, reports=["pdf"])
    with pytest.raises(UsageError, match="--resume keeps the run's own plan; drop --repeat, --limit"):
        evalrun.run(resume="latest", home=home, repeat=2, limit=1)
    assert not (home / "runs").exists() or not any((home / "runs").iterdir())
    with pytest.raises(UsageError, match="no baseline"):
        evalrun.compare(evalrun.run(project / "echo.yaml", home=home).run_id, home=home)


def test_the_cli_is_the_api_plus_rendering(project, monkeypatch):
    """``evalrun run`` exits with the code the API's result carries."""
    from tests.conftest import invoke_cli

    home = str(project / ".evalrun")
    assert invoke_cli("run", "echo.yaml", "--output-dir", home, "--quiet", cwd=project).returncode == 0
    r = invoke_cli("run", "shout.yaml", "--output-dir", home, "--baseline", "latest", cwd=project)
    assert r.returncode == ExitCode.GATE_FAILED
    assert "no_regressions" in r.stdout


def test_public_names():
    for name in evalrun.__all__:
        assert getattr(evalrun, name) is not None
    from evalrun.compare import Comparison  # the module of that name stays importable

    assert callable(evalrun.compare) and evalrun.compare is not sys.modules["evalrun.compare"]
    assert Comparison.__module__ == "evalrun.compare"
    assert evalrun.Scorer.__module__ == "evalrun.scoring.base"


def test_run_takes_a_loaded_config(project):
    from evalrun.config import load_config

    loaded = load_config(str(project / "echo.yaml"), {"repeat": 2})
    result = evalrun.run(loaded, home=project / ".evalrun")
    assert result.passed and len(result.records()) == 4
    assert result.manifest()["config_path"] == str((project / "echo.yaml").resolve())
