"""Several runs in one process (the test suite, a library user) do not leak into each other:
each eval imports its own folder's modules as they are now, and a run puts back the signal
handlers it found."""

from __future__ import annotations

import json
import signal
from pathlib import Path


def project(root: Path, answer: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "tgt.py").write_text(f"def run(x):\n    return {answer!r}\n")
    (root / "data.jsonl").write_text(json.dumps({"id": "a", "input": "q", "expected_output": "yes"}) + "\n")
    (root / "eval.yaml").write_text("name: t\ndataset: data.jsonl\ntarget:\n  python: tgt:run\nscorers: [exact_match]\n")
    return root


def mean(cli, root: Path) -> float:
    r = cli("run", "eval.yaml", "--output-dir", str(root / ".evalrun"), "--json", cwd=root)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["scorers"]["exact_match"]["mean"]


def test_each_eval_runs_its_own_folders_module(cli, tmp_path):
    right, wrong = project(tmp_path / "right", "yes"), project(tmp_path / "wrong", "no")
    assert [mean(cli, right), mean(cli, wrong), mean(cli, right)] == [1.0, 0.0, 1.0]


def test_an_edited_module_is_imported_again(cli, tmp_path):
    root = project(tmp_path / "p", "no")
    assert mean(cli, root) == 0.0
    (root / "tgt.py").write_text("def run(x):\n    return 'yes'  # fixed\n")
    assert mean(cli, root) == 1.0


def test_a_run_puts_back_an_ignored_sigint(cli, tmp_path):
    root = project(tmp_path / "p", "yes")
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as under nohup or in a background job
    try:
        assert mean(cli, root) == 1.0
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)
