"""Merge benchmark: `evalrun merge` of shard run directories into one run.

Data: N records with two scores each, split into S shard run directories on disk as
`evalrun run --shard i/S` would leave them.

The ideal is what any merge must do at least: read every shard's results.jsonl, parse each
line (the summary needs the scores) and write the lines out again. The report shows the
merge's time against that floor, and its peak memory (tracemalloc) against the size of the
records on disk.

Usage: python benchmarks/bench_merge.py [--records 100000] [--shards 4]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
import tracemalloc
from pathlib import Path

from evalrun import _json
from evalrun.engine import shard_of
from evalrun.merge import merge_runs


def make_shards(root: Path, records: int, shards: int) -> list[Path]:
    rng = random.Random(1)
    dirs = [root / "runs" / f"shard-{k}" for k in range(1, shards + 1)]
    files = []
    for d in dirs:
        d.mkdir(parents=True)
        files.append(open(d / "results.jsonl", "wb"))
    counts = [0] * shards
    for i in range(records):
        item = f"item-{i}"
        k = shard_of(item, shards)
        counts[k - 1] += 1
        ok = rng.random() < 0.8
        rec = {"item_id": item, "trial": 0, "input": f"question {i} " + "x" * 60, "expected_output": f"answer {i}",
               "output": f"answer {i}" if ok else "something else", "error": None,
               "latency_ms": round(rng.uniform(50, 900), 3), "usage": {"input_tokens": 20, "output_tokens": 8},
               "scores": {"exact_match": {"value": float(ok), "passed": ok, "reason": None},
                          "similarity": {"value": round(rng.random(), 6), "passed": None, "reason": None}},
               "attempts": 1, "started_at": 0.0}
        files[k - 1].write(_json.dumps_line(rec))
    for f in files:
        f.close()
    for k, d in enumerate(dirs, 1):
        manifest = {"run_id": d.name, "eval": "bench", "config_fingerprint": "sha256:x", "config": {},
                    "dataset": {"fingerprint": "sha256:d"}, "options": {"shard": f"{k}/{shards}"},
                    "planned": {"items": counts[k - 1], "repeat": 1, "records": counts[k - 1]},
                    "scorers": ["exact_match", "similarity"], "git": None, "status": "finished",
                    "started_at": "2026-01-01T00:00:00+00:00", "started_ts": 0.0}
        (d / "manifest.json").write_text(json.dumps(manifest))
        (d / "summary.json").write_text(json.dumps({"run_id": d.name, "scorers": {}}))
    return dirs


def floor(dirs: list[Path], out: Path) -> float:
    t0 = time.perf_counter()
    with open(out, "wb") as w:
        for d in dirs:
            with open(d / "results.jsonl", "rb") as f:
                for line in f:
                    _json.loads(line)
                    w.write(line)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--shards", type=int, default=4)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        dirs = make_shards(root, args.records, args.shards)
        size = sum((d / "results.jsonl").stat().st_size for d in dirs)
        ideal = min(floor(dirs, root / f"floor-{i}.jsonl") for i in range(3))
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            _, summary = merge_runs([str(d) for d in dirs], root)
            times.append(time.perf_counter() - t0)
            assert summary["records"] == args.records
        took = min(times)
        # memory in a separate pass: tracemalloc slows allocation-heavy code several times over
        tracemalloc.start()
        merge_runs([str(d) for d in dirs], root)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(f"records: {args.records} in {args.shards} shards, {size / 2**20:.1f} MiB of results.jsonl")
        print(f"ideal (read + parse + write every line): {ideal:.2f} s")
        print(f"evalrun merge (check, merge, summary):  {took:.2f} s  ({took / ideal:.2f}x the ideal, "
              f"{args.records / took:,.0f} records/s)")
        print(f"peak memory (tracemalloc): {peak / 2**20:.1f} MiB ({peak / size:.2f}x the records on disk)")


if __name__ == "__main__":
    main()
