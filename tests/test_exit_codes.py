"""One source of exit codes: evalrun.errors.ExitCode."""

from __future__ import annotations

import ast
from pathlib import Path

from evalrun.errors import ExitCode, RunFailed, UsageError, verdict_word

PKG = Path(__file__).resolve().parent.parent / "evalrun"


def test_exit_codes_of_a_run():
    assert [int(c) for c in ExitCode] == [0, 1, 2, 3, 4, 130]
    assert ExitCode.of_run("finished", passed=False, incomplete=True) == ExitCode.INCOMPLETE == 4
    assert ExitCode.of_run("failed", passed=False, incomplete=True) == 3
    assert ExitCode.of_run("finished") == 0
    assert ExitCode.of_run("finished", passed=False) == 1
    assert ExitCode.of_run("failed", passed=True) == 3
    assert ExitCode.of_run("interrupted", passed=False) == 130
    assert UsageError("x").exit_code == ExitCode.USAGE
    assert RunFailed("x").exit_code == ExitCode.RUN_FAILED


def test_verdict_words():
    assert verdict_word("finished") == "pass"
    assert verdict_word("finished", passed=False) == "fail"
    assert verdict_word("finished", passed=False, incomplete=True) == "incomplete"
    assert verdict_word("failed", passed=True) == "error"
    assert verdict_word("interrupted") == "interrupted"


def test_no_exit_code_spelled_out_elsewhere():
    """No ``return 2`` / ``Exit(3)`` / ``os._exit(130)`` outside errors.py."""
    found = []
    for path in PKG.rglob("*.py"):
        if path.name == "errors.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "attr", getattr(node.func, "id", ""))
                if name in ("Exit", "_exit", "exit", "SystemExit") and any(
                        isinstance(a, ast.Constant) and isinstance(a.value, int) for a in node.args):
                    found.append(f"{path.name}:{node.lineno}")
            if isinstance(node, ast.FunctionDef) and node.name in ("invoke", "main", "comment_main"):
                for ret in ast.walk(node):
                    if isinstance(ret, ast.Return) and isinstance(ret.value, ast.Constant) \
                            and isinstance(ret.value.value, int):
                        found.append(f"{path.name}:{ret.lineno}")
    assert found == []
