"""Re-runs do not buy a pass: the runs of one eval on one git commit, with the same eval file,
dataset and run options (as their manifests record them), are one experiment.

A re-run is the next *attempt* of that experiment: its records are pooled with the earlier
attempts' (each attempt's trials renumbered after the previous ones, so an item's trials over
every attempt are averaged as repeats are) and the verdict is judged on all of them. Once an
attempt has failed, a later one passes only if the pooled attempts show the change is within
each relative gate's margin (the ``strict`` policy): noise can no longer be re-rolled until it
comes up green, while a failure that was noise clears once the pooled data show it.

A run whose tree was dirty (uncommitted changes) or that has no git commit is an experiment of
its own: the commit does not say what code ran. A variant's run is judged by its group.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalrun.errors import UsageError
from evalrun.records import Record
from evalrun.runs import Manifest
from evalrun.store import RunDir, list_runs

#: the run options that change what an attempt runs (concurrency and limits do not)
_OPTIONS = ("repeat", "limit", "filters", "sample", "seed", "shard")


def experiment_key(manifest: Manifest) -> str | None:
    """What makes two runs attempts of one experiment (None: the run is its own experiment)."""
    git = manifest.get("git") or {}
    commit = git.get("commit") if isinstance(git, dict) else None
    if not commit or (isinstance(git, dict) and git.get("dirty")) or manifest.get("group"):
        return None
    options = manifest.get("options") or {}
    dataset = manifest.get("dataset") or {}
    return json.dumps([manifest.get("eval"), commit, manifest.get("config_fingerprint"),
                       dataset.get("fingerprint") if isinstance(dataset, dict) else None,
                       {k: options.get(k) for k in _OPTIONS} if isinstance(options, dict) else None,
                       manifest.get("overrides") or None], sort_keys=True, default=str)


@dataclass
class Attempts:
    """This run and the earlier attempts of its experiment (oldest first)."""

    earlier: list[RunDir]
    earlier_failed: list[str]  # ids of earlier attempts whose verdict failed
    commit: str

    @property
    def number(self) -> int:
        return len(self.earlier) + 1

    def pooled(self, records: list[Record]) -> list[Record]:
        """Every attempt's records, this run's last, each attempt's trials numbered after the
        previous attempts' (trial t of the k-th attempt becomes offset + t)."""
        out: list[Record] = []
        offset = 0
        for rd in self.earlier:
            recs = rd.records()
            out.extend(dataclasses.replace(r, trial=offset + r.trial) for r in recs)
            offset += max((r.trial for r in recs), default=-1) + 1
        out.extend(dataclasses.replace(r, trial=offset + r.trial) for r in records)
        return out

    def note(self, policy_changed: bool) -> str:
        text = (f"attempt {self.number} of commit {self.commit[:12]} with this eval file, dataset and options: "
                f"judged on all {self.number} attempts pooled (earlier: {', '.join(r.id for r in self.earlier)})")
        if policy_changed:
            text += (f"; attempt {', '.join(self.earlier_failed)} failed, so relative gates now pass only if the "
                     "pooled attempts show the change is within the margin (strict): re-running does not buy a "
                     "pass; a new commit starts a new experiment")
        return text


def find(run_dir: RunDir, home: Path | None, *, exclude: set[str] | None = None) -> Attempts | None:
    """The earlier finished attempts of ``run_dir``'s experiment in ``home`` (None when it has
    none, or is an experiment of its own). ``exclude``: run ids never pooled (the baseline)."""
    try:
        manifest = run_dir.read_manifest()
    except UsageError:
        return None
    key = experiment_key(manifest)
    if key is None:
        return None
    earlier: list[RunDir] = []
    failed: list[str] = []
    for rd in list_runs(home):
        if rd.id == run_dir.id:
            break
        if exclude and rd.id in exclude:
            continue
        try:
            m = rd.read_manifest()
            summary = rd.read_summary()
        except UsageError:
            continue
        if m.get("status") != "finished" or experiment_key(m) != key:
            continue
        earlier.append(rd)
        if _verdict_of(summary) == "failed":
            failed.append(rd.id)
    if not earlier:
        return None
    return Attempts(earlier, failed, str((manifest.get("git") or {}).get("commit")))


def _verdict_of(summary: Mapping[str, Any] | None) -> str | None:
    attempt = (summary or {}).get("attempt")
    return attempt.get("verdict") if isinstance(attempt, dict) else None


def record(run_dir: RunDir, *, number: int, verdict: str, pooled: list[str]) -> None:
    """Keep this attempt's number and verdict in its summary.json, for the next attempt."""
    summary = run_dir.read_summary()
    if summary is None:
        return
    summary["attempt"] = {"number": number, "verdict": verdict, "pooled": pooled}
    run_dir.write_summary(summary)
