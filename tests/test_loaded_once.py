"""An ``evalrun run`` reads and validates its eval file once (a load may resolve ``${VAR}``s,
import scorer plugins, and every module after it shares the result), and reads its dataset
once (the GitHub reporter places annotations from the items the run read): counted by
wrapping ``load_config`` / ``load_dataset`` wherever a module holds them, around real
in-process CLI runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import invoke_cli

# stops its own run with a real Ctrl-C (SIGINT to this process) at the second item while the
# flag file exists: the interrupted run that --resume continues
TARGET = '''
import os, signal, pathlib

def answer(question):
    if question == "question 1" and pathlib.Path(__file__).with_name("STOP").exists():
        os.kill(os.getpid(), signal.SIGINT)
        raise RuntimeError("stopped")
    return question.upper()
'''


def _count(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> list[tuple[Any, ...]]:
    """Every call of ``module.name`` (its args), from any evalrun module, now or imported later."""
    import evalrun.api
    import evalrun.cli
    import evalrun.engine
    import evalrun.github
    import evalrun.postrun
    import evalrun.variants  # noqa: F401 (imported so the names they bound are wrapped too)

    original = getattr(module, name)
    calls: list[tuple[Any, ...]] = []

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append((*args, kwargs.get("variant")))
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, counting)
    for mod_name, mod in list(sys.modules.items()):
        if mod_name.startswith("evalrun") and getattr(mod, name, None) is original:
            monkeypatch.setattr(mod, name, counting)
    return calls


@pytest.fixture
def loads(monkeypatch):
    """Every ``load_config`` call: (path, overrides, variant)."""
    import evalrun.config

    return _count(monkeypatch, evalrun.config, "load_config")


@pytest.fixture
def dataset_loads(monkeypatch):
    """Every ``load_dataset`` call: (ref, base dir, None)."""
    import evalrun.datasets

    return _count(monkeypatch, evalrun.datasets, "load_dataset")


def _project(root: Path, extra: dict[str, Any] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "once_target.py").write_text(TARGET)
    with open(root / "data.jsonl", "w") as f:
        for i in range(4):
            f.write(json.dumps({"id": f"q{i}", "input": f"question {i}", "expected_output": f"QUESTION {i}"}) + "\n")
    cfg: dict[str, Any] = {"name": "once", "dataset": "data.jsonl", "concurrency": 1,
                           "target": {"python": "once_target:answer", "retries": 0}, "scorers": ["exact_match"],
                           **(extra or {})}
    (root / "eval.yaml").write_text(json.dumps(cfg))
    return root


@pytest.fixture(autouse=True)
def _fresh_target_module(monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "once_target", raising=False)


def _manifest(home: Path) -> dict[str, Any]:
    from evalrun.store import list_runs

    return list_runs(home)[-1].read_manifest()


def test_a_plain_run_loads_the_eval_file_once(tmp_path, loads):
    root = _project(tmp_path / "p")
    r = invoke_cli("run", "eval.yaml", "--output-dir", "home", "-q", "--set", "repeat=2", cwd=root)
    assert r.returncode == 0, r.stderr
    assert loads == [("eval.yaml", {"repeat": 2}, None)]
    # what resume and the gates' baseline pairing check is recorded as before
    from evalrun.config import load_config

    m = _manifest(root / "home")
    assert m["config_path"] == str((root / "eval.yaml").resolve())
    assert m["config_fingerprint"] == load_config(root / "eval.yaml", {"repeat": 2}).fingerprint
    assert m["overrides"] == {"repeat": 2} and m["planned"]["records"] == 8


def test_a_run_with_gates_and_a_baseline_loads_it_once(tmp_path, loads):
    root = _project(tmp_path / "p", {"gates": ["exact_match.pass_rate >= 0.5", "no_regressions"]})
    assert invoke_cli("run", "eval.yaml", "--output-dir", "home", "-q", cwd=root).returncode == 0
    first = _manifest(root / "home")["run_id"]
    loads.clear()
    r = invoke_cli("run", "eval.yaml", "--output-dir", "home", "--baseline", first, "--report", "md", "-q",
                   cwd=root)
    assert r.returncode == 0, r.stderr
    assert loads == [("eval.yaml", {}, None)]
    assert (root / "home" / "runs" / _manifest(root / "home")["run_id"] / "report.md").is_file()


def test_resume_loads_the_runs_own_eval_file_once(tmp_path, loads):
    # (the stopped call is an error record: 1 of 4, within this budget)
    root = _project(tmp_path / "p", {"error_budget": 0.5})
    (root / "STOP").write_text("")
    r = invoke_cli("run", "eval.yaml", "--output-dir", "home", "-q", "--set", "description=x", cwd=root)
    assert r.returncode == 130, r.stderr
    m = _manifest(root / "home")
    assert m["status"] == "interrupted"
    (root / "STOP").unlink()
    loads.clear()
    r = invoke_cli("run", "--resume", "--output-dir", "home", "-q", cwd=root)
    assert r.returncode == 0, r.stderr
    # the manifest's file and --set values, read once; the fingerprint check passed on them
    assert loads == [(m["config_path"], {"description": "x"}, None)]
    m2 = _manifest(root / "home")
    assert m2["run_id"] == m["run_id"] and m2["status"] == "finished" and len(m2["resumed_at"]) == 1


def test_variants_load_the_file_once_and_each_variant_once(tmp_path, loads):
    root = _project(tmp_path / "p", {"variants": {"control": {}, "slow": {"target.timeout": 30}}})
    r = invoke_cli("run", "eval.yaml", "--output-dir", "home", "-q", cwd=root)
    assert r.returncode == 0, r.stderr
    assert sorted(loads, key=lambda c: str(c[2])) == [("eval.yaml", {}, None), (Path("eval.yaml"), {}, "control"),
                                                      (Path("eval.yaml"), {}, "slow")]


def test_the_api_loads_a_path_once_and_a_loaded_config_never(tmp_path, loads):
    import evalrun
    from evalrun.config import load_config

    root = _project(tmp_path / "p")
    result = evalrun.run(root / "eval.yaml", home=root / "home")
    assert result.status == "finished" and loads == [(root / "eval.yaml", {}, None)]
    loaded = load_config(root / "eval.yaml")
    loads.clear()
    again = evalrun.run(loaded, home=root / "home")
    assert again.status == "finished" and loads == []
    assert again.manifest()["config_fingerprint"] == result.manifest()["config_fingerprint"] == loaded.fingerprint


def _actions_env(root: Path) -> dict[str, str]:
    return {"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(root / "gh_output"),
            "GITHUB_STEP_SUMMARY": str(root / "gh_summary.md"), "GITHUB_WORKSPACE": str(root)}


def test_github_annotations_are_placed_from_the_items_the_run_read(tmp_path, loads, dataset_loads):
    root = _project(tmp_path / "p")
    assert invoke_cli("run", "eval.yaml", "--output-dir", "home", "-q", cwd=root).returncode == 0
    first = _manifest(root / "home")["run_id"]
    # the candidate breaks q2 (line 3 of data.jsonl); no gates: a warning on that line
    (root / "once_target.py").write_text(TARGET.replace("return question.upper()",
                                                        "return 'oops' if question.endswith('2') else question.upper()"))
    sys.modules.pop("once_target", None)
    loads.clear()
    dataset_loads.clear()
    r = invoke_cli("run", "eval.yaml", "--output-dir", "home", "-q", "--baseline", first, cwd=root,
                   env=_actions_env(root))
    assert r.returncode == 0, r.stderr
    warnings = [x for x in r.stderr.splitlines() if x.startswith("::warning")]
    assert len(warnings) == 1 and warnings[0].startswith("::warning file=data.jsonl,line=3,title=evalrun%3A item q2 "
                                                         "regressed::"), r.stderr
    assert loads == [("eval.yaml", {}, None)]
    assert [c[0] for c in dataset_loads] == ["data.jsonl"]  # the engine's; publishing read nothing again


def test_a_variant_group_in_actions_reads_the_dataset_once(tmp_path, dataset_loads):
    root = _project(tmp_path / "p", {"variants": {"control": {}, "broken": {"target.python": "once_target:broken"}},
                                     "gates": ["no_regressions"]})
    (root / "once_target.py").write_text(TARGET + "\ndef broken(question):\n    return 'oops'\n")
    r = invoke_cli("run", "eval.yaml", "--output-dir", "home", "-q", cwd=root, env=_actions_env(root))
    assert r.returncode == 1, r.stderr
    errors = [x for x in r.stderr.splitlines() if x.startswith("::error")]
    assert [x.split("::")[1] for x in errors] == [
        f"error file=data.jsonl,line={i + 1},title=[broken] evalrun gate failed%3A no_regressions" for i in range(4)]
    assert [c[0] for c in dataset_loads] == ["data.jsonl"]  # shared by the variants' runs


def test_a_run_with_a_slice_gate_reads_its_dataset_once(tmp_path, dataset_loads):
    """The slice gate's check before the run and the engine share one read of the dataset; a
    slice value the dataset lacks is still one line before any call."""
    items = [{"id": f"q{i}", "input": f"question {i}", "expected_output": f"QUESTION {i}",
              "metadata": {"tags": ["math" if i % 2 else "geo"]}} for i in range(4)]
    root = _project(tmp_path / "p", {"gates": ["exact_match.pass_rate[tag=math] >= 0.5"]})
    (root / "data.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    r = invoke_cli("run", "eval.yaml", "--output-dir", "home", "-q", cwd=root)
    assert r.returncode == 0, r.stderr
    assert [c[0] for c in dataset_loads] == ["data.jsonl"]
    dataset_loads.clear()
    bad = invoke_cli("run", "eval.yaml", "--output-dir", "home2", "-q", "--set",
                     'gates=["exact_match.pass_rate[tag=maths] >= 0.5"]', cwd=root)
    assert bad.returncode == 2 and "maths" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert not (root / "home2" / "runs").exists() or not any((root / "home2" / "runs").iterdir())
    assert [c[0] for c in dataset_loads] == ["data.jsonl"]


def test_a_variant_group_with_a_slice_gate_reads_its_dataset_once(tmp_path, dataset_loads):
    items = [{"id": f"q{i}", "input": f"question {i}", "expected_output": f"QUESTION {i}",
              "metadata": {"tags": ["math" if i % 2 else "geo"]}} for i in range(4)]
    root = _project(tmp_path / "p", {"variants": {"a": {}, "b": {}},
                                     "gates": ["exact_match.pass_rate[tag=math] >= 0.5"]})
    (root / "data.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    r = invoke_cli("run", "eval.yaml", "--output-dir", "home", "-q", cwd=root)
    assert r.returncode == 0, r.stderr
    assert [c[0] for c in dataset_loads] == ["data.jsonl"]  # the gates' check and both runs share it
