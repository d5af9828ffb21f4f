"""Baselines: what a run is compared with, and the accepted-baseline file.

A baseline REF is one of

- a run id (or a unique prefix of one), or a run directory
- a results file (``results.jsonl``)
- ``latest``: the newest finished run of the same eval
- ``accepted``, or the path of an accepted-baseline file: the run someone accepted with
  ``evalrun baseline set RUN``
- ``langfuse://<dataset>/<run-name>``: an experiment run read back from Langfuse

The accepted-baseline file (``<home>/baseline/<eval-name>.json`` unless the eval file says
``baseline: path``) holds only what a comparison needs, so it is small enough to commit or
to keep as a CI artifact: per record the item id, trial, scores, output, error, latency and
usage, plus the eval name, config fingerprint and run-level numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalrun import _json
from evalrun.errors import UsageError
from evalrun.records import Record
from evalrun.runs import Manifest, Summary
from evalrun.store import (
    HISTORY,
    RESULTS,
    RunDir,
    default_home,
    iter_results_file,
    list_runs,
    read_history_file,
    resolve_run,
    write_json_atomic,
)

FORMAT_KEY = "evalrun_baseline"
FORMAT_VERSION = 1
ACCEPTED = "accepted"
#: run states a baseline may come from: an interrupted or running run is missing records
USABLE_STATUS = ("finished", "failed")


@dataclass
class Baseline:
    records: list[Record]
    source: str  # as the user named it, for messages and reports
    kind: str  # run | results | accepted | langfuse
    eval: str | None = None
    run_id: str | None = None
    summary: Summary | None = None
    metrics: dict[str, Any] | None = None  # run-level numbers kept in an accepted-baseline file
    config_fingerprint: str | None = None
    path: Path | None = None

    def info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"source": self.source, "kind": self.kind, "run_id": self.run_id, "eval": self.eval,
                "records": len(self.records)}
        prompt = (self.summary or {}).get("prompt")
        if prompt:  # a chat target's resolved prompt: reports name both versions
            info["prompt"] = prompt
        return info

    def outputs(self) -> dict[tuple[str, int], Any]:
        return {r.key: r.output for r in self.records}


def accepted_path(eval_name: str, home: Path | None = None, configured: str | Path | None = None,
                  base_dir: Path | None = None) -> Path:
    """Where the accepted baseline of ``eval_name`` lives: the eval file's ``baseline:`` (relative
    to the eval file's folder) or ``<home>/baseline/<eval-name>.json``."""
    if configured:
        p = Path(configured).expanduser()
        return p if p.is_absolute() or base_dir is None else base_dir / p
    return (home or default_home()) / "baseline" / f"{eval_name}.json"


def resolve_baseline(ref: str, *, eval_name: str | None = None, home: Path | None = None,
                     configured: str | Path | None = None, base_dir: Path | None = None) -> Baseline:
    """Load the baseline ``ref`` names; a baseline of another eval than ``eval_name`` is a UsageError."""
    ref = ref.strip()
    if not ref:
        raise UsageError("--baseline needs a value (a run id, run directory, results file, 'latest' or 'accepted')")
    if ref.startswith("langfuse://"):
        from evalrun.langfuse.baseline import read_baseline

        return Baseline(read_baseline(ref), ref, "langfuse")
    if ref == ACCEPTED:
        if not eval_name:
            raise UsageError("'accepted' baseline needs the eval's name")
        path = accepted_path(eval_name, home, configured, base_dir)
        if not path.is_file():
            raise UsageError(f"no accepted baseline for eval '{eval_name}' yet (looked for {path}); "
                             f"accept a run with: evalrun baseline set RUN")
        bl = load_accepted(path)
    elif ref == "latest":
        bl = _latest(eval_name, home)
    else:
        p = Path(ref).expanduser()
        if p.is_dir():
            bl = _from_run(RunDir(p), ref)
        elif p.is_file():
            bl = _from_results(p, ref) if p.suffix == ".jsonl" else load_accepted(p)
        else:
            bl = _from_run(resolve_run(ref, home), ref)
    if eval_name and bl.eval and bl.eval != eval_name:
        raise UsageError(f"baseline is a run of eval '{bl.eval}', not '{eval_name}'",
                         str(bl.path) if bl.path else ref)
    return bl


def _latest(eval_name: str | None, home: Path | None) -> Baseline:
    for rd in reversed(list_runs(home)):
        m = rd.read_manifest()
        if m.get("status") == "finished" and (eval_name is None or m.get("eval") == eval_name):
            return _from_run(rd, "latest")
    raise UsageError(f"no finished run of eval '{eval_name}' in {(home or default_home()) / 'runs'} "
                     "to use as the 'latest' baseline")


def _from_run(rd: RunDir, source: str) -> Baseline:
    m = rd.read_manifest()
    status = m.get("status")
    if status not in USABLE_STATUS:
        raise UsageError(f"run {rd.id} is {status}, so it lacks records; finish it with  evalrun run --resume "
                         f"{rd.id}  or pick another baseline", str(rd.path))
    return Baseline(rd.records(), source, "run", m.get("eval"), rd.id, rd.read_summary(),
                    config_fingerprint=m.get("config_fingerprint"), path=rd.path)


def _from_results(path: Path, source: str) -> Baseline:
    latest: dict[tuple[str, int], Record] = {}
    try:
        for r in iter_results_file(path):
            latest[r.key] = r
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise UsageError(f"not an evalrun results file ({type(e).__name__}: {e})", str(path)) from None
    rd = RunDir(path.parent)
    # a results file inside a run directory knows its eval; a copied one may not
    if path.name == RESULTS and rd.exists():
        m = rd.read_manifest()
        return Baseline(list(latest.values()), source, "results", m.get("eval"), rd.id, rd.read_summary(),
                        config_fingerprint=m.get("config_fingerprint"), path=path)
    return Baseline(list(latest.values()), source, "results", path=path)


def load_accepted(path: Path) -> Baseline:
    """Read an accepted-baseline file; anything malformed is a UsageError naming the file."""
    from evalrun._yaml import read_text

    text = read_text(path, "baseline file")
    try:
        data = _json.loads(text)
    except ValueError as e:
        raise UsageError(f"corrupt baseline file (not JSON: {e})", str(path)) from None
    if not isinstance(data, dict) or FORMAT_KEY not in data:
        raise UsageError("not an evalrun baseline file, run directory or results file "
                         f"(no '{FORMAT_KEY}' key)", str(path))
    if data[FORMAT_KEY] != FORMAT_VERSION:
        raise UsageError(f"baseline file format {data[FORMAT_KEY]!r} is not one this evalrun reads "
                         f"({FORMAT_VERSION})", str(path))
    raw = data.get("records")
    if not isinstance(raw, list):
        raise UsageError("corrupt baseline file: 'records' is not a list", str(path))
    records = []
    for i, d in enumerate(raw):
        try:
            if not isinstance(d, dict) or not isinstance(d.get("scores", {}), dict):
                raise TypeError("not a record mapping")
            records.append(Record.from_dict({"input": None, **d}))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise UsageError(f"corrupt baseline file: record {i + 1} ({type(e).__name__}: {e})", str(path)) from None
    return Baseline(records, str(path), "accepted", data.get("eval"), data.get("run_id"), None,
                    data.get("metrics"), data.get("config_fingerprint"), path)


def _baseline_record(r: Record) -> dict[str, Any]:
    d: dict[str, Any] = {"item_id": r.item_id, "trial": r.trial, "output": r.output,
                         "scores": {k: s.to_dict() for k, s in r.scores.items()}}
    for key in ("error", "latency_ms", "usage"):
        if getattr(r, key) is not None:
            d[key] = getattr(r, key)
    tags = (r.metadata or {}).get("tags")
    if tags:
        d["metadata"] = {"tags": tags}
    return d


def baseline_document(rd: RunDir) -> dict[str, Any]:
    """The accepted-baseline file's content for run ``rd``."""
    from evalrun.compare import run_metrics

    m = rd.read_manifest()
    if m.get("status") not in USABLE_STATUS:
        raise UsageError(f"run {rd.id} is {m.get('status')}; only a finished run can be the baseline", str(rd.path))
    records = sorted(rd.records(), key=lambda r: (r.item_id, r.trial))
    return {
        FORMAT_KEY: FORMAT_VERSION,
        "eval": m.get("eval"),
        "run_id": rd.id,
        "config_fingerprint": m.get("config_fingerprint"),
        "dataset_fingerprint": (m.get("dataset") or {}).get("fingerprint"),
        "git": m.get("git"),
        "started_at": m.get("started_at"),
        "metrics": run_metrics(records, rd.read_summary()),
        "records": [_baseline_record(r) for r in records],
        # the run's compact history (evalrun.history), so a baseline file carries earlier runs too
        "history": _run_history(rd),
    }


def _run_history(rd: RunDir) -> list[dict[str, Any]]:
    return read_history_file(rd.path / HISTORY)


def configured_path_of_run(manifest: Manifest) -> tuple[str | None, Path | None]:
    """The ``baseline:`` of the eval file a run used (env-expanded) and that file's folder."""
    from evalrun.config import expand_env

    cfg = manifest.get("config") or {}
    raw = cfg.get("baseline")
    base_dir = Path(manifest["config_path"]).parent if manifest.get("config_path") else None
    if not isinstance(raw, str) or not raw:
        return None, base_dir
    where = manifest.get("config_path")
    return expand_env(raw, lambda msg: UsageError(f"baseline: {msg}", where)), base_dir


def current_baseline_path(manifest: Manifest) -> tuple[str | None, Path | None]:
    """Where the run's eval accepts its baseline now: the ``baseline:`` of its eval file as the
    file is today (where ``evalrun run`` and ``baseline show`` look), or, when that file is gone
    or no longer the same eval, the ``baseline:`` it had when the run ran."""
    from evalrun.config import load_config

    path = manifest.get("config_path")
    if path and Path(path).is_file():
        try:
            loaded = load_config(path)
        except UsageError:
            loaded = None  # a file broken since: the run's own record of it
        if loaded is not None and loaded.config.name == manifest.get("eval"):
            return loaded.config.baseline, loaded.base_dir
    return configured_path_of_run(manifest)


def set_baseline(run_ref: str, home: Path | None = None, dest: Path | None = None) -> tuple[Path, dict[str, Any]]:
    """Accept run ``run_ref`` as its eval's baseline: write the baseline file, return its path."""
    rd = resolve_run(run_ref, home)
    doc = baseline_document(rd)
    if dest is None:
        configured, base_dir = current_baseline_path(rd.read_manifest())
        dest = accepted_path(doc["eval"], home, configured, base_dir)
    dest.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(dest, doc)
    return dest, doc
