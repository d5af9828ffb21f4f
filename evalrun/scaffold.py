"""``evalrun init``: a starter eval suite in a project, green on its first run.

It writes an eval file, a small dataset, a target stub to point at the pipeline, the path
the accepted baseline is committed at, ``.evalrun/`` in ``.gitignore`` and (``--github``) a
workflow that gates pull requests with the composite action. Nothing that exists is
overwritten unless asked.
"""

from __future__ import annotations

import re
from pathlib import Path

from evalrun._version import ACTION, __version__
from evalrun.errors import UsageError

EVAL_FILE = "evalrun.yaml"
GITIGNORE_LINE = ".evalrun/"
WORKFLOW = ".github/workflows/evalrun.yml"

_EVAL_FILE = """\
# The eval suite `evalrun run` runs in this folder (written by `evalrun init`).
# Reference: the eval file, scorers, gates: see the docs/ pages of evalrun.
name: {name}
dataset: evals/dataset.yaml
target:
  python: evals.target:answer     # evals/target.py: point it at your pipeline
  timeout: 30
concurrency: 8
scorers:
  - name: exact
    type: exact_match
    normalize: [case, whitespace, punctuation]
  - {{type: contains}}
gates:
  - exact.pass_rate >= 0.8                 # the run's own pass rate
  - no_regressions: {{scorer: exact}}        # no item may go from pass to fail
# the accepted baseline (`evalrun baseline set latest`); commit it, so CI compares with it
baseline: evals/baseline.json
"""

_DATASET = """\
# Golden items: the input your pipeline gets and the answer it should give.
# Give every item an id: ids pair a run with its baseline.
items:
  - id: france
    input: What is the capital of France?
    expected_output: Paris
    metadata: {tags: [europe, critical]}
  - id: japan
    input: What is the capital of Japan?
    expected_output: Tokyo
    metadata: {tags: [asia]}
  - id: kenya
    input: What is the capital of Kenya?
    expected_output: Nairobi
    metadata: {tags: [africa]}
  - id: peru
    input: What is the capital of Peru?
    expected_output: Lima
    metadata: {tags: [americas]}
  - id: australia
    input: What is the capital of Australia?
    expected_output: Canberra
    metadata: {tags: [oceania]}
"""

_TARGET = '''\
"""The target evalrun calls once per dataset item (`target: python: evals.target:answer`).

Replace the body with a call into your pipeline: take the item's input, return the output.
An `async def` works too; return `evalrun.Output(text, usage=..., cost_usd=...)` to report
tokens and cost, and raise `evalrun.RetryableError` for failures worth another try.
"""

CAPITALS = {"France": "Paris", "Japan": "Tokyo", "Kenya": "Nairobi", "Peru": "Lima", "Australia": "Canberra"}


def answer(question: str) -> str:
    country = question.rstrip("?").split()[-1]
    return CAPITALS.get(country, "I don't know")
'''

_WORKFLOW = """\
# Written by `evalrun init --github`: runs the eval suite on every pull request, compares it
# with the committed baseline (evals/baseline.json), shows the report in the job summary and
# on the pull request, and fails the check when a gate fails.
name: evalrun

on:
  pull_request:
  push:
    branches: [main]

permissions:
  contents: read

jobs:
  eval:
    runs-on: ubuntu-latest
    timeout-minutes: 30
    permissions:
      contents: read
      pull-requests: write   # the PR comment
    steps:
      - uses: actions/checkout@v5
      - uses: {action}@v{major}
        with:
          config: evalrun.yaml
          baseline: accepted          # evals/baseline.json; `evalrun baseline set latest` and commit it
          # extras: embeddings        # evalrun's extras, comma-separated
          # requirements: requirements.txt   # your pipeline's dependencies
          comment: "true"
"""


def _name_of(folder: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", folder.resolve().name).strip("-.") or "evals"
    return name if re.match(r"[A-Za-z0-9]", name) else "evals"


def files(folder: Path, github: bool) -> dict[str, str]:
    """What ``init`` writes, by path relative to ``folder`` (``.gitignore`` handled apart)."""
    out = {EVAL_FILE: _EVAL_FILE.format(name=_name_of(folder)), "evals/__init__.py": "",
           "evals/dataset.yaml": _DATASET, "evals/target.py": _TARGET}
    if github:
        out[WORKFLOW] = _WORKFLOW.format(action=ACTION, major=__version__.split(".")[0])
    return out


def init(folder: Path, github: bool = False, force: bool = False) -> list[str]:
    """Write the starter suite into ``folder``; returns what was written or changed. Existing
    files are a UsageError (nothing written) unless ``force``."""
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder}: not a folder")
    planned = files(folder, github)
    existing = [p for p in planned if (folder / p).exists()]
    if existing and not force:
        raise UsageError(f"{folder}: {', '.join(existing)} already exist(s); nothing written (--force overwrites)")
    written = []
    for rel, text in planned.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(rel)
    ignore = folder / ".gitignore"
    lines = ignore.read_text(encoding="utf-8").splitlines() if ignore.is_file() else []
    if not any(line.strip().rstrip("/") in (".evalrun", "/.evalrun") for line in lines):
        prefix = "" if not lines or ignore.read_text(encoding="utf-8").endswith("\n") else "\n"
        with ignore.open("a", encoding="utf-8") as f:
            f.write(f"{prefix}# evalrun's runs and caches (the accepted baseline lives in evals/)\n{GITIGNORE_LINE}\n")
        written.append(".gitignore")
    return written
