"""The smaller Langfuse defects, each with the test that would have caught it."""

from __future__ import annotations

import json
import time
from importlib.metadata import version

import pytest
import yaml

from tests.langfuse_server import FakeLangfuse
from tests.test_langfuse import cli, run_dir_of, state_of, write_project


@pytest.fixture
def fake():
    with FakeLangfuse() as server:
        yield server
        assert server.errors == [], "contract violations:\n" + "\n".join(server.errors[:20])


def _items(n: int, prefix: str = "q") -> list[dict]:
    return [{"id": f"{prefix}{i:04d}", "input": f"double {i}", "expected_output": str(i * 2)} for i in range(n)]


def test_dataset_names_with_a_slash_are_url_encoded(fake, tmp_path):
    (tmp_path / "d.yaml").write_text(yaml.safe_dump({"name": "x", "items": _items(3)}))
    r = cli(fake, "datasets", "push", "d.yaml", "--name", "team/qa", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    root = write_project(tmp_path / "p", 0, dataset="langfuse://team%2Fqa")
    r = cli(fake, "run", "eval.yaml", "--output-dir", "home", "--push", "langfuse", cwd=root)
    assert r.returncode == 0, r.stderr
    assert "pushed 3/3 traces" in r.stderr
    r = cli(fake, "datasets", "pull", "team/qa", "-o", "back.yaml", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert any(c.path == "/api/public/v2/datasets/team%2Fqa" for c in fake.requests)
    ds_id = fake.datasets["team/qa"]["id"]
    assert {i["experimentDatasetId"] for i in fake.experiment_items()} == {ds_id}


def test_archived_items_stay_archived_on_push_and_pull(fake, tmp_path):
    fake.add_dataset_items("arch", [{"id": "q0000", "input": "double 0", "expectedOutput": "0", "status": "ARCHIVED"},
                                    {"id": "q0001", "input": "double 1", "expectedOutput": "2"}])
    # a previous pull wrote both items
    (tmp_path / "back.yaml").write_text(yaml.safe_dump({"name": "arch", "items": _items(2)}))
    r = cli(fake, "datasets", "pull", "arch", "-o", "back.yaml", "--archived", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rows = yaml.safe_load((tmp_path / "back.yaml").read_text())["items"]
    assert {row["id"]: (row.get("metadata") or {}).get("langfuse_status") for row in rows} == \
        {"q0000": "ARCHIVED", "q0001": None}
    r = cli(fake, "datasets", "pull", "arch", "-o", "active.yaml", cwd=tmp_path)
    assert [row["id"] for row in yaml.safe_load((tmp_path / "active.yaml").read_text())["items"]] == ["q0001"]
    # pushing a file that still has the archived item leaves it archived and says so
    (tmp_path / "d.yaml").write_text(yaml.safe_dump({"name": "x", "items": _items(3)}))
    r = cli(fake, "datasets", "push", "d.yaml", "--name", "arch", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "1 created, 0 updated, 1 unchanged, 1 archived in Langfuse (left archived)" in r.stderr
    status = {i: v[-1][1]["status"] for i, v in fake.item_versions.items()}
    assert status == {"q0000": "ARCHIVED", "q0001": "ACTIVE", "q0002": "ACTIVE"}


def test_ingestion_suspended_is_not_reported_as_bad_keys(fake, tmp_path):
    root = write_project(tmp_path / "p", 5)
    fake.fail("/api/public/otel", 403, times=1, message="Ingestion suspended: usage limit reached")
    r = cli(fake, "run", "eval.yaml", "--output-dir", "home", "--push", "langfuse", cwd=root)
    assert r.returncode in (0, 1), r.stderr
    line = next(x for x in r.stderr.splitlines() if x.startswith("warning: langfuse:"))
    assert "HTTP 403: Ingestion suspended: usage limit reached" in line and "keys" not in line
    run = run_dir_of(root / "home")
    assert state_of(run)["status"] == "pending"
    r = cli(fake, "push", run.name, "--output-dir", "home", cwd=root)
    assert r.returncode == 0 and "pushed 5/5 traces" in r.stderr, r.stderr


def test_a_local_run_linked_to_a_langfuse_dataset_must_use_its_item_ids(fake, tmp_path):
    fake.add_dataset_items("other", [{"id": "q0000", "input": "double 0"}, {"id": "q0001", "input": "double 1"}])
    root = write_project(tmp_path / "p", 4, langfuse={"dataset_name": "other"})
    r = cli(fake, "run", "eval.yaml", "--output-dir", "home", "--push", "langfuse", cwd=root)
    line = next(x for x in r.stderr.splitlines() if x.startswith("warning: langfuse:"))
    assert "2 of the run's 4 items are not active items of Langfuse dataset 'other' (first: 'q0002')" in line
    assert "Traceback" not in r.stderr
    assert fake.calls("opentelemetry_exportTraces") == [] and fake.scores == {}
    assert state_of(run_dir_of(root / "home"))["status"] == "pending"


def test_user_metadata_on_the_experiment(fake, tmp_path):
    root = write_project(tmp_path / "p", 3, langfuse={"metadata": {"model": "gpt-x", "prompt_version": 3}})
    r = cli(fake, "run", "eval.yaml", "--output-dir", "home", "--push", "langfuse", cwd=root)
    assert r.returncode in (0, 1), r.stderr
    (exp,) = fake.experiments()
    assert exp["metadata"]["model"] == "gpt-x" and exp["metadata"]["prompt_version"] == "3"
    assert exp["metadata"]["evalrun_run_id"] == run_dir_of(root / "home").name


def test_every_request_carries_the_sdk_identifying_headers(fake, tmp_path):
    root = write_project(tmp_path / "p", 3)
    r = cli(fake, "run", "eval.yaml", "--output-dir", "home", "--push", "langfuse", cwd=root)
    assert r.returncode in (0, 1), r.stderr
    ops = {c.operation for c in fake.requests}
    assert {"opentelemetry_exportTraces", "scores_create", "experiments_list"} <= ops
    for c in fake.requests:
        assert c.headers.get("x-langfuse-sdk-name") == "python", c
        assert c.headers.get("x-langfuse-sdk-version") == version("langfuse"), c
        assert c.headers.get("x-langfuse-public-key") == fake.public_key, c


def test_the_push_budget_is_for_the_network_not_for_building_spans():
    from evalrun.langfuse.client import Client, Credentials

    client = Client(Credentials("http://127.0.0.1:9", "pk", "sk"), budget=0.5)
    try:
        with client.paused():
            time.sleep(0.7)  # local work longer than the whole budget
        left = client.remaining()
        assert left is not None and 0.3 < left <= 0.5
    finally:
        client.close()
    # and push_run builds its spans (and encodes each batch) inside paused()
    import inspect

    from evalrun.langfuse import push

    src = inspect.getsource(push.push_run) + inspect.getsource(push._Pusher._send_span_batch)
    assert src.count("client.paused()") == 2


def test_records_keep_target_metadata_json(tmp_path):
    from evalrun.records import Record

    rec = Record("a", 0, "in", target_metadata={"model": "m", "prompt": {"name": "p", "version": 1}})
    back = Record.from_dict(json.loads(json.dumps(rec.to_dict())))
    assert back.target_metadata == rec.target_metadata
    assert "target_metadata" not in Record("a", 0, "in").to_dict()


MEDIA_TARGET = '''
def describe(item):
    img = item["image"]
    # the target gets the documented structure, not the raw reference string
    return f"{img['type']} {img['content_type']} {img['content_length']} {img['url']}"
'''


def test_media_references_reach_the_target_resolved_and_go_back_as_references(fake, tmp_path):
    ref = "@@@langfuseMedia:type=image/png|id=media-1|source=base64_data_uri@@@"
    media = {"field": "input", "referenceString": ref, "jsonPath": "$['image']",
             "media": {"mediaId": "media-1", "contentType": "image/png", "contentLength": 1234,
                       "url": "https://media.example/media-1?sig=abc", "urlExpiry": "2030-01-01T00:00:00Z"}}
    fake.add_dataset_items("pics", [{"id": "p1", "input": {"image": ref}, "expectedOutput": "a cat",
                                     "mediaReferences": [media]}])
    root = tmp_path / "p"
    root.mkdir()
    (root / "tgt.py").write_text(MEDIA_TARGET)
    (root / "eval.yaml").write_text(json.dumps({"name": "media", "dataset": "langfuse://pics",
                                                "target": {"python": "tgt:describe"}, "scorers": []}))
    r = cli(fake, "run", "eval.yaml", "--output-dir", "home", "--push", "langfuse", cwd=root)
    assert r.returncode == 0, r.stderr
    recs = [json.loads(x) for x in (run_dir_of(root / "home") / "results.jsonl").read_text().splitlines()]
    assert recs[0]["output"] == "langfuse_media image/png 1234 https://media.example/media-1?sig=abc"
    (item,) = fake.experiment_items()
    assert item["input"] == {"image": ref}  # the reference, not the signed URL or the content


def test_inline_base64_media_is_sent_once(fake, tmp_path):
    import base64

    png = "data:image/png;base64," + base64.b64encode(b"\x89PNG" + bytes(3000)).decode()
    root = tmp_path / "p"
    root.mkdir()
    (root / "tgt.py").write_text("def look(item):\n    return 'a cat'\n")
    (root / "data.jsonl").write_text(json.dumps({"id": "m1", "input": {"image": png, "q": "what?"},
                                                 "expected_output": "a cat"}) + "\n")
    (root / "eval.yaml").write_text(json.dumps({"name": "m", "dataset": "data.jsonl",
                                                "target": {"python": "tgt:look"}, "scorers": ["exact_match"]}))
    r = cli(fake, "run", "eval.yaml", "--output-dir", "home", "--push", "langfuse", cwd=root)
    assert r.returncode == 0, r.stderr
    spans = {s["name"]: s for s in fake.spans}
    task_in = json.loads(spans["experiment-item-task"]["attributes"]["langfuse.observation.input"])
    run_in = json.loads(spans["experiment-item-run"]["attributes"]["langfuse.observation.input"])
    assert task_in == {"image": png, "q": "what?"}
    assert run_in == {"image": "[image/png, 3004 bytes: see experiment-item-task]", "q": "what?"}
    assert sum(png[-200:] in str(v) for s in fake.spans for v in s["attributes"].values()) == 1


def test_push_run_name_asked_for_before_anything_was_sent_wins(fake, tmp_path):
    """The live trace context freezes the experiment when the run starts; a first
    ``evalrun push --run-name`` (nothing sent yet) still names the run."""
    root = write_project(tmp_path / "p", 3, langfuse={"trace_context": True})
    r = cli(fake, "run", "eval.yaml", "--output-dir", "home", cwd=root)
    assert r.returncode in (0, 1), r.stderr
    run = run_dir_of(root / "home")
    assert state_of(run)["context"]["run_name"] == f"doubler-{run.name}"
    r = cli(fake, "push", run.name, "--output-dir", "home", "--run-name", "renamed", cwd=root)
    assert r.returncode == 0, r.stderr
    assert {e["name"] for e in fake.experiments()} == {"renamed"}
