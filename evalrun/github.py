"""What a run tells GitHub Actions when it runs there (``GITHUB_ACTIONS=true``): the markdown
report in the job summary (``$GITHUB_STEP_SUMMARY``), step outputs (``$GITHUB_OUTPUT``) and
``::error`` / ``::warning`` annotations placed on the dataset line of each regressed item.

The formats are GitHub's workflow-command and environment-file formats; nothing here talks
to the GitHub API (the workflows post the PR comment from the markdown report).
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalrun.errors import ExitCode, verdict_word
from evalrun.runs import Summary

if TYPE_CHECKING:
    from evalrun.store import RunDir
    from evalrun.verdict import Verdict

# GitHub truncates a job summary above 1 MiB per step; stay well under it
STEP_SUMMARY_LIMIT = 1_000_000
# annotations beyond this many per step are dropped by GitHub (10 errors, 10 warnings shown
# per step in the UI); more would only flood the log
MAX_ANNOTATIONS = 50


def active(env: Mapping[str, str] | None = None) -> bool:
    return (os.environ if env is None else env).get("GITHUB_ACTIONS") == "true"


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def inert_line(line: str) -> str:
    """``line`` such that the Actions runner cannot read it as a workflow command: the runner
    takes a line whose text (after leading whitespace) starts with ``::``; a zero-width space
    between the two colons leaves it readable and inert."""
    visible = _ANSI.sub("", line).lstrip()
    if visible.startswith("::") or visible.startswith("\ufeff::"):
        return line.replace("::", ":\u200b:", 1)
    return line


class InertStream:
    """A text stream wrapper for stdout/stderr under GitHub Actions: every line written
    through it is made inert (:func:`inert_line`), whatever model output or item id it holds.
    evalrun's own annotations go through :meth:`command`, the only way to issue one."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self._partial = ""

    def write(self, text: str) -> int:
        data = self._partial + text
        lines = re.split(r"(?<=[\n\r\u2028\u2029\x0b\x0c\x85])", data)
        self._partial = lines.pop()
        if lines:
            self.raw.write("".join(inert_line(ln) for ln in lines))
        # a partial line is held back until its end is known (it may become a command)
        return len(text)

    def command(self, line: str) -> None:
        self.flush()
        self.raw.write(line + "\n")
        self.raw.flush()

    def flush(self) -> None:
        if self._partial:
            self.raw.write(inert_line(self._partial))
            self._partial = ""
        self.raw.flush()

    def __getattr__(self, name: str) -> Any:  # encoding, isatty, fileno, buffer...
        return getattr(self.raw, name)


def guard_streams() -> None:
    """Under GitHub Actions wrap sys.stdout/sys.stderr in :class:`InertStream` (once)."""
    import sys

    if not active():
        return
    if not isinstance(sys.stdout, InertStream):
        sys.stdout = InertStream(sys.stdout)
    if not isinstance(sys.stderr, InertStream):
        sys.stderr = InertStream(sys.stderr)


def emit_command(line: str, log: Any) -> None:
    """Print one of evalrun's own workflow commands, bypassing the guard."""
    if isinstance(log, InertStream):
        log.command(line)
    else:
        print(line, file=log)


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


def places(sources: Mapping[str, str], env: Mapping[str, str] | None = None) -> dict[str, tuple[str, int | None]]:
    """item id -> (file relative to the workspace, line), from the items' ``path:line`` sources
    (:func:`evalrun.datasets.item_sources`: the items a run read, never the dataset read again)."""
    env = os.environ if env is None else env
    out: dict[str, tuple[str, int | None]] = {}
    for item_id, source in sources.items():
        path, _, line = source.rpartition(":")
        if not path or not line.isdigit():
            path, line = source, ""
        out[item_id] = (_relative_to_workspace(path, env), int(line) if line else None)
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


def publish(pub: Publication, sources: Mapping[str, str], env: Mapping[str, str] | None = None,
            log: Any = None) -> None:
    """Write the job summary and step outputs and print the annotations, each placed on its
    item's line (``sources``: item id -> ``path:line``). They go to stderr: the runner reads
    workflow commands from both streams, and stdout stays clean for --json."""
    import sys

    env = os.environ if env is None else env
    log = log or sys.stderr
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
        for line in annotation_lines(pub.findings, places(sources, env) if needs_place else {}):
            emit_command(line, log)
        log.flush()


def overall_pass_rate(records: Iterable[Any]) -> float | None:
    """Share of records that passed every blocking scorer that gave a verdict; a failed target call
    counts as a failure. None when no record got a verdict."""
    judged = passed = 0
    for rec in records:
        if rec.error:
            judged += 1
            continue
        # an informational scorer or assertion is reported, never part of the pass rate
        verdicts = [s.passed for s in rec.scores.values()
                    if (s.passed is not None or s.error is not None) and not s.informational]
        if not verdicts:
            continue
        judged += 1
        passed += all(v is True for v in verdicts)
    return passed / judged if judged else None


# how much of an output an annotation quotes; the report has the rest
QUOTE = 160


def _quote(value: Any) -> str:
    from evalrun._json import as_text

    text = as_text(value).replace("\n", " ")
    return repr(text if len(text) <= QUOTE else text[:QUOTE] + "…")


def findings_from_verdict(verdict: Verdict) -> list[Finding]:
    """Failed gates as errors (a no_regressions gate: one per offending item, on its line),
    then every other regressed item as a warning, worst first."""
    out: list[Finding] = []
    gated: set[str] = set()
    for g in verdict.failed_gates:
        if g.items:
            for item_id in g.items:
                gated.add(item_id)
                out.append(Finding("error", f"evalrun gate failed: {g.gate.text}",
                                   f"item {item_id} regressed ({g.gate.text})", item_id=item_id))
        elif g.verdict == "incomplete":
            out.append(Finding("error", f"evalrun gate could not be judged: {g.gate.text}",
                               f"{g.numbers()}; {g.note}"))
        else:
            out.append(Finding("error", f"evalrun gate failed: {g.gate.text}", g.numbers()))
    for diff in verdict.comparison.regressed:
        if diff.item_id in gated:
            continue
        new = diff.candidate[0] if diff.candidate else None
        old = diff.baseline[0] if diff.baseline else None
        parts = [f"{', '.join(diff.regressed)} went from pass to fail"]
        if new is not None:
            parts.append(f"expected {_quote(new.expected_output)}")
            if old is not None:
                parts.append(f"baseline output {_quote(old.output)}")
            parts.append(f"new output {_quote(new.output)}" if not new.error
                         else f"new call failed: {new.error.get('type')}")
        out.append(Finding("warning", f"evalrun: item {diff.item_id} regressed", "; ".join(parts),
                           item_id=diff.item_id))
    return out


def publish_run(run_dir: RunDir, summary: Summary, status: str, verdict: Verdict | None,
                sources: Mapping[str, str], env: Mapping[str, str] | None = None) -> None:
    """Everything a run (or a merge) tells GitHub Actions. ``verdict`` is the run's
    :class:`~evalrun.verdict.Verdict` (:func:`evalrun.postrun.plain_verdict` for a run without
    gates, baseline or reports; None for an interrupted run, which gets no report); a run that
    did not finish is error/interrupted whatever its gates say. ``sources`` places the
    annotations (item id -> ``path:line``)."""
    env = os.environ if env is None else env
    word = verdict_word(status)
    markdown = report_path = None
    findings: list[Finding] = []
    if verdict is not None:
        word = verdict_word(status, verdict.passed, verdict.incomplete)
        report_path = next((p for fmt, p in verdict.written if fmt == "md"), None)
        if report_path:
            markdown = Path(report_path).read_text(encoding="utf-8")
        else:
            # the PR comment step posts a file: keep the markdown beside the run
            from evalrun.report.markdown import render_markdown

            markdown = render_markdown(verdict)
            path = Path(run_dir.path) / "report.md"
            from evalrun.store import write_text_atomic

            write_text_atomic(path, markdown)
            report_path = str(path)
        findings = findings_from_verdict(verdict)
    pass_rate = overall_pass_rate(run_dir.iter_records()) if summary.get("records") else None
    pub = Publication(run_id=run_dir.id, verdict=word, pass_rate=pass_rate, markdown=markdown,
                      report_path=str(Path(report_path).resolve()) if report_path else None,
                      findings=findings, extra_outputs={"run_dir": str(Path(run_dir.path).resolve())})
    publish(pub, sources, env)


# GitHub refuses a comment body above 65,536 characters
COMMENT_LIMIT = 65_536


def comment_marker(key: str) -> str:
    """The hidden first line that finds this report's comment again on the next push."""
    return f"<!-- evalrun-report: {key.replace('--', '-')} -->"


def comment_body(report: str, key: str) -> str:
    body = f"{comment_marker(key)}\n{report}"
    if len(body) > COMMENT_LIMIT:
        note = "\n\n*(report truncated: the full report is in the job summary and the artifacts)*\n"
        body = body[:COMMENT_LIMIT - len(note)] + note
    return body


# the account GITHUB_TOKEN (an installation token, which may not read /user) posts as
ACTIONS_BOT = "github-actions[bot]"


def _own_login(client: Any, base: str, env: Mapping[str, str]) -> str:
    """The account this token posts as: /user for a personal token; an installation token
    cannot read /user (403), so EVALRUN_COMMENT_AUTHOR or the Actions bot."""
    r = client.get(f"{base}/user")
    if r.status_code == 200:
        login = (r.json() or {}).get("login")
        if isinstance(login, str) and login:
            return login
    return env.get("EVALRUN_COMMENT_AUTHOR") or ACTIONS_BOT


def upsert_pr_comment(report: str, *, key: str, repo: str, number: int, token: str, api_url: str,
                      timeout: float = 30.0, env: Mapping[str, str] | None = None) -> tuple[str, int]:
    """Update the pull request's comment that carries ``key``'s marker, or create it: one
    comment per report however often the workflow runs. Only a comment written by the same
    account and starting with the marker is ever edited: a marker pasted into someone else's
    comment is ignored. Returns (created|updated, comment id)."""
    import httpx

    marker = comment_marker(key)
    body = comment_body(report, key)
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json",
               "X-GitHub-Api-Version": "2022-11-28", "User-Agent": "evalrun"}
    base = api_url.rstrip("/")
    with httpx.Client(headers=headers, timeout=timeout) as client:
        me = _own_login(client, base, os.environ if env is None else env)

        def ours(c: Mapping[str, Any]) -> bool:
            return ((c.get("user") or {}).get("login") == me
                    and (c.get("body") or "").startswith(marker))

        url: str | None = f"{base}/repos/{repo}/issues/{number}/comments?per_page=100"
        found: int | None = None
        while url and found is None:
            r = client.get(url)
            r.raise_for_status()
            found = next((c["id"] for c in r.json() if ours(c)), None)
            url = r.links.get("next", {}).get("url")
        if found is not None:
            client.patch(f"{base}/repos/{repo}/issues/comments/{found}", json={"body": body}).raise_for_status()
            return "updated", found
        r = client.post(f"{base}/repos/{repo}/issues/{number}/comments", json={"body": body})
        r.raise_for_status()
        return "created", int(r.json()["id"])


def _pr_number(env: Mapping[str, str]) -> int | None:
    import json

    path = env.get("GITHUB_EVENT_PATH")
    if not path or not Path(path).is_file():
        return None
    event = json.loads(Path(path).read_text(encoding="utf-8"))
    number = (event.get("pull_request") or {}).get("number")
    return int(number) if number else None


def comment_main(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """``python -m evalrun.github comment --report FILE``: post or update the PR comment."""
    import argparse
    import sys

    env = os.environ if env is None else env
    ap = argparse.ArgumentParser(prog="python -m evalrun.github comment",
                                 description="Post the markdown report as the pull request's evalrun comment "
                                             "(updated in place on later runs).")
    ap.add_argument("--report", required=True, help="markdown file to post")
    ap.add_argument("--key", default="evalrun", help="which report this is (one comment per key)")
    ap.add_argument("--pr", type=int, default=None, help="pull request number (default: from the event)")
    args = ap.parse_args(argv)

    def fail(msg: str, code: int) -> int:
        print(f"evalrun: error: {msg}", file=sys.stderr)
        return code

    try:
        report = Path(args.report).read_text(encoding="utf-8")
    except OSError as e:
        return fail(f"{args.report}: cannot read the report ({e.strerror or e})", ExitCode.USAGE)
    number = args.pr or _pr_number(env)
    if number is None:
        print("evalrun: not a pull request event; no comment posted", file=sys.stderr)
        return ExitCode.OK
    token, repo = env.get("GITHUB_TOKEN"), env.get("GITHUB_REPOSITORY")
    if not token or not repo:
        return fail("GITHUB_TOKEN and GITHUB_REPOSITORY must be set to post a PR comment", ExitCode.USAGE)
    import httpx

    try:
        action, cid = upsert_pr_comment(report, key=args.key, repo=repo, number=number, token=token,
                                        api_url=env.get("GITHUB_API_URL") or "https://api.github.com", env=env)
    except httpx.HTTPStatusError as e:
        msg = f"could not post the PR comment: HTTP {e.response.status_code} {e.response.reason_phrase}"
        if e.response.status_code in (401, 403, 404):
            # a pull request from a fork gets a read-only token: the gate still stands
            emit_command(annotation("warning", msg + " (a read-only token, as on pull requests from forks?)",
                                    title="evalrun"), sys.stdout)
            return ExitCode.OK
        return fail(msg, ExitCode.RUN_FAILED)
    except httpx.HTTPError as e:
        return fail(f"could not post the PR comment: {type(e).__name__}: {e}", ExitCode.RUN_FAILED)
    print(f"evalrun: {action} the PR comment (id {cid}) on #{number}", file=sys.stderr)
    return ExitCode.OK


def main(argv: list[str] | None = None) -> int:
    import sys

    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "comment":
        return comment_main(argv[1:])
    if argv[:1] in (["-h"], ["--help"]):
        print(_HELP)
        return ExitCode.OK
    first = f"unknown command {argv[0]!r}" if argv else "missing command"
    print(f"evalrun: error: {first}; usage: python -m evalrun.github comment --report FILE [--key KEY] [--pr N] "
          "(--help for more)", file=sys.stderr)
    return ExitCode.USAGE


_HELP = """\
usage: python -m evalrun.github COMMAND [OPTIONS]

GitHub helpers for evalrun in Actions (the composite action calls them; `evalrun run` and
`evalrun merge` write the job summary, step outputs and annotations by themselves).

commands:
  comment --report FILE [--key KEY] [--pr N]
      Post the markdown report as the pull request's evalrun comment, one per KEY, updated
      in place on later runs. Needs GITHUB_TOKEN (pull-requests: write) and
      GITHUB_REPOSITORY; the pull request comes from GITHUB_EVENT_PATH unless --pr is given.
      `python -m evalrun.github comment --help` lists its options."""


if __name__ == "__main__":
    raise SystemExit(main())
