"""What a run tells GitHub Actions when it runs there (``GITHUB_ACTIONS=true``): the markdown
report in the job summary (``$GITHUB_STEP_SUMMARY``), step outputs (``$GITHUB_OUTPUT``) and
``::error`` / ``::warning`` annotations placed on the dataset line of each regressed item.

The formats are GitHub's workflow-command and environment-file formats; nothing here talks
to the GitHub API (the workflows post the PR comment from the markdown report).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# GitHub truncates a job summary above 1 MiB per step; stay well under it
STEP_SUMMARY_LIMIT = 1_000_000
# annotations beyond this many per step are dropped by GitHub (10 errors, 10 warnings shown
# per step in the UI); more would only flood the log
MAX_ANNOTATIONS = 50


def active(env: Mapping[str, str] | None = None) -> bool:
    return (os.environ if env is None else env).get("GITHUB_ACTIONS") == "true"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(level: str, message: str, *, file: str | None = None, line: int | None = None,
               title: str | None = None) -> str:
    """One workflow command line: ``::error file=a.yaml,line=3,title=T::message``."""
    if level not in ("error", "warning", "notice"):
        raise ValueError(f"unknown annotation level {level!r}")
    props = []
    if file:
        props.append(f"file={_escape_property(file)}")
        if line:
            props.append(f"line={int(line)}")
    if title:
        props.append(f"title={_escape_property(title)}")
    head = f"::{level} {','.join(props)}" if props else f"::{level}"
    return f"{head}::{_escape_data(message)}"


def format_outputs(values: Mapping[str, Any]) -> str:
    """``$GITHUB_OUTPUT`` text: every value in the heredoc form, with a random delimiter that
    the value does not contain, so a multi-line or hostile value cannot set another output."""
    out = []
    for name, value in values.items():
        text = "" if value is None else str(value)
        while True:
            delim = f"EVALRUN_EOF_{secrets.token_hex(8)}"
            if delim not in text:
                break
        out.append(f"{name}<<{delim}\n{text}\n{delim}\n")
    return "".join(out)


def _append(path: str, text: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)


def set_outputs(values: Mapping[str, Any], env: Mapping[str, str] | None = None) -> bool:
    path = (os.environ if env is None else env).get("GITHUB_OUTPUT")
    if not path:
        return False
    _append(path, format_outputs(values))
    return True


def write_step_summary(markdown: str, env: Mapping[str, str] | None = None) -> bool:
    path = (os.environ if env is None else env).get("GITHUB_STEP_SUMMARY")
    if not path:
        return False
    if len(markdown) > STEP_SUMMARY_LIMIT:
        markdown = markdown[:STEP_SUMMARY_LIMIT] + "\n\n*(report truncated for the job summary)*\n"
    _append(path, markdown if markdown.endswith("\n") else markdown + "\n")
    return True


def _relative_to_workspace(path: str, env: Mapping[str, str]) -> str:
    """Annotations need a path relative to the repository root (the workspace)."""
    root = Path(env.get("GITHUB_WORKSPACE") or os.getcwd()).resolve()
    p = Path(path)
    full = (p if p.is_absolute() else Path.cwd() / p).resolve()
    try:
        return full.relative_to(root).as_posix()
    except ValueError:
        return p.as_posix()


def item_sources(manifest: Mapping[str, Any], env: Mapping[str, str] | None = None) -> dict[str, tuple[str, int | None]]:
    """item id -> (file relative to the workspace, line), from the run's dataset as it is now.

    Records do not keep where their item was written, so the dataset is read again; when it
    cannot be (a Langfuse dataset, a file since removed), annotations go without a place.
    """
    env = os.environ if env is None else env
    config = manifest.get("config") or {}
    ref = config.get("dataset")
    config_path = manifest.get("config_path")
    if not isinstance(ref, str) or not config_path or "://" in ref or "$" in ref:
        return {}
    from evalrun.datasets import load_dataset
    from evalrun.errors import UsageError

    try:
        dataset = load_dataset(ref, Path(config_path).parent)
    except UsageError:
        return {}
    if dataset.fingerprint and dataset.fingerprint != (manifest.get("dataset") or {}).get("fingerprint"):
        return {}  # the file changed since the run: its lines would point at other items
    out: dict[str, tuple[str, int | None]] = {}
    for item in dataset.items:
        if not item.source:
            continue
        path, _, line = item.source.rpartition(":")
        if not path or not line.isdigit():
            path, line = item.source, ""
        out[item.id] = (_relative_to_workspace(path, env), int(line) if line else None)
    return out


@dataclass
class Finding:
    """Something worth an annotation: a failed gate, or an item that got worse."""

    level: str  # error | warning
    title: str
    message: str
    item_id: str | None = None


@dataclass
class Publication:
    """What a finished run hands to GitHub."""

    run_id: str
    verdict: str  # pass | fail | error | interrupted
    pass_rate: float | None
    markdown: str | None = None
    report_path: str | None = None
    findings: list[Finding] = field(default_factory=list)
    extra_outputs: dict[str, Any] = field(default_factory=dict)


def annotation_lines(findings: Iterable[Finding], sources: Mapping[str, tuple[str, int | None]]) -> list[str]:
    lines = []
    findings = list(findings)
    for f in findings[:MAX_ANNOTATIONS]:
        file, line = sources.get(f.item_id, (None, None)) if f.item_id else (None, None)
        lines.append(annotation(f.level, f.message, file=file, line=line, title=f.title))
    if len(findings) > MAX_ANNOTATIONS:
        lines.append(annotation("warning", f"{len(findings) - MAX_ANNOTATIONS} more findings are in the report",
                                title="evalrun"))
    return lines


def publish(pub: Publication, manifest: Mapping[str, Any], env: Mapping[str, str] | None = None,
            log: Any = None) -> None:
    """Write the job summary and step outputs and print the annotations (on stdout, where
    the runner reads workflow commands)."""
    import sys

    env = os.environ if env is None else env
    log = log or sys.stdout
    if pub.markdown:
        write_step_summary(pub.markdown, env)
    outputs: dict[str, Any] = {
        "verdict": pub.verdict,
        "run_id": pub.run_id,
        "pass_rate": "" if pub.pass_rate is None else f"{pub.pass_rate:.6g}",
        "report_path": pub.report_path or "",
        **pub.extra_outputs,
    }
    set_outputs(outputs, env)
    if pub.findings:
        needs_place = any(f.item_id for f in pub.findings)
        sources = item_sources(manifest, env) if needs_place else {}
        for line in annotation_lines(pub.findings, sources):
            print(line, file=log)
        log.flush()


def overall_pass_rate(records: Iterable[Any]) -> float | None:
    """Share of records that passed every scorer that gave a verdict; a failed target call
    counts as a failure. None when no record got a verdict."""
    judged = passed = 0
    for rec in records:
        if rec.error:
            judged += 1
            continue
        verdicts = [s.passed for s in rec.scores.values() if s.passed is not None or s.error is not None]
        if not verdicts:
            continue
        judged += 1
        passed += all(v is True for v in verdicts)
    return passed / judged if judged else None
