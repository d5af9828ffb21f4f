"""Run history: the finished runs of one eval, oldest first, with per-scorer means and intervals.

Sources, merged by run id (the fullest entry wins):

- local run directories (``<home>/runs/*``: manifest.json + summary.json);
- the accepted-baseline file (its records give the numbers);
- ``history.jsonl`` files: every judged run writes one into its run directory, holding the
  history it knew (local runs, its baseline's ``history.jsonl``, the baseline itself) plus
  itself. In CI the run directory is the baseline artifact, so a pull request on an ephemeral
  runner that downloads it still sees the earlier runs of main; an accepted-baseline file
  carries the same list under ``history``.

An entry is compact (no records): run id, eval, started/finished, git commit, record count
and per scorer n, mean with its 95% interval, pass rate with its interval.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalrun.errors import UsageError
from evalrun.store import HISTORY, read_history_file
from evalrun.store import valid_history_entry as _valid

if TYPE_CHECKING:
    from evalrun.baseline import Baseline
    from evalrun.store import RunDir

#: entries a history.jsonl keeps (the newest): a year of daily runs, a few hundred kB
KEEP = 400


def _r(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else round(x, 6)


def _scorers_from_summary(summary: Mapping[str, Any]) -> dict[str, Any]:
    from evalrun.stats import clopper_pearson_interval

    out = {}
    for name, s in (summary.get("scorers") or {}).items():
        if not isinstance(s, dict):
            continue
        pass_ci = s.get("pass_ci95")
        if pass_ci is None:  # a summary written before pass_ci95: the exact interval on its counts
            passed, failed = int(s.get("passed") or 0), int(s.get("failed") or 0)
            pass_ci = [_r(b) for b in clopper_pearson_interval(passed, passed + failed)] if passed + failed else None
        out[name] = {"n": s.get("n"), "mean": s.get("mean"), "ci95": s.get("ci95"),
                     "pass_rate": s.get("pass_rate"), "pass_ci95": pass_ci}
    return out


def entry(*, run_id: str | None, eval_name: str | None, started_at: str | None, git: dict[str, Any] | None,
          summary: Mapping[str, Any] | None, source: str, finished_at: str | None = None,
          started_ts: float | None = None, group: Mapping[str, Any] | None = None) -> dict[str, Any]:
    s = summary or {}
    out = {"run_id": run_id, "eval": eval_name, "started_at": started_at, "started_ts": started_ts,
           "finished_at": finished_at or s.get("finished_at"),
           "commit": (git or {}).get("commit"), "branch": (git or {}).get("branch"),
           "records": s.get("records"), "errors": s.get("errors"), "scorers": _scorers_from_summary(s),
           "source": source}
    if group and group.get("id"):  # a variant's run: the history shows its group's runs side by side
        out["group"] = {"id": str(group["id"]), "variant": str(group.get("variant") or ""),
                        "compare_to": str(group.get("compare_to") or "")}
    return out


def run_entry(rd: RunDir, source: str = "run") -> dict[str, Any] | None:
    """The entry of a finished run directory (None for one without a summary or not finished)."""
    try:
        m = rd.read_manifest()
        summary = rd.read_summary()
    except UsageError:
        return None
    if summary is None or m.get("status") != "finished":
        return None
    opts = m.get("options") or {}
    if not m.get("merged_from") and any(opts.get(k) for k in ("limit", "filters", "sample", "shard")):
        return None  # a part of the eval (--limit, --filter, --sample, one shard): not a point of its trend
    # the manifest's id: a downloaded artifact's folder is named after the artifact, not the run
    return entry(run_id=str(m.get("run_id") or rd.id), eval_name=m.get("eval"), started_at=m.get("started_at"), git=m.get("git"),
                 summary=summary, source=source, finished_at=m.get("finished_at"), started_ts=m.get("started_ts"),
                 group=m.get("group"))


def baseline_entry(bl: Baseline) -> dict[str, Any] | None:
    """The entry of a baseline (run directory, results file or accepted file)."""
    from evalrun.store import RunDir

    if bl.kind == "run" and bl.path is not None:
        return run_entry(RunDir(bl.path), "baseline")
    if bl.kind == "accepted" and bl.path is not None:
        return accepted_entry(bl.path)
    if bl.summary is not None and bl.run_id:
        return entry(run_id=bl.run_id, eval_name=bl.eval, started_at=None, git=None, summary=bl.summary,
                     source="baseline")
    return None


def accepted_entry(path: Path) -> dict[str, Any] | None:
    """The entry of an accepted-baseline file (numbers recomputed from its records)."""
    from evalrun.baseline import load_accepted
    from evalrun.summary import SummaryBuilder

    try:
        bl = load_accepted(path)
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UsageError, OSError, ValueError):
        return None
    names: list[str] = []
    for r in bl.records:
        names += [n for n in r.scores if n not in names]
    b = SummaryBuilder(names)
    for r in bl.records:
        b.add(r)
    return entry(run_id=bl.run_id, eval_name=bl.eval, started_at=data.get("started_at"), git=data.get("git"),
                 summary=b.build(), source="accepted")


def _history_near(path: Path | None) -> list[dict[str, Any]]:
    """The history a run directory / artifact folder holds (its history.jsonl), or the one an
    accepted-baseline file carries (its ``history`` key), or a results file's run directory's."""
    if path is None:
        return []
    if path.is_file() and path.suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError):
            return []
        raw = data.get("history") if isinstance(data, dict) else None
        return [e for e in raw if _valid(e)] if isinstance(raw, list) else []
    folder = path if path.is_dir() else path.parent
    f = folder / HISTORY
    return read_history_file(f) if f.is_file() else []


def merge(entries: list[dict[str, Any]], eval_name: str | None = None) -> list[dict[str, Any]]:
    """One entry per run id (a local run's own entry beats a carried copy), oldest first."""
    rank = {"run": 0, "current": 0, "baseline": 1, "accepted": 2}
    best: dict[str, dict[str, Any]] = {}
    for e in entries:
        if eval_name and e.get("eval") and e.get("eval") != eval_name:
            continue
        rid = e.get("run_id")
        if not rid:
            continue
        old = best.get(rid)
        if old is None:
            best[rid] = e
            continue
        hi, lo = (e, old) if rank.get(e.get("source", ""), 3) < rank.get(old.get("source", ""), 3) else (old, e)
        # the better source wins; what it lacks (an accepted file has no started_ts) the other fills in
        best[rid] = {**lo, **{k: v for k, v in hi.items() if v is not None}}
    return sorted(best.values(), key=_order)


def _order(e: dict[str, Any]) -> tuple[str, float, str]:
    # the ISO time has whole seconds; started_ts orders runs started within one second
    ts = e.get("started_ts")
    return (str(e.get("started_at") or "")[:19], ts if isinstance(ts, int | float) else 0.0, str(e.get("run_id")))


def chain(run_dir: RunDir, baseline: Baseline | None) -> list[dict[str, Any]]:
    """The history of a run outside a runs/ folder: its baseline's history, the baseline, this run."""
    entries: list[dict[str, Any]] = []
    if baseline is not None:
        entries += [{**e, "source": "history"} for e in _history_near(baseline.path)]
        be = baseline_entry(baseline)
        if be is not None:
            entries.append(be)
    own = run_entry(run_dir, "current")
    if own is not None:
        entries.append(own)
    eval_name = own.get("eval") if own else None
    return merge(entries, eval_name)[-KEEP:]


def write_history(run_dir: RunDir, entries: list[dict[str, Any]]) -> None:
    """Write ``history.jsonl`` into the run directory (atomically: a reader never sees half)."""
    from evalrun.store import write_text_atomic

    path = run_dir.path / HISTORY
    lines = [json.dumps({k: v for k, v in e.items() if k != "source"}, sort_keys=True, ensure_ascii=False)
             for e in entries]
    write_text_atomic(path, "".join(line + "\n" for line in lines))


def collect(eval_name: str | None, home: Path | None = None, *, accepted: Path | None = None,
            extra: list[Path] | None = None, current: RunDir | None = None,
            baseline: Baseline | None = None) -> list[dict[str, Any]]:
    """Every finished run of ``eval_name`` this machine can see, oldest first (with ``current``:
    up to and including it)."""
    from evalrun.store import list_runs

    entries: list[dict[str, Any]] = []
    for p in extra or []:
        entries += [{**e, "source": "history"} for e in _history_near(p)]
    if baseline is not None:
        entries += [{**e, "source": "history"} for e in _history_near(baseline.path)]
        be = baseline_entry(baseline)
        if be is not None:
            entries.append(be)
    if accepted is not None and accepted.is_file():
        e = accepted_entry(accepted)
        if e is not None:
            entries.append(e)
        entries += [{**x, "source": "history"} for x in _history_near(accepted)]
    for rd in list_runs(home):
        if current is not None and rd.path == current.path:
            continue
        try:
            m = rd.read_manifest()
        except UsageError:
            continue
        if eval_name and m.get("eval") != eval_name:
            continue
        e = run_entry(rd)
        if e is not None:
            entries.append(e)
        entries += [{**x, "source": "history"} for x in _history_near(rd.path)]
    own = run_entry(current, "current") if current is not None else None
    if own is not None:
        entries.append(own)
    merged = merge(entries, eval_name)
    if own is not None:
        # a run compared again later sees its history as it was: nothing after it
        merged = [e for e in merged if _order(e) <= _order(own)]
    return merged
