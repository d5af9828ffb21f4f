"""The fake Langfuse server's contract is the langfuse SDK's own: its generated client reaches
every operation the fake serves, and the SDK's types reject what Langfuse would reject."""

from __future__ import annotations

import datetime as dt

import pytest

from tests import langfuse_contract as contract
from tests.langfuse_server import FakeLangfuse


@pytest.fixture
def server():
    with FakeLangfuse() as s:
        yield s


def _api(s: FakeLangfuse):
    from langfuse.api import LangfuseAPI

    return LangfuseAPI(base_url=s.url, username=s.public_key, password=s.secret_key)


def test_sdk_generated_client_reaches_every_operation(server):
    """The route table is pinned by the SDK's own client: every operation it calls is matched,
    its requests and our answers pass the SDK's types, and it parses every answer."""
    from langfuse.api.scores.types import CreateScoreRequest

    api = _api(server)
    api.health.health()
    assert api.projects.get().data[0].id == server.project_id
    api.datasets.create(name="team/qa set", description="d")
    assert api.datasets.list(page=1, limit=10).data[0].name == "team/qa set"
    server.add_dataset_items("plain", [])
    assert api.datasets.get("plain").name == "plain"
    item = api.dataset_items.create(dataset_name="plain", input={"q": 1}, expected_output="x", id="it-1")
    assert api.dataset_items.get(item.id).input == {"q": 1}
    assert [i.id for i in api.dataset_items.list(dataset_name="plain", page=1, limit=5).data] == ["it-1"]
    api.scores.create(request=[CreateScoreRequest(name="s", value=1.0, trace_id="t" * 32)])
    since = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    assert api.experiments.list(from_start_time=since).data == []
    assert api.experiments.list_items(from_start_time=since).data == []
    api.opentelemetry.export_traces(resource_spans=[])
    from langfuse.api.prompts.types import CreateChatPromptRequest, CreateTextPromptRequest

    api.prompts.create(request=CreateTextPromptRequest(name="team/greet", prompt="hi {{x}}", labels=["production"],
                                                       type="text"))
    api.prompts.create(request=CreateChatPromptRequest(name="chat", prompt=[{"role": "user", "content": "hi"}],
                                                       type="chat"))
    assert api.prompts.get("team%2Fgreet").version == 1
    assert api.prompts.get("chat", label="latest").type == "chat"
    assert {p.name for p in api.prompts.list().data} == {"team/greet", "chat"}
    called = {r.operation for r in server.requests}
    assert called == {op.op_id for op in contract._load()}, called ^ {op.op_id for op in contract._load()}
    assert server.errors == []


def test_contract_rejects_what_the_sdk_types_reject(server):
    import httpx

    auth = (server.public_key, server.secret_key)
    # a required field missing, an unknown key, an unknown enum value, an unknown query parameter
    r = httpx.post(server.url + "/api/public/dataset-items", json={"input": 1}, auth=auth)
    assert r.status_code == 400 and "dataset_name" in r.text
    server.add_dataset_items("d", [])
    r = httpx.post(server.url + "/api/public/dataset-items", json={"datasetName": "d", "expected": 1}, auth=auth)
    assert r.status_code == 400 and "expected" in r.text
    r = httpx.post(server.url + "/api/public/dataset-items", json={"datasetName": "d", "status": "GONE"}, auth=auth)
    assert r.status_code == 400
    r = httpx.get(server.url + "/api/public/dataset-items", params={"datasetName": "d", "pageSize": 3}, auth=auth)
    assert r.status_code == 400 and "pageSize" in r.text
    r = httpx.get(server.url + "/api/public/dataset-items", params={"limit": "ten"}, auth=auth)
    assert r.status_code == 400
    assert len(server.errors) == 5
    # answers are checked too: a wrong answer shape is recorded as a violation
    from langfuse.api.commons.types import DatasetItem

    server.add_dataset_items("d", [{"id": "i1", "input": 1}])
    good = server.dataset_items("d")[0]
    assert contract.violations(DatasetItem, good, "answer") == []
    assert contract.violations(DatasetItem, {"id": "x"}, "answer")
    assert "extra" in contract.violations(DatasetItem, {**good, "extra": 1}, "answer")[0]
    assert contract.violations(DatasetItem, {**good, "createdAt": "yesterday"}, "answer")


def test_contract_does_not_read_outside_the_repository():
    import inspect
    from pathlib import Path

    import tests.langfuse_server as srv

    for mod in (contract, srv):
        text = Path(inspect.getfile(mod)).read_text()
        # the stand-in cites Langfuse server files (packages/shared/..., web/src/...) in its text;
        # it opens none: no path up out of the repository, no workspace path, no spec file
        assert "../" not in text and "/work/" not in text and "openapi" not in text.lower()
        assert "read_text(" not in text and "open(" not in text.replace("urlopen(", "")
