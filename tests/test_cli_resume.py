"""Ctrl-C, SIGKILL and `evalrun run --resume`: partial results are kept, finishing them
runs only the missing (item, trial) pairs, and no record appears twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import invoke_cli, run_cli
from tests.test_cli_run import only_run, records, write_suite

ITEMS = [{"id": f"k{i}", "input": f"k{i}", "expected_output": f"k{i}"} for i in range(30)]
FAST = {"SLOW_TARGET_S": "0"}  # targets_mod:slow without its delay


def start(root: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.Popen([sys.executable, "-m", "evalrun", "run", "eval.yaml", "--output-dir", str(root / ".evalrun")],
                            cwd=root, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for_records(root: Path, n: int, timeout: float = 30) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = root / ".evalrun" / "runs"
        if runs.is_dir():
            for d in runs.iterdir():
                f = d / "results.jsonl"
                if f.exists() and f.read_text().count("\n") >= n:
                    return d
        time.sleep(0.05)
    raise AssertionError("records did not appear")


def keys(run_dir: Path) -> list[tuple[str, int]]:
    return [(r["item_id"], r["trial"]) for r in records(run_dir)]


def test_ctrl_c_saves_partial_results_and_resume_finishes(tmp_path):
    write_suite(tmp_path, ITEMS, "python: targets_mod:slow", extra="concurrency: 2\nrepeat: 2\n")
    p = start(tmp_path)
    run_dir = wait_for_records(tmp_path, 4)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 130, err
    assert f"evalrun run --resume {run_dir.name}" in err
    manifest = json.loads((run_dir / "manifest.json").read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert manifest["status"] == "interrupted" and summary["status"] == "interrupted"
    partial = keys(run_dir)
    assert 4 <= len(partial) < 60 and summary["records"] == len(partial)

    # the resume finishes the remaining calls without the target's delay
    r = run_cli("run", "--resume", "--output-dir", str(tmp_path / ".evalrun"), "--json", cwd=tmp_path, timeout=120,
                env=FAST)
    assert r.returncode == 0, r.stderr
    assert only_run(tmp_path) == run_dir  # the run id stays
    final = keys(run_dir)
    assert len(final) == len(set(final)) == 60
    assert final[: len(partial)] == partial  # earlier records were kept, not redone
    s = json.loads(r.stdout)
    # n counts items (30, each with 2 trials); trials counts every scored record
    assert s["status"] == "finished" and s["records"] == 60 and s["scorers"]["exact_match"]["trials"] == 60
    assert s["scorers"]["exact_match"]["n"] == 30
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "finished"


def test_sigkill_then_resume_by_id(tmp_path):
    write_suite(tmp_path, ITEMS, "python: targets_mod:slow", extra="concurrency: 3\n")
    p = start(tmp_path)
    run_dir = wait_for_records(tmp_path, 3)
    p.kill()
    p.communicate(timeout=30)
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "running"
    before = len(keys(run_dir))
    r = run_cli("run", "--resume", run_dir.name, "--output-dir", str(tmp_path / ".evalrun"), "--json",
                cwd=tmp_path, timeout=120, env=FAST)
    assert r.returncode == 0, r.stderr
    final = keys(run_dir)
    assert len(final) == len(set(final)) == 30 and before >= 3
    assert json.loads(r.stdout)["records"] == 30


def test_torn_last_line_is_repaired_on_resume(tmp_path):
    write_suite(tmp_path, ITEMS[:6], "python: targets_mod:echo")
    assert invoke_cli("run", "eval.yaml", "--output-dir", str(tmp_path / ".evalrun"), "--quiet", cwd=tmp_path).returncode == 0
    run_dir = only_run(tmp_path)
    lines = (run_dir / "results.jsonl").read_text().splitlines(keepends=True)
    # as if SIGKILL hit while the 4th record was being written
    (run_dir / "results.jsonl").write_text("".join(lines[:3]) + lines[3][:20])
    m = json.loads((run_dir / "manifest.json").read_text())
    m["status"] = "running"
    (run_dir / "manifest.json").write_text(json.dumps(m))
    r = invoke_cli("run", "--resume", str(run_dir), "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert sorted(keys(run_dir)) == sorted((f"k{i}", 0) for i in range(6))


def test_resume_refuses_finished_and_changed_runs(tmp_path):
    write_suite(tmp_path, ITEMS[:3], "python: targets_mod:echo")
    home = str(tmp_path / ".evalrun")
    assert invoke_cli("run", "eval.yaml", "--output-dir", home, "--quiet", cwd=tmp_path).returncode == 0
    r = invoke_cli("run", "--resume", "--output-dir", home, cwd=tmp_path)
    assert r.returncode == 2 and "already finished" in r.stderr
    run_dir = only_run(tmp_path)
    m = json.loads((run_dir / "manifest.json").read_text())
    m["status"] = "interrupted"
    (run_dir / "manifest.json").write_text(json.dumps(m))
    (tmp_path / "eval.yaml").write_text((tmp_path / "eval.yaml").read_text() + "concurrency: 3\n")
    r = invoke_cli("run", "--resume", "--output-dir", home, cwd=tmp_path)
    assert r.returncode == 2 and "changed since run" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_second_ctrl_c_exits_at_once(tmp_path):
    write_suite(tmp_path, ITEMS, "python: targets_mod:slow", extra="concurrency: 2\n")
    p = start(tmp_path)
    wait_for_records(tmp_path, 2)
    p.send_signal(signal.SIGINT)
    p.send_signal(signal.SIGINT)
    p.communicate(timeout=15)
    assert p.returncode == 130


def test_resume_keeps_the_runs_own_plan(tmp_path):
    write_suite(tmp_path, ITEMS[:3], "python: targets_mod:echo")
    r = invoke_cli("run", "--resume", "--limit", "2", "--filter", "a=b", "--output-dir", str(tmp_path / ".evalrun"),
                cwd=tmp_path)
    assert r.returncode == 2 and "drop --limit, --filter" in r.stderr and len(r.stderr.strip().splitlines()) == 1
