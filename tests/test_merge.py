"""Sharded runs and `evalrun merge` through the real CLI: shards partition the items, a merge
of shards reports exactly what an unsharded run of the same records reports, and shards that
cannot make one run are refused with one line and exit 2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from evalrun.engine import shard_of
from tests.conftest import invoke_cli

# deterministic, with misses: every fifth answer is wrong, every seventh fails the regex
TARGET = '''
def answer(q):
    n = int(q[1:])
    if n % 5 == 0:
        return "wrong"
    return ("x" if n % 7 == 0 else "A") + q
'''

ITEMS = [{"id": f"item-{i}", "input": f"q{i}", "expected_output": f"Aq{i}",
          "metadata": {"tags": ["critical"] if i % 3 == 0 else []}} for i in range(40)]


def write_suite(root: Path, scorers: str = '[exact_match, {type: regex, pattern: "^A"}]',
                items: list[dict] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "tgt.py").write_text(TARGET)
    (root / "data.jsonl").write_text("".join(json.dumps(i) + "\n" for i in (items or ITEMS)))
    (root / "eval.yaml").write_text(f"name: shards\ndataset: data.jsonl\ntarget:\n  python: tgt:answer\n"
                                    f"scorers: {scorers}\n")
    return root / "eval.yaml"


def home(root: Path) -> str:
    return str(root / ".evalrun")


def run(root: Path, *args: str):
    return invoke_cli("run", "eval.yaml", "--output-dir", home(root), "--quiet", *args, cwd=root)


def merge(root: Path, *refs: str, extra: tuple[str, ...] = ()):
    return invoke_cli("merge", *refs, "--output-dir", home(root), *extra, cwd=root)


def runs(root: Path) -> list[Path]:
    d = root / ".evalrun" / "runs"
    return sorted(d.iterdir()) if d.is_dir() else []


def run_dir(root: Path, run_id: str) -> Path:
    return root / ".evalrun" / "runs" / run_id


def last_run(root: Path) -> Path:
    return max(runs(root), key=lambda p: json.loads((p / "manifest.json").read_text())["started_ts"])


def read_records(d: Path) -> list[dict]:
    return [json.loads(x) for x in (d / "results.jsonl").read_text().splitlines()]


def comparable(summary: dict) -> dict:
    """A summary without what differs between any two runs: ids and clock times."""
    return {k: v for k, v in summary.items() if k not in ("run_id", "started_at", "finished_at")}


def shard_runs(root: Path, n: int) -> list[str]:
    ids = []
    for i in range(1, n + 1):
        r = run(root, "--shard", f"{i}/{n}")
        assert r.returncode == 0, r.stderr
        ids.append(last_run(root).name)
    return ids


def test_shards_partition_items_and_merge_matches_unsharded(tmp_path):
    write_suite(tmp_path)
    r = run(tmp_path, "--json")
    assert r.returncode == 0, r.stderr
    whole = json.loads(r.stdout)
    whole_records = {x["item_id"]: x for x in read_records(last_run(tmp_path))}

    ids = shard_runs(tmp_path, 3)
    parts = [{x["item_id"] for x in read_records(run_dir(tmp_path, i))} for i in ids]
    assert all(parts)  # 40 items over 3 shards: none empty
    assert sum(map(len, parts)) == 40 and set().union(*parts) == set(whole_records)  # disjoint and complete
    for k, part in enumerate(parts, 1):  # each shard holds exactly the items hashed to it
        assert part == {i for i in whole_records if shard_of(i, 3) == k}

    r = merge(tmp_path, *ids, extra=("--json",))  # run ids, given out of order below too
    assert r.returncode == 0, r.stderr
    merged = json.loads(r.stdout)
    assert merged["status"] == "finished" and merged["planned"] == 40
    for key in ("records", "items", "errors", "error_types", "scorers", "usage"):
        assert merged[key] == whole[key], key
    merged_dir = run_dir(tmp_path, merged["run_id"])
    assert json.loads((merged_dir / "summary.json").read_text()) == merged
    merged_records = {x["item_id"]: x for x in read_records(merged_dir)}
    assert merged_records.keys() == whole_records.keys()
    for i, rec in merged_records.items():
        assert (rec["output"], rec["scores"]) == (whole_records[i]["output"], whole_records[i]["scores"])
    manifest = json.loads((merged_dir / "manifest.json").read_text())
    assert manifest["options"]["shard"] is None and manifest["status"] == "finished"
    assert [m["shard"] for m in manifest["merged_from"]] == ["1/3", "2/3", "3/3"]
    assert [m["run_id"] for m in manifest["merged_from"]] == ids
    assert manifest["planned"] == {"items": 40, "repeat": 1, "records": 40}

    # the merged run is an ordinary run: show/runs read it; run directories work as refs too
    r = invoke_cli("show", merged["run_id"], "--output-dir", home(tmp_path), "--json", cwd=tmp_path)
    assert json.loads(r.stdout) == merged
    r = merge(tmp_path, *(str(run_dir(tmp_path, i)) for i in reversed(ids)), extra=("--json",))
    assert r.returncode == 0, r.stderr
    assert comparable(json.loads(r.stdout)) == comparable(merged)


def _split_into_shards(src: Path, dest_root: Path, n: int) -> list[Path]:
    """Shard run directories holding exactly ``src``'s records, as `run --shard` would have."""
    manifest = json.loads((src / "manifest.json").read_text())
    lines = (src / "results.jsonl").read_text().splitlines()
    out = []
    for k in range(1, n + 1):
        d = dest_root / f"shard-{k}"
        d.mkdir(parents=True)
        mine = [x for x in lines if shard_of(json.loads(x)["item_id"], n) == k]
        (d / "results.jsonl").write_text("".join(x + "\n" for x in mine))
        m = {**manifest, "run_id": d.name, "options": {**manifest["options"], "shard": f"{k}/{n}"},
             "planned": {"items": len({json.loads(x)["item_id"] for x in mine}),
                         "repeat": manifest["planned"]["repeat"], "records": len(mine)}}
        (d / "manifest.json").write_text(json.dumps(m))
        (d / "summary.json").write_text(json.dumps({"run_id": d.name, "scorers": {}}))
        out.append(d)
    return out


def test_merge_of_the_same_records_gives_exactly_the_unsharded_summary(tmp_path):
    # latencies differ between two real runs, so split one run's own records into shards:
    # then every number, latency percentiles included, must come out the same
    write_suite(tmp_path)
    r = run(tmp_path, "--json", "--repeat", "2")
    whole = json.loads(r.stdout)
    shards = _split_into_shards(last_run(tmp_path), tmp_path / "split", 4)
    r = merge(tmp_path, *map(str, shards), extra=("--json",))
    assert r.returncode == 0, r.stderr
    merged = json.loads(r.stdout)
    assert comparable(merged) == comparable(whole)
    assert merged["records"] == 80 and merged["latency_ms"] == whole["latency_ms"]


def test_an_empty_shard_is_a_run_and_merges(tmp_path):
    items = ITEMS[:5]
    n = 6
    assert len({shard_of(i["id"], n) for i in items}) < n  # 5 items over 6 shards: some are empty
    write_suite(tmp_path, items=items)
    whole = json.loads(run(tmp_path, "--json").stdout)
    ids = shard_runs(tmp_path, n)
    sizes = [len(read_records(run_dir(tmp_path, i))) for i in ids]
    assert 0 in sizes and sum(sizes) == 5
    r = merge(tmp_path, *ids, extra=("--json",))
    assert r.returncode == 0, r.stderr
    merged = json.loads(r.stdout)
    assert merged["scorers"] == whole["scorers"] and merged["records"] == 5


def test_merge_prints_the_table_like_run(tmp_path):
    write_suite(tmp_path)
    ids = shard_runs(tmp_path, 2)
    r = merge(tmp_path, *ids)
    assert r.returncode == 0, r.stderr
    assert "exact_match" in r.stdout and "pass rate" in r.stdout and "run saved in" in r.stderr
    r = merge(tmp_path, *ids, extra=("--quiet",))
    assert r.returncode == 0 and r.stdout == ""


def assert_refused(r, *fragments: str) -> None:
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("evalrun: error: cannot merge"), r.stderr
    assert "Traceback" not in r.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


def test_merge_refuses_shards_that_cannot_make_one_run(tmp_path):
    write_suite(tmp_path)
    ids = shard_runs(tmp_path, 3)
    before = set(runs(tmp_path))

    assert_refused(merge(tmp_path, ids[0], ids[2]), "missing shard 2/3", "got 1/3, 3/3")
    assert_refused(merge(tmp_path, ids[0]), "missing shards 2/3, 3/3")
    assert_refused(merge(tmp_path, *ids, ids[1]), "shard 2/3 appears twice", "same run given twice")
    again = shard_runs(tmp_path, 3)[1]  # a second run of shard 2/3
    before = set(runs(tmp_path))
    assert_refused(merge(tmp_path, *ids, again), "shard 2/3 appears twice", f"{ids[1]} and {again} overlap")
    two = shard_runs(tmp_path, 2)
    before = set(runs(tmp_path))
    assert_refused(merge(tmp_path, ids[0], ids[1], ids[2], two[0]), f"{two[0]} is 1/2", "split the items in different ways")

    # the same eval with another scorer is another config
    other = tmp_path / "other"
    write_suite(other, scorers="[exact_match]")
    shutil.copytree(tmp_path / ".evalrun", other / ".evalrun")
    r = run(other, "--shard", "3/3")
    assert r.returncode == 0, r.stderr
    foreign = last_run(other)
    assert_refused(merge(tmp_path, ids[0], ids[1], str(foreign)), "shard 3/3", "different eval config")

    # another eval altogether
    (other / "eval.yaml").write_text((other / "eval.yaml").read_text().replace("name: shards", "name: other"))
    run(other, "--shard", "3/3")
    assert_refused(merge(tmp_path, ids[0], ids[1], str(last_run(other))), "is eval 'other', not 'shards'")

    # other selection options select other items
    r = run(tmp_path, "--shard", "3/3", "--limit", "30")
    before = set(runs(tmp_path))
    assert_refused(merge(tmp_path, ids[0], ids[1], last_run(tmp_path).name), "--limit 30")
    assert set(runs(tmp_path)) == before  # nothing was written by any refused merge


def test_merge_refuses_unfinished_and_unsharded_runs(tmp_path):
    write_suite(tmp_path)
    ids = shard_runs(tmp_path, 2)
    assert run(tmp_path).returncode == 0
    plain = last_run(tmp_path).name
    assert_refused(merge(tmp_path, plain, ids[1]), f"run {plain} is not a shard")
    m = run_dir(tmp_path, ids[1]) / "manifest.json"
    manifest = json.loads(m.read_text())
    m.write_text(json.dumps({**manifest, "status": "interrupted"}))
    assert_refused(merge(tmp_path, *ids), "is interrupted", f"evalrun run --resume {ids[1]}")
    # shards that ran different code are not one run
    m.write_text(json.dumps({**manifest, "git": {"commit": "f" * 40, "branch": "x", "dirty": False}}))
    m0 = run_dir(tmp_path, ids[0]) / "manifest.json"
    m0.write_text(json.dumps({**json.loads(m0.read_text()), "git": {"commit": "a" * 40, "branch": "x", "dirty": False}}))
    assert_refused(merge(tmp_path, *ids), "ran on commit ffffffffffff, not aaaaaaaaaaaa")


def test_merge_with_no_runs_or_an_unknown_run_is_one_line(tmp_path):
    write_suite(tmp_path)
    r = merge(tmp_path, "nope")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "no run 'nope'" in r.stderr
    r = invoke_cli("merge", cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr


@pytest.mark.parametrize("n", [1, 2, 7])
def test_shard_assignment_is_stable_when_items_are_added(n):
    ids = [f"case-{i}" for i in range(300)]
    before = {i: shard_of(i, n) for i in ids}
    grown = ids + [f"new-{i}" for i in range(50)]
    assert {i: shard_of(i, n) for i in grown if i in before} == before
    assert set(before.values()) == set(range(1, n + 1))


# the candidate breaks what the baseline got right on a few items, one of them critical
BASELINE_TARGET = '''
def answer(q):
    n = int(q[1:])
    return "wrong" if n % 5 == 0 else "A" + q
'''

CANDIDATE_TARGET = '''
def answer(q):
    n = int(q[1:])
    return "wrong" if n % 5 == 0 or n in (3, 4, 8, 11) else "A" + q
'''

GATES = '''gates:
  - exact_match.mean >= 0.5
  - exact_match.mean >= baseline - 0.02
  - exact_match.pass_rate >= baseline
  - errors <= 5%
  - no_regressions: {tag: critical}
gate_policy: point
'''


def gated_suite(root: Path, target: str) -> None:
    write_suite(root, scorers="[exact_match]")
    (root / "tgt.py").write_text(target)
    (root / "eval.yaml").write_text((root / "eval.yaml").read_text() + GATES)


def test_merged_run_gets_the_verdict_of_the_unsharded_run(tmp_path):
    gated_suite(tmp_path, BASELINE_TARGET)
    assert run(tmp_path).returncode == 0
    baseline = str(last_run(tmp_path))
    (tmp_path / "tgt.py").write_text(CANDIDATE_TARGET)

    r = run(tmp_path, "--baseline", baseline, "--json")
    assert r.returncode == 1, r.stderr  # item-3 is critical and regressed
    whole = json.loads(r.stdout)
    assert whole["verdict"]["verdict"] == "fail"
    unsharded = last_run(tmp_path)

    # shards judge no gates (a slice would fail the matrix job); the merge judges the whole
    ids = []
    for i in (1, 2, 3):
        r = run(tmp_path, "--shard", f"{i}/3", "--baseline", baseline, "--json")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["verdict"]["gates"] == []
        ids.append(last_run(tmp_path).name)
    r = merge(tmp_path, *ids, extra=("--baseline", baseline, "--json", "--report", "md", "--report", "junit"))
    assert r.returncode == 1, r.stderr
    merged = json.loads(r.stdout)
    assert comparable({k: v for k, v in merged.items() if k not in ("verdict", "latency_ms")}) == \
        comparable({k: v for k, v in whole.items() if k not in ("verdict", "latency_ms")})
    mv, wv = merged["verdict"], whole["verdict"]
    assert mv["verdict"] == wv["verdict"] == "fail"
    assert mv["counts"] == wv["counts"] and mv["counts"]["regressed"] == 4
    # every number of every gate is exact, the bootstrap interval included
    assert mv["gates"] == wv["gates"]
    assert [g["verdict"] for g in mv["gates"]] == ["pass", "fail", "fail", "pass", "fail"]
    assert next(g for g in mv["gates"] if g["gate"].startswith("no_regressions"))["items"] == ["item-3"]
    merged_dir = run_dir(tmp_path, merged["run_id"])
    assert {f for f in ("report.md", "junit.xml") if (merged_dir / f).is_file()} == {"report.md", "junit.xml"}

    # and the same records split into shards give the very same summary (latency too) and verdict
    shards = _split_into_shards(unsharded, tmp_path / "split", 3)
    r = merge(tmp_path, *map(str, shards), extra=("--baseline", baseline, "--json"))
    assert r.returncode == 1, r.stderr
    again = json.loads(r.stdout)
    assert comparable({k: v for k, v in again.items() if k != "verdict"}) == \
        comparable({k: v for k, v in whole.items() if k != "verdict"})
    assert again["verdict"]["gates"] == wv["gates"]
    assert again["verdict"]["counts"] == wv["counts"]


def test_merge_checks_gates_and_baseline_before_writing(tmp_path):
    gated_suite(tmp_path, BASELINE_TARGET)
    ids = shard_runs(tmp_path, 2)
    before = set(runs(tmp_path))
    r = merge(tmp_path, *ids, extra=("--baseline", "no-such-run"))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = merge(tmp_path, *ids, extra=("--report", "pdf"))
    assert r.returncode == 2 and "unknown format 'pdf'" in r.stderr
    assert set(runs(tmp_path)) == before


def test_error_budget_is_judged_on_the_merged_run(tmp_path):
    # six failing items, all in shard 1/3: that shard alone is over a 20% budget, the whole is not
    doomed = [i["id"] for i in ITEMS if shard_of(i["id"], 3) == 1][:6]
    write_suite(tmp_path)
    (tmp_path / "tgt.py").write_text(TARGET + f"\n_DOOMED = {[d.split('-')[1] for d in doomed]!r}\n"
                                     "_ok = answer\n\ndef answer(q):\n    if q[1:] in _DOOMED:\n"
                                     "        raise RuntimeError('backend down')\n    return _ok(q)\n")
    (tmp_path / "eval.yaml").write_text((tmp_path / "eval.yaml").read_text() + "error_budget: 0.2\n")
    statuses, ids = [], []
    for i in (1, 2, 3):
        r = run(tmp_path, "--shard", f"{i}/3")
        statuses.append(r.returncode)
        ids.append(last_run(tmp_path).name)
    assert statuses == [3, 0, 0]
    r = merge(tmp_path, *ids, extra=("--json",))
    assert r.returncode == 0, r.stderr
    merged = json.loads(r.stdout)
    assert merged["status"] == "finished" and merged["errors"] == 6 and merged["error_types"] == {"RuntimeError": 6}
    whole = json.loads(run(tmp_path, "--json").stdout)
    assert whole["status"] == "finished" and whole["scorers"] == merged["scorers"]
    statuses = [m["status"] for m in json.loads((run_dir(tmp_path, merged["run_id"]) / "manifest.json")
                                                .read_text())["merged_from"]]
    assert statuses == ["failed", "finished", "finished"]
