"""Shared fixtures: the real CLI, in this process (``cli``, the default) or in a subprocess
(``run_cli``, for tests whose point is the process boundary: signals, crashes, kills,
``python -m evalrun``)."""

from __future__ import annotations

import io
import logging
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _cli_env(env: dict[str, str] | None) -> dict[str, str]:
    full_env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "160", **(env or {})}
    if "GITHUB_ACTIONS" not in (env or {}):
        full_env.pop("GITHUB_ACTIONS", None)
    return full_env


def run_cli(*args: str, cwd: Path | str | None = None, env: dict[str, str] | None = None,
            timeout: float = 120, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m evalrun ARGS`` as a user would run it; never a shell."""
    return subprocess.run([sys.executable, "-m", "evalrun", *args], cwd=cwd, env=_cli_env(env), text=True,
                          capture_output=True, timeout=timeout, input=input)


@dataclass
class CliResult:
    """What :func:`run_cli` gives, from an in-process run."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str


_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def invoke_cli(*args: str, cwd: Path | str | None = None, env: dict[str, str] | None = None,
               timeout: float | None = None, input: str | None = None) -> CliResult:
    """``evalrun ARGS`` in this process, as :func:`run_cli` runs it in a new one: the same
    environment, working directory, stdin and captured output, all put back afterwards.

    ``timeout`` is accepted for the same signature; pytest-timeout bounds a hung test. The
    process-wide state a run must leave as it found it (signal handlers, the working
    directory, the root logger, threads) is checked, so a leak fails the test that caused it."""
    from evalrun import cli as cli_module

    saved_env, saved_cwd, saved_path = dict(os.environ), os.getcwd(), list(sys.path)
    saved_streams = sys.stdin, sys.stdout, sys.stderr
    saved_signals = {s: signal.getsignal(s) for s in _SIGNALS}
    saved_logging = list(logging.root.handlers), logging.root.level
    threads_before = set(threading.enumerate())
    out, err = io.StringIO(), io.StringIO()
    run_env = _cli_env(env)
    try:
        os.environ.clear()
        os.environ.update(run_env)
        if cwd is not None:
            os.chdir(cwd)
        sys.stdin, sys.stdout, sys.stderr = io.StringIO(input or ""), out, err
        try:
            code = cli_module.invoke(list(args))
        except SystemExit as e:  # raised past evalrun (a user's module calling sys.exit): the process's exit
            code = e.code if isinstance(e.code, int) else 0 if e.code is None else 1
            if not isinstance(e.code, int | None):
                print(e.code, file=sys.stderr)
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved_streams
        cwd_after = os.getcwd()
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        sys.path[:] = saved_path  # a Python target's folder goes on sys.path, as in its own process
    leaked = {s: h for s, h in ((s, signal.getsignal(s)) for s in _SIGNALS) if h != saved_signals[s]}
    assert not leaked, f"evalrun left signal handlers installed: {leaked} (were {saved_signals})"
    assert cwd_after == str(Path(cwd).resolve() if cwd is not None else saved_cwd), "evalrun changed the cwd"
    assert (list(logging.root.handlers), logging.root.level) == saved_logging, "evalrun changed the root logger"
    # threads a run starts (its pools, asyncio's executor); the one model thread of the
    # embedding scorer lives as long as the process, by design; test servers are not the run's
    started = [t for t in set(threading.enumerate()) - threads_before
               if t.name.startswith(("evalrun-", "ThreadPoolExecutor", "asyncio_"))
               and not t.name.startswith("evalrun-embed")]
    for t in started:  # a pool shut down without waiting ends its idle threads a moment later
        t.join(timeout=5)
    stray = [t.name for t in started if t.is_alive()]
    assert not stray, f"evalrun left threads running: {stray}"
    return CliResult(list(args), code, out.getvalue(), err.getvalue())


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests marked ``slow`` first, the rest in file order: with ``-n 2`` a worker that
    picks up a long test at the end no longer leaves the other one idle."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture
def server():
    """A local OpenAI-compatible server (tests/openai_server.py) for the judge and chat tests;
    a test module may define its own ``server`` instead."""
    from tests.openai_server import OpenAIServer

    with OpenAIServer() as srv:
        yield srv


@pytest.fixture
def cli():
    """The CLI in this process (see :func:`invoke_cli`)."""
    return invoke_cli
