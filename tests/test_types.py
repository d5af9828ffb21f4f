"""evalrun/ type-checks with zero errors (mypy, configured in pyproject.toml)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_mypy_finds_no_error():
    # mypy is in the test extra; its cache (.mypy_cache, keyed by file contents) makes reruns
    # quick: ~1 s warm, ~14 s cold (a fresh checkout)
    r = subprocess.run([sys.executable, "-m", "mypy", "evalrun"],
                       cwd=ROOT, capture_output=True, text=True, timeout=600,
                       env={**os.environ, "MYPY_FORCE_COLOR": "0"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Success: no issues found" in r.stdout
