"""What an experiment in Langfuse holds: cost and usage (the target's generation, the judge's
evaluator calls), stable score data types, runs that stay apart, every trial of a repeat."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from tests.langfuse_server import FakeLangfuse
from tests.openai_server import OpenAIServer
from tests.test_langfuse import cli, records_of, run_dir_of, state_of

TARGET = '''
from evalrun.records import Score
from evalrun.targets import Output

def answer(question):
    n = int(question.split()[-1])
    return Output(f"answer {n}", usage={"input_tokens": 10 + n, "output_tokens": 3}, cost_usd=0.001 * (n + 1),
                  metadata={"model": "pipeline-model", "finish_reason": "stop",
                            "prompt": {"name": "answer-prompt", "version": 7, "labels": ["staging"]}})

def graded(output, expected_output):
    # whole-number values in one run, fractions in another: the data type must not follow them
    import os
    return Score(float(os.environ.get("GRADE", "1")), True)

def broken(output):
    return Score(float("nan"), None)
'''

EVAL = {
    "name": "costed", "dataset": "data.jsonl", "target": {"python": "tgt:answer", "retries": 0},
    "scorers": ["exact_match", {"name": "graded", "type": "python", "function": "tgt:graded"},
                {"name": "judge", "type": "llm_judge", "rubric": "correctness", "model": "gpt-4o-mini",
                 "base_url": "${JUDGE_URL}", "retries": 0}],
}


@pytest.fixture
def fake():
    with FakeLangfuse() as server:
        yield server
        assert server.errors == [], "contract violations:\n" + "\n".join(server.errors[:20])


def _project(root: Path, n: int = 4, **over: Any) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "tgt.py").write_text(TARGET)
    with open(root / "data.jsonl", "w") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"q{i}", "input": f"question {i}", "expected_output": f"answer {i}"}) + "\n")
    (root / "eval.yaml").write_text(json.dumps({**EVAL, **over}))
    return root


def _experiment_spans(fake: FakeLangfuse, exp_id: str) -> list[dict[str, Any]]:
    return [s for s in fake.spans if s["attributes"].get("langfuse.experiment.id") == exp_id]


def test_pushed_cost_equals_the_runs_cost(fake, tmp_path):
    root = _project(tmp_path / "p")
    with OpenAIServer() as judge:
        r = cli(fake, "run", "eval.yaml", "--output-dir", str(tmp_path / "h"), "--push", "langfuse", "--json",
                cwd=root, env={"OPENAI_API_KEY": "sk-test", "JUDGE_URL": judge.url})
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    run = run_dir_of(tmp_path / "h")
    exp_id = state_of(run)["context"]["experiment_id"]
    spans = _experiment_spans(fake, exp_id)
    gens = [s for s in spans if s["attributes"].get("langfuse.observation.type") == "generation"]
    evals = [s for s in spans if s["attributes"].get("langfuse.observation.type") == "evaluator"]
    assert len(gens) == 4 and len(evals) == 4
    # generations: the target's model, usage, cost and prompt version, under the task span
    for g in gens:
        a = g["attributes"]
        assert a["langfuse.observation.model.name"] == "pipeline-model"
        assert a["langfuse.observation.prompt.name"] == "answer-prompt"
        assert a["langfuse.observation.prompt.version"] == 7
        usage = json.loads(a["langfuse.observation.usage_details"])
        assert set(usage) == {"input", "output", "total"} and usage["output"] == 3
        assert usage["total"] == usage["input"] + 3
        task = [s for s in spans if s["span_id"] == g["parent_span_id"]]
        assert task and task[0]["name"] == "experiment-item-task"
    # evaluators: the judge's own model, tokens and cost
    for e in evals:
        a = e["attributes"]
        assert a["langfuse.observation.model.name"] == "gpt-4o-mini"
        assert json.loads(a["langfuse.observation.usage_details"])["input"] > 0
    cost = math.fsum(json.loads(s["attributes"]["langfuse.observation.cost_details"])["total"]
                     for s in spans if "langfuse.observation.cost_details" in s["attributes"])
    run_cost = summary["usage"]["cost_usd"] + summary["scorer_usage"]["judge"]["cost_usd"]
    assert summary["scorer_usage"]["judge"]["cost_usd"] > 0 and summary["usage"]["cost_usd"] == pytest.approx(0.01)
    assert cost == pytest.approx(run_cost, rel=1e-9, abs=1e-9)


def _types(fake: FakeLangfuse, run: Path) -> dict[str, str]:
    exp_id = state_of(run)["context"]["experiment_id"]
    items = [i for i in fake.experiment_items() if i["experimentId"] == exp_id]
    out: dict[str, str] = {}
    for it in items:
        for s in it["scores"]:
            assert out.setdefault(s["name"], s["dataType"]) == s["dataType"]
    return out


def test_score_data_types_do_not_follow_the_values(fake, tmp_path):
    scorers = ["exact_match", {"name": "graded", "type": "python", "function": "tgt:graded"}]
    root = _project(tmp_path / "p", scorers=scorers)
    types = []
    for grade in ("1", "0.25"):
        r = cli(fake, "run", "eval.yaml", "--output-dir", str(tmp_path / "h"), "--push", "langfuse", cwd=root,
                env={"GRADE": grade})
        assert r.returncode == 0, r.stderr
        types.append(_types(fake, run_dir_of(tmp_path / "h")))
    assert types[0] == types[1] == {"exact_match": "BOOLEAN", "graded": "NUMERIC", "graded.passed": "BOOLEAN"}


def test_score_data_type_overridden_in_the_eval_file(fake, tmp_path):
    scorers = [{"name": "graded", "type": "python", "function": "tgt:graded"}, "exact_match"]
    root = _project(tmp_path / "p", scorers=scorers,
                    langfuse={"score_types": {"graded": "BOOLEAN", "exact_match": "CATEGORICAL"}})
    r = cli(fake, "run", "eval.yaml", "--output-dir", str(tmp_path / "h"), "--push", "langfuse", cwd=root)
    assert r.returncode == 0, r.stderr
    assert _types(fake, run_dir_of(tmp_path / "h")) == {"graded": "BOOLEAN", "exact_match": "CATEGORICAL"}


def test_unsendable_and_non_finite_score_values_are_reported_not_dropped():
    from evalrun.langfuse import wire
    from evalrun.langfuse.push import Context, _item_scores, _item_spans, score_entries
    from evalrun.records import Record, Score

    # a value that does not fit the declared type is reported
    assert score_entries("s", Score(0.5, None), "BOOLEAN") == ([], "s: value 0.5 is not a verdict (BOOLEAN)")
    assert score_entries("s", Score(0.5, True), "BOOLEAN") == ([("s", 1.0, "BOOLEAN")], None)
    ctx = Context(run_id="r", run_name="n", description=None, metadata={}, experiment_id="e", dataset_name=None,
                  dataset_id=None, dataset_version=None, base_url="http://x", score_types={"s": "BOOLEAN"})
    problems: dict[str, str] = {}
    rec = Record("q1", 0, "in", scores={"s": Score(0.5, None), "t": Score(0.5, None), "u": Score(float("nan"))})
    sent = _item_scores(ctx, rec, "a" * 32, 0.0, problems)
    assert [b["name"] for b in sent] == ["t"]
    assert list(problems.values()) == ["item q1 trial 0: s: value 0.5 is not a verdict (BOOLEAN)"]
    # a NaN is a scorer error (records.Score), which the item's trace carries in its metadata
    assert score_entries("u", rec.scores["u"], "NUMERIC") == ([], None)
    task = _item_spans(ctx, rec, "a" * 32, 0.0)[0]
    errors = json.loads(task.attributes[wire.METADATA + ".scorer_errors"])
    assert "not a finite number (nan)" in errors["u"]


def test_a_run_name_names_one_run(fake, tmp_path):
    root = _project(tmp_path / "p", scorers=["exact_match"], langfuse={"run_name": "nightly-local"})
    r1 = cli(fake, "run", "eval.yaml", "--output-dir", str(tmp_path / "h"), "--push", "langfuse", cwd=root)
    assert r1.returncode == 0, r1.stderr
    first = run_dir_of(tmp_path / "h")
    before = len(fake.spans)
    r2 = cli(fake, "run", "eval.yaml", "--output-dir", str(tmp_path / "h"), "--push", "langfuse", cwd=root)
    assert r2.returncode == 0, r2.stderr  # the push never changes the run's exit code
    lines = [x for x in r2.stderr.splitlines() if "nightly-local" in x and "already used" in x]
    assert lines and f"run {first.name}" in lines[-1] and "Traceback" not in r2.stderr
    assert len(fake.spans) == before, "nothing of the second run may merge into the first run's experiment"
    # the first run, pushed again, is still itself
    r3 = cli(fake, "push", first.name, "--output-dir", str(tmp_path / "h"), cwd=root)
    assert r3.returncode == 0, r3.stderr
    assert len([e for e in fake.experiments() if e["name"] == "nightly-local"]) == 1


def test_every_trial_of_a_repeat_is_visible(fake, tmp_path):
    """Repeats as Langfuse models them: one trace per trial sharing the experiment item id, each
    trial's scores on its own root observation (where Langfuse reads an item's scores). The
    read-back of a repeated run: tests/test_langfuse_servers.py."""
    root = _project(tmp_path / "p", n=3, scorers=["exact_match"], repeat=3)
    r = cli(fake, "run", "eval.yaml", "--output-dir", str(tmp_path / "h"), "--push", "langfuse", cwd=root)
    assert r.returncode == 0, r.stderr
    run = run_dir_of(tmp_path / "h")
    exp_id = state_of(run)["context"]["experiment_id"]
    recs = records_of(run)
    assert len(recs) == 9
    items = [i for i in fake.experiment_items() if i["experimentId"] == exp_id]
    assert sorted(i["experimentItemId"] for i in items) == sorted(["q0", "q1", "q2"] * 3)
    assert len({i["traceId"] for i in items}) == 9
    for it in items:
        scores = [s for s in it["scores"] if s["name"] == "exact_match"]
        assert len(scores) == 1 and scores[0]["subject"] == {"kind": "observation", "id": it["id"],
                                                             "traceId": it["traceId"]}
