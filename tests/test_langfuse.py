"""Langfuse end to end: the real CLI and the real langfuse SDK (v5) against a Langfuse-compatible
server on 127.0.0.1 that validates every request and answer against the SDK's own generated API
types (tests/langfuse_contract.py) and decodes the OTLP protobuf it receives."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import invoke_cli
from tests.langfuse_server import FakeLangfuse

A_EXP_ID = "langfuse.experiment.id"
A_ITEM_ID = "langfuse.experiment.item.id"
A_DATASET_ID = "langfuse.experiment.dataset.id"
A_ROOT = "langfuse.experiment.item.root_observation_id"

TARGET = '''
from evalrun.records import Score

def answer(question):
    n = int(question.split()[-1])
    if n % 97 == 13:
        raise RuntimeError(f"pipeline broke on {n}")
    return str(n * 2) if n % 10 else str(n * 2 + 1)

def closeness(output, expected_output):
    return 1.0 / (1.0 + abs(int(output) - int(expected_output))) if output.isdigit() else 0.0

def tone(output):
    return Score(0.5, None, "graded", extra={"label": "terse" if len(output) < 3 else "wordy"})
'''


def write_project(root: Path, n: int, dataset: str | None = None, langfuse: dict[str, Any] | None = None) -> Path:
    """An eval project of ``n`` items with three scorers: BOOLEAN, NUMERIC(+passed), CATEGORICAL."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "tgt.py").write_text(TARGET)
    if dataset is None:
        with open(root / "data.jsonl", "w") as f:
            for i in range(n):
                f.write(json.dumps({"id": f"q{i:04d}", "input": f"double {i}", "expected_output": str(i * 2),
                                    "metadata": {"tags": ["even" if i % 2 == 0 else "odd"]}}) + "\n")
        dataset = "data.jsonl"
    cfg = {"name": "doubler", "description": "doubles numbers", "dataset": dataset,
           "target": {"python": "tgt:answer", "retries": 0}, "concurrency": 32,
           "scorers": ["exact_match", {"name": "closeness", "type": "python", "function": "tgt:closeness",
                                       "threshold": 0.5},
                       {"name": "tone", "type": "python", "function": "tgt:tone"}]}
    if langfuse is not None:
        cfg["langfuse"] = langfuse
    (root / "eval.yaml").write_text(json.dumps(cfg))
    return root


def cli(fake: FakeLangfuse | None, *args: str, cwd: Path, env: dict[str, str] | None = None,
        timeout: float = 180) -> subprocess.CompletedProcess[str]:
    full = {**(fake.env() if fake else {}), **(env or {})}
    return invoke_cli(*args, cwd=cwd, env=full, timeout=timeout)


def run_dir_of(home: Path) -> Path:
    from evalrun.store import list_runs

    runs = [r.path for r in list_runs(home)]  # oldest first, to the exact start time
    assert runs, "no run directory"
    return runs[-1]


def state_of(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "push_state.json").read_text())


def records_of(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines() if line.strip()]


def expected_scores(records: list[dict[str, Any]]) -> int:
    """How many item scores a run's records become (exact_match and tone: one; closeness: two)."""
    n = 0
    for r in records:
        for name, s in r["scores"].items():
            if s.get("error") is None and s.get("value") is not None:
                n += 2 if name == "closeness" else (2 if name == "tone" else 1)
    return n


@pytest.fixture
def fake():
    with FakeLangfuse() as server:
        yield server
        assert server.errors == [], "contract violations:\n" + "\n".join(server.errors[:20])


@pytest.fixture(autouse=True)
def _no_ambient_keys(monkeypatch):
    for k in ("LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY", "LANGFUSE_BASE_URL", "LANGFUSE_HOST"):
        monkeypatch.delenv(k, raising=False)


def _set_env(monkeypatch, fake: FakeLangfuse) -> None:
    for k, v in fake.env().items():
        monkeypatch.setenv(k, v)


# -- the server itself speaks what the SDK speaks --------------------------------------------------

def test_sdk_experiment_runner_against_the_fake_server(fake, monkeypatch):
    """The SDK's own run_experiment: its requests validate, its spans decode into experiment items."""
    _set_env(monkeypatch, fake)
    from langfuse import Evaluation, Langfuse

    fake.add_dataset_items("sdk", [{"id": f"s{i}", "input": {"q": i}, "expectedOutput": str(i)} for i in range(4)])
    lf = Langfuse()
    try:
        ds = lf.get_dataset("sdk")
        ds.run_experiment(name="sdk-exp", run_name="sdk-run", task=lambda *, item, **kw: str(item.input["q"]),
                          evaluators=[lambda *, output, expected_output, **kw: Evaluation(
                              name="ok", value=output == expected_output, data_type="BOOLEAN")])
        lf.flush()
    finally:
        lf.shutdown()
    items = fake.experiment_items()
    assert sorted(i["experimentItemId"] for i in items) == ["s0", "s1", "s2", "s3"]
    assert {i["experimentName"] for i in items} == {"sdk-run"}
    assert all(s["dataType"] == "BOOLEAN" and s["value"] is True for i in items for s in i["scores"])
    # and evalrun reads that SDK-made run as a baseline
    from evalrun.langfuse import load_langfuse_baseline

    recs = load_langfuse_baseline("langfuse://sdk/sdk-run")
    # the SDK sends the string "0" bare, so it reads back as JSON: the number 0
    assert sorted((r.item_id, str(r.output), r.scores["ok"].passed) for r in recs) == \
        [("s0", "0", True), ("s1", "1", True), ("s2", "2", True), ("s3", "3", True)]


def test_wrong_keys_are_a_one_line_error(fake, tmp_path):
    r = cli(fake, "datasets", "pull", "anything", "-o", "x.yaml", cwd=tmp_path,
            env={"LANGFUSE_SECRET_KEY": "sk-wrong"})
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().count("\n") == 0 and "refused the keys (HTTP 401)" in r.stderr
    assert "sk-wrong" not in r.stderr


# -- datasets in ---------------------------------------------------------------------------------------

def test_pull_250_items_over_several_pages_archived_dropped_ids_kept(fake, tmp_path):
    fake.add_dataset_items("big", [{"id": f"item-{i:03d}", "input": f"double {i}", "expectedOutput": str(2 * i),
                                    "metadata": {"tags": ["t"]}, "status": "ARCHIVED" if i % 25 == 0 else "ACTIVE"}
                                   for i in range(250)])
    root = write_project(tmp_path / "p", 0, dataset="langfuse://big")
    r = cli(fake, "run", "eval.yaml", "--output-dir", "home", "-q", cwd=root)
    assert r.returncode == 0, r.stderr
    pages = fake.calls("datasetItems_list")
    assert [(c.query["page"], c.query["limit"]) for c in pages] == [("1", "100"), ("2", "100"), ("3", "100")]
    recs = records_of(run_dir_of(root / "home"))
    assert len(recs) == 240
    assert {x["item_id"] for x in recs} == {f"item-{i:03d}" for i in range(250) if i % 25}
    manifest = json.loads((run_dir_of(root / "home") / "manifest.json").read_text())
    assert manifest["dataset"]["source"] == "langfuse://big"


def test_a_langfuse_datasets_slice_gate_is_checked_before_any_call_with_one_fetch(fake, tmp_path):
    """A slice gate on a Langfuse dataset: a value the items lack is one line before any call;
    a good one runs, and the check and the run share one fetch of the items."""
    fake.add_dataset_items("sl", [{"id": f"s{i}", "input": f"double {i}", "expectedOutput": str(2 * i),
                                   "metadata": {"tags": ["math" if i % 2 else "geo"]}} for i in range(6)])
    root = write_project(tmp_path / "p", 0, dataset="langfuse://sl")
    bad = cli(fake, "run", "eval.yaml", "--output-dir", "home", "-q", "--set",
              'gates=["exact_match.pass_rate[tag=maths] >= 0.5"]', cwd=root)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert "maths" in bad.stderr and "math" in bad.stderr.replace("maths", "")  # the suggestion
    assert not (root / "home" / "runs").exists() or not any((root / "home" / "runs").iterdir())
    before = len(fake.calls("datasetItems_list"))
    ok = cli(fake, "run", "eval.yaml", "--output-dir", "home", "-q", "--set",
             'gates=["exact_match.pass_rate[tag=math] >= 0.5"]', cwd=root)
    assert ok.returncode == 0, ok.stderr
    assert len(fake.calls("datasetItems_list")) - before == 1
    assert len(records_of(run_dir_of(root / "home"))) == 6


def test_dataset_version_reads_items_as_they_were(fake, monkeypatch):
    _set_env(monkeypatch, fake)
    from evalrun.langfuse import load_langfuse_dataset

    fake.add_dataset_items("v", [{"id": "a", "input": "old a"}, {"id": "b", "input": "old b"}])
    then = fake._ts()
    fake.add_dataset_items("v", [{"id": "a", "input": "new a"}, {"id": "c", "input": "new c"}])
    now = {it.id: it.input for it in load_langfuse_dataset("langfuse://v").items}
    old = {it.id: it.input for it in load_langfuse_dataset(f"langfuse://v?version={then}").items}
    assert now == {"a": "new a", "b": "old b", "c": "new c"}
    assert old == {"a": "old a", "b": "old b"}
    assert fake.calls("datasetItems_list")[-1].query["version"] == then


def test_datasets_push_is_idempotent_and_pull_round_trips(fake, tmp_path):
    repo = Path(__file__).resolve().parent.parent
    src = repo / "datasets" / "capitals.yaml"
    r1 = cli(fake, "datasets", "push", str(src), "--name", "caps", cwd=tmp_path)
    assert r1.returncode == 0, r1.stderr
    writes = len(fake.calls("datasetItems_create"))
    from evalrun.datasets import load_dataset

    local = load_dataset(str(src), repo)
    assert writes == len(local.items) and f"{writes} created" in r1.stderr
    r2 = cli(fake, "datasets", "push", str(src), "--name", "caps", cwd=tmp_path)
    assert r2.returncode == 0 and f"0 created, 0 updated, {writes} unchanged" in r2.stderr
    assert len(fake.calls("datasetItems_create")) == writes  # the second push wrote nothing
    r3 = cli(fake, "datasets", "pull", "caps", "-o", "pulled.yaml", cwd=tmp_path)
    assert r3.returncode == 0, r3.stderr
    pulled = load_dataset("pulled.yaml", tmp_path)
    assert [(i.id, i.input, i.expected_output, i.metadata) for i in pulled.items] == \
        [(i.id, i.input, i.expected_output, i.metadata) for i in local.items]


# -- runs out ------------------------------------------------------------------------------------------

def test_run_push_links_traces_to_dataset_items_with_typed_scores(fake, tmp_path, monkeypatch):
    fake.add_dataset_items("dbl", [{"id": f"q{i:04d}", "input": f"double {i}", "expectedOutput": str(2 * i)}
                                   for i in range(40)])
    root = write_project(tmp_path / "p", 0, dataset="langfuse://dbl", langfuse={"run_name": "nightly-1"})
    r = cli(fake, "run", "eval.yaml", "--output-dir", "home", "--push", "langfuse", "-q", cwd=root)
    assert r.returncode == 0, r.stderr
    assert "langfuse: pushed 40/40 traces" in r.stderr
    rd = run_dir_of(root / "home")
    recs = records_of(rd)
    st = state_of(rd)
    assert st["status"] == "complete" and st["rejected"] == {}

    # the experiment id is the one Langfuse derives from (project, dataset, run name)
    import hashlib

    ds_id = fake.datasets["dbl"]["id"]
    exp_id = hashlib.sha256(json.dumps(["langfuse-experiment-v1", fake.project_id, ds_id, "nightly-1"],
                                       separators=(",", ":")).encode()).hexdigest()[:16]
    traces = fake.spans_by_trace()
    assert len(traces) == 40
    for spans in traces.values():
        assert sorted(s["name"] for s in spans) == ["experiment-item-run", "experiment-item-task"]
        task = next(s for s in spans if s["name"] == "experiment-item-task")
        a = task["attributes"]
        assert a[A_EXP_ID] == exp_id and a[A_DATASET_ID] == ds_id and a[A_ROOT] == task["span_id"]
        assert a["langfuse.experiment.name"] == "nightly-1"
        assert a["langfuse.environment"] == "sdk-experiment"
        meta = json.loads(a["langfuse.experiment.metadata"])
        assert set(meta) >= {"evalrun_version", "config_fingerprint", "evalrun_run_id"}
    by_item = {r["item_id"]: r for r in recs}
    items = {i["experimentItemId"]: i for i in fake.experiment_items()}
    assert set(items) == set(by_item)
    for item_id, it in items.items():
        rec = by_item[item_id]
        assert it["input"] == rec["input"] and it["expectedOutput"] == rec["expected_output"]
        if rec["error"]:
            assert it["level"] == "ERROR" and "pipeline broke" in it["output"]
        else:
            assert str(it["output"]) == rec["output"] and it["level"] == "DEFAULT"
            types = {s["name"]: s["dataType"] for s in it["scores"]}
            assert types == {"exact_match": "BOOLEAN", "closeness": "NUMERIC", "closeness.passed": "BOOLEAN",
                             "tone": "NUMERIC", "tone.label": "CATEGORICAL"}
        # latency: the span covers the record's own call
        assert it["endTime"] >= it["startTime"]
    exp = fake.experiments()
    assert len(exp) == 1 and exp[0]["id"] == exp_id and exp[0]["itemCount"] == 40
    run_scores = {s["name"]: s for s in exp[0]["scores"]}
    assert run_scores["run_status"]["value"] == "finished" and run_scores["run_status"]["dataType"] == "CATEGORICAL"
    summary = json.loads((rd / "summary.json").read_text())
    assert run_scores["exact_match.mean"]["value"] == pytest.approx(summary["scorers"]["exact_match"]["mean"])
    assert run_scores["error_rate"]["value"] == pytest.approx(summary["error_rate"])
    assert len(fake.scores) == expected_scores(recs) + len(run_scores)

    # the same run reads back as a baseline, scores and all
    r2 = cli(fake, "push", rd.name, "--output-dir", "home", cwd=root)
    assert r2.returncode == 0 and len(fake.calls("opentelemetry_exportTraces")) == 1  # nothing left to send
    _set_env(monkeypatch, fake)
    from evalrun.langfuse import load_langfuse_baseline

    base = {r.item_id: r for r in load_langfuse_baseline("langfuse://dbl/nightly-1")}
    for item_id, rec in by_item.items():
        b = base[item_id]
        assert (b.error is None) == (rec["error"] is None)
        assert {k: (s.value, s.passed) for k, s in b.scores.items()} == \
            {k: (s["value"], s["passed"]) for k, s in rec["scores"].items()}


def test_push_1000_records_every_score_arrives_and_keys_never_written(fake, tmp_path):
    root = write_project(tmp_path / "p", 1000)
    r = cli(fake, "run", "eval.yaml", "--output-dir", "home", "--push", "langfuse", "-q", cwd=root)
    assert r.returncode == 0, r.stderr
    rd = run_dir_of(root / "home")
    recs = records_of(rd)
    assert len(recs) == 1000
    item_scores = [s for s in fake.scores.values() if s.get("traceId")]
    assert len(item_scores) == expected_scores(recs) > 2500
    assert len(fake.spans_by_trace()) == 1000
    assert state_of(rd)["status"] == "complete"
    # no score went to Langfuse twice, none is missing: ids are unique and match the plan
    assert len({s["id"] for s in item_scores}) == len(item_scores)
    # keys come from the environment and land nowhere on disk
    for p in (root / "home").rglob("*"):
        if p.is_file():
            data = p.read_bytes()
            assert fake.secret_key.encode() not in data and fake.public_key.encode() not in data, p


@pytest.mark.slow
def test_429_with_retry_after_is_honoured(fake, tmp_path):
    root = write_project(tmp_path / "p", 30)
    fake.fail("/api/public/scores", 429, times=2, retry_after=1)
    fake.fail("/api/public/otel", 429, times=1, retry_after=1)
    r = cli(fake, "run", "eval.yaml", "--output-dir", "home", "--push", "langfuse", "-q", cwd=root)
    assert r.returncode == 0 and "pushed 30/30 traces" in r.stderr, r.stderr
    for op in ("scores_create", "opentelemetry_exportTraces"):
        calls = fake.calls(op)
        limited = [i for i, c in enumerate(calls) if c.status == 429]
        assert limited
        for i in limited:  # the retry came after the Retry-After second, not before
            assert calls[i + 1].at - calls[i].at >= 0.95
    assert len([s for s in fake.scores.values() if s.get("traceId")]) == expected_scores(records_of(run_dir_of(root / "home")))


def test_5xx_is_retried(fake, tmp_path):
    root = write_project(tmp_path / "p", 30)
    fake.fail("/api/public/otel", 503, times=2)
    fake.fail("/api/public/scores", 500, times=1)
    r = cli(fake, "run", "eval.yaml", "--output-dir", "home", "--push", "langfuse", "-q", cwd=root)
    assert r.returncode == 0 and "pushed 30/30 traces" in r.stderr, r.stderr
    assert [c.status for c in fake.calls("opentelemetry_exportTraces")] == [503, 503, 200]
    assert len(fake.spans_by_trace()) == 30


def test_server_down_during_run_then_push_delivers_everything(fake, tmp_path):
    root = write_project(tmp_path / "p", 200)
    fake.down()
    r = cli(fake, "run", "eval.yaml", "--output-dir", "home", "--push", "langfuse", "-q", cwd=root)
    assert r.returncode == 0, r.stderr  # the run itself is unaffected
    assert "push pending" in r.stderr and "evalrun push" in r.stderr
    rd = run_dir_of(root / "home")
    st = state_of(rd)
    assert st["status"] == "pending" and st["traces_sent"] == [] and "cannot connect" in st["last_error"]
    # a push that fails again changes nothing and says so with exit 3
    r2 = cli(fake, "push", rd.name, "--output-dir", "home", cwd=root)
    assert r2.returncode == 3 and "push pending" in r2.stderr
    fake.up()
    r3 = cli(fake, "push", rd.name, "--output-dir", "home", cwd=root)
    assert r3.returncode == 0, r3.stderr
    recs = records_of(rd)
    assert len(fake.spans_by_trace()) == 200
    assert len([s for s in fake.scores.values() if s.get("traceId")]) == expected_scores(recs)
    assert state_of(rd)["status"] == "complete"
    # pushing again sends nothing; pushing from scratch (state lost) duplicates nothing
    r4 = cli(fake, "push", rd.name, "--output-dir", "home", cwd=root)
    assert r4.returncode == 0 and fake.spans_received == 400
    n_scores = len(fake.scores)
    (rd / "push_state.json").unlink()
    r5 = cli(fake, "push", rd.name, "--output-dir", "home", cwd=root)
    assert r5.returncode == 0
    assert len(fake.scores) == n_scores and len(fake.spans) == 400 and fake.spans_received == 800


@pytest.mark.slow
def test_push_mid_way_failure_resumes_where_it_stopped(fake, tmp_path):
    root = write_project(tmp_path / "p", 600)
    r = cli(fake, "run", "eval.yaml", "--output-dir", "home", "-q", cwd=root)  # no push yet
    assert r.returncode == 0
    rd = run_dir_of(root / "home")
    fake.fail("/api/public/scores", 503, times=100)
    r1 = cli(fake, "push", rd.name, "--output-dir", "home", "--timeout", "3", cwd=root)
    assert r1.returncode == 3
    st = state_of(rd)
    assert len(st["traces_sent"]) == 600 and st["scores_sent"] == []
    fake._failures.clear()
    r2 = cli(fake, "push", rd.name, "--output-dir", "home", cwd=root)
    assert r2.returncode == 0, r2.stderr
    assert fake.spans_received == 1200  # traces were not sent again


def test_207_partial_answers_resend_the_rejected_scores(fake, tmp_path):
    root = write_project(tmp_path / "p", 120)
    seen: set[str] = set()

    def flaky(score: dict[str, Any]) -> str | None:
        # every closeness score is rejected the first time it arrives
        if score["name"] == "closeness" and score["id"] not in seen:
            seen.add(score["id"])
            return "temporarily unavailable"
        return None

    fake.reject_scores(flaky)
    r = cli(fake, "run", "eval.yaml", "--output-dir", "home", "--push", "langfuse", "-q", cwd=root)
    assert r.returncode == 0 and "pushed 120/120 traces" in r.stderr, r.stderr
    assert any(c.status == 207 for c in fake.calls("scores_create"))
    recs = records_of(run_dir_of(root / "home"))
    stored = [s for s in fake.scores.values() if s.get("traceId")]
    assert len(stored) == expected_scores(recs)
    assert sum(1 for s in stored if s["name"] == "closeness") == len(seen) > 0


def test_207_permanent_rejection_is_reported_not_dropped(fake, tmp_path):
    root = write_project(tmp_path / "p", 50)
    victim: dict[str, str] = {}

    def one_bad(score: dict[str, Any]) -> str | None:
        if score["name"] == "tone.label" and (not victim or victim["id"] == score["id"]):
            victim["id"] = score["id"]
            return "category not allowed by score config"
        return None

    fake.reject_scores(one_bad)
    r = cli(fake, "run", "eval.yaml", "--output-dir", "home", "--push", "langfuse", "-q", cwd=root)
    assert r.returncode == 0  # the run is fine; the push reports the rejection
    assert "rejected 1 of them" in r.stderr and "category not allowed" in r.stderr
    rd = run_dir_of(root / "home")
    st = state_of(rd)
    assert st["status"] == "rejected" and list(st["rejected"]) == [victim["id"]]
    assert victim["id"] not in fake.scores
    r2 = cli(fake, "push", rd.name, "--output-dir", "home", cwd=root)
    assert r2.returncode == 3
    fake.reject_scores(None)  # the score config got fixed in Langfuse
    r3 = cli(fake, "push", rd.name, "--output-dir", "home", cwd=root)
    assert r3.returncode == 0 and victim["id"] in fake.scores
    assert state_of(rd)["status"] == "complete"


def test_local_dataset_run_links_to_a_pushed_dataset(fake, tmp_path):
    root = write_project(tmp_path / "p", 20, langfuse={"push": True, "dataset_name": "dbl-local",
                                                      "run_name": "local-1"})
    assert cli(fake, "datasets", "push", "data.jsonl", "--name", "dbl-local", cwd=root).returncode == 0
    r = cli(fake, "run", "eval.yaml", "--output-dir", "home", "-q", cwd=root)  # push: true in the eval file
    assert r.returncode == 0 and "pushed 20/20 traces" in r.stderr, r.stderr
    ds_id = fake.datasets["dbl-local"]["id"]
    assert {i["experimentDatasetId"] for i in fake.experiment_items()} == {ds_id}
    assert {i["experimentItemId"] for i in fake.experiment_items()} == {f"q{i:04d}" for i in range(20)}


def test_missing_keys_do_not_fail_the_run(tmp_path):
    root = write_project(tmp_path / "p", 5)
    r = cli(None, "run", "eval.yaml", "--output-dir", "home", "--push", "langfuse", "-q", cwd=root)
    assert r.returncode == 0
    assert "not pushed" in r.stderr and "LANGFUSE_PUBLIC_KEY" in r.stderr
    r2 = cli(None, "push", "latest", "--output-dir", "home", cwd=root)
    assert r2.returncode == 2 and r2.stderr.count("\n") == 1 and "LANGFUSE_PUBLIC_KEY" in r2.stderr


def test_a_run_without_langfuse_never_imports_it(tmp_path):
    root = write_project(tmp_path / "p", 3)
    code = ("import sys, asyncio\nfrom evalrun.engine import RunOptions, run_eval\n"
            "asyncio.run(run_eval(RunOptions(config_path='eval.yaml', home=__import__('pathlib').Path('home'),"
            " progress='off')))\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('langfuse', 'opentelemetry')]\n"
            "assert not bad, bad\n")
    import sys

    r = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_run_name_from_env_is_fixed_at_run_time_even_when_pushed_later(fake, tmp_path, monkeypatch):
    root = write_project(tmp_path / "p", 10, langfuse={"push": True, "run_name": "nightly-${BUILD_ID}"})
    fake.down()
    r = cli(fake, "run", "eval.yaml", "--output-dir", "home", "-q", cwd=root, env={"BUILD_ID": "42"})
    assert r.returncode == 0 and "push pending" in r.stderr, r.stderr
    fake.up()
    r2 = cli(fake, "push", "latest", "--output-dir", "home", cwd=root)  # BUILD_ID is gone by now
    assert r2.returncode == 0, r2.stderr
    assert {i["experimentName"] for i in fake.experiment_items()} == {"nightly-42"}


def test_langfuse_run_as_a_comparison_baseline(fake, tmp_path, monkeypatch):
    fake.add_dataset_items("cmp", [{"id": f"q{i:04d}", "input": f"double {i}", "expectedOutput": str(2 * i)}
                                   for i in range(12)])
    root = write_project(tmp_path / "p", 0, dataset="langfuse://cmp", langfuse={"run_name": "base"})
    assert cli(fake, "run", "eval.yaml", "--output-dir", "home", "--push", "langfuse", "-q", cwd=root).returncode == 0
    _set_env(monkeypatch, fake)
    from evalrun.baseline import resolve_baseline

    bl = resolve_baseline("langfuse://cmp/base", eval_name="doubler")
    local = {r["item_id"]: r for r in records_of(run_dir_of(root / "home"))}
    assert bl.kind == "langfuse" and {r.item_id for r in bl.records} == set(local)
    for r in bl.records:
        assert r.scores["exact_match"].passed == local[r.item_id]["scores"]["exact_match"]["passed"]
        assert r.output == local[r.item_id]["output"]  # "24" stays a string, not the number 24
    with pytest.raises(Exception, match="has no run 'nope'"):
        resolve_baseline("langfuse://cmp/nope")
