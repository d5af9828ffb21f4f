"""The deterministic scorers and the custom Python scorer, on records built by hand."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from evalrun.errors import UsageError
from evalrun.records import Record, Score
from evalrun.scoring.base import ScorerContext, scorer_class
from evalrun.scoring.match import json_subset, normalize, parse_number


def scorer(type_name: str, base_dir: Path = Path("."), **cfg):
    cls = scorer_class(type_name)
    s = cls(cls.Config.model_validate({"type": type_name, **cfg}), ScorerContext(base_dir=base_dir))
    asyncio.run(s.setup())
    return s


def score(s, output, expected=None, input="q", metadata=None) -> Score:
    rec = Record(item_id="x", trial=0, input=input, expected_output=expected, output=output, metadata=metadata or {})
    return asyncio.run(s.score_batch([rec]))[0]


def test_normalize_steps():
    assert normalize("  Café,  THE   Bar! ", ["unicode", "case", "punctuation", "articles", "whitespace"]) == "cafe bar"
    assert normalize("A  b", ["whitespace"]) == "A b"


@pytest.mark.parametrize("output,expected,cfg,passed", [
    ("Paris", "Paris", {}, True),
    (" Paris\n", "Paris", {}, True),
    (" Paris\n", "Paris", {"strip": False}, False),
    ("paris", "Paris", {}, False),
    ("paris.", "Paris", {"normalize": ["case", "punctuation"]}, True),
    ("Brasilia", ["Brasília", "Brasilia"], {}, True),
    ("Brasilia", ["Brasília"], {"normalize": ["unicode"]}, True),
    ({"a": 1, "b": 2}, {"b": 2, "a": 1}, {}, True),  # non-strings compare as canonical JSON
])
def test_exact_match(output, expected, cfg, passed):
    s = score(scorer("exact_match", **cfg), output, expected)
    assert s.passed is passed and s.value == (1.0 if passed else 0.0)


def test_no_expected_output_is_skipped_not_failed():
    s = score(scorer("exact_match"), "x", None)
    assert s.value is None and s.passed is None and "no expected_output" in s.reason


def test_contains_and_regex():
    assert score(scorer("contains"), "The capital is Paris.", "Paris").passed
    assert not score(scorer("contains"), "The capital is paris.", "Paris").passed
    assert score(scorer("contains", normalize=["case"]), "The capital is paris.", "Paris").passed
    assert score(scorer("regex", pattern=r"^\d{3}$"), "123").passed
    assert not score(scorer("regex", pattern=r"\d{3}", mode="fullmatch"), "1234").passed
    assert score(scorer("regex", pattern="paris", ignore_case=True), "PARIS").passed
    with pytest.raises(UsageError, match="bad regex"):
        scorer("regex", pattern="(")


def test_numeric():
    assert parse_number("about 1,234.5 km") == 1234.5
    assert parse_number(True) is None and parse_number("none") is None
    assert score(scorer("numeric", tolerance=0.01), "The answer is 3.141", 3.14).passed
    assert not score(scorer("numeric", tolerance=0.0001), "3.141", 3.14).passed
    assert score(scorer("numeric", tolerance=0.1, relative=True), 105, 100).passed
    assert score(scorer("numeric"), "no digits", 3).reason == "no number in output"
    assert score(scorer("numeric"), "3", "n/a").value is None


def test_json_match():
    assert json_subset({"a": {"b": 1}}, {"a": {"b": 1, "c": 2}, "d": 3})
    assert not json_subset({"a": [1, 2]}, {"a": [1, 2, 3]})
    s = scorer("json_match", mode="subset")
    assert score(s, '```json\n{"name": "x", "age": 3}\n```', {"name": "x"}).passed
    assert not score(s, '{"name": "y"}', {"name": "x"}).passed
    assert score(s, "not json", {"name": "x"}).reason == "output is not valid JSON"
    assert score(scorer("json_match"), {"a": 1}, {"a": 1}).passed
    assert not score(scorer("json_match"), {"a": 1, "b": 2}, {"a": 1}).passed


def test_python_scorer(tmp_path):
    (tmp_path / "my_scorers.py").write_text(
        "from evalrun import Score\n"
        "def brevity(output):\n    return 1.0 / len(output.split())\n"
        "async def tagged(output, metadata):\n    return {'value': 1.0, 'passed': 'x' in metadata.get('tags', []), 'reason': 'tag'}\n"
        "def boom(output):\n    raise RuntimeError('scorer bug')\n"
        "def as_bool(output, expected_output):\n    return output == expected_output\n"
        "def no_params():\n    return 1\n")
    assert score(scorer("python", tmp_path, function="my_scorers:brevity", threshold=0.5), "two words").passed
    assert not score(scorer("python", tmp_path, function="my_scorers:brevity", threshold=0.5), "three words now").passed
    s = score(scorer("python", tmp_path, function="my_scorers:tagged"), "o", metadata={"tags": ["x"]})
    assert (s.value, s.passed, s.reason) == (1.0, True, "tag")
    s = score(scorer("python", tmp_path, function="my_scorers:boom"), "o")
    assert s.error == "RuntimeError: scorer bug" and s.value is None
    assert score(scorer("python", tmp_path, function="my_scorers:as_bool"), "a", "a").passed
    with pytest.raises(UsageError, match="must take some of"):
        scorer("python", tmp_path, function="my_scorers:no_params")
    with pytest.raises(UsageError, match="not found"):
        scorer("python", tmp_path, function="my_scorers:missing")


def test_sync_python_scorer_runs_off_the_event_loop_one_call_at_a_time(tmp_path):
    (tmp_path / "slow_scorers.py").write_text(
        "import threading, time\n"
        "running = []\n"
        "def slow(output):\n"
        "    running.append(1)\n"
        "    overlap = len(running) > 1\n"
        "    time.sleep(0.05)\n"
        "    running.pop()\n"
        "    return {'value': 0.0 if overlap else 1.0, 'reason': threading.current_thread().name}\n")
    s = scorer("python", tmp_path, function="slow_scorers:slow")
    records = [Record(item_id=str(i), trial=0, input="q", expected_output=None, output="o") for i in range(6)]

    async def go():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        t = asyncio.create_task(ticker())
        # two batches in flight, as the engine scores them
        scores = await asyncio.gather(s.score_batch(records[:3]), s.score_batch(records[3:]))
        t.cancel()
        await s.close()
        return [x for batch in scores for x in batch], ticks

    scores, ticks = asyncio.run(go())
    assert {x.reason for x in scores} == {"evalrun-scorer-python_0"}  # the scorer's own thread
    assert [x.value for x in scores] == [1.0] * 6  # never two calls at once
    # 0.3 s of scoring: a blocked loop would tick at most once
    assert ticks >= 5


def test_sync_python_scorer_stops_between_records_on_ctrl_c(tmp_path):
    (tmp_path / "counting_scorers.py").write_text(
        "calls = []\n"
        "def count(output, record):\n"
        "    calls.append(output)\n"
        "    if len(calls) == 2:\n"
        "        record.metadata['ctx'].cancelled = True  # as the engine's Ctrl-C handler does\n"
        "    return True\n")
    s = scorer("python", tmp_path, function="counting_scorers:count")
    records = [Record(item_id=str(i), trial=0, input="q", expected_output=None, output=str(i),
                      metadata={"ctx": s.ctx}) for i in range(5)]
    with pytest.raises(RuntimeError, match="cancelled"):
        asyncio.run(s.score_batch(records))
    import counting_scorers

    assert counting_scorers.calls == ["0", "1"]


def test_a_runaway_regex_is_that_records_scorer_error():
    s = scorer("regex", pattern=r"(a|aa)+$", timeout=0.2)
    recs = [Record(item_id=str(i), trial=0, input="q", output=out)
            for i, out in enumerate(["a" * 80 + "b", "aaaa", "b"])]
    scores = asyncio.run(s.score_batch(recs))
    assert scores[0].error and "longer than 0.2s" in scores[0].error and scores[0].value is None
    assert scores[1].passed is True and scores[2].passed is False
