"""The push suite against both Langfuse servers of the stand-in (tests/langfuse_server.py): the
last self-hosted v3 release's API and v4's, each rule citing the server source it comes from.
The same tests run against both modes; a server that takes one score object per request is a
third variant. What each mode means is in the stand-in's docstring."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.langfuse_server import V3, V4, FakeLangfuse
from tests.test_langfuse import cli, expected_scores, records_of, run_dir_of, state_of, write_project

N = 12


@pytest.fixture(params=[V4, V3])
def server(request):
    with FakeLangfuse(mode=request.param) as fake:
        yield fake
        assert fake.errors == [], "contract violations:\n" + "\n".join(fake.errors[:20])


@pytest.fixture(autouse=True)
def _no_ambient_keys(monkeypatch):
    for k in ("LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY", "LANGFUSE_BASE_URL", "LANGFUSE_HOST", "GITHUB_ACTIONS"):
        monkeypatch.delenv(k, raising=False)


def _seed(fake: FakeLangfuse, n: int = N) -> None:
    fake.add_dataset_items("dbl", [{"id": f"q{i:04d}", "input": f"double {i}", "expectedOutput": str(2 * i)}
                                   for i in range(n)])


def _baseline(fake: FakeLangfuse, monkeypatch, ref: str) -> dict[tuple[str, int], Any]:
    for k, v in fake.env().items():
        monkeypatch.setenv(k, v)
    from evalrun.langfuse.baseline import read_baseline

    return {(b.item_id, b.trial): b for b in read_baseline(ref)}


def _same_records(local: list[dict[str, Any]], back: dict[tuple[str, int], Any]) -> None:
    assert set(back) == {(r["item_id"], r["trial"]) for r in local}
    for r in local:
        b = back[(r["item_id"], r["trial"])]
        assert (b.error is None) == (r["error"] is None), r["item_id"]
        if r["error"] is None:
            assert str(b.output) == r["output"]
        assert b.latency_ms is not None and b.latency_ms == pytest.approx(r["latency_ms"], abs=1.0)
        assert {k: (s.value, s.passed) for k, s in b.scores.items()} == \
            {k: (s["value"], s["passed"]) for k, s in r["scores"].items() if s.get("error") is None}


def _root_observation(fake: FakeLangfuse, trace_id: str) -> str:
    """The span Langfuse reads an item's scores from: the experiment item's root observation."""
    (root,) = {s["attributes"]["langfuse.experiment.item.root_observation_id"] for s in fake.spans
               if s["trace_id"] == trace_id and s["name"] == "experiment-item-task"}
    return root


def test_push_lands_every_trace_score_and_run_item_and_reads_back(server, tmp_path, monkeypatch):
    _seed(server)
    root = write_project(tmp_path / "p", 0, dataset="langfuse://dbl", langfuse={"run_name": "nightly-1"})
    r = cli(server, "run", "eval.yaml", "--output-dir", "home", "--push", "langfuse", "-q", cwd=root)
    assert r.returncode == 0, r.stderr
    rd = run_dir_of(root / "home")
    recs = records_of(rd)
    st = state_of(rd)
    assert st["status"] == "complete" and st["rejected"] == {}
    assert st["context"]["server"] == server.mode
    mode_words = "dataset run items" if server.mode == V3 else "experiments API"
    assert f"langfuse: pushed {N}/{N} traces" in r.stderr and mode_words in r.stderr, r.stderr
    assert len(server.spans_by_trace()) == N
    item_scores = [s for s in server.scores.values() if s.get("traceId")]
    run_scores = [s for s in server.scores.values() if s.get("datasetRunId")]
    assert len(item_scores) == expected_scores(recs) and len(run_scores) >= 4
    for sc in item_scores:
        assert sc["observationId"] == _root_observation(server, sc["traceId"])
    if server.mode == V3:
        # one dataset run item per item, on the run Langfuse created; run scores point at it
        (run,) = server.dataset_runs.values()
        assert run["name"] == "nightly-1" and sorted(i["datasetItemId"] for i in run["items"]) == \
            sorted(r["item_id"] for r in recs)
        assert {s["datasetRunId"] for s in run_scores} == {run["id"]}
        assert json.loads(json.dumps(run["metadata"]))["evalrun_run_id"] == rd.name
        # scores went one object per request: the first array was refused whole
        assert st["score_body"] == "object"
        assert server.score_posts == len(server.scores) + 1
    else:
        (exp,) = server.experiments()
        assert exp["itemCount"] == N and {s["datasetRunId"] for s in run_scores} == {exp["id"]}
    # pushing again sends nothing (and on v3 adds no second run item)
    posts = len(server.requests)
    r2 = cli(server, "push", rd.name, "--output-dir", "home", cwd=root)
    assert r2.returncode == 0, r2.stderr
    assert not [q for q in server.requests[posts:] if q.method == "POST"]
    _same_records(recs, _baseline(server, monkeypatch, "langfuse://dbl/nightly-1"))


def test_repeat_2_scores_sit_on_each_trials_root_and_read_back_equals_the_run(server, tmp_path, monkeypatch):
    _seed(server, 6)
    root = write_project(tmp_path / "p", 0, dataset="langfuse://dbl", langfuse={"run_name": "twice"})
    cfg = json.loads((root / "eval.yaml").read_text())
    (root / "eval.yaml").write_text(json.dumps({**cfg, "repeat": 2}))
    r = cli(server, "run", "eval.yaml", "--output-dir", "home", "--push", "langfuse", "-q", cwd=root)
    assert r.returncode == 0, r.stderr
    rd = run_dir_of(root / "home")
    recs = records_of(rd)
    assert len(recs) == 12 and len(server.spans_by_trace()) == 12  # one trace per trial
    item_scores = [s for s in server.scores.values() if s.get("traceId")]
    assert len(item_scores) == expected_scores(recs)
    for sc in item_scores:
        assert sc["observationId"] == _root_observation(server, sc["traceId"])
    if server.mode == V4:
        items = server.experiment_items()
        assert len(items) == 12 and all(len(i["scores"]) == 5 for i in items if i["level"] != "ERROR")
    else:
        (run,) = server.dataset_runs.values()
        assert len(run["items"]) == 12 and len({i["traceId"] for i in run["items"]}) == 12
    _same_records(recs, _baseline(server, monkeypatch, "langfuse://dbl/twice"))


def test_a_run_name_with_a_comma_is_found(server, tmp_path, monkeypatch):
    _seed(server, 3)
    name = "nightly, model a/b"
    root = write_project(tmp_path / "p", 0, dataset="langfuse://dbl", langfuse={"run_name": name})
    r = cli(server, "run", "eval.yaml", "--output-dir", "home", "--push", "langfuse", "-q", cwd=root)
    assert r.returncode == 0, r.stderr
    rd = run_dir_of(root / "home")
    # a second run may not take the name (the look-up finds the first)
    r2 = cli(server, "run", "eval.yaml", "--output-dir", "home2", "--push", "langfuse", "-q", cwd=root)
    assert r2.returncode == 0 and "already used by run " + rd.name in r2.stderr, r2.stderr
    ref = "langfuse://dbl/" + name.replace("/", "%2F")
    _same_records(records_of(rd), _baseline(server, monkeypatch, ref))


def test_every_score_lands_on_a_v4_server_that_takes_one_object_per_request(tmp_path):
    """PostScoresBodyV1 (web/src/pages/api/public/scores/index.ts at v4.16.0) is one object."""
    with FakeLangfuse(mode=V4, score_body="object") as fake:
        root = write_project(tmp_path / "p", 9)
        r = cli(fake, "run", "eval.yaml", "--output-dir", "home", "--push", "langfuse", "-q", cwd=root)
        assert r.returncode == 0, r.stderr
        rd = run_dir_of(root / "home")
        item_scores = [s for s in fake.scores.values() if s.get("traceId")]
        assert len(item_scores) == expected_scores(records_of(rd)) > 9
        assert state_of(rd)["status"] == "complete" and fake.score_posts == len(fake.scores) + 1
        assert fake.errors == []


def test_every_otlp_request_asks_for_v4_ingestion(server, tmp_path):
    root = write_project(tmp_path / "p", 3)
    r = cli(server, "run", "eval.yaml", "--output-dir", "home", "--push", "langfuse", "-q", cwd=root)
    assert r.returncode == 0, r.stderr
    otlp = server.calls("opentelemetry_exportTraces")
    assert otlp and all(q.headers.get("x-langfuse-ingestion-version") == "4" for q in otlp)


def test_v3_without_a_dataset_sends_traces_and_item_scores_and_says_what_it_could_not(tmp_path):
    with FakeLangfuse(mode=V3) as fake:
        root = write_project(tmp_path / "p", 5)
        r = cli(fake, "run", "eval.yaml", "--output-dir", "home", "--push", "langfuse", "-q", cwd=root)
        assert r.returncode == 0, r.stderr
        rd = run_dir_of(root / "home")
        assert len(fake.spans_by_trace()) == 5
        assert len(fake.scores) == expected_scores(records_of(rd))
        assert "Langfuse v3 keeps run-level scores on dataset runs only" in r.stderr
        assert fake.errors == []


# -- an undelivered push is visible --------------------------------------------------------------

def _down_server() -> FakeLangfuse:
    fake = FakeLangfuse()
    fake.up()
    fake.down()  # the port refuses connections
    return fake


@pytest.mark.parametrize("how", ["flag", "eval-file", "neither"])
def test_an_undelivered_push_warns_and_fails_the_run_when_required(tmp_path, how):
    fake = _down_server()
    root = write_project(tmp_path / "p", 3, langfuse={"required": True} if how == "eval-file" else None)
    args = ["run", "eval.yaml", "--output-dir", "home", "-q", "--push", "langfuse"]
    if how == "flag":
        args[-2:] = ["--push-required"]
    r = cli(fake, *args, cwd=root, env={"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(tmp_path / "s.md")})
    assert "warning: langfuse: push pending" in r.stderr, r.stderr
    assert "::warning title=Langfuse push not delivered::langfuse: push pending" in r.stdout, r.stdout
    assert r.returncode == (3 if how != "neither" else 0), r.stderr
    rd = run_dir_of(root / "home")
    assert state_of(rd)["status"] == "pending" and (rd / "summary.json").is_file()  # the run itself is kept


def test_evalrun_push_of_an_undelivered_run_exits_3_until_delivered(tmp_path):
    fake = _down_server()
    root = write_project(tmp_path / "p", 3)
    r = cli(fake, "run", "eval.yaml", "--output-dir", "home", "-q", "--push", "langfuse", cwd=root)
    assert r.returncode == 0 and "warning: langfuse: push pending" in r.stderr
    rd = run_dir_of(root / "home")
    r2 = cli(fake, "push", rd.name, "--output-dir", "home", "--timeout", "5", cwd=root,
             env={"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(tmp_path / "s.md")})
    assert r2.returncode == 3 and "push pending" in r2.stderr
    assert r2.stdout.startswith("::warning title=Langfuse push not delivered::langfuse: push pending"), r2.stdout
    fake.up()
    try:
        r3 = cli(fake, "push", rd.name, "--output-dir", "home", cwd=root)
        assert r3.returncode == 0 and "langfuse: pushed 3/3 traces" in r3.stderr, r3.stderr
    finally:
        fake.down()
