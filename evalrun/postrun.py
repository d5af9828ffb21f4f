"""After a run: load the baseline, compare, judge the gates, write the reports, give the verdict.

Split in two so bad input fails before anything runs:

- :func:`prepare` (or :func:`prepare_from_manifest` for an existing run) parses the gates,
  resolves the baseline and the ``--report`` options, raising UsageError;
- :meth:`PostRun.finish` does the comparison on the finished run and returns a
  :class:`~evalrun.verdict.Verdict`, with its reports written.

``evalrun run``, ``evalrun compare`` and ``evalrun merge`` all go through here, so a merged
run gets exactly the verdict of an unsharded run of the same records.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from evalrun.baseline import Baseline, accepted_path, configured_path_of_run, resolve_baseline
from evalrun.compare import compare, run_metrics
from evalrun.errors import UsageError
from evalrun.gates import (
    ASSERT_PREFIX,
    Gate,
    check_assertions,
    check_policy,
    check_slices,
    evaluate,
    make_advisory,
    parse_gates,
)
from evalrun.report import ReportSpec, parse_report_specs, write_reports
from evalrun.runs import Manifest, Summary
from evalrun.verdict import Verdict

if TYPE_CHECKING:
    from evalrun.config import LoadedConfig
    from evalrun.datasets import Dataset
    from evalrun.store import RunDir


@dataclass
class PostRun:
    gates: list[Gate]
    policy: str
    baseline: Baseline | None
    reports: list[ReportSpec]
    scorers: list[str]
    notes: list[str] = field(default_factory=list)
    slices: list[str] = field(default_factory=list)  # slice keys: the eval file's and --slice
    cluster: str | None = None  # the eval file's `cluster:` metadata key
    exclude_errors: bool = False  # the eval file's: errors left out of the numbers, not counted as failures

    def judge(self, run_dir: RunDir, summary: Summary | None = None, status: str | None = None, *,
              context: bool = True) -> Verdict:
        """Compare the run with the baseline and judge the gates (no output); with ``context``
        also its slices and its history (what a run's own reports show: a variant group's
        matrix shows neither, and reads no history for them)."""
        manifest = run_dir.read_manifest()
        summary = summary if summary is not None else run_dir.read_summary()
        records = run_dir.records()
        bl = self.baseline
        home = run_dir.path.parent.parent if run_dir.path.parent.name == "runs" else None
        tries = None
        if context and home is not None:
            from evalrun import attempts

            tries = attempts.find(run_dir, home, exclude={bl.run_id} if bl is not None and bl.run_id else None)
        policy = self.policy
        numbers = summary
        if tries is not None:
            records = tries.pooled(records)
            numbers = None  # the run-level numbers of every attempt, not this one's alone
            if tries.earlier_failed and any(g.relative for g in self.gates):
                policy = "strict"
        cmp = compare(
            records, bl.records if bl is not None else None,
            run={"run_id": run_dir.id, "eval": manifest.get("eval"), "path": str(run_dir.path),
                 "started_at": manifest.get("started_at"), "git": manifest.get("git"),
                 **({"prompt": manifest["prompt"]} if manifest.get("prompt") else {}),
                 **({"failure": summary["failure"]} if summary and summary.get("failure") else {})},
            baseline_info=bl.info() if bl is not None else None,
            scorers=self.scorers, summary=numbers,
            baseline_metrics=(bl.metrics or run_metrics(bl.records, bl.summary)) if bl is not None else None,
            cluster=self.cluster,
            # as the run was summarised (its summary says, --set values included)
            exclude_errors=bool((summary or {}).get("exclude_errors", self.exclude_errors)),
        )
        results = evaluate(self.gates, cmp, policy)
        calibration = _calibration(summary)
        make_advisory(results, {name: c.get("reason") or c.get("state", "")
                                for name, c in calibration.items() if c.get("required") and not c.get("binding")})
        verdict = Verdict(cmp, results, policy,
                          status or (summary or {}).get("status") or manifest.get("status") or "finished",
                          notes=[*self.notes, *(c["line"] for c in calibration.values() if c.get("line"))])
        if tries is not None:
            verdict.attempt = tries.number
            verdict.pooled = [rd.id for rd in tries.earlier]
            verdict.notes.insert(0, tries.note(policy != self.policy))
        if context and self.gates:
            _note_ci_attempt(verdict, os.environ.get("GITHUB_RUN_ATTEMPT")
                             if os.environ.get("GITHUB_ACTIONS") == "true" else None)
        if context:
            from evalrun import history
            from evalrun.slices import slice_report

            verdict.slices = slice_report(cmp, self.slices)
            verdict.history = (history.collect(manifest.get("eval"), home, current=run_dir, baseline=bl)
                               if home is not None else history.chain(run_dir, bl))
        return verdict

    def finish(self, run_dir: RunDir, summary: Summary | None = None, *, status: str | None = None,
               console: bool = True, out: TextIO | None = None) -> Verdict:
        """Judge the run, keep its history beside it, and write every report asked for (the
        console one on ``out``)."""
        verdict = self.judge(run_dir, summary, status)
        from evalrun import attempts, history

        if self.gates and verdict.run_status == "finished":
            try:
                attempts.record(run_dir, number=verdict.attempt or 1, verdict=verdict.word,
                                pooled=verdict.pooled)
            except OSError as e:
                verdict.notes.append(f"could not record the attempt in summary.json: {e.strerror}")

        try:
            # everything this machine knows of the eval's runs, so the run directory (in CI: the
            # next baseline artifact) carries the history on to a runner that has none
            history.write_history(run_dir, verdict.history[-history.KEEP:])
        except OSError as e:
            verdict.notes.append(f"could not write {history.HISTORY}: {e.strerror}")
        write_reports(verdict, self.reports, run_dir, console=console, out=out)
        return verdict


def _note_ci_attempt(verdict: Verdict, run_attempt: str | None) -> None:
    """A CI re-run (GitHub's ``GITHUB_RUN_ATTEMPT``) whose earlier attempts' run directories are
    not on this runner: the verdict is judged on this attempt alone, and says so."""
    if not run_attempt or not run_attempt.isdigit() or int(run_attempt) <= (verdict.attempt or 1):
        return
    verdict.notes.insert(0, f"attempt {int(run_attempt)} of this workflow run, but the earlier attempts' run "
                            "directories are not on this runner: this verdict is judged on this attempt alone "
                            "(restore .evalrun/runs of this commit to pool them)")


def _calibration(summary: Summary | None) -> dict[str, dict[str, Any]]:
    """Each judge's calibration as its run recorded it (scorer name -> status)."""
    out = {}
    for name, s in ((summary or {}).get("scorers") or {}).items():
        c = s.get("calibration") if isinstance(s, dict) else None
        if isinstance(c, dict):
            out[name] = c
    return out


def plain_verdict(run_dir: RunDir, summary: Summary, status: str) -> Verdict:
    """The verdict of a run with nothing to judge it by (no gates, baseline or --report): its
    results alone, for the reporters that show every run (GitHub's job summary)."""
    scorers = list(run_dir.read_manifest().get("scorers") or [])
    return PostRun([], "significant", None, [], scorers).judge(run_dir, summary.copy(), status)


def _implicit_baseline(eval_name: str | None, home: Path | None, configured: str | None, base_dir: Path | None,
                       notes: list[str]) -> str | None:
    """Without --baseline: the accepted baseline when one exists."""
    path = accepted_path(str(eval_name), home, configured, base_dir)
    if path.is_file():
        return "accepted"
    if configured:
        notes.append(f"no accepted baseline at {path} yet; accept a run with: evalrun baseline set RUN")
    return None


def slice_keys(configured: Any, extra: list[str] | None) -> list[str]:
    """The eval file's ``slices`` plus ``--slice`` keys (a bad --slice key is a UsageError)."""
    from evalrun.selectors import key_error, normalize_key

    keys = [k for k in (configured if isinstance(configured, list) else []) if isinstance(k, str)]
    for k in extra or []:
        if normalize_key(k) is None:
            raise UsageError(f"--slice {k}: {key_error(k)}")
        keys.append(k)
    return keys


def prepare(loaded: LoadedConfig, *, baseline_ref: str | None = None, reports: list[str] | None = None,
            home: Path | None = None, repeat: int | None = None, slices: list[str] | None = None,
            dataset: Callable[[], Dataset] | None = None) -> PostRun:
    """Everything that can be wrong with gates, baseline and reports, checked before a run starts.
    ``dataset`` gives the run's dataset (read once, shared with the engine) for the slice gates'
    check; without it a local dataset is read here and a remote one checked when judged."""
    cfg = loaded.config
    scorers = [s.name or s.type for s in cfg.scorers]
    specs = parse_report_specs(reports)
    info = frozenset(s.name or s.type for s in cfg.scorers if s.informational)
    gates = parse_gates(cfg.gates, scorers=scorers, repeat=repeat or cfg.repeat,
                        locate=lambda msg, i: loaded.error(msg, "gates", i), informational=info,
                        assertions=any(s.type == "assert" for s in cfg.scorers))
    named_checks = any((g.scorer or "").startswith(ASSERT_PREFIX) for g in gates)
    keys = slice_keys(cfg.slices, slices)
    if ((any(g.slice_key for g in gates) or named_checks or keys)
            and (dataset is not None or not str(cfg.dataset).startswith("langfuse://"))):
        from evalrun.datasets import load_dataset

        ds = dataset() if dataset is not None else load_dataset(cfg.dataset, loaded.base_dir)
        metadatas = [it.metadata for it in ds.items]
        check_slices(gates, metadatas)
        _check_slice_keys(keys, list(cfg.slices), metadatas, loaded)
        if named_checks:
            names, info_checks = assertion_names(ds.items)
            check_assertions(gates, names, info_checks)
    notes: list[str] = []
    configured = cfg.baseline
    ref = baseline_ref or _implicit_baseline(cfg.name, home, configured, loaded.base_dir, notes)
    bl = resolve_baseline(ref, eval_name=cfg.name, home=home, configured=configured,
                          base_dir=loaded.base_dir) if ref else None
    _note_skipped(gates, bl, notes)
    return PostRun(gates, cfg.gate_policy, bl, specs, scorers, notes, keys, cluster=cfg.cluster,
                   exclude_errors=cfg.exclude_errors)


def _check_slice_keys(keys: list[str], configured: list[str], metadatas: list[dict[str, Any]],
                      loaded: LoadedConfig) -> None:
    """A slice key (``slices:`` or ``--slice``) that no item has would give an empty table with
    no word of why: a UsageError with "did you mean", before any call."""
    from evalrun.selectors import normalize_key
    from evalrun.slices import check_in

    for i, key in enumerate(keys):
        why = check_in(metadatas, normalize_key(key) or key, None)
        if why is None:
            continue
        if i < len(configured):
            raise loaded.error(f"slices: {why}", "slices", i)
        raise UsageError(f"--slice {key}: {why}")


def assertion_names(items: list[Any]) -> tuple[list[str], set[str]]:
    """The ``assert.NAME`` statistics the items' checks give, and the informational ones."""
    names: dict[str, None] = {}
    info: set[str] = set()
    for it in items:
        for check in it.asserts or ():
            name = ASSERT_PREFIX + str(check.get("name") or check.get("type"))
            names.setdefault(name)
            if check.get("informational") is True:
                info.add(name)
    return list(names), info


def _note_skipped(gates: list[Gate], bl: Baseline | None, notes: list[str]) -> None:
    if bl is None and not notes and any(g.relative or g.kind == "no_regressions" for g in gates):
        notes.append("no baseline, so gates relative to it are skipped; pass --baseline REF or accept a run "
                     "with: evalrun baseline set RUN")


def post_run_needed(post: PostRun) -> bool:
    """Whether a run has anything to be judged or reported by (gates, a baseline, --report...)."""
    return bool(post.gates or post.baseline or post.reports or post.notes or post.slices)


def prepare_from_manifest(manifest: Manifest, *, baseline_ref: str | None = None,
                          reports: list[str] | None = None, home: Path | None = None,
                          default_latest_before: str | None = None, slices: list[str] | None = None) -> PostRun:
    """Like :func:`prepare`, for a run that already exists (``compare``, ``merge``): the gates are
    the ones the run was configured with. With neither a baseline REF nor an accepted baseline,
    ``default_latest_before`` (a run id) picks the newest finished earlier run of the same eval."""
    cfg = manifest.get("config") or {}
    eval_name = manifest.get("eval") or cfg.get("name")
    scorers = list(manifest.get("scorers") or [])
    specs = parse_report_specs(reports)
    raw_gates = cfg.get("gates") or []
    if not isinstance(raw_gates, list):
        raw_gates = []
    config_path = manifest.get("config_path")
    repeat = (manifest.get("planned") or {}).get("repeat")
    gates = parse_gates(raw_gates, scorers=scorers, repeat=repeat, locate=_manifest_locator(config_path, raw_gates),
                        informational=frozenset(manifest.get("informational") or []))
    policy = check_policy(str(cfg.get("gate_policy") or "significant"))
    configured, base_dir = configured_path_of_run(manifest)
    notes: list[str] = []
    ref = baseline_ref or _implicit_baseline(eval_name, home, configured, base_dir, notes)
    if ref is None and default_latest_before:
        ref = _previous_run(eval_name, home, default_latest_before)
    bl = resolve_baseline(ref, eval_name=eval_name, home=home, configured=configured, base_dir=base_dir) if ref else None
    _note_skipped(gates, bl, notes)
    return PostRun(gates, policy, bl, specs, scorers, notes, slice_keys(cfg.get("slices"), slices),
                   cluster=cfg.get("cluster") or None, exclude_errors=cfg.get("exclude_errors") is True)


def _previous_run(eval_name: str | None, home: Path | None, run_id: str) -> str | None:
    from evalrun.store import list_runs

    prev = None
    for rd in list_runs(home):
        if rd.id == run_id:
            break
        m = rd.read_manifest()
        if m.get("status") == "finished" and m.get("eval") == eval_name:
            prev = str(rd.path)
    return prev


def _manifest_locator(config_path: str | None, raw_gates: list[Any]) -> Any:
    """Gate errors point into the eval file when it still holds the same gates, else name the file."""
    located = None
    if config_path and Path(config_path).is_file():
        try:
            from evalrun._yaml import load_located, read_text

            loc = load_located(read_text(Path(config_path), "eval file"), config_path)
            if isinstance(loc.data, dict) and loc.data.get("gates") == raw_gates:
                located = loc
        except UsageError:
            located = None

    def locate(msg: str, i: int) -> UsageError:
        if located is not None:
            return located.error(msg, ("gates", i))
        return UsageError(msg, config_path)

    return locate
