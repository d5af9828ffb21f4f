"""The judge through the real CLI (``python -m evalrun run`` in a subprocess) against a local
OpenAI-format server: scores and judge numbers land in the run, a re-run makes no judge
calls, and the API key never reaches the disk or the output. Also ``evalrun scorers list``,
from the checkout and from a built wheel."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import REPO, invoke_cli
from tests.openai_server import OpenAIServer

DATA = """\
items:
  - {id: fr, input: Capital of France?, expected_output: Paris}
  - {id: de, input: Capital of Germany?, expected_output: Berlin}
  - {id: it, input: Capital of Italy?, expected_output: Rome}
  - {id: es, input: Capital of Spain?, expected_output: Madrid}
  - {id: xx, input: Capital of Atlantis?, expected_output: Poseidonia}
"""

TARGET = """\
ANSWERS = {"France": "Paris [[judge:correct]]", "Germany": "Berlin [[judge:correct]]",
           "Italy": "Milan [[judge:incorrect]]", "Spain": "Madrid, I think [[judge:partially_correct]]"}


def answer(question):
    for country, reply in ANSWERS.items():
        if country in question:
            return reply
    return "No idea [[judge:incorrect]]"
"""

TONE = """\
description: Is the tone friendly?
scale: [1, 5]
threshold: 0.5
prompt: |
  Rate the friendliness of this reply to "{{ input }}" [[judge:4|5]]
  {{ output }}
"""

EVAL = """\
name: judged
dataset: data.yaml
target:
  python: tgt:answer
scorers:
  - name: judge
    type: llm_judge
    rubric: correctness
    model: gpt-4o-mini
    base_url: ${JUDGE_URL}
    retries: 1
    concurrency: 4
  - name: tone
    type: llm_judge
    rubric: scorers/tone.yaml
    model: gpt-4o-mini
    base_url: ${JUDGE_URL}
    samples: 2
"""


def _suite(tmp_path: Path) -> Path:
    (tmp_path / "data.yaml").write_text(DATA)
    (tmp_path / "tgt.py").write_text(TARGET)
    (tmp_path / "scorers").mkdir()
    (tmp_path / "scorers" / "tone.yaml").write_text(TONE)
    (tmp_path / "eval.yaml").write_text(EVAL)
    return tmp_path


def test_run_scores_caches_and_keeps_the_key_off_disk(tmp_path):
    suite = _suite(tmp_path)
    home = tmp_path / "home"
    key = "sk-evalrun-secret-" + secrets.token_hex(16)
    with OpenAIServer(require_key=key) as srv:
        env = {"OPENAI_API_KEY": key, "JUDGE_URL": srv.url}
        r1 = invoke_cli("run", "eval.yaml", "--output-dir", str(home), "--json", cwd=suite, env=env)
        assert r1.returncode == 0, r1.stderr
        after_first = srv.state.requests
        r2 = invoke_cli("run", "eval.yaml", "--output-dir", str(home), "--json", cwd=suite, env=env)
        assert r2.returncode == 0, r2.stderr
        after_second = srv.state.requests
        auth = srv.state.auth_headers

    # first run: 5 correctness calls, 5 x 2 tone samples
    assert after_first == 5 + 10
    assert after_second == after_first, "an unchanged re-run must not call the judge"
    assert auth == {f"Bearer {key}"}

    s1, s2 = json.loads(r1.stdout), json.loads(r2.stdout)
    judge = s1["scorers"]["judge"]
    assert (judge["n"], judge["passed"], judge["failed"], judge["errors"]) == (5, 2, 3, 0)
    assert judge["mean"] == (1 + 1 + 0 + 0.5 + 0) / 5
    assert judge["rubric"] == "correctness" and judge["judge_calls"]["calls"] == 5
    tone = s1["scorers"]["tone"]
    assert tone["judge_agreement"] == {"mean": 0.5, "unanimous": 0.0, "records": 5}
    assert tone["mean"] == (0.75 + 1.0) / 2 and tone["passed"] == 5
    assert s1["scorer_usage"]["judge"]["calls"] == 15
    assert s2["scorer_usage"]["judge"]["calls"] == 0 and s2["scorer_usage"]["judge"]["cache_hits"] == 15
    assert s2["scorers"]["judge"]["mean"] == judge["mean"]

    run_dir = Path(s1["run_id"]) if Path(s1["run_id"]).is_dir() else home / "runs" / s1["run_id"]
    records = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert len(records) == 5
    for rec in records:
        assert rec["scores"]["judge"]["value"] is not None and rec["scores"]["tone"]["value"] is not None
    milan = next(r for r in records if r["item_id"] == "it")
    assert milan["scores"]["judge"]["reason"] == "The marker says incorrect."

    # the key appears nowhere under the run home (runs, cache database and its WAL) or in output
    files = [p for p in home.rglob("*") if p.is_file()]
    assert any(p.name.startswith("cache.sqlite") for p in files)
    for p in files:
        assert key.encode() not in p.read_bytes(), f"API key found in {p}"
    for out in (r1.stdout, r1.stderr, r2.stdout, r2.stderr):
        assert key not in out


def test_bad_key_marks_records_and_never_prints_it(tmp_path):
    suite = _suite(tmp_path)
    home = tmp_path / "home"
    wrong = "sk-wrong-" + secrets.token_hex(8)
    with OpenAIServer(require_key="sk-the-right-one") as srv:
        r = invoke_cli("run", "eval.yaml", "--output-dir", str(home), "--json", cwd=suite,
                    env={"OPENAI_API_KEY": wrong, "JUDGE_URL": srv.url})
    # scorer errors mark records; a judge that fails on every record ends the run: exit 3
    assert r.returncode == 3, r.stderr
    summary = json.loads(r.stdout)
    assert summary["status"] == "failed" and "Incorrect API key provided" in summary["failure"]
    assert summary["scorers"]["judge"]["errors"] == 5 and summary["scorers"]["tone"]["errors"] == 5
    records = [json.loads(line) for line in (next((home / "runs").iterdir()) / "results.jsonl").read_text().splitlines()]
    for rec in records:  # every record carries the error on each judge's score
        assert all(sc["value"] is None and sc["error"].startswith("judge: ") for sc in rec["scores"].values())
    for p in home.rglob("*"):
        if p.is_file():
            assert wrong.encode() not in p.read_bytes()
    text = (next((home / "runs").iterdir()) / "results.jsonl").read_text()
    assert "HTTP 401" in text and "check the API key" in text


def test_scorers_list_from_checkout():
    r = invoke_cli("scorers", "list")
    assert r.returncode == 0, r.stderr
    assert "llm_judge" in r.stdout
    for name in ("correctness", "faithfulness", "relevance", "refusal"):
        assert f"  {name} " in r.stdout


def test_scorers_list_from_a_built_wheel(tmp_path):
    """The rubrics ship as package data: a wheel (not the checkout) lists and loads them."""
    build = subprocess.run([sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(tmp_path / "dist")],
                           cwd=REPO, capture_output=True, text=True, timeout=120)
    assert build.returncode == 0, build.stderr
    wheel = next((tmp_path / "dist").glob("evalrun_cli-*.whl"))
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    env = {**os.environ, "PYTHONPATH": str(site)}
    probe = subprocess.run([sys.executable, "-c", "import evalrun, sys; print(evalrun.__file__)"], cwd=tmp_path,
                           env=env, capture_output=True, text=True, timeout=60)
    assert probe.stdout.strip().startswith(str(site)), probe.stdout + probe.stderr
    r = subprocess.run([sys.executable, "-m", "evalrun", "scorers", "list", "--json"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    listed = json.loads(r.stdout)
    assert [x["name"] for x in listed["rubrics"]] == ["correctness", "faithfulness", "refusal", "relevance"]


PAIR_TARGET = """\
import os

NEW = {"a": "[[judge:5]]", "b": "[[judge:1]]", "c": "[[judge:3]]"}


def answer(question):
    if os.environ["ANSWER_VERSION"] == "old":
        return "old answer [[judge:3]]"
    return "new answer " + NEW[question]
"""


def test_pairwise_against_a_baseline_run(tmp_path):
    (tmp_path / "data.yaml").write_text("items:\n  - {id: a, input: a}\n  - {id: b, input: b}\n  - {id: c, input: c}\n")
    (tmp_path / "tgt.py").write_text(PAIR_TARGET)
    head = "name: pw\ndataset: data.yaml\ntarget:\n  python: tgt:answer\n"
    (tmp_path / "base.yaml").write_text(head + "scorers:\n  - contains\n")
    (tmp_path / "pair.yaml").write_text(head + "scorers:\n  - name: vs_baseline\n    type: llm_judge\n"
                                        "    rubric: relevance\n    model: local-judge\n    base_url: ${JUDGE_URL}\n"
                                        "    mode: pairwise\n")
    home = tmp_path / "home"
    with OpenAIServer() as srv:
        env = {"JUDGE_URL": srv.url}
        r0 = invoke_cli("run", "base.yaml", "--output-dir", str(home), "--json", cwd=tmp_path,
                     env={**env, "ANSWER_VERSION": "old"})
        assert r0.returncode == 0, r0.stderr
        base_id = json.loads(r0.stdout)["run_id"]
        r1 = invoke_cli("run", "pair.yaml", "--output-dir", str(home), "--json", "--baseline", base_id, cwd=tmp_path,
                     env={**env, "ANSWER_VERSION": "new"})
        assert r1.returncode == 0, r1.stderr
        prompts = list(srv.state.prompts)
    s = json.loads(r1.stdout)["scorers"]["vs_baseline"]
    assert s["pairwise"] == {"win": 1, "tie": 1, "loss": 1, "order_consistency": 1.0}
    assert s["mean"] == 0.5 and s["judge_calls"]["calls"] == 6
    # both orders were asked: the new output once as response A, once as response B
    pos = [(p.index("new answer") < p.index("old answer")) for p in prompts]
    assert sorted(pos) == [False] * 3 + [True] * 3
