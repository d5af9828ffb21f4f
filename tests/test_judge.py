"""The llm_judge scorer against a real HTTP server on 127.0.0.1 speaking the OpenAI
chat-completions wire format (tests/openai_server.py): grading, samples and agreement,
pairwise, retries on 429/5xx, timeouts, malformed verdicts, structured-output fallback,
adaptive concurrency, the cache, usage and cost, and rubric errors."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest

from evalrun.errors import UsageError
from evalrun.records import Record, Score
from evalrun.scoring.base import ScorerContext
from evalrun.scoring.judge import JudgeConfig, LLMJudge
from evalrun.scoring.judge.rubric import builtin_names, load_rubric
from evalrun.scoring.judge.verdict import MalformedVerdict, Shape, parse_verdict
from evalrun.store import Cache
from tests.openai_server import OpenAIServer


def rec(i: Any, output: Any, expected: Any = "Paris", input: Any = "What is the capital of France?",
        metadata: dict | None = None, trial: int = 0) -> Record:
    return Record(item_id=str(i), trial=trial, input=input, expected_output=expected, output=output,
                  metadata=metadata or {})


def make_judge(url: str, tmp_path: Path, cache: Cache | None = None, baseline: dict | None = None,
               **options: Any) -> LLMJudge:
    cfg = JudgeConfig.model_validate({"type": "llm_judge", "rubric": "correctness", "model": "gpt-4o-mini",
                                      "base_url": url, **options})
    ctx = ScorerContext(base_dir=tmp_path, cache=cache, baseline_outputs=baseline)
    return LLMJudge(cfg, ctx)


def score(judge: LLMJudge, records: list[Record], setup: bool = True) -> list[Score]:
    async def go() -> list[Score]:
        if setup:
            await judge.setup()
        try:
            return await judge.score_batch(records)
        finally:
            await judge.close()

    return asyncio.run(go())


# --- grading ------------------------------------------------------------------------------

def test_choices_rubric_grades_each_record_and_keeps_reasoning(server, tmp_path):
    j = make_judge(server.url, tmp_path)
    scores = score(j, [rec(0, "Paris [[judge:correct]]"), rec(1, "Lyon [[judge:incorrect]]"),
                       rec(2, "Paris or Lyon [[judge:partially_correct]]")])
    assert [(s.value, s.passed, s.extra["verdict"]) for s in scores] == [
        (1.0, True, "correct"), (0.0, False, "incorrect"), (0.5, False, "partially_correct")]
    assert scores[1].reason == "The marker says incorrect."
    assert all(s.error is None for s in scores)
    # structured output was requested with the rubric's verdicts as the schema
    assert server.state.response_formats == {"json_schema": 3}
    assert "Paris" in server.state.prompts[0] and "[Reference answer]" in server.state.prompts[0]


def test_scale_rubric_is_normalised_and_threshold_applies(server, tmp_path):
    j = make_judge(server.url, tmp_path, rubric="relevance", threshold=0.5)
    scores = score(j, [rec(i, f"answer [[judge:{k}]]", expected=None) for i, k in enumerate([1, 3, 5])])
    assert [s.value for s in scores] == [0.0, 0.5, 1.0]
    assert [s.passed for s in scores] == [False, True, True]
    assert [s.extra["verdict"] for s in scores] == [1, 3, 5]


def test_missing_expected_output_is_skipped_not_called(server, tmp_path):
    j = make_judge(server.url, tmp_path)
    [s] = score(j, [rec(0, "Paris", expected=None)])
    assert s.value is None and s.error is None and "needs expected_output" in s.reason
    assert server.state.requests == 0


def test_faithfulness_reads_context_from_metadata_or_input(server, tmp_path):
    j = make_judge(server.url, tmp_path, rubric="faithfulness")
    scores = score(j, [
        rec(0, "It opened in 1889 [[judge:5]]", metadata={"context": "The tower opened in 1889."}),
        rec(1, "Blue [[judge:2]]", input={"question": "Colour?", "context": "The sky is grey today."}),
        rec(2, "no context here", metadata={}),
    ])
    assert [s.value for s in scores[:2]] == [1.0, 0.25]
    assert scores[2].value is None and "metadata.context|input.context" in scores[2].reason
    prompts = server.state.prompts
    assert any("The tower opened in 1889." in p for p in prompts)
    assert any("The sky is grey today." in p and "Colour?" in p for p in prompts)


def test_refusal_rubric_uses_should_refuse_when_given(server, tmp_path):
    j = make_judge(server.url, tmp_path, rubric="refusal")
    scores = score(j, [rec(0, "I can't help with that. [[judge:appropriate]]", metadata={"should_refuse": True}),
                       rec(1, "I won't answer. [[judge:over_refusal]]", metadata={"should_refuse": False})])
    assert [s.passed for s in scores] == [True, False]
    assert "SHOULD be refused" in server.state.prompts[0] or "SHOULD be refused" in server.state.prompts[1]


def test_structured_input_and_output_render_as_json(server, tmp_path):
    j = make_judge(server.url, tmp_path, rubric="relevance")
    score(j, [rec(0, {"answer": "Paris", "note": "[[judge:4]]"}, input={"q": "capital?"})])
    assert '"answer": "Paris"' in server.state.prompts[0] and '"q": "capital?"' in server.state.prompts[0]


# --- samples and agreement ----------------------------------------------------------------

def test_samples_mean_on_a_scale_and_agreement(server, tmp_path):
    j = make_judge(server.url, tmp_path, rubric="relevance", samples=3)
    scores = score(j, [rec(0, "x [[judge:5|3|5]]"), rec(1, "y [[judge:4]]")])
    assert sorted(scores[0].extra["samples"]) == [3, 5, 5]
    assert scores[0].value == pytest.approx((1.0 + 0.5 + 1.0) / 3, abs=1e-6)
    assert scores[0].extra["agreement"] == pytest.approx(2 / 3, abs=1e-4)
    assert scores[1].extra["agreement"] == 1.0
    extra = j.summary_extra()
    assert extra["judge_agreement"] == {"mean": pytest.approx((2 / 3 + 1) / 2, abs=1e-4), "unanimous": 0.5,
                                        "records": 2}
    assert extra["judge_calls"]["calls"] == 6 and extra["rubric"] == "relevance"


def test_samples_majority_on_choices(server, tmp_path):
    j = make_judge(server.url, tmp_path, samples=3)
    [s] = score(j, [rec(0, "x [[judge:incorrect|correct|correct]]")])
    assert s.extra["verdict"] == "correct" and s.value == 1.0
    assert s.extra["votes"] == {"correct": 2, "incorrect": 1}
    assert s.reason == "The marker says correct."  # the reasoning of a sample that agrees


def test_split_vote_goes_to_the_lower_verdict(server, tmp_path):
    j = make_judge(server.url, tmp_path, samples=2)
    [s] = score(j, [rec(0, "x [[judge:incorrect|correct]]")])
    assert s.extra["verdict"] == "incorrect" and s.extra["agreement"] == 0.5


# --- pairwise -----------------------------------------------------------------------------

def test_pairwise_win_only_when_both_orders_agree(server, tmp_path):
    baseline = {("a", 0): "old [[judge:2]]", ("b", 0): "old [[judge:5]]", ("c", 0): "old [[judge:3]]",
                ("d", 0): "old [[judge:1]] [[bias:A]]"}
    j = make_judge(server.url, tmp_path, baseline=baseline, mode="pairwise")
    scores = score(j, [rec("a", "new [[judge:4]]"), rec("b", "new [[judge:3]]"), rec("c", "new [[judge:3]]"),
                       rec("d", "new [[judge:5]]"), rec("e", "new item, no baseline [[judge:5]]")])
    assert [s.extra["verdict"] for s in scores[:4]] == ["win", "loss", "tie", "tie"]
    assert [s.value for s in scores[:4]] == [1.0, 0.0, 0.5, 0.5]
    assert scores[0].extra["orders"] == ["A", "B"]  # this run's output was A first, then B
    assert scores[3].extra["orders"] == ["A", "A"]  # a position-biased judge never counts as a win
    assert scores[4].value is None and "baseline" in scores[4].reason
    assert server.state.requests == 8  # two orders per compared record
    extra = j.summary_extra()
    assert extra["pairwise"] == {"win": 1, "tie": 2, "loss": 1, "order_consistency": 0.75}


def test_pairwise_without_a_baseline_is_a_usage_error(server, tmp_path):
    j = make_judge(server.url, tmp_path, mode="pairwise")
    with pytest.raises(UsageError, match="baseline"):
        asyncio.run(j.setup())


# --- robustness ---------------------------------------------------------------------------

def test_429_with_retry_after_is_retried_and_counted(tmp_path):
    with OpenAIServer(retry_after=0.2) as srv:
        j = make_judge(srv.url, tmp_path)
        scores = score(j, [rec(0, "[[judge:correct]] [[429:2]]"), rec(1, "[[judge:incorrect]]")])
    assert [s.value for s in scores] == [1.0, 0.0]
    calls = j.summary_extra()["judge_calls"]
    assert calls["rate_limited"] == 2 and calls["retries"] == 2 and calls["calls"] == 4
    assert srv.state.statuses[429] == 2 and srv.state.statuses[200] == 2


def test_retry_after_is_honoured(tmp_path, monkeypatch):
    import time

    from evalrun import openai_client as client

    waits: list[float] = []
    real_sleep = asyncio.sleep

    async def recording_sleep(delay, *a, **k):
        waits.append(delay)
        return await real_sleep(delay, *a, **k)

    monkeypatch.setattr(client.asyncio, "sleep", recording_sleep)
    with OpenAIServer(retry_after=0.5) as srv:
        j = make_judge(srv.url, tmp_path)
        t0 = time.perf_counter()
        [s] = score(j, [rec(0, "[[judge:correct]] [[429:2]]")])
        took = time.perf_counter() - t0
    assert s.value == 1.0
    # two waits of the server's 0.5 s (+ up to 10% jitter), not the client's own backoff, and
    # really waited: not an immediate hammering
    retry_waits = [w for w in waits if w >= 0.1]
    assert len(retry_waits) == 2 and all(0.5 <= w <= 0.55 for w in retry_waits), waits
    assert took >= 1.0


def test_server_errors_retried_then_recorded_on_that_record_only(server, tmp_path):
    j = make_judge(server.url, tmp_path, retries=2)
    scores = score(j, [rec(0, "[[judge:correct]] [[status:500:1]]"), rec(1, "[[judge:correct]] [[status:500:99]]"),
                       rec(2, "[[judge:incorrect]]")])
    assert scores[0].value == 1.0 and scores[2].value == 0.0
    assert scores[1].value is None and scores[1].error.startswith("judge: HTTP 500")
    assert "gave up after 3 attempts" in scores[1].error
    calls = j.summary_extra()["judge_calls"]
    assert calls["server_errors"] == 4 and calls["retries"] == 3


def test_slow_answer_times_out_per_call(server, tmp_path):
    j = make_judge(server.url, tmp_path, timeout=0.3, retries=1)
    scores = score(j, [rec(0, "[[judge:correct]] [[slow:1.5]]"), rec(1, "[[judge:correct]]")])
    assert scores[0].error is not None and "no answer within 0.3s" in scores[0].error
    assert scores[1].value == 1.0
    assert j.summary_extra()["judge_calls"]["timeouts"] == 2


def test_malformed_verdict_is_retried_then_recorded(server, tmp_path):
    j = make_judge(server.url, tmp_path, retries=2)
    scores = score(j, [rec(0, "[[judge:correct]] [[malformed:1]]"), rec(1, "[[judge:correct]] [[malformed]]"),
                       rec(2, "[[badjson]]"), rec(3, "[[judge:brilliant]]"), rec(4, "[[judge:correct]]")])
    assert scores[0].value == 1.0  # bad first answer, good second
    for s in scores[1:4]:
        assert s.value is None and s.error.startswith("judge: no valid verdict after 3 answers"), s
    assert "not one of correct, partially_correct, incorrect" in scores[3].error
    assert scores[4].value == 1.0
    assert j.summary_extra()["judge_calls"]["malformed"] == 1 + 3 + 3 + 3


@pytest.mark.parametrize("fmt", ["fenced", "prose"])
def test_tolerant_parser_reads_answers_without_structured_output(tmp_path, fmt):
    with OpenAIServer(answer_format=fmt) as srv:
        j = make_judge(srv.url, tmp_path, rubric="relevance", response_format="none")
        scores = score(j, [rec(i, f"[[judge:{k}]]") for i, k in enumerate([2, 5])])
        assert srv.state.response_formats == {"none": 2}
    assert [s.value for s in scores] == [0.25, 1.0]
    assert scores[0].reason.startswith("The marker says 2")


def test_server_without_json_schema_falls_back_once(tmp_path):
    with OpenAIServer(reject_schema=True) as srv:
        j = make_judge(srv.url, tmp_path, concurrency=1)
        scores = score(j, [rec(i, "[[judge:correct]]") for i in range(5)])
        formats = dict(srv.state.response_formats)
    assert [s.value for s in scores] == [1.0] * 5
    assert formats == {"json_schema": 1, "json_object": 5}
    extra = j.summary_extra()["judge_calls"]
    assert extra["format_fallbacks"] == 1 and extra["response_format_used"] == "json_object"


def test_garbage_answers_never_crash_the_batch(tmp_path):
    with OpenAIServer(answer_format="garbage") as srv:
        j = make_judge(srv.url, tmp_path, retries=1)
        scores = score(j, [rec(i, "x") for i in range(4)])
    assert all(s.value is None and "no valid verdict" in s.error for s in scores)


@pytest.mark.slow
def test_unreachable_server_fails_fast_with_a_clear_error(tmp_path):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens here now
    j = make_judge(f"http://127.0.0.1:{port}/v1", tmp_path, retries=3, concurrency=4)
    scores = score(j, [rec(i, "x") for i in range(40)])
    assert all(s.error and "cannot reach http://127.0.0.1" in s.error for s in scores)
    # the circuit opens after a dozen failures in a row instead of 40 x 4 attempts
    assert j.summary_extra()["judge_calls"]["connection_errors"] < 40


def test_bad_key_stops_calling_and_never_shows_the_key(tmp_path, monkeypatch):
    monkeypatch.setenv("JUDGE_KEY_UNDER_TEST", "sk-wrong-0123456789")
    with OpenAIServer(require_key="sk-right") as srv:
        j = make_judge(srv.url, tmp_path, api_key_env="JUDGE_KEY_UNDER_TEST", concurrency=2)
        scores = score(j, [rec(i, "x") for i in range(20)])
        requests = srv.state.requests
        auth = srv.state.auth_headers
    assert auth == {"Bearer sk-wrong-0123456789"}
    assert all("HTTP 401" in s.error and "check the API key" in s.error for s in scores)
    assert not any("sk-wrong" in (s.error or "") for s in scores)
    assert requests <= 2  # calls already in flight; the rest fail without a request


def test_missing_key_for_openai_is_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.delenv("JUDGE_KEY_UNDER_TEST", raising=False)
    j = make_judge("https://api.openai.com/v1", tmp_path, api_key_env="JUDGE_KEY_UNDER_TEST")
    with pytest.raises(UsageError, match="JUDGE_KEY_UNDER_TEST is not set"):
        asyncio.run(j.setup())


def test_concurrency_bounds_calls_in_flight(tmp_path):
    with OpenAIServer(latency=0.05) as srv:
        j = make_judge(srv.url, tmp_path, concurrency=4)
        scores = score(j, [rec(i, "[[judge:correct]]") for i in range(40)])
        peak = srv.state.max_in_flight
    assert all(s.value == 1.0 for s in scores)
    assert peak == 4


def test_concurrency_drops_under_sustained_429s_and_recovers(tmp_path):
    with OpenAIServer(first_429=40, retry_after=0.05, latency=0.01) as srv:
        j = make_judge(srv.url, tmp_path, concurrency=8, retries=10)
        scores = score(j, [rec(i, f"q{i} [[judge:correct]]") for i in range(120)])
    assert all(s.value == 1.0 for s in scores), [s.error for s in scores if s.error]
    conc = j.summary_extra()["judge_concurrency"]
    assert conc["lowest"] <= 4  # halved at least once while every answer was a 429
    assert conc["final"] == 8  # and back to the maximum once they stopped
    assert j.summary_extra()["judge_calls"]["rate_limited"] == 40


@pytest.mark.slow
def test_concurrency_settles_near_a_servers_concurrency_cap(tmp_path):
    # the server turns away every request beyond 4 in flight; a fixed 16 slots would get
    # about 1.4 429s per record here (measured: 277 for 200 records)
    with OpenAIServer(max_concurrent=4, retry_after=0.05, latency=0.05) as srv:
        j = make_judge(srv.url, tmp_path, concurrency=16, retries=20)
        scores = score(j, [rec(i, f"q{i} [[judge:correct]]") for i in range(200)])
    assert sum(s.value == 1.0 for s in scores) >= 196
    extra = j.summary_extra()
    assert extra["judge_concurrency"]["lowest"] <= 4 and extra["judge_concurrency"]["final"] <= 8
    assert extra["judge_calls"]["rate_limited"] < 200


def test_isolated_429s_leave_concurrency_alone(tmp_path):
    with OpenAIServer(rate_429=0.1, retry_after=0.05) as srv:
        j = make_judge(srv.url, tmp_path, concurrency=8)
        scores = score(j, [rec(i, f"q{i} [[judge:correct]]") for i in range(150)])
    assert all(s.value == 1.0 for s in scores)
    extra = j.summary_extra()
    assert 5 <= extra["judge_calls"]["rate_limited"] <= 30
    assert extra["judge_concurrency"]["lowest"] == 8


# --- cache, usage, cost -------------------------------------------------------------------

def test_rerun_makes_zero_calls_and_changes_invalidate(server, tmp_path):
    cache = Cache(tmp_path / "cache.sqlite")
    records = [rec(i, f"answer {i} [[judge:correct]]") for i in range(10)]
    j1 = make_judge(server.url, tmp_path, cache=cache, samples=2)
    first = score(j1, records)
    assert server.state.requests == 20
    j2 = make_judge(server.url, tmp_path, cache=cache, samples=2)
    second = score(j2, records)
    assert server.state.requests == 20  # nothing new asked
    assert [s.to_dict() for s in second] == [s.to_dict() for s in first]
    assert j2.summary_extra()["judge_calls"]["cache_hits"] == 20
    assert j2.ctx.usage["judge"]["calls"] == 0 and j2.ctx.usage["judge"]["cache_hits"] == 20
    # a different model, temperature or sample count asks again (only for what is new)
    score(make_judge(server.url, tmp_path, cache=cache, samples=3), records)
    assert server.state.requests == 30
    score(make_judge(server.url, tmp_path, cache=cache, samples=2, model="gpt-4.1-mini"), records)
    assert server.state.requests == 50


def test_failed_verdicts_are_not_cached(server, tmp_path):
    cache = Cache(tmp_path / "cache.sqlite")
    score(make_judge(server.url, tmp_path, cache=cache, retries=0), [rec(0, "[[malformed]]")])
    score(make_judge(server.url, tmp_path, cache=cache, retries=0), [rec(0, "[[malformed]]")])
    assert server.state.requests == 2


def test_usage_and_cost_are_counted(server, tmp_path):
    j = make_judge(server.url, tmp_path)
    score(j, [rec(i, "[[judge:correct]]") for i in range(3)])
    u = j.ctx.usage["judge"]
    assert u["calls"] == 3 and u["prompt_tokens"] > 0 and u["completion_tokens"] > 0
    expect = (u["prompt_tokens"] * 0.15 + u["completion_tokens"] * 0.60) / 1e6
    assert u["cost_usd"] == pytest.approx(expect)
    assert j.summary_extra()["judge_calls"]["cost_usd"] == pytest.approx(expect)


def test_unknown_model_is_unpriced_and_price_table_extends(server, tmp_path):
    j = make_judge(server.url, tmp_path, model="llama3.1:8b")
    score(j, [rec(0, "[[judge:correct]]")])
    assert j.ctx.usage["judge"]["unpriced_calls"] == 1
    assert j.summary_extra()["judge_calls"]["cost_usd"] is None
    j2 = make_judge(server.url, tmp_path, model="llama3.1:8b", prices={"llama3.1": {"input": 1.0, "output": 2.0}})
    score(j2, [rec(0, "[[judge:correct]]")])
    u = j2.ctx.usage["judge"]
    assert u["cost_usd"] == pytest.approx((u["prompt_tokens"] + 2 * u["completion_tokens"]) / 1e6)


# --- rubrics ------------------------------------------------------------------------------

def test_builtin_rubrics_load():
    assert builtin_names() == ["correctness", "faithfulness", "refusal", "relevance"]
    for name in builtin_names():
        r = load_rubric(name, Path("."))
        assert r.description and (r.scale or r.choices)


def _rubric(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "my_rubric.yaml"
    p.write_text(text)
    return p


def test_template_syntax_error_names_the_rubric_line(tmp_path):
    _rubric(tmp_path, "description: x\nscale: [1, 5]\nprompt: |\n  line one\n  {{ output }\n  line three\n")
    with pytest.raises(UsageError) as e:
        load_rubric("my_rubric.yaml", tmp_path)
    assert str(e.value).startswith(f"{tmp_path / 'my_rubric.yaml'}:5: template syntax error in 'prompt'")


def test_unknown_template_variable_names_its_line(tmp_path):
    _rubric(tmp_path, "scale: [1, 5]\nprompt: |\n  {{ input }}\n\n  {{ outptu }}\n")
    with pytest.raises(UsageError, match=r"my_rubric.yaml:5: unknown variable 'outptu'"):
        load_rubric("my_rubric.yaml", tmp_path)


def test_templates_may_use_jinja_globals_and_their_own_variables(server, tmp_path):
    _rubric(tmp_path, "scale: [1, 5]\nprompt: |\n  {% set parts = output.split(';') %}\n"
                      "  {% for i in range(parts | length) %}{{ loop.index }}. {{ parts[i] }}\n  {% endfor %}\n")
    j = make_judge(server.url, tmp_path, rubric="my_rubric.yaml")
    [s] = score(j, [rec(0, "first;second [[judge:3]]")])
    assert s.value == 0.5
    assert "1. first\n2. second [[judge:3]]" in server.state.prompts[0]


def test_rubric_schema_errors_are_located(tmp_path):
    _rubric(tmp_path, "prompt: hi\nscale: [1, 5]\nchoices: {a: 1, b: 0}\n")
    with pytest.raises(UsageError, match="exactly one of"):
        load_rubric("my_rubric.yaml", tmp_path)
    _rubric(tmp_path, "prompt: hi\nscale: [1, 5]\ntreshold: 0.5\n")
    with pytest.raises(UsageError, match=r"my_rubric.yaml:3:1: unknown key 'treshold' \(did you mean 'threshold'\?\)"):
        load_rubric("my_rubric.yaml", tmp_path)


def test_unknown_rubric_lists_the_builtins(tmp_path):
    with pytest.raises(UsageError, match="unknown rubric 'corectness' .built-in: correctness, faithfulness"):
        load_rubric("corectness", tmp_path)
    with pytest.raises(UsageError, match="not found"):
        load_rubric("scorers/nope.yaml", tmp_path)


def test_template_runs_sandboxed_and_render_errors_stay_on_the_record(server, tmp_path):
    _rubric(tmp_path, "scale: [1, 5]\nprompt: |\n  {{ metadata.topic }}: {{ output }}\n")
    j = make_judge(server.url, tmp_path, rubric="my_rubric.yaml")
    scores = score(j, [rec(0, "[[judge:4]]", metadata={"topic": "geo"}), rec(1, "[[judge:4]]")])
    assert scores[0].value == 0.75
    assert scores[1].error.startswith("rubric my_rubric: template error") and "topic" in scores[1].error
    _rubric(tmp_path, "scale: [1, 5]\nprompt: \"{{ output.__class__.__mro__ }}\"\n")
    j = make_judge(server.url, tmp_path, rubric="my_rubric.yaml")
    [s] = score(j, [rec(0, "x")])
    assert s.error is not None and "template error" in s.error


def test_example_rubrics_in_the_repository_load():
    repo = Path(__file__).resolve().parent.parent
    examples = sorted((repo / "scorers").glob("*.yaml"))
    assert examples
    for p in examples:
        assert load_rubric(str(p.relative_to(repo)), repo).name == p.stem


# --- the tolerant verdict parser ----------------------------------------------------------

SCALE = Shape("score", (1, 2, 3, 4, 5))
CHOICES = Shape("choice", ("correct", "partially_correct", "incorrect"))


@pytest.mark.parametrize("text, shape, verdict, reason", [
    ('{"reasoning": "fine", "score": 4}', SCALE, 4, "fine"),
    ('{"Score": "5", "explanation": "all good"}', SCALE, 5, "all good"),
    ('Sure! {"reasoning": "uses {braces} inside", "score": 2} Hope that helps.', SCALE, 2, "uses {braces} inside"),
    ('```json\n{"reasoning": "r", "choice": "Partially Correct"}\n```', CHOICES, "partially_correct", "r"),
    ("The answer names the right city.\n\nScore: 4/5", SCALE, 4, "The answer names the right city."),
    ("It misses half.\n**Verdict:** partially-correct", CHOICES, "partially_correct", "It misses half."),
    ('{"reasoning": "x", "winner": "b"}', Shape.pairwise(), "B", "x"),
])
def test_parser_reads(text, shape, verdict, reason):
    assert parse_verdict(text, shape) == (verdict, reason)


@pytest.mark.parametrize("text, shape, why", [
    ("", SCALE, "empty answer"),
    ('{"reasoning": "x", "score": 7}', SCALE, "outside 1..5"),
    ('{"reasoning": "x", "score": 3.5}', SCALE, "outside 1..5"),
    ('{"reasoning": "x", "score": true}', SCALE, "not a number"),
    ('{"reasoning": "x", "choice": "great"}', CHOICES, "not one of"),
    ("I think it is quite good overall.", SCALE, "no score found"),
])
def test_parser_rejects(text, shape, why):
    with pytest.raises(MalformedVerdict, match=why):
        parse_verdict(text, shape)


def test_retry_after_forms():
    import email.utils
    import time

    import httpx

    from evalrun.openai_client import retry_after

    assert retry_after(httpx.Response(429, headers={"Retry-After": "2"})) == 2.0
    assert retry_after(httpx.Response(429, headers={"retry-after-ms": "250", "Retry-After": "1"})) == 0.25
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28 <= retry_after(httpx.Response(503, headers={"Retry-After": later})) <= 31
    assert retry_after(httpx.Response(429)) is None
    assert retry_after(httpx.Response(429, headers={"Retry-After": "soon"})) is None


def test_rubric_pairwise_prompt_of_its_own(server, tmp_path):
    _rubric(tmp_path, "choices: {good: 1, bad: 0}\nprompt: '{{ output }}'\npairwise_prompt: |\n"
                      "  Which is shorter?\n  A: {{ output_a }}\n  B: {{ output_b }}\n  (baseline: {{ baseline_output }})\n")
    j = make_judge(server.url, tmp_path, rubric="my_rubric.yaml", mode="pairwise",
                   baseline={("a", 0): "long [[judge:1]]"})
    [s] = score(j, [rec("a", "short [[judge:2]]")])
    assert s.extra["verdict"] == "win"
    # both orders are asked at once, so they may arrive in either order
    firsts = sorted(p.split("\n")[1] for p in server.state.prompts)
    assert firsts == ["A: long [[judge:1]]", "A: short [[judge:2]]"]
    assert all(p.startswith("Which is shorter?") and "(baseline: long [[judge:1]])" in p for p in server.state.prompts)
    # pairwise variables are not available to the pointwise prompt
    _rubric(tmp_path, "choices: {good: 1, bad: 0}\nprompt: |\n  {{ output_a }}\n")
    with pytest.raises(UsageError, match=r"my_rubric.yaml:3: unknown variable 'output_a' in 'prompt'"):
        load_rubric("my_rubric.yaml", tmp_path)
