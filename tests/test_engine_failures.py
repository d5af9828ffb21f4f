"""What the engine does when records cannot be saved: stop, keep what was saved, exit 3."""

from __future__ import annotations

import asyncio
import json

import pytest

from evalrun.engine import RunOptions, run_eval
from evalrun.errors import RunFailed
from evalrun.store import ResultsWriter, list_runs
from tests.test_cli_run import write_suite


def test_a_failing_write_fails_the_run_and_keeps_what_was_saved(tmp_path, monkeypatch):
    items = [{"id": f"w{i}", "input": f"w{i}", "expected_output": f"w{i}"} for i in range(400)]
    cfg = write_suite(tmp_path, items, "python: targets_mod:echo", extra="concurrency: 4\n")
    real_write = ResultsWriter.write
    calls = {"n": 0}

    def flaky_write(self, records):
        if self.path.name != "results.jsonl":  # the pending journal keeps working
            return real_write(self, records)
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")
        real_write(self, records)

    monkeypatch.setattr(ResultsWriter, "write", flaky_write)
    home = tmp_path / ".evalrun"
    with pytest.raises(RunFailed, match="No space left on device"):
        asyncio.run(asyncio.wait_for(run_eval(RunOptions(config_path=str(cfg), home=home, progress="off")), 60))
    run_dir = list_runs(home)[0]
    saved = (run_dir.path / "results.jsonl").read_text().splitlines()
    summary = json.loads((run_dir.path / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["records"] == len(saved) > 0
    assert json.loads((run_dir.path / "manifest.json").read_text())["status"] == "failed"
