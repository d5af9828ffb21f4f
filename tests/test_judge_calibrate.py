"""``evalrun judge calibrate`` through the real CLI against the local OpenAI-compatible judge
(tests/openai_server.py), whose agreement with the human labels is set: a judge model named
``flip-P`` answers against the marker on a share P of prompts. With balanced labels the
population kappa is 1 - 2P, so ``flip-0.3`` is a kappa-0.4 judge and ``flip-0.1`` a kappa-0.8 one.

Also the certificate: written bound to the judge's fingerprint, shown in a run's reports,
stale after a rubric edit, and a ``require: {kappa: 0.6}`` that makes the first judge's gates
advisory and the second's binding."""

from __future__ import annotations

import json
import random
from pathlib import Path

from evalrun.agreement import binary_agreement, cohen_kappa
from tests.conftest import invoke_cli
from tests.openai_server import OpenAIServer

N = 300

RUBRIC = """\
description: Does the answer pass?
choices:
  pass: 1.0
  fail: 0.0
threshold: 1.0
prompt: |
  Question: {{ input }}
  Answer: {{ output }}
"""

TARGET = """\
def answer(question):
    # every answer carries the marker the judge stand-in reads: [[judge:fail]] everywhere,
    # so a gate on the judge's pass rate fails
    return question + " [[judge:fail]]"
"""


def _eval(model: str, require: str = "") -> str:
    return f"""\
name: cal
dataset: data.jsonl
target:
  python: tgt:answer
scorers:
  - name: grader
    type: llm_judge
    rubric: rubric.yaml
    model: {model}
    base_url: ${{JUDGE_URL}}
    retries: 0
{require}gates:
  - grader.pass_rate >= 0.5
"""


def _suite(tmp_path: Path, seed: int = 7) -> tuple[Path, list[bool]]:
    rng = random.Random(seed)
    truth = [True] * (N // 2) + [False] * (N // 2)
    rng.shuffle(truth)
    with (tmp_path / "data.jsonl").open("w") as f:
        for i in range(N):
            f.write(json.dumps({"id": f"q{i}", "input": f"question {i}",
                                "metadata": {"lang": "en" if i % 2 else "de"}}) + "\n")
    with (tmp_path / "labels.jsonl").open("w") as f:
        for i, ok in enumerate(truth):
            mark = "pass" if ok else "fail"
            f.write(json.dumps({"item_id": f"q{i}", "label": mark, "output": f"answer {i} [[judge:{mark}]]"}) + "\n")
    (tmp_path / "rubric.yaml").write_text(RUBRIC)
    (tmp_path / "tgt.py").write_text(TARGET)
    return tmp_path, truth


def _calibrate(suite: Path, env: dict[str, str], *extra: str) -> dict:
    r = invoke_cli("judge", "calibrate", "eval.yaml", "--labels", "labels.jsonl", "--output-dir", str(suite / "home"),
                   "--json", *extra, cwd=suite, env=env)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_calibrate_recovers_known_agreement_and_gates_follow_the_requirement(tmp_path):
    suite, _ = _suite(tmp_path)
    require = "    require: {kappa: 0.6}\n"
    with OpenAIServer() as srv:
        env = {"JUDGE_URL": srv.url, "OPENAI_API_KEY": "k"}
        results = {}
        for model, kappa in (("flip-0.3", 0.4), ("flip-0.1", 0.8)):
            (suite / "eval.yaml").write_text(_eval(model, require))
            rep = _calibrate(suite, env, "--by", "metadata.lang")
            k = rep["agreement"]["kappa"]
            assert k["ci95"][0] <= kappa <= k["ci95"][1], (model, k)
            assert abs(k["kappa"] - kappa) < 0.1
            assert rep["judged"] == N and rep["errors"]["count"] == 0
            pf = rep["agreement"]["pass_fail"]
            assert sum(pf["confusion"].values()) == N and pf["base_rate"] == 0.5
            assert set(rep["by_slice"]["metadata.lang"]) == {"en", "de"}
            cert = json.loads((suite / "calibration" / "grader.json").read_text())
            assert cert["agreement"]["kappa"]["kappa"] == k["kappa"] and cert["labels"]["n"] == N

            # a run with this judge: the header line names the calibration; the failing gate
            # is advisory with the kappa-0.4 judge and binding with the kappa-0.8 one
            run = invoke_cli("run", "eval.yaml", "--output-dir", str(suite / "home"), "--report", "markdown:report.md",
                             cwd=suite, env=env)
            results[model] = run
            md = (suite / "report.md").read_text()
            assert f"calibrated: κ {k['kappa']:.2f}" in md and f"on {N} labels" in md
        assert results["flip-0.3"].returncode == 0, results["flip-0.3"].stdout + results["flip-0.3"].stderr
        assert "ADVISORY" in results["flip-0.3"].stdout and "gates are advisory" in results["flip-0.3"].stdout
        assert results["flip-0.1"].returncode == 1, results["flip-0.1"].stdout
        assert "gates bind" in results["flip-0.1"].stdout


def test_agreement_matches_an_independent_count(tmp_path):
    """The CLI's kappa is the kappa of the judge's verdicts (read back from the server's
    answers) against the labels, computed here from the raw counts."""
    suite, truth = _suite(tmp_path, seed=3)
    with OpenAIServer() as srv:
        (suite / "eval.yaml").write_text(_eval("flip-0.2"))
        rep = _calibrate(suite, {"JUDGE_URL": srv.url, "OPENAI_API_KEY": "k"}, "--no-write")
        prompts = list(srv.state.prompts)
    assert not (suite / "calibration").exists()
    # which answers the stand-in flipped: reproduce its rule from the prompts it received
    from tests.openai_server import _noisy

    by_item = {}
    for p in prompts:
        i = int(p.split("answer ")[1].split(" ")[0])
        by_item[i] = _noisy("flip-0.2", p, "choice", ["pass", "fail"], "pass" if truth[i] else "fail") == "pass"
    judge = [by_item[i] for i in range(N)]
    ref = binary_agreement(judge, truth)
    assert rep["agreement"]["kappa"]["kappa"] == round(ref.kappa.value, 4)
    assert rep["agreement"]["pass_fail"]["confusion"] == {"tp": ref.tp, "fp": ref.fp, "fn": ref.fn, "tn": ref.tn}


def test_position_bias_detected_on_a_pairwise_judge(tmp_path):
    rng = random.Random(11)
    (tmp_path / "data.jsonl").write_text("".join(json.dumps({"id": f"p{i}", "input": f"q{i}"}) + "\n"
                                                 for i in range(N)))
    (tmp_path / "rubric.yaml").write_text(RUBRIC)
    (tmp_path / "tgt.py").write_text(TARGET)
    rows = []
    biased = set(rng.sample(range(N), N // 5))  # 20% of pairs: the judge always answers A
    for i in range(N):
        better = rng.random() < 0.5
        out_v, base_v = (4, 2) if better else (2, 4)
        bias = " [[bias:A]]" if i in biased else ""
        rows.append({"item_id": f"p{i}", "label": "win" if better else "loss",
                     "output": f"candidate [[judge:{out_v}]]{bias}", "baseline_output": f"other [[judge:{base_v}]]"})
    (tmp_path / "labels.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "eval.yaml").write_text(_eval("gpt-4o-mini").replace("    retries: 0\n",
                                                                     "    retries: 0\n    mode: pairwise\n"))
    with OpenAIServer() as srv:
        rep = _calibrate(tmp_path, {"JUDGE_URL": srv.url, "OPENAI_API_KEY": "k"})
        asked = srv.state.requests
    assert asked == 2 * N  # both orders, every pair
    pos = rep["probes"]["position"]
    assert pos["pairs"] == N and pos["detected"] is True
    assert pos["inconsistent"]["count"] == len(biased)
    lo, hi = pos["inconsistent"]["ci95"]
    assert lo <= 0.2 <= hi
    assert pos["inconsistent_favouring_a"]["value"] == 1.0
    # inconsistent pairs are ties: the kappa over loss/tie/win is below 1 by exactly them
    k = rep["agreement"]["kappa"]
    human = [r["label"] for r in rows]
    judge = ["tie" if i in biased else human[i] for i in range(N)]
    assert k["kappa"] == round(cohen_kappa(judge, human, labels=["loss", "tie", "win"]).value, 4)


def test_length_probe_and_self_consistency(tmp_path):
    suite, _ = _suite(tmp_path)
    (suite / "eval.yaml").write_text(_eval("gpt-4o-mini"))
    with OpenAIServer() as srv:
        env = {"JUDGE_URL": srv.url, "OPENAI_API_KEY": "k"}
        rep = _calibrate(suite, env, "--repeat", "2", "--probe", "length")
        first = srv.state.requests
        again = _calibrate(suite, env, "--repeat", "2", "--probe", "length")
        assert srv.state.requests == first, "a second calibration reads every verdict from the cache"
    assert first == 3 * N  # 2 repeats + the padded outputs
    assert rep["agreement"]["kappa"]["kappa"] == 1.0
    sc = rep["self_consistency"]
    assert sc["repeats"] == 2 and sc["unanimous"]["value"] == 1.0
    length = rep["probes"]["length"]
    assert length["n"] == N and length["score_change"]["mean"] == 0.0 and length["detected"] is False
    assert again["agreement"] == rep["agreement"]


def test_certificate_goes_stale_when_the_rubric_changes_and_refuse_stops_the_run(tmp_path):
    suite, _ = _suite(tmp_path)
    refuse = "    require: {kappa: 0.6, on_fail: refuse}\n"
    (suite / "eval.yaml").write_text(_eval("flip-0.1", refuse))
    with OpenAIServer() as srv:
        env = {"JUDGE_URL": srv.url, "OPENAI_API_KEY": "k"}
        # no certificate yet: refused before any call, at the scorer's line
        r = invoke_cli("run", "eval.yaml", "--output-dir", str(suite / "home"), cwd=suite, env=env)
        assert r.returncode == 2 and srv.state.requests == 0
        assert "eval.yaml:" in r.stderr and "uncalibrated" in r.stderr and "Traceback" not in r.stderr
        _calibrate(suite, env)
        calls = srv.state.requests
        r = invoke_cli("run", "eval.yaml", "--output-dir", str(suite / "home"), cwd=suite, env=env)
        assert r.returncode == 1 and "calibrated: κ" in r.stdout  # binding: the gate fails
        assert srv.state.requests == calls + N
        # a reworded rubric: the certificate no longer describes this judge
        (suite / "rubric.yaml").write_text(RUBRIC.replace("Does the answer pass?", "Is the answer right?"))
        r = invoke_cli("run", "eval.yaml", "--output-dir", str(suite / "home"), cwd=suite, env=env)
        assert r.returncode == 2 and "stale" in r.stderr


def test_bad_labels_are_one_line_with_file_and_line(tmp_path):
    suite, _ = _suite(tmp_path)
    (suite / "eval.yaml").write_text(_eval("gpt-4o-mini"))
    cases = {
        '{"item_id": "q1", "label": "pass", "output": "x"}\n{"item_id": "q2", "lable": "pass"}\n': "labels.jsonl:2",
        '{"item_id": "q1", "label": "maybe", "output": "x"}\n': "labels.jsonl:1",
        '{"item_id": "q1", "label": "pass", "output": "x"}\n{"item_id": "q1", "label": "fail", "output": "y"}\n':
            "labelled twice",
        '{"item_id": "nope", "label": "pass", "output": "x"}\n': "not in the eval's dataset",
        '{"item_id": "q1", "label": "pass"}\n': "no output to judge",
        'not json\n': "labels.jsonl:1",
    }
    with OpenAIServer() as srv:
        for text, expected in cases.items():
            (suite / "labels.jsonl").write_text(text)
            r = invoke_cli("judge", "calibrate", "eval.yaml", "--labels", "labels.jsonl", "--output-dir",
                           str(suite / "home"), cwd=suite, env={"JUDGE_URL": srv.url, "OPENAI_API_KEY": "k"})
            assert r.returncode == 2, (text, r.stdout, r.stderr)
            assert expected in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert srv.state.requests == 0


PANEL = """\
name: panel
dataset: data.jsonl
target:
  python: tgt2:answer
scorers:
  - name: panel
    type: judge_panel
    rubric: rubric.yaml
    base_url: ${JUDGE_URL}
    retries: 0
    reduce: majority
    judges:
      - {model: gpt-4o-mini}
      - {model: flip-0.3}
      - {model: flip-0.2}
"""


def _panel_suite(tmp_path: Path) -> tuple[Path, list[bool]]:
    suite, truth = _suite(tmp_path)
    (suite / "tgt2.py").write_text("def answer(q):\n    i = int(q.split()[1])\n"
                                   "    return f'answer {i} [[judge:' + ('pass' if i % 3 else 'fail') + ']]'\n")
    return suite, truth


def test_panel_majority_agreement_and_split_records(tmp_path):
    """Three judges, two of them noisy: each record's panel verdict is the majority of the three
    answers the server gave (recomputed here from its rule), the summary's unanimous share and
    split list are those records, and Fleiss' kappa matches statsmodels on the same ratings."""
    import numpy as np
    from statsmodels.stats.inter_rater import aggregate_raters
    from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss

    from tests.openai_server import _noisy

    suite, truth = _panel_suite(tmp_path)
    (suite / "eval.yaml").write_text(PANEL)
    with OpenAIServer() as srv:
        r = invoke_cli("run", "eval.yaml", "--output-dir", str(suite / "home"), "--json", cwd=suite,
                       env={"JUDGE_URL": srv.url, "OPENAI_API_KEY": "k"})
        assert r.returncode == 0, r.stderr
        prompts = {int(p.split("answer ")[1].split(" ")[0]): p for p in srv.state.prompts}
        assert srv.state.requests == 3 * N
    summary = json.loads(r.stdout)
    panel = summary["scorers"]["panel"]["panel"]
    ratings = []
    for i in range(N):
        marker = "pass" if i % 3 else "fail"
        ratings.append([marker, _noisy("flip-0.3", prompts[i], "choice", ["pass", "fail"], marker),
                        _noisy("flip-0.2", prompts[i], "choice", ["pass", "fail"], marker)])
    split = [i for i, r_ in enumerate(ratings) if len(set(r_)) > 1]
    assert panel["split"] == len(split) > 0
    assert panel["unanimous"] == round((N - len(split)) / N, 4)
    listed = panel["split_records"]
    assert len(listed) == min(50, len(split)) and {s["item_id"] for s in listed} <= {f"q{i}" for i in split}
    for s in listed:
        i = int(s["item_id"][1:])
        assert s["verdicts"] == dict(zip(["gpt-4o-mini", "flip-0.3", "flip-0.2"], ratings[i], strict=True))
    table = aggregate_raters(np.array([[1 if v == "pass" else 0 for v in r_] for r_ in ratings]))[0]
    assert abs(panel["fleiss_kappa"]["kappa"] - sm_fleiss(table)) < 1e-4
    majority_pass = sum(r_.count("pass") >= 2 for r_ in ratings)
    assert summary["scorers"]["panel"]["passed"] == majority_pass


def test_panel_member_error_is_the_records_error(tmp_path):
    suite, _ = _panel_suite(tmp_path)
    (suite / "eval.yaml").write_text(PANEL.replace("      - {model: flip-0.2}\n",
                                                   "      - {model: flip-0.2, api_key_env: OTHER_KEY}\n"))
    with OpenAIServer(require_key="k") as srv:
        r = invoke_cli("run", "eval.yaml", "--output-dir", str(suite / "home"), "--json", "--limit", "5",
                       cwd=suite, env={"JUDGE_URL": srv.url, "OPENAI_API_KEY": "k", "OTHER_KEY": "wrong"})
    summary = json.loads(r.stdout)
    panel = summary["scorers"]["panel"]
    assert panel["errors"] == 5 and panel["passed"] == 0
    run_dir = suite / "home" / "runs" / summary["run_id"]
    rec = json.loads((run_dir / "results.jsonl").read_text().splitlines()[0])
    assert rec["scores"]["panel"]["error"].startswith("panel judge flip-0.2: ")
    assert "wrong" not in r.stdout + r.stderr
