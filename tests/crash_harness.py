"""SIGKILL at random moments of a real run, then ``--resume``, again and again: what a crash
loses and what a resume re-does, measured from the outside.

The target is a Python function that appends its input to a call log (O_APPEND, one line per
call, written as the call starts) before answering, so every target execution is counted
even when the process dies mid-call. Scorers: an LLM judge against tests/openai_server.py
(a real HTTP server with latency) and, optionally, the bundled embedding model. Both are
slower than the target, which is exactly when finished calls used to wait in memory.

A re-execution is a call of an input that an earlier (killed) process had already started.
After each kill the next process may re-execute only the calls that were in flight when the
kill landed: at most ``concurrency``.

Used by tests/test_crash_resume.py (small) and benchmarks/bench_crash.py (2,000 items).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

TARGET = '''\
import os
import time

LOG = os.environ["EVALRUN_CALL_LOG"]


def answer(question):
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, (question + "\\n").encode())
    os.close(fd)
    time.sleep(float(os.environ.get("EVALRUN_TARGET_SLEEP", "0.002")))
    return question + " [[judge:correct]]"
'''


def make_suite(root: Path, items: int, concurrency: int, embedding: bool) -> None:
    (root / "tgt.py").write_text(TARGET)
    with open(root / "data.jsonl", "w") as f:
        for i in range(items):
            f.write(json.dumps({"id": f"c{i}", "input": f"q{i}", "expected_output": f"q{i} answer"}) + "\n")
    scorers = ("  - name: judge\n    type: llm_judge\n    rubric: correctness\n    model: m\n"
               "    base_url: ${JUDGE_URL}\n    concurrency: 8\n")
    if embedding:
        scorers += "  - {name: similar, type: embedding_similarity, threshold: 0.5}\n"
    (root / "eval.yaml").write_text(f"name: crash\ndataset: data.jsonl\ntarget:\n  python: tgt:answer\n"
                                    f"concurrency: {concurrency}\nscorers:\n{scorers}")


@dataclass
class CrashReport:
    kills: int = 0
    reexecuted_per_kill: list[int] = field(default_factory=list)
    lines_after_each_process: list[int] = field(default_factory=list)
    duplicate_lines: int = 0
    final_records: int = 0
    final_unique: int = 0
    total_calls: int = 0
    final_exit: int | None = None
    final_stderr: str = ""
    # per process: seconds from its start to the kill (None: not killed), calls it made
    killed_after_s: list[float | None] = field(default_factory=list)
    calls_per_process: list[int] = field(default_factory=list)


def _calls(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def _finished(home: Path) -> bool:
    for m in (home / "runs").glob("*/manifest.json"):
        if json.loads(m.read_text()).get("status") == "finished":
            return True
    return False


def _progress(home: Path, log: Path) -> tuple[int, int]:
    """(bytes in the call log, bytes in results.jsonl): grows while a run works."""
    results = sum(p.stat().st_size for p in (home / "runs").glob("*/results.jsonl")) if (home / "runs").is_dir() else 0
    return (log.stat().st_size if log.exists() else 0, results)


def _result_keys(home: Path) -> list[tuple[str, int]]:
    runs = home / "runs"
    out: list[tuple[str, int]] = []
    if not runs.is_dir():
        return out
    for d in runs.iterdir():
        p = d / "results.jsonl"
        if p.exists():
            for line in p.read_bytes().splitlines():
                try:
                    r = json.loads(line)
                except ValueError:
                    continue  # a torn last line: the next process repairs it
                out.append((r["item_id"], r["trial"]))
    return out


def run_with_kills(root: Path, judge_url: str, kills: int, max_wait: float, seed: int = 0,
                   timeout: float = 900, package_root: Path = REPO, target_sleep: float = 0.002,
                   signals: tuple[int, ...] = (signal.SIGKILL,)) -> CrashReport:
    """Start the run, SIGKILL it after a random delay, ``--resume``, repeat ``kills`` times,
    then let the last resume finish. ``signals``: what each kill sends, in turn (a second
    Ctrl-C while the first is being handled, say), 50 ms apart."""
    rng = random.Random(seed)
    home = root / ".evalrun"
    log = root / "calls.log"
    env = {**os.environ, "NO_COLOR": "1", "JUDGE_URL": judge_url, "OPENAI_API_KEY": "sk-test",
           "EVALRUN_CALL_LOG": str(log), "PYTHONPATH": str(package_root),
           "EVALRUN_TARGET_SLEEP": str(target_sleep)}
    env.pop("GITHUB_ACTIONS", None)
    rep = CrashReport()
    first = True
    for k in range(kills + 1):
        if not first and _finished(home):
            # the kill landed after the run had finished (while the process was exiting)
            rep.final_exit = 0
            break
        args = ["run", "eval.yaml"] if first else ["run", "--resume", "latest"]
        started_before = set(_calls(log))
        n_before = len(_calls(log))
        t_start = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "evalrun", *args, "--output-dir", str(home),
                                 "--quiet"],
                                cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if k < kills:
            # a random moment of the working phase: once this process has started calling
            # the target or writing scored records (before that, the scorers load their
            # models and there is nothing to lose)
            start_mark = _progress(home, log)
            deadline = time.monotonic() + 120
            while _progress(home, log) == start_mark:
                if proc.poll() is not None or time.monotonic() > deadline:
                    break
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, max_wait))
        if k < kills and proc.poll() is None:
            for i, sig in enumerate(signals):
                if i:
                    time.sleep(0.05)
                if proc.poll() is None:
                    proc.send_signal(sig)
            rep.killed_after_s.append(round(time.monotonic() - t_start, 2))
            proc.communicate(timeout=60)
            rep.kills += 1
        else:
            _, err = proc.communicate(timeout=timeout)
            rep.final_exit, rep.final_stderr = proc.returncode, err
            rep.killed_after_s.append(None)
        # calls this process made of inputs an earlier process had already started
        mine = _calls(log)[n_before:]
        rep.calls_per_process.append(len(mine))
        if not first:
            rep.reexecuted_per_kill.append(sum(1 for q in mine if q in started_before))
        keys = _result_keys(home)
        rep.lines_after_each_process.append(len(keys))
        rep.duplicate_lines = max(rep.duplicate_lines, len(keys) - len(set(keys)))
        first = False
        if rep.final_exit is not None:
            break
    keys = _result_keys(home)
    rep.final_records, rep.final_unique = len(keys), len(set(keys))
    calls = Counter(_calls(log))
    rep.total_calls = sum(calls.values())
    return rep
