"""Every malformed input in tests/bad_inputs/ gives one clear line, exit code 2, no traceback.

A case is a folder with ``eval.yaml`` (plus whatever files it needs) and ``expected.txt``:
``message:`` a fragment the error line must contain, ``where:`` the ``file:line`` it must
name (when there is a file), ``args:`` extra CLI arguments, ``env:`` KEY=VALUE to set.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

CASES = Path(__file__).parent / "bad_inputs"


def _spec(case: Path) -> dict[str, str]:
    spec = {}
    for line in (case / "expected.txt").read_text().splitlines():
        key, _, value = line.partition(":")
        spec[key.strip()] = value.strip()
    return spec


ALL = sorted(p for p in CASES.iterdir() if (p / "expected.txt").is_file())


def test_corpus_is_large_enough():
    assert len(ALL) >= 25


@pytest.mark.parametrize("case", ALL, ids=[p.name for p in ALL])
def test_bad_input(case: Path, tmp_path: Path, cli):
    spec = _spec(case)
    env = dict([spec["env"].split("=", 1)]) if spec.get("env") else None
    home = tmp_path / "home"
    args = ["run", "eval.yaml", "--output-dir", str(home), *shlex.split(spec.get("args", ""))]
    r = cli(*args, cwd=case, env=env, timeout=60)
    assert r.returncode == 2, f"exit {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, f"want one line, got:\n{r.stderr}"
    line = lines[0]
    assert "Traceback" not in r.stderr and "internal error" not in line
    assert line.startswith("evalrun: error: "), line
    assert spec["message"] in line, f"{spec['message']!r} not in {line!r}"
    if spec.get("where"):
        assert spec["where"] in line, f"{spec['where']!r} not in {line!r}"
    # bad input is caught before anything runs: no run directory was started
    assert not (home / "runs").exists() or not any((home / "runs").iterdir())


def test_repeat_has_one_bound_on_the_command_line_and_in_the_eval_file():
    from evalrun.cli import MAX_REPEAT
    from evalrun.config import EvalConfig

    bound = [m.le for m in EvalConfig.model_fields["repeat"].metadata if hasattr(m, "le")]
    assert bound == [MAX_REPEAT]
