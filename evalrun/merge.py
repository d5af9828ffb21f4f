"""Merging shard runs (``evalrun run --shard i/n``) into one run directory.

The merged run is an ordinary run: its results.jsonl holds every shard's records, its
summary is built by the same :class:`~evalrun.summary.SummaryBuilder` an unsharded run
uses, and its manifest says which shards it came from. Everything that makes shards
incomparable (another eval, another config or dataset, other selection options, another
commit) or incomplete (a shard missing, given twice, or not finished) is refused before
anything is written.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalrun.engine import now_iso, parse_shard
from evalrun.errors import UsageError
from evalrun.runs import Manifest, Summary
from evalrun.store import ResultsWriter, RunDir, default_home, new_run_id, resolve_run
from evalrun.summary import SummaryBuilder

# options that change which records a run holds; two shards must agree on all of them
_SELECTION_OPTIONS = ("limit", "filters", "sample", "seed")


@dataclass
class Shard:
    run: RunDir
    manifest: Manifest
    index: int
    count: int

    @property
    def spec(self) -> str:
        return f"{self.index}/{self.count}"


def _load_shard(run: RunDir) -> Shard:
    manifest = run.read_manifest()
    spec = (manifest.get("options") or {}).get("shard")
    if not spec:
        raise UsageError(f"cannot merge: run {run.id} is not a shard (it ran without --shard i/n)")
    status = manifest.get("status")
    if status not in ("finished", "failed"):
        raise UsageError(f"cannot merge: shard {spec} (run {run.id}) is {status}, not finished; "
                         f"finish it first with  evalrun run --resume {run.id}")
    parsed = parse_shard(spec)
    assert parsed is not None
    return Shard(run, manifest, *parsed)


def _differs(a: Shard, b: Shard) -> str | None:
    """What makes shard ``b`` impossible to merge with shard ``a``, if anything."""
    ma, mb = a.manifest, b.manifest
    if ma.get("eval") != mb.get("eval"):
        return f"is eval '{mb.get('eval')}', not '{ma.get('eval')}'"
    if ma.get("config_fingerprint") != mb.get("config_fingerprint"):
        return "ran with a different eval config (config fingerprints differ)"
    if (ma.get("dataset") or {}).get("fingerprint") != (mb.get("dataset") or {}).get("fingerprint"):
        return "ran on a different version of the dataset (dataset fingerprints differ)"
    if ma.get("prompt") != mb.get("prompt"):  # a Langfuse label can move between shard jobs
        return "ran a different prompt version (the label moved between the shards' runs?)"
    oa, ob = ma.get("options") or {}, mb.get("options") or {}
    for key in _SELECTION_OPTIONS:
        if oa.get(key) != ob.get(key):
            return f"selected items differently (--{key} {ob.get(key)!r}, not {oa.get(key)!r})"
    ra, rb = (ma.get("planned") or {}).get("repeat"), (mb.get("planned") or {}).get("repeat")
    if ra != rb:
        return f"ran {rb} trials per item, not {ra}"
    if ma.get("scorers") != mb.get("scorers"):
        return "has other scorers"
    ca, cb = (ma.get("git") or {}).get("commit"), (mb.get("git") or {}).get("commit")
    if ca and cb and ca != cb:
        return f"ran on commit {cb[:12]}, not {ca[:12]}"
    return None


def check_shards(shards: list[Shard]) -> None:
    """Refuse shards that cannot make one run: one clear line naming the culprit."""
    first = shards[0]
    for s in shards[1:]:
        why = _differs(first, s)
        if why:
            raise UsageError(f"cannot merge shard {s.spec} (run {s.run.id}) with shard {first.spec} "
                             f"(run {first.run.id}): it {why}")
    counts = {s.count for s in shards}
    if len(counts) > 1:
        raise UsageError("cannot merge: the runs split the items in different ways ("
                         + ", ".join(f"{s.run.id} is {s.spec}" for s in shards) + ")")
    n = first.count
    seen: dict[int, Shard] = {}
    for s in shards:
        if s.index in seen:
            other = seen[s.index]
            what = "the same run given twice" if other.run.path.resolve() == s.run.path.resolve() else \
                f"runs {other.run.id} and {s.run.id} overlap"
            raise UsageError(f"cannot merge: shard {s.spec} appears twice ({what})")
        seen[s.index] = s
    missing = [f"{i}/{n}" for i in range(1, n + 1) if i not in seen]
    if missing:
        raise UsageError(f"cannot merge: missing shard{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                         f"(got {', '.join(s.spec for s in sorted(shards, key=lambda s: s.index))})")


def _merged_summary_extras(summaries: list[Summary], built: Summary) -> None:
    """Carry over what scorers added to each shard's summary (model name, judge settings...)
    where every shard agrees; statistics of a scorer's own that cannot be pooled are left out
    rather than shown for one shard only. Scorer usage (calls, tokens) is summed."""
    for name, entry in built["scorers"].items():
        per_shard = [(s.get("scorers") or {}).get(name) or {} for s in summaries]
        keys = set().union(*per_shard) - set(entry)
        for key in sorted(keys):
            values = [p.get(key) for p in per_shard]
            if all(v == values[0] for v in values):
                entry[key] = values[0]
    usage: dict[str, Any] = {}
    for s in summaries:
        for scorer, counts in (s.get("scorer_usage") or {}).items():
            acc = usage.setdefault(scorer, {})
            for k, v in (counts or {}).items():
                if isinstance(v, int | float) and not isinstance(v, bool):
                    acc[k] = acc.get(k, 0) + v
    if usage:
        built["scorer_usage"] = usage


def summary_builder_of(manifest: Manifest, summaries: list[Summary]) -> SummaryBuilder:
    """A builder for the merged run, held to the rules the shards ran under: their summary's
    error budgets and ``exclude_errors`` (the eval file's, with its ``--set`` values), and
    knowing every score name up front (an item check's too), as the unsharded run's did, so an
    errored record counts under the same names in any shard order."""
    cfg = manifest.get("config") or {}
    summary = summaries[0]
    names = list(dict.fromkeys([*(manifest.get("scorers") or []),
                                *(n for s in summaries for n in (s.get("scorers") or {}))]))
    budgets = summary.get("error_budget") or {}
    target = budgets.get("target", cfg.get("error_budget"))
    given = budgets.get("scorers")
    scorers: dict[str, Any] = given if isinstance(given, dict) else {}
    exclude = summary.get("exclude_errors", cfg.get("exclude_errors"))
    return SummaryBuilder(names, cluster=cfg.get("cluster"), exclude_errors=exclude is True,
                          budget=target if isinstance(target, int | float) else None,
                          scorer_budgets={n: b for n, b in scorers.items() if isinstance(b, int | float)})


def load_shards(refs: Sequence[str], home: Path | None = None) -> list[Shard]:
    """The shards that ``refs`` name, checked to make one run, in shard order."""
    if not refs:
        raise UsageError("evalrun merge needs the shard runs to merge (run ids or run directories)")
    shards = [_load_shard(resolve_run(ref, home)) for ref in refs]
    check_shards(shards)
    return sorted(shards, key=lambda s: s.index)


def merge_runs(refs: Sequence[str], home: Path | None = None) -> tuple[RunDir, Summary]:
    """Check the shards, then write one run directory holding all of them; returns it and its summary."""
    return write_merged(load_shards(refs, home), home)


def write_merged(shards: list[Shard], home: Path | None = None) -> tuple[RunDir, Summary]:
    """One run directory from checked shards (see :func:`load_shards`)."""
    summaries = []
    for s in shards:
        summary = s.run.read_summary()
        if summary is None:
            raise UsageError(f"shard {s.spec} (run {s.run.id}) has no summary.json")
        summaries.append(summary)

    first = shards[0].manifest
    out = RunDir((home or default_home()) / "runs" / new_run_id())
    builder = summary_builder_of(first, summaries)
    owner: dict[str, str] = {}
    out.path.mkdir(parents=True, exist_ok=False)
    writer = ResultsWriter(out.results_path)
    try:
        for s in shards:
            records = s.run.records()
            for rec in records:
                # distinct shard numbers cannot share items unless a run dir was tampered with
                prev = owner.setdefault(rec.item_id, s.run.id)
                if prev != s.run.id:
                    raise UsageError(f"cannot merge: item '{rec.item_id}' is in both run {prev} and run {s.run.id}")
                builder.add(rec)
            writer.write(records)
    except BaseException:
        writer.close()
        for p in out.path.iterdir():
            p.unlink()
        out.path.rmdir()
        raise
    writer.close()

    # the budgets are the eval file's, judged on the whole run (a shard may exceed them alone)
    failure = builder.failure()
    status = "failed" if failure is not None else "finished"
    planned = {
        "items": sum((s.manifest.get("planned") or {}).get("items", 0) for s in shards),
        "repeat": (first.get("planned") or {}).get("repeat"),
        "records": sum((s.manifest.get("planned") or {}).get("records", 0) for s in shards),
    }
    started = min((s.manifest.get("started_at") or "" for s in shards), default="") or None
    manifest: Manifest = {
        **first,
        "run_id": out.id,
        "options": {**(first.get("options") or {}), "shard": None,
                    "concurrency": None},  # each shard chose its own; none applies to the whole
        "planned": planned,
        "merged_from": [{"shard": s.spec, "run_id": s.run.id, "path": str(s.run.path),
                         "status": s.manifest.get("status")} for s in shards],
        "started_at": started,
        "started_ts": time.time(),
        "status": status,
        "finished_at": now_iso(),
    }
    manifest.pop("resumed_at", None)
    summary = builder.build(run_id=out.id, eval=first.get("eval"), status=status, planned=planned["records"],
                            started_at=started, finished_at=manifest["finished_at"])
    if failure is not None:
        summary["failure"] = failure
    _merged_summary_extras(summaries, summary)
    if first.get("prompt"):
        summary["prompt"] = first["prompt"]
    out.write_summary(summary)
    out.write_manifest(manifest)
    return out, summary
