"""No silent passes (issue 21, errors and cannot-judge): an error is a failure in every number and
is shown; infrastructure failure is exit 3 with its reason; the baseline's errors are not the
candidate's improvements; a gate that cannot be judged does not pass. Each case runs through the
real CLI (the ``cli`` fixture), with real targets, a real judge endpoint on 127.0.0.1 or none."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from evalrun.errors import ExitCode
from tests.conftest import REPO, invoke_cli
from tests.openai_server import OpenAIServer

N = 100
# a pipeline whose behaviour per input a file decides: ok (answers), wrong, crash (raises)
PIPELINE = '''
import json
from pathlib import Path


def answer(x):
    how = json.loads(Path("behaviour.json").read_text()).get(x, "ok")
    if how == "crash":
        raise RuntimeError("pipeline crashed on " + x)
    return "nope" if how == "wrong" else x
'''


def suite(root: Path, extra: str = "", items: int = N, meta: dict | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pipeline.py").write_text(PIPELINE)
    rows = [{"id": f"i{i:02d}", "input": f"q{i:02d}", "expected_output": f"q{i:02d}",
             "metadata": dict(meta or {})} for i in range(items)]
    (root / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "eval.yaml").write_text("name: crashy\ndataset: data.jsonl\ntarget:\n  python: pipeline:answer\n"
                                    "  retries: 0\nscorers: [exact_match]\n" + extra)
    return root


def behave(root: Path, **how: list[int]) -> None:
    """Which items answer wrong or crash (the rest answer right)."""
    (root / "behaviour.json").write_text(json.dumps({f"q{i:02d}": kind for kind, ids in how.items() for i in ids}))


def run(root: Path, *args: str):
    return invoke_cli("run", "eval.yaml", "--output-dir", str(root / ".evalrun"), *args, cwd=root)


def newest(root: Path) -> Path:
    from evalrun.store import list_runs

    return list_runs(root / ".evalrun")[-1].path


def summary(root: Path) -> dict:
    return json.loads((newest(root) / "summary.json").read_text())


def gates(report: Path) -> dict[str, dict]:
    return {g["gate"]: g for g in json.loads(report.read_text())["gates"]}


def against_baseline(root: Path, before: dict, after: dict, *args: str):
    """A baseline run with the ``before`` behaviour, then a candidate with ``after`` compared with
    it (a JSON report beside the suite): (the candidate's CLI result, its gates by text)."""
    behave(root, **before)
    assert run(root).returncode == 0
    base = newest(root)
    behave(root, **after)
    r = run(root, "--baseline", str(base), "--report", f"json:{root / 'v.json'}", *args)
    return r, gates(root / "v.json")


WRONG = list(range(10))  # the baseline's own failures
CRASH = list(range(40, 55))  # 15 items the baseline passed


# --- 1. an error is a failure, everywhere, and shown ------------------------------------------

def test_target_errors_count_as_failures_in_every_number_and_gate(tmp_path):
    root = suite(tmp_path, "error_budget: 0.2\ngates:\n  - exact_match.mean >= baseline - 0.02\n"
                           "  - exact_match.pass_rate >= 0.85\n  - exact_match.mean >= 0.85\n")
    r, g = against_baseline(root, {"wrong": WRONG}, {"wrong": WRONG, "crash": CRASH},
                            "--report", f"md:{tmp_path / 'v.md'}", "--report", f"junit:{tmp_path / 'j.xml'}")
    assert r.returncode == ExitCode.GATE_FAILED, r.stdout + r.stderr
    s = summary(root)["scorers"]["exact_match"]
    # the truth: 75 of 100 right; not 75 of the 85 that answered (0.882)
    assert (s["n"], s["pass_rate"], s["mean"], s["target_errors"], s["error_failures"]) == (100, 0.75, 0.75, 15, 15)
    assert s["pass_ci95"][1] < 0.85
    assert all(x["verdict"] == "fail" for x in g.values()), g
    assert g["exact_match.mean >= baseline - 0.02"]["n"] == 100
    assert abs(g["exact_match.mean >= baseline - 0.02"]["diff"] - (-0.15)) < 1e-9
    # one pass rate in the report, shown with the errors next to n, and the messages
    assert "75.0%" in r.stdout and "88.2%" not in r.stdout
    assert "n 100 · errors counted as failures: 15 target errors" in r.stdout
    assert "RuntimeError: pipeline crashed on q4" in r.stdout
    md = (tmp_path / "v.md").read_text()
    assert "errors counted as failures" in md and "pipeline crashed on" in md and "88.2" not in md
    junit = (tmp_path / "j.xml").read_text()
    assert junit.count("pipeline crashed on") >= 15


def test_errors_over_the_default_budget_end_the_run_with_exit_3_and_say_why(tmp_path):
    root = suite(tmp_path)
    behave(root, crash=CRASH)
    r = run(root)
    assert r.returncode == ExitCode.RUN_FAILED
    out = r.stdout + r.stderr
    assert "15 of 100 (15.0%) target calls failed, over the error budget of 5%" in out
    assert "RuntimeError: pipeline crashed on" in out
    assert "error budget: target calls 5% · exact_match 5%" in out
    s = summary(root)
    assert s["status"] == "failed" and s["error_budget"] == {"target": 0.05, "scorers": {"exact_match": 0.05}}
    assert s["error_samples"]["target"][0]["message"].startswith("RuntimeError: pipeline crashed on q4")


def test_errors_within_the_budget_finish_the_run(tmp_path):
    root = suite(tmp_path)
    behave(root, crash=[3, 7])
    r = run(root, "--json")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)["scorers"]["exact_match"]
    assert (s["n"], s["pass_rate"], s["error_failures"]) == (100, 0.98, 2)
    r = run(root)  # the budget is printed on every run
    assert r.returncode == 0 and "error budget: target calls 5% · exact_match 5%" in r.stdout


def test_exclude_errors_is_the_eval_files_choice_and_every_report_says_so(tmp_path):
    root = suite(tmp_path, "error_budget: 0.2\nexclude_errors: true\n")
    behave(root, wrong=WRONG, crash=CRASH)
    r = run(root, "--report", f"md:{tmp_path / 'v.md'}")
    assert r.returncode == 0, r.stderr
    s = summary(root)
    assert s["exclude_errors"] is True
    e = s["scorers"]["exact_match"]
    assert (e["n"], e["pass_rate"], e["error_failures"], e["target_errors"]) == (85, round(75 / 85, 6), 0, 15)
    assert "errors left out of every number (exclude_errors: true): 15 target errors" in r.stdout
    assert "errors left out of every number (exclude\\_errors: true)" in (tmp_path / "v.md").read_text()


# --- 2. infrastructure failure is exit 3, not a verdict -------------------------------------

def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_demo_suite_with_the_judge_unreachable_exits_3_and_prints_the_connection_error(tmp_path):
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "capitals.py").write_text((REPO / "examples" / "capitals.py").read_text())
    demo = (REPO / "evalrun.yaml").read_text().replace("datasets/capitals.yaml",
                                                       str(REPO / "datasets" / "capitals.yaml"))
    demo += ("  - {name: judge, type: llm_judge, rubric: correctness, model: m, retries: 0,\n"
             f"     base_url: 'http://127.0.0.1:{closed_port()}/v1'}}\n"
             "gates:\n  - exact_match.pass_rate >= 0.5\n  - errors <= 5%\n")
    (tmp_path / "evalrun.yaml").write_text(demo)
    r = invoke_cli("run", "--output-dir", str(tmp_path / ".evalrun"), cwd=tmp_path, env={"OPENAI_API_KEY": "sk-x"})
    out = r.stdout + r.stderr
    assert r.returncode == ExitCode.RUN_FAILED, out
    assert "scorer judge failed on every record" in out
    assert "onnect" in out  # the connection error itself (refused), as the judge's client put it
    s = summary(tmp_path)
    assert s["scorers"]["judge"]["errors"] == s["records"] and s["scorer_errors"] == s["records"]
    assert s["error_samples"]["scorers"]["judge"]
    # the per-scorer errors column stays when gates exist
    header = next(line for line in r.stdout.splitlines() if "scorer" in line and "errors" in line)
    assert "pass rate" in header


def test_a_wrong_chat_key_prints_the_servers_message(tmp_path):
    with OpenAIServer(require_key="sk-right-key-123456") as srv:
        root = tmp_path
        (root / "data.jsonl").write_text("".join(json.dumps({"id": f"c{i}", "input": {"q": f"q{i}"},
                                                             "expected_output": "x"}) + "\n" for i in range(3)))
        (root / "p.yaml").write_text("name: p\nmessages:\n  - role: user\n    content: '{{ q }}'\n")
        (root / "eval.yaml").write_text(
            "name: chatty\ndataset: data.jsonl\ntarget:\n  chat:\n"
            f"    base_url: {srv.url}\n    model: m\n    prompt: p.yaml\n"
            "  retries: 0\nscorers: [exact_match]\n")
        r = invoke_cli("run", "eval.yaml", "--output-dir", str(root / ".evalrun"), cwd=root,
                       env={"OPENAI_API_KEY": "sk-wrong-key-999999"})
    out = r.stdout + r.stderr
    assert "Incorrect API key provided" in out  # the server's message, where the user looks
    assert r.returncode == ExitCode.RUN_FAILED, out
    assert "every target call failed (3 of 3)" in out
    assert "sk-wrong-key-999999" not in out


# --- 3. the baseline's errors are not the candidate's improvements ----------------------------

def test_baseline_errors_do_not_hide_the_candidates_regressions(tmp_path):
    root = suite(tmp_path, "error_budget: 0.2\ngates:\n  - exact_match.pass_rate >= baseline - 0.02\n")
    # transient errors in the baseline; 8 real regressions, and the baseline's errors now answer
    r, g = against_baseline(root, {"crash": list(range(90, 100))}, {"wrong": list(range(8))},
                            "--report", f"md:{tmp_path / 'v.md'}", "--report", f"html:{tmp_path / 'v.html'}")
    assert r.returncode != 0, r.stdout
    g = g["exact_match.pass_rate >= baseline - 0.02"]
    assert g["verdict"] in ("fail", "incomplete") and g["blocks"]
    assert g["n"] == 90 and g["diff"] < -0.08  # the ten are left out, not counted as improvements
    assert "10 of 100 items (10%) errored in the baseline" in g["note"]
    doc = json.loads((root / "v.json").read_text())["comparison"]
    assert doc["baseline_errored"] == [f"i{i}" for i in range(90, 100)]
    assert doc["scorers"]["exact_match"]["improvements"] == []
    assert "10 errored in the baseline (left out of the pairs)" in r.stdout
    warning = "10 items errored in the baseline and are left out of the paired comparison"
    for text in (r.stdout, (tmp_path / "v.md").read_text(), (tmp_path / "v.html").read_text()):
        assert warning in text


def test_a_gate_losing_a_material_share_of_pairs_to_baseline_errors_cannot_pass(tmp_path):
    root = suite(tmp_path, "error_budget: 0.2\ngates:\n  - exact_match.pass_rate >= baseline - 0.02\n")
    r, g = against_baseline(root, {"crash": list(range(90, 100))}, {})  # nothing changed on the 90 pairs
    assert r.returncode == ExitCode.INCOMPLETE, r.stdout
    g = g["exact_match.pass_rate >= baseline - 0.02"]
    assert g["verdict"] == "incomplete" and "cannot be judged" in g["note"]
    assert "verdict: INCOMPLETE" in r.stdout


# --- 4. cannot judge means cannot pass ---------------------------------------------------------

def test_one_cluster_and_a_30_point_drop_is_not_a_pass(tmp_path):
    root = suite(tmp_path, "error_budget: 0.2\ncluster: doc\ngates:\n  - exact_match.mean >= baseline - 0.02\n",
                 meta={"doc": "the-only-one"})
    r, g = against_baseline(root, {}, {"wrong": list(range(30))}, "--report", f"junit:{tmp_path / 'j.xml'}")
    assert r.returncode == ExitCode.INCOMPLETE, r.stdout
    assert 'type="gate-incomplete"' in (tmp_path / "j.xml").read_text()
    g = g["exact_match.mean >= baseline - 0.02"]
    assert g["verdict"] == "incomplete" and g["blocks"] and g["ci95"] is None
    assert abs(g["diff"] - (-0.3)) < 1e-9  # the point estimate is shown all the same
    assert "too few clusters" in g["note"]
    assert "verdict: INCOMPLETE (1 could not be judged)" in r.stdout
    assert json.loads((root / "v.json").read_text())["verdict"] == "incomplete"


def test_the_eval_file_may_let_one_gate_pass_when_it_cannot_be_judged(tmp_path):
    root = suite(tmp_path, "cluster: doc\ngates:\n  - {gate: exact_match.mean >= baseline - 0.02, incomplete: pass}\n",
                 meta={"doc": "the-only-one"})
    r, g = against_baseline(root, {}, {})
    assert r.returncode == 0, r.stdout
    g = g["exact_match.mean >= baseline - 0.02"]
    assert g["verdict"] == "incomplete" and g["blocks"] is False
    assert "INCOMPLETE" in r.stdout


def test_a_bad_incomplete_rule_is_a_usage_error_at_its_line(tmp_path):
    root = suite(tmp_path, "gates:\n  - {gate: exact_match.mean >= 0.5, incomplete: maybe}\n")
    behave(root)
    r = run(root)
    assert r.returncode == ExitCode.USAGE
    assert "eval.yaml:8" in r.stderr and "incomplete must be fail or pass" in r.stderr


# --- the same rules on records (the library's compare and gates) ------------------------------

def _recs(n: int, ok, *, error=(), scorer_error=(), trials: int = 1, meta=None):
    from evalrun.records import Record, Score

    out = []
    for i in range(n):
        for t in range(trials):
            iid = f"i{i:03d}"
            if i in error:
                out.append(Record(iid, t, "in", "exp", None, {"type": "Boom", "message": "down"}, 1.0,
                                  metadata=dict(meta or {})))
                continue
            s = Score.failed("judge unreachable") if i in scorer_error else Score(float(ok(i, t)), bool(ok(i, t)))
            out.append(Record(iid, t, "in", "exp", "out", None, 1.0, None, {"em": s}, dict(meta or {})))
    return out


def _gate(text, cand, base=None, policy="significant", cluster=None):
    from evalrun.compare import compare
    from evalrun.gates import evaluate_gate, parse_gates

    g = parse_gates([text], scorers=["em"], repeat=3)[0]
    return evaluate_gate(g, compare(cand, base, scorers=["em"], cluster=cluster), policy)


def test_compare_counts_errors_as_failures_with_the_summarys_numbers():
    from evalrun.compare import compare

    cand = _recs(20, lambda i, t: True, error={1, 2}, scorer_error={3})
    sc = compare(cand, None, scorers=["em"]).scorers["em"]
    assert (sc.candidate["n"], sc.candidate["pass_rate"], sc.candidate["mean"]) == (20, 0.85, 0.85)
    assert sc.value("pass_rate") == 0.85 and sc.cand_items["i001"].state == "fail"


def test_the_errors_gate_counts_scorer_errors_too():
    cand = _recs(20, lambda i, t: True, scorer_error={0, 1, 2})
    res = _gate("errors <= 5%", cand)
    assert res.verdict == "fail" and res.value == 0.15


def test_pass_hat_k_with_fewer_baseline_trials_is_incomplete_not_a_pass():
    cand = _recs(30, lambda i, t: i % 2 == 0, trials=3)
    base = _recs(30, lambda i, t: True, trials=1)
    res = _gate("em.pass^3 >= baseline", cand, base)
    assert res.verdict == "incomplete" and res.failed and res.value is not None
    assert "trials per item" in res.note


def test_a_one_item_slice_gate_is_incomplete():
    from evalrun.compare import compare
    from evalrun.gates import evaluate_gate, parse_gates

    base = _recs(20, lambda i, t: True)
    cand = _recs(20, lambda i, t: i != 0)
    for r in cand + base:
        r.metadata = {"tags": ["lonely"]} if r.item_id == "i000" else {}
    g = parse_gates(["em.pass_rate[tag=lonely] >= baseline"], scorers=["em"])[0]
    res = evaluate_gate(g, compare(cand, base, scorers=["em"]))
    assert res.verdict == "incomplete" and res.failed and res.diff == -1.0


def test_no_regressions_cannot_pass_when_the_baseline_errored_on_many_items():
    base = _recs(40, lambda i, t: True, error=set(range(10)))
    cand = _recs(40, lambda i, t: i >= 10 or i % 2 == 0)
    res = _gate("no_regressions", cand, base)
    assert res.verdict == "incomplete" and res.failed and res.items == []
    assert "10 of 40 items (25%) errored in the baseline" in res.note


def test_strict_never_prints_a_detectable_drop_of_zero():
    base = _recs(12, lambda i, t: True)
    cand = _recs(12, lambda i, t: True)
    res = _gate("em.pass_rate >= baseline - 0.01", cand, base, policy="strict")
    assert res.mde is None and "detectable drop" not in res.numbers()
    assert "fails this gate" in res.note


def test_nan_through_the_library_is_named_not_called_too_few_items():
    import math

    import pytest

    from evalrun import stats

    with pytest.raises(ValueError, match=r"candidate\[1\] is nan"):
        stats.paired_difference([1.0, math.nan, 0.0], [1.0, 1.0, 0.0])
    with pytest.raises(ValueError, match="finite"):
        stats.item_interval([0.5, math.inf])


def test_merged_shards_give_the_unsharded_numbers_and_status_with_errors(tmp_path):
    root = suite(tmp_path, "error_budget: 0.2\n")
    behave(root, wrong=WRONG, crash=CRASH)
    assert run(root).returncode == 0
    whole = summary(root)
    home = str(root / "shards")
    for i in (1, 2, 3):  # a shard alone may be over the budget: judged on the merged run
        r = invoke_cli("run", "eval.yaml", "--output-dir", home, "--shard", f"{i}/3", cwd=root)
        assert r.returncode in (0, ExitCode.RUN_FAILED), r.stderr
    shards = [str(p) for p in (root / "shards" / "runs").iterdir()]
    r = invoke_cli("merge", *shards, "--output-dir", home, "--json", cwd=root)
    assert r.returncode == 0, r.stderr
    merged = json.loads(r.stdout)
    for key in ("n", "mean", "pass_rate", "ci95", "pass_ci95", "target_errors", "error_failures"):
        assert merged["scorers"]["exact_match"][key] == whole["scorers"]["exact_match"][key], key
    assert merged["status"] == whole["status"] == "finished"
    assert merged["error_budget"] == whole["error_budget"]
