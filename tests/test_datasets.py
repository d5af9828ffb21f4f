"""Dataset loading (YAML, JSONL, CSV), stable ids, selection, and the eval-file loader."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalrun.config import load_config
from evalrun.datasets import load_dataset, parse_filters, select_items
from evalrun.engine import shard_of
from evalrun.errors import UsageError
from evalrun.records import stable_id


def test_yaml_mapping_and_list_forms(tmp_path):
    (tmp_path / "a.yaml").write_text("name: golden\ndescription: d\nitems:\n  - id: 1\n    input: hi\n    expected_output: [a, b]\n")
    ds = load_dataset("a.yaml", tmp_path)
    assert (ds.name, ds.description, ds.items[0].id, ds.items[0].expected_list) == ("golden", "d", "1", ["a", "b"])
    assert ds.items[0].source.endswith("a.yaml:4")
    (tmp_path / "b.yml").write_text("- input: {q: 1}\n- input: {q: 2}\n")
    ds = load_dataset("b.yml", tmp_path)
    assert ds.name == "b" and ds.items[0].id == stable_id({"q": 1}) != ds.items[1].id
    assert ds.fingerprint.startswith("sha256:")


def test_stable_id_ignores_key_order():
    assert stable_id({"a": 1, "b": 2}) == stable_id({"b": 2, "a": 1})


def test_jsonl_and_csv(tmp_path):
    (tmp_path / "d.jsonl").write_text('{"id": "x", "input": "q", "metadata": {"tags": ["t"]}}\n\n{"input": "r"}\n')
    ds = load_dataset("d.jsonl", tmp_path)
    assert [i.id for i in ds.items][0] == "x" and ds.items[1].source.endswith(":3")
    (tmp_path / "d.csv").write_text(
        'id,input,expected_output,tags,lang\n'
        'a,"What, exactly?","[""x"", ""y""]",easy;critical,en\n'
        'b,"{""q"": 1}",z,,fr\n')
    ds = load_dataset("d.csv", tmp_path)
    a, b = ds.items
    assert a.input == "What, exactly?" and a.expected_output == ["x", "y"]
    assert a.metadata == {"tags": ["easy", "critical"], "lang": "en"} and a.tags == ["easy", "critical"]
    assert b.input == {"q": 1} and b.expected_output == "z" and b.metadata == {"lang": "fr"}
    assert b.source.endswith("d.csv:3")


def test_selection():
    from evalrun.records import Item

    items = [Item(id=f"i{i}", input=i, metadata={"tags": ["even" if i % 2 == 0 else "odd"], "g": i % 3})
             for i in range(20)]
    assert [i.id for i in select_items(items, parse_filters(["tag=even", "g=0"]))] == ["i0", "i6", "i12", "i18"]
    assert len(select_items(items, limit=3)) == 3
    s1 = select_items(items, sample=5, seed=1)
    assert [i.id for i in s1] == [i.id for i in select_items(items, sample=5, seed=1)]
    assert [i.id for i in s1] != [i.id for i in select_items(items, sample=5, seed=2)]
    with pytest.raises(UsageError):
        parse_filters(["novalue"])


def test_shards_are_deterministic_balanced_and_stable():
    ids = [f"item-{i}" for i in range(4000)]
    shards = [shard_of(i, 4) for i in ids]
    counts = [shards.count(k) for k in (1, 2, 3, 4)]
    assert min(counts) > 900  # ~1000 each
    # adding items never moves an existing one
    assert [shard_of(i, 4) for i in ids] == shards


def test_env_expansion(tmp_path, monkeypatch):
    (tmp_path / "e.yaml").write_text(
        "name: t\ndataset: ${DS_FILE:-data.yaml}\ntarget:\n  http:\n    url: ${BASE}/x\n    headers: {A: \"$${literal}\"}\n")
    monkeypatch.setenv("BASE", "http://127.0.0.1:9")
    loaded = load_config(tmp_path / "e.yaml")
    assert loaded.config.dataset == "data.yaml"
    assert loaded.config.target.http.url == "http://127.0.0.1:9/x"
    assert loaded.config.target.http.headers == {"A": "${literal}"}
    monkeypatch.setenv("DS_FILE", "other.yaml")
    assert load_config(tmp_path / "e.yaml").config.dataset == "other.yaml"
    monkeypatch.delenv("BASE")
    with pytest.raises(UsageError, match="BASE is not set") as e:
        load_config(tmp_path / "e.yaml")
    assert e.value.line == 5


def test_missing_default_eval_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match="no evalrun.yaml here"):
        load_config(None)


def test_repository_demo_config_is_valid():
    loaded = load_config(Path(__file__).resolve().parent.parent / "evalrun.yaml")
    assert loaded.config.name == "capitals" and loaded.config.scorers


def test_jsonl_line_separators_inside_strings_are_text(tmp_path):
    # U+2028/U+2029 are legal, unescaped, inside JSON strings; only \n ends a JSONL line
    (tmp_path / "d.jsonl").write_text('{"id": "a", "input": "one\u2028two\u2029three"}\r\n{"id": "b", "input": "x"}\n',
                                      encoding="utf-8")
    ds = load_dataset("d.jsonl", tmp_path)
    assert [it.input for it in ds.items] == ["one\u2028two\u2029three", "x"]


def test_jsonl_escaped_lone_surrogate_is_read_and_repaired(tmp_path):
    (tmp_path / "d.jsonl").write_text('{"id": "a", "input": "x\\ud800y"}\n')
    assert load_dataset("d.jsonl", tmp_path).items[0].input == "x\ufffdy"


def test_a_fifo_or_device_is_refused_without_reading(tmp_path):
    import os

    os.mkfifo(tmp_path / "d.jsonl")  # reading it would block forever
    with pytest.raises(UsageError, match="not a regular file"):
        load_dataset("d.jsonl", tmp_path)
    os.symlink("/dev/zero", tmp_path / "z.jsonl")  # reading it would never end
    with pytest.raises(UsageError, match="not a regular file"):
        load_dataset("z.jsonl", tmp_path)


def test_yaml_anchors_within_bounds_still_work(tmp_path):
    (tmp_path / "d.yaml").write_text("- {id: a, input: x, metadata: &m {group: g, tags: [t]}}\n"
                                     "- {id: b, input: y, metadata: *m}\n")
    ds = load_dataset("d.yaml", tmp_path)
    assert ds.items[1].metadata == {"group": "g", "tags": ["t"]}


def test_escaped_lone_surrogates_in_ids_are_repaired_at_load(tmp_path):
    # the repaired id is the one records are saved under, so a resume finds them again
    (tmp_path / "d.jsonl").write_text('{"id": "a\\ud800", "input": "x\\udfff", "expected_output": "\\ud800"}\n')
    it = load_dataset("d.jsonl", tmp_path).items[0]
    assert (it.id, it.input, it.expected_output) == ("a\ufffd", "x\ufffd", "\ufffd")
