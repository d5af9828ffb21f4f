"""``evalrun datasets harvest`` through the real CLI: 5,000 production traces behind a local
stand-in of Langfuse's public API (tests/langfuse_traces_server.py), some with user feedback and
human corrections, some duplicated, PII planted in 300. Also the file sources and redaction."""

from __future__ import annotations

import json
import random

import pytest
import yaml

from evalrun.production.redact import RedactionFailed, Redactor, iban_ok, luhn_ok
from tests.conftest import invoke_cli
from tests.langfuse_traces_server import TracesServer

TOPICS = ["billing", "shipping", "returns", "account"]
QUESTIONS = {
    "billing": ["Why was I charged twice for order {n}?", "Can I get an invoice for order {n}?",
                "My card was declined on order {n}, what now?"],
    "shipping": ["Where is my parcel {n}?", "How long does shipping to region {n} take?",
                 "Can I change the address of order {n}?"],
    "returns": ["How do I return item {n}?", "Is item {n} eligible for a refund?",
                "My return label for order {n} does not work"],
    "account": ["How do I reset the password of account {n}?", "Can I merge account {n} with another one?",
                "How do I delete account {n}?"],
}


def _luhn_card(rng: random.Random) -> str:
    digits = [4] + [rng.randrange(10) for _ in range(14)]
    for check in range(10):
        if luhn_ok("".join(map(str, digits + [check]))):
            return "".join(map(str, digits + [check]))
    raise AssertionError


def _pii(rng: random.Random, i: int) -> str:
    kind = rng.randrange(6)
    if kind == 0:
        return f"user{i}.name@example{i}.com"
    if kind == 1:
        return f"+44 20 7946 {1000 + i:04d}"
    if kind == 2:
        return _luhn_card(rng)
    if kind == 3:
        return _iban(i)
    if kind == 4:
        return f"10.{i % 250}.{(i * 7) % 250}.{(i * 13) % 250}"
    return "sk-proj-" + "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(32))


def _iban(i: int) -> str:
    # a German IBAN with valid check digits for bank code 37040044 and account i
    bban = f"37040044{i:010d}"
    check = 98 - int("".join(str(int(c, 36)) for c in bban + "DE00")) % 97
    value = f"DE{check:02d}{bban}"
    assert iban_ok(value)
    return value


def _traces(n: int = 5000, planted: int = 300, seed: int = 42) -> tuple[list[dict], list[dict], list[str]]:
    rng = random.Random(seed)
    traces, scores, pii = [], [], []
    plant_at = set(rng.sample(range(n), planted))
    for i in range(n):
        topic = rng.choice(TOPICS)
        q = rng.choice(QUESTIONS[topic]).format(n=rng.randrange(400))
        if i % 50 == 7:  # exact duplicates of an earlier input (case and punctuation differ)
            q = traces[i - 7]["input"]["question"].upper().rstrip("?") + " ?"
        meta: dict = {"topic": topic}
        out = f"Answer about {topic} for case {i}."
        if i in plant_at:
            value = _pii(rng, i)
            pii.append(value)
            where = rng.randrange(3)
            if where == 0:
                q = f"{q} Contact me at {value} please"
            elif where == 1:
                out = f"{out} We noted {value} on file."
            else:
                meta["note"] = f"customer gave {value}"
        traces.append({
            "id": f"trace-{i:05d}", "externalId": None, "timestamp": f"2026-11-{1 + i % 28:02d}T{i % 24:02d}:00:00.000Z",
            "name": "support-bot", "userId": f"u{i % 97}", "metadata": meta, "release": "r1", "version": "v1",
            "projectId": "p", "environment": "production", "public": False, "bookmarked": False, "tags": ["chat"],
            "input": {"question": q}, "output": out, "sessionId": None, "createdAt": "2026-11-01T00:00:00.000Z",
            "updatedAt": "2026-11-01T00:00:00.000Z", "observations": [], "scores": [], "totalCost": 0.001,
            "latency": 1.0, "htmlPath": f"/project/p/traces/trace-{i:05d}"})
        if i % 3 == 0:
            value = -1 if i % 2 else 1
            scores.append({"id": f"s-{i}", "traceId": f"trace-{i:05d}", "name": "user_feedback", "value": value,
                           "dataType": "NUMERIC", "source": "API", "comment": None})
            if value < 0 and i % 9 == 3:
                scores.append({"id": f"c-{i}", "traceId": f"trace-{i:05d}", "name": "correction", "value": 1,
                               "dataType": "NUMERIC", "source": "ANNOTATION", "comment": f"Corrected answer {i}."})
    return traces, scores, pii


@pytest.mark.slow
def test_harvest_from_langfuse_filters_samples_dedups_and_redacts(tmp_path):
    traces, scores, pii = _traces()
    args = ["datasets", "harvest", "langfuse", "--name", "support-bot", "--tag", "chat",
            "--score", "user_feedback<0", "--correction", "correction", "--sample", "200",
            "--stratify", "metadata.topic", "--keep-metadata", "topic", "--seed", "7", "--json"]
    (tmp_path / "again").mkdir()
    with TracesServer(traces, scores) as srv:
        r1 = invoke_cli(*args, "--out", "golden.yaml", cwd=tmp_path, env=srv.env())
        assert r1.returncode == 0, r1.stderr
        r2 = invoke_cli(*args, "--out", "golden.yaml", cwd=tmp_path / "again", env=srv.env())
        assert r2.returncode == 0, r2.stderr
        assert any("name=support-bot" in p and "tags=chat" in p for p in srv.requests)  # filtered server-side
    report = json.loads(r1.stdout)
    text = (tmp_path / "golden.yaml").read_text()
    # the same seed writes the same file
    assert (tmp_path / "again" / "golden.yaml").read_text() == text
    # every planted PII value is gone, wherever it was (input, output, metadata)
    for value in pii:
        assert value not in text, value
    items = yaml.safe_load(text)["items"]
    assert len(items) == 200 and report["new_items"] == 200
    negative = {s["traceId"] for s in scores if s["name"] == "user_feedback" and s["value"] < 0}
    corrected = {s["traceId"]: s["comment"] for s in scores if s["name"] == "correction"}
    by_trace = {t["id"]: t for t in traces}
    for it in items:
        prov = it["metadata"]["provenance"]
        tid = prov["source_trace_id"]
        assert tid in negative  # the score filter held
        assert it["id"].startswith("h-")
        if tid in corrected:
            assert it["expected_output"] == corrected[tid] and it["metadata"]["review"] == "corrected"
        else:
            assert it["metadata"]["review"] == "unreviewed"
        assert it["metadata"]["topic"] == by_trace[tid]["metadata"]["topic"]
    # stratified: each topic in proportion to its share of the matches (about a quarter each)
    per_topic = {t: sum(it["metadata"]["topic"] == t for it in items) for t in TOPICS}
    matched = {t: sum(by_trace[x]["metadata"]["topic"] == t for x in negative) for t in TOPICS}
    for t in TOPICS:
        assert abs(per_topic[t] - 200 * matched[t] / len(negative)) <= 6, (per_topic, matched)
    # sorted by id: a pull request shows exactly the new items
    assert [it["id"] for it in items] == sorted(it["id"] for it in items)
    c = report["source_counts"]
    assert c["read"] == 5000 and c["matched"] == len(negative)
    red = c["redaction"]
    # every planted value in what a harvested item keeps: its input, and its output unless a
    # correction replaces it (metadata.note is not kept)
    planted_in_matched = sum(len({v for v in pii if v in json.dumps(
        [t["input"], corrected.get(t["id"], t["output"])])}) for t in traces if t["id"] in negative)
    assert sum(red["by_kind"].values()) == planted_in_matched > 0
    assert red["dropped"] == 0 and c["duplicates_exact"] > 0
    assert all(v not in json.dumps(report) for v in pii)  # the report counts kinds, never values

    # a second harvest into the same file adds only new items, and keeps the old ones as they were
    with TracesServer(traces, scores) as srv:
        r3 = invoke_cli(*args[:-1], "--out", "golden.yaml", "--sample", "20", cwd=tmp_path, env=srv.env())
    assert r3.returncode == 0, r3.stderr
    after = yaml.safe_load((tmp_path / "golden.yaml").read_text())["items"]
    assert len(after) == 220 and {it["id"] for it in items} <= {it["id"] for it in after}
    assert "already in golden.yaml: 200" in r3.stdout


def test_near_duplicates_and_diverse_sampling_from_a_jsonl_export(tmp_path):
    rows = []
    base = ["How do I reset my password?", "Where is my parcel?", "Can I get a refund for a broken mug?",
            "Why was I charged twice?", "How do I delete my account?"]
    near = ["How can I reset my password?", "Where's my parcel?", "Can I get a refund for a mug that broke?"]
    for i, q in enumerate(base + near):
        rows.append({"id": f"t{i}", "input": q, "output": "ok", "tags": [], "metadata": {}})
    (tmp_path / "export.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = invoke_cli("datasets", "harvest", "export.jsonl", "--out", "g.jsonl", "--json", "--near-dup", "0.85",
                   cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    written = [json.loads(line)["input"] for line in (tmp_path / "g.jsonl").read_text().splitlines()]
    assert len(written) == 5 and rep["source_counts"]["duplicates_near"] == 3
    # each kept question is one of each near pair, never both
    assert sum(q in written for q in (base[0], near[0])) == 1
    # diverse: 3 of 5 distinct topics, none a paraphrase of another
    r = invoke_cli("datasets", "harvest", "export.jsonl", "--out", "d.yaml", "--diverse", "--sample", "3",
                   "--near-dup", "0.85", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert len(yaml.safe_load((tmp_path / "d.yaml").read_text())["items"]) == 3


def test_otlp_source_and_dry_run(tmp_path):
    def span(tid: str, q: str, a: str) -> dict:
        return {"traceId": tid, "spanId": "01", "name": "chat", "startTimeUnixNano": "1000000000",
                "endTimeUnixNano": "3000000000", "attributes": [
                    {"key": "langfuse.observation.input", "value": {"stringValue": json.dumps({"q": q})}},
                    {"key": "langfuse.observation.output", "value": {"stringValue": a}}]}
    data = {"resourceSpans": [{"scopeSpans": [{"spans": [span("a1", "hi, mail me at x@y.org", "hello"),
                                                         span("a2", "second", "two")]}]}]}
    (tmp_path / "spans.json").write_text(json.dumps(data))
    r = invoke_cli("datasets", "harvest", "spans.json", "--out", "g.yaml", "--dry-run", "--min-latency", "1",
                   cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "would write 2 new items" in r.stdout and "email 1" in r.stdout
    assert not (tmp_path / "g.yaml").exists()


@pytest.mark.parametrize("args,expected", [
    (["--score", "user_feedback<<0"], "--score"),
    (["--since", "yesterday"], "--since"),
    (["--stratify", "topic"], "--stratify"),
    (["--redact", "email,nope"], "unknown detector"),
    (["--pattern", "bad=("], "custom pattern"),
    (["--out", "g.txt"], "--out"),
])
def test_bad_options_are_one_line_before_any_request(tmp_path, args, expected):
    traces, scores, _ = _traces(n=10, planted=2)
    with TracesServer(traces, scores) as srv:
        full = ["datasets", "harvest", "langfuse", *(["--out", "g.yaml"] if "--out" not in args else []), *args]
        r = invoke_cli(*full, cwd=tmp_path, env=srv.env())
        assert r.returncode == 2 and expected in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert srv.requests == []


def test_allocation_is_proportional_and_capped():
    from evalrun.production.harvest import _allocate

    assert _allocate({"a": 300, "b": 100}, 200) == {"a": 150, "b": 50}
    assert _allocate({"a": 5, "b": 1000}, 100) == {"a": 1, "b": 99}  # every stratum represented
    assert _allocate({"a": 2, "b": 3}, 10) == {"a": 2, "b": 3}  # fewer than asked: all
    alloc = _allocate({"a": 1, "b": 1, "c": 1}, 2)
    assert sum(alloc.values()) == 2 and max(alloc.values()) == 1


def test_redaction_fails_closed_and_checks_numbers():
    red = Redactor.build()
    assert red.value({"a": ["card 4111 1111 1111 1111", "not a card 4111 1111 1111 1112"]}) == {
        "a": ["card [CARD]", "not a card 4111 1111 1111 1112"]}
    assert red.text("key sk-ant-abcdefghijklmnopqrstuvwx and bearer token") == "key [API_KEY] and bearer token"
    assert red.text("Authorization: Bearer abcdefghijklmnop1234") == "Authorization: Bearer [API_KEY]"
    with pytest.raises(RedactionFailed):
        red.value({"x": object()})

    def broken(text: str):
        raise RuntimeError("boom")
    red2 = Redactor({"broken": broken})
    with pytest.raises(RedactionFailed):
        red2.text("anything")


def test_a_trace_whose_redaction_fails_is_dropped_never_written(tmp_path):
    deep: dict = {}
    cur = deep
    for _ in range(100):
        cur["x"] = {}
        cur = cur["x"]
    rows = [{"id": "ok", "input": "fine question", "output": "a"}, {"id": "deep", "input": deep, "output": "b"}]
    (tmp_path / "export.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = invoke_cli("datasets", "harvest", "export.jsonl", "--out", "g.jsonl", "--json", "--near-dup", "0",
                   cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["source_counts"]["redaction"]["dropped"] == 1 and rep["new_items"] == 1
    assert "deep" not in (tmp_path / "g.jsonl").read_text().replace('"x"', "")
