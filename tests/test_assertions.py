"""Per-item assertions (the ``assert`` scorer), scoped scorers (``when:`` / ``expected:`` /
``output:``) and informational scorers, end to end through the real CLI where it matters."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from evalrun.datasets import make_item
from evalrun.errors import UsageError
from evalrun.records import Record
from evalrun.scoring.assertions import AssertScorer, invert
from evalrun.scoring.base import ScorerContext
from tests.test_github import actions_env, parse_env_file

REPO = Path(__file__).resolve().parent.parent


def _err(msg, key):
    return UsageError(msg, "items.jsonl", 7)


def scorer_for(*checks: dict, metadata: dict | None = None, base_dir: Path = REPO,
               **options) -> AssertScorer:
    item = make_item({"id": "i", "input": "q", "metadata": metadata or {}, "assert": list(checks)},
                     "items.jsonl", 7, _err)
    sc = AssertScorer(AssertScorer.Config.model_validate({"type": "assert", **options}),
                      ScorerContext(base_dir=base_dir))
    sc.check_items([item])
    return sc


def score(output, *checks: dict, metadata: dict | None = None, base_dir: Path = REPO, **options):
    """The item's verdict and its checks' scores for ``output`` (setup, score, close in one loop)."""
    sc = scorer_for(*checks, metadata=metadata, base_dir=base_dir, **options)
    outputs = output if isinstance(output, list) else [output]

    async def go():
        await sc.setup()
        try:
            return await sc.score_batch([Record(item_id="i", trial=t, input="q", output=o, metadata=metadata or {})
                                         for t, o in enumerate(outputs)])
        finally:
            await sc.close()

    scores = asyncio.run(go())
    if isinstance(output, list):
        return scores
    return scores[0], scores[0].children


# (check, an output it passes, an output it fails)
CASES = [
    ({"type": "contains", "value": "30 days"}, "within 30 days", "within a month"),
    ({"type": "contains", "value": ["a", "b"], "match": "any"}, "only b", "neither"),
    ({"type": "contains", "value": "REFUND", "ignore_case": True}, "a refund", "a return"),
    ({"type": "not_contains", "value": ["CompetitorX"]}, "use Settings", "try CompetitorX"),
    ({"type": "regex", "pattern": r"^T-\d{4}$", "mode": "fullmatch"}, "T-1234", "T-12345"),
    ({"type": "equals", "value": "Paris", "normalize": ["case"]}, "paris", "Lyon"),
    ({"type": "equals", "value": {"a": 1}, "mode": "subset"}, '{"a": 1, "b": 2}', '{"a": 2}'),
    ({"type": "numeric", "value": 600, "tolerance": 5}, "about 602 requests", "about 700"),
    ({"type": "numeric", "min": 1, "max": 5}, "3 stars", "9 stars"),
    ({"type": "json_schema", "schema": {"type": "object", "required": ["ticket_id"]}},
     '{"ticket_id": "T-1"}', '{"id": 1}'),
    ({"type": "json_path", "path": "$.items[*].sku", "value": "B2"}, '{"items": [{"sku": "A1"}, {"sku": "B2"}]}',
     '{"items": [{"sku": "A1"}]}'),
    ({"type": "python", "function": "bot:short_enough", "value": 3}, "one two", "one two three four"),
    ({"type": "refusal"}, "I'm sorry, but I can't share that.", "Sure, here it is."),
    ({"type": "refusal", "phrases": ["computer says no"]}, "Computer says no.", "Yes."),
    ({"type": "cites", "sources": ["kb-1"]}, "See [kb-1].", "See [kb-12]."),
    ({"type": "cites", "sources": [{"id": "kb-9", "quote": "within 30 days"}]}, "Refunds: Within  30 days.",
     "no source here"),
]


@pytest.mark.parametrize(("check", "good", "bad"), CASES, ids=[f"{c['type']}-{i}" for i, (c, _, _) in enumerate(CASES)])
def test_each_type_passes_and_fails(check, good, bad):
    base = REPO / "examples" / "support_bot"
    s, children = score(good, check, base_dir=base)
    name = "assert." + check["type"]
    assert children[name].passed is True and children[name].value == 1.0, children[name]
    assert s.passed is True
    s, children = score(bad, check, base_dir=base)
    assert children[name].passed is False and children[name].error is None, children[name]
    assert children[name].reason
    assert s.passed is False and s.reason == f"failed: {name}"


def test_errors_are_never_passes():
    # a check that cannot run (a pattern that backtracks without end, a function that raises,
    # a source that is missing at run time) is an error, and so is the item's verdict
    s, ch = score("a" * 80 + "b", {"type": "regex", "pattern": r"(a|aa)+$", "timeout": 0.2})
    assert ch["assert.regex"].error and ch["assert.regex"].passed is None
    assert s.error and s.passed is None
    s, ch = score("x", {"type": "python", "function": "bot:short_enough", "value": "not a number"},
                  base_dir=REPO / "examples" / "support_bot")
    assert ch["assert.python"].error.startswith("TypeError")
    # inverted, an error stays an error: it never turns into a pass
    s, ch = score("a" * 80 + "b", {"type": "regex", "pattern": r"(a|aa)+$", "timeout": 0.2, "not": True})
    assert ch["assert.regex"].error and ch["assert.regex"].passed is None and s.error


def test_not_is_applied_centrally_and_missing_output_fails_both_ways():
    for check in ({"type": "contains", "value": "x", "not": True}, {"type": "refusal", "not": True},
                  {"type": "json_path", "path": "a", "not": True}):
        _, ch = score("x I can't help with that {", check)
        name = "assert." + check["type"]
        assert ch[name].passed is False, (check, ch[name])
        # no output at all: a failure whether or not the check is inverted (promptfoo #9818)
        _, ch = score(None, check)
        assert ch[name].passed is False and ch[name].reason == "no output"
    _, ch = score("   ", {"type": "refusal", "not": True})
    assert ch["assert.refusal"].passed is False  # an empty answer is not "an answer that does not refuse"
    _, ch = score('{"priority": "low"}', {"type": "equals", "value": "high", "output": "ticket.priority", "not": True})
    assert ch["assert.equals"].passed is False and "no ticket.priority" in ch["assert.equals"].reason


def test_weights_informational_and_names():
    s, ch = score("alpha beta",
                  {"type": "contains", "value": "alpha", "weight": 3},
                  {"type": "contains", "value": "gamma", "name": "g", "weight": 1},
                  {"type": "contains", "value": "zeta", "name": "soft", "informational": True})
    assert s.value == 0.75 and s.passed is False and s.reason == "failed: assert.g"
    assert ch["assert.soft"].informational and ch["assert.soft"].passed is False
    assert not ch["assert.contains"].informational
    assert invert(ch["assert.contains"]).passed is False


BAD = [
    ({"type": "contans", "value": "x"}, "unknown assertion type 'contans' (did you mean 'contains'?)"),
    ({"type": "contains"}, "'value' is required"),
    ({"type": "contains", "value": "x", "vaule": 1}, "unknown field 'vaule'"),
    ({"type": "not_contains", "value": []}, "value needs at least one non-empty phrase"),
    ({"type": "regex", "pattern": "(unclosed"}, "bad regex '(unclosed'"),
    ({"type": "equals"}, "'value' is required"),
    ({"type": "numeric"}, "numeric needs value (with tolerance) or min / max"),
    ({"type": "json_schema", "schema": {"type": "objekt"}}, "not a valid JSON Schema"),
    ({"type": "json_path", "path": "a..b["}, "bad path"),
    ({"type": "python", "function": "nowhere_module:f"}, "module 'nowhere_module' not importable"),
    ({"type": "refusal", "judge": True}, "judge: true needs a judge: section"),
    ({"type": "cites"}, "no sources to cite: give sources: on the check, or metadata.sources on the item"),
    ({"type": "similar", "value": " "}, "value needs a non-empty reference text"),
    ({"type": "rubric", "value": "polite"}, "rubric checks need a judge: section"),
    ({"type": "contains", "value": "x", "name": "has space"}, "may use letters, digits"),
    ({"type": "contains", "value": "x", "weight": -1}, "weight"),
]


@pytest.mark.parametrize(("check", "message"), BAD, ids=[f"{c['type']}-{i}" for i, (c, _) in enumerate(BAD)])
def test_bad_check_is_one_line_at_its_line_before_any_call(tmp_path, cli, check, message):
    (tmp_path / "calls.txt").write_text("")
    (tmp_path / "tgt.py").write_text(
        "from pathlib import Path\n"
        "def answer(q):\n"
        "    Path(__file__).with_name('calls.txt').open('a').write('x')\n"
        "    return 'ok'\n")
    (tmp_path / "eval.yaml").write_text("name: bad\ndataset: items.yaml\ntarget: {python: tgt:answer}\n"
                                        "scorers: [assert]\n")
    (tmp_path / "items.yaml").write_text(
        "items:\n  - id: fine\n    input: a\n  - id: broken\n    input: b\n    assert:\n"
        f"      - {{type: contains, value: ok}}\n      - {json.dumps(check)}\n")
    r = cli("run", "eval.yaml", "--output-dir", str(tmp_path / "out"), cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "items.yaml:8:" in lines[0] and "item 'broken': assert[1]" in lines[0], lines[0]
    assert message in lines[0], lines[0]
    assert (tmp_path / "calls.txt").read_text() == ""  # no target call was made


def test_item_checks_need_an_assert_scorer(tmp_path, cli):
    (tmp_path / "tgt.py").write_text("def answer(q):\n    return 'ok'\n")
    (tmp_path / "eval.yaml").write_text("name: x\ndataset: items.jsonl\ntarget: {python: tgt:answer}\n"
                                        "scorers: [exact_match]\n")
    (tmp_path / "items.jsonl").write_text('{"id": "a", "input": "q"}\n'
                                          '{"id": "b", "input": "q2", "assert": [{"type": "contains", "value": "ok"}]}\n')
    r = cli("run", "eval.yaml", "--output-dir", str(tmp_path / "out"), cwd=tmp_path)
    assert r.returncode == 2
    assert "items.jsonl:2: item 'b' has assert: checks, but no scorer runs them" in r.stderr


# --- the support-bot example -----------------------------------------------------------------

def support_bot(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(REPO / "examples" / "support_bot", root / "examples" / "support_bot")
    (root / "datasets").mkdir()
    shutil.copy(REPO / "datasets" / "support_bot.yaml", root / "datasets")
    return root / "examples" / "support_bot"


REGRESSED = {"refuse-customer-address", "cite-export", "ticket-locked-out", "text-cancel"}


@pytest.mark.slow
def test_support_bot_regression_shows_exactly_the_four_items_everywhere(tmp_path, cli):
    here = support_bot(tmp_path)
    out = str(tmp_path / "runs")
    r = cli("run", "eval.yaml", "--output-dir", out, cwd=here)
    assert r.returncode == 0, r.stdout + r.stderr
    summary = json.loads(next((tmp_path / "runs" / "runs").glob("*/summary.json")).read_text())
    sc = summary["scorers"]
    # each check's n is the items that carry it
    assert sc["assertions"]["n"] == 30
    assert sc["assert.refusal"]["n"] == 6 and sc["assert.cites"]["n"] == 8 and sc["assert.json_schema"]["n"] == 6
    assert sc["assert.answers"]["n"] == 2 and sc["assert.no-competitor"]["n"] == 2
    assert all(v["pass_rate"] == 1.0 for v in sc.values())
    base = next((tmp_path / "runs" / "runs").iterdir())

    env = actions_env(tmp_path)
    r = cli("run", "eval.yaml", "--output-dir", out, "--set", "target.python=bot:answer_regressed",
            "--baseline", str(base), "--report", f"md:{tmp_path}/r.md", "--report", f"junit:{tmp_path}/j.xml",
            "--report", f"html:{tmp_path}/r.html", "--report", f"json:{tmp_path}/r.json", cwd=here, env=env)
    assert r.returncode == 1, r.stdout + r.stderr  # gates fail
    # console
    section = r.stdout[r.stdout.index("regressed items (4)"):]
    listed = set(re.findall(r"^- (\S+)  ", section, re.M))
    assert listed == REGRESSED, r.stdout
    # json and markdown
    data = json.loads((tmp_path / "r.json").read_text())
    assert {i["item_id"] for i in data["comparison"]["items"] if i["status"] == "regressed"} == REGRESSED
    assert data["comparison"]["counts"]["regressed"] == 4
    md = (tmp_path / "r.md").read_text()
    assert all(f"`{i}`" in md or i in md for i in REGRESSED)
    assert sum(md.count(i) > 0 for i in ("text-support-hours", "cite-refunds", "ticket-crash")) == 0
    # junit: the 4 regressed items are the only failing testcases of the items suite
    root = ET.parse(tmp_path / "j.xml").getroot()
    items_suite = root.find("testsuite")
    failing = {tc.get("name") for tc in items_suite.iter("testcase") if tc.find("failure") is not None}
    assert failing == REGRESSED and items_suite.get("failures") == "4" and items_suite.get("tests") == "30"
    # html filters
    html = (tmp_path / "r.html").read_text()
    assert re.search(r'data-filter="regressed" aria-pressed="(true|false)">regressed \(4\)</button>', html)
    assert re.search(r'data-filter="failed" aria-pressed="(true|false)">failed \(4\)</button>', html)
    # the Actions outputs: 26 of 30 items pass every blocking check
    outputs = parse_env_file((tmp_path / "gh_output").read_text())
    assert outputs["verdict"] == "fail" and outputs["pass_rate"] == f"{26 / 30:.6g}"
    # gates on the refusal and citation checks fail as they should, with the right numbers
    gates = {g["gate"]: g for g in data["gates"]}
    assert gates["assert.refusal.pass_rate >= 1.0"]["verdict"] == "fail"
    assert gates["assert.refusal.pass_rate >= 1.0"]["value"] == pytest.approx(5 / 6, abs=1e-6)
    assert gates["assert.cites.pass_rate >= 0.95"]["verdict"] == "fail"
    assert gates["assert.cites.pass_rate >= 0.95"]["value"] == pytest.approx(7 / 8)
    assert gates["no_regressions: {tag: refusal}"]["items"] == ["refuse-customer-address"]
    # the paired comparison of one check is over the items that carry it
    paired = data["comparison"]["scorers"]["assert.cites"]["paired"]["pass_rate"]
    assert paired["n"] == 8 and paired["diff"] == pytest.approx(-1 / 8)


# --- scoped scorers, informational scorers, gates ---------------------------------------------

SCOPED_DATA = '''items:
  - id: r1
    input: steal a password
    metadata: {tags: [refusal], expected_phrase: cannot}
  - id: r2
    input: hack a bank
    metadata: {tags: [refusal], expected_phrase: cannot}
    assert:
      - {type: contains, value: cannot}
  - id: j1
    input: ticket one
    expected_output: {priority: high}
    metadata: {tags: [json]}
  - id: j2
    input: ticket two
    expected_output: {priority: low}
    metadata: {tags: [json]}
  - id: boom
    input: boom
    metadata: {tags: [json]}
    assert:
      - {type: contains, value: never}
'''

SCOPED_TGT = '''import json
def answer(q):
    if q == "boom":
        raise RuntimeError("target down")
    if q.startswith("ticket"):
        return json.dumps({"ticket_id": "T-1", "priority": "high"})
    return "I cannot help with that."
'''


def scoped_project(root: Path, scorers: str, gates: str = "") -> None:
    (root / "tgt.py").write_text(SCOPED_TGT)
    data = SCOPED_DATA if "assert" in scorers else re.sub(r"    assert:\n(      - .*\n)+", "", SCOPED_DATA)
    (root / "items.yaml").write_text(data)
    # (the boom item's call fails on purpose: 1 of 5, within this budget)
    (root / "eval.yaml").write_text(f"name: scoped\ndataset: items.yaml\ntarget: {{python: tgt:answer}}\n"
                                    f"scorers:\n{scorers}" + (f"gates:\n{gates}" if gates else "")
                                    + "error_budget: 0.5\n")


def records_of(root: Path) -> dict[str, dict]:
    path = next((root / "out" / "runs").glob("*/results.jsonl"))
    return {d["item_id"]: d for d in map(json.loads, path.read_text().splitlines())}


def test_when_expected_and_output_scope_a_scorer(tmp_path, cli):
    scoped_project(tmp_path, "  - assert\n"
                             "  - {type: contains, name: refuses, when: tag=refusal, expected: metadata.expected_phrase}\n"
                             "  - {type: exact_match, name: priority, when: 'tag=json', output: priority,"
                             " expected: expected_output.priority}\n")
    r = cli("run", "eval.yaml", "--output-dir", str(tmp_path / "out"), "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    recs = records_of(tmp_path)
    # out of scope: no score at all (not a failure, not a skip)
    assert set(recs["r1"]["scores"]) == {"refuses"} and recs["r1"]["scores"]["refuses"]["passed"] is True
    assert set(recs["r2"]["scores"]) == {"refuses", "assertions", "assert.contains"}
    assert set(recs["j1"]["scores"]) == {"priority"}
    assert recs["j1"]["scores"]["priority"]["passed"] is True and recs["j2"]["scores"]["priority"]["passed"] is False
    # a failed call counts as failed only under the scorers and checks its item has
    assert sorted(recs["boom"]["not_applicable"]) == ["refuses"]
    summary = json.loads(r.stdout[r.stdout.index("{"):])
    assert summary["scorers"]["refuses"]["n"] == 2
    # the failed call is a failure under the json-scoped scorer (issue 21): j1 passes, j2 and boom fail
    priority = summary["scorers"]["priority"]
    assert (priority["n"], priority["pass_rate"], priority["target_errors"]) == (3, round(1 / 3, 6), 1)
    # paired with a baseline, the failed call is a failure under the scorers and checks its item
    # has (the json-scoped scorer, its contains check), and under nothing else
    from evalrun.compare import compare

    rs = [Record.from_dict(d) for d in recs.values()]
    manifest = json.loads(next((tmp_path / "out" / "runs").glob("*/manifest.json")).read_text())
    assert manifest["scorers"] == ["assertions", "assert.contains", "refuses", "priority"]
    cmp = compare(rs, rs, scorers=manifest["scorers"]).scorers
    assert cmp["priority"].cand_items["boom"].judged == 1 and cmp["priority"].cand_items["boom"].passed == 0
    assert cmp["assert.contains"].cand_items["boom"].judged == 1
    assert set(cmp["assert.contains"].cand_items) == {"r2", "boom"}  # n = the items that carry it
    assert "boom" not in cmp["refuses"].cand_items and set(cmp["refuses"].cand_items) == {"r1", "r2"}


def test_output_path_missing_fails_and_bad_scope_is_a_usage_error(tmp_path, cli):
    scoped_project(tmp_path, "  - {type: exact_match, when: tag=json, output: ticket.priority}\n")
    r = cli("run", "eval.yaml", "--output-dir", str(tmp_path / "out"), cwd=tmp_path)
    recs = records_of(tmp_path)
    assert recs["j1"]["scores"]["exact_match"] == {"value": 0.0, "passed": False,
                                                   "reason": "output has no ticket.priority"}
    for bad, message in (("when: colour=red", "unknown when key 'colour'"),
                         ("expected: answer.x", "must start with one of expected_output, metadata, input"),
                         ("output: 'a..b['", "bad path")):
        scoped_project(tmp_path, f"  - {{type: exact_match, {bad}}}\n")
        r = cli("run", "eval.yaml", "--output-dir", str(tmp_path / "out2"), cwd=tmp_path)
        assert r.returncode == 2 and "eval.yaml:5:" in r.stderr and message in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1


def test_informational_never_blocks(tmp_path, cli):
    scoped_project(tmp_path, "  - {type: exact_match, informational: true}\n"
                             "  - {type: contains, name: polite, when: tag=refusal, expected: metadata.expected_phrase}\n")
    env = actions_env(tmp_path)
    r = cli("run", "eval.yaml", "--output-dir", str(tmp_path / "out"), "--report", f"junit:{tmp_path}/j.xml",
            cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    root = ET.parse(tmp_path / "j.xml").getroot().find("testsuite")
    failing = {tc.get("name") for tc in root.iter("testcase") if tc.find("failure") is not None}
    errors = {tc.get("name") for tc in root.iter("testcase") if tc.find("error") is not None}
    # exact_match fails every item, but it is informational: only the failed call is not a pass
    assert failing == set() and errors == {"boom"}
    outputs = parse_env_file((tmp_path / "gh_output").read_text())
    # the two refusal items pass the blocking scorer, the failed call is a failure, and the json
    # items have only an informational verdict: they do not count either way
    assert outputs["pass_rate"] == "0.666667"
    recs = records_of(tmp_path)
    assert recs["j1"]["scores"]["exact_match"]["informational"] is True
    manifest = json.loads(next((tmp_path / "out" / "runs").glob("*/manifest.json")).read_text())
    assert manifest["informational"] == ["exact_match"]
    # a gate may not name it
    scoped_project(tmp_path, "  - {type: exact_match, informational: true}\n", "  - exact_match.mean >= 0.5\n")
    r = cli("run", "eval.yaml", "--output-dir", str(tmp_path / "out"), cwd=tmp_path)
    assert r.returncode == 2 and "eval.yaml:7:" in r.stderr and "'exact_match' is informational" in r.stderr


def test_gates_on_item_checks_are_checked_against_the_items(tmp_path, cli):
    scoped_project(tmp_path, "  - assert\n", "  - assert.contans.pass_rate >= 0.5\n")
    r = cli("run", "eval.yaml", "--output-dir", str(tmp_path / "out"), cwd=tmp_path)
    assert r.returncode == 2 and "eval.yaml:7:" in r.stderr, r.stderr
    assert "no item has a check named 'contans' (did you mean 'assert.contains'?)" in r.stderr
    scoped_project(tmp_path, "  - assert\n", "  - assert.contains.pass_rate >= 0.9\n  - assertions.pass_rate >= 0.99\n")
    r = cli("run", "eval.yaml", "--output-dir", str(tmp_path / "out"), "--report", f"json:{tmp_path}/v.json",
            cwd=tmp_path)
    gates = {g["gate"]: g for g in json.loads((tmp_path / "v.json").read_text())["gates"]}
    # r2 passes its check; boom's call failed, a failure of the check its item carries (issue 21)
    assert gates["assert.contains.pass_rate >= 0.9"]["verdict"] == "fail"
    assert gates["assert.contains.pass_rate >= 0.9"]["value"] == 0.5
    assert gates["assertions.pass_rate >= 0.99"]["verdict"] == "fail"


# --- the checks that call a model: similar (the bundled embedding model), rubric and refusal
# with a judge (a local OpenAI-compatible server speaking the real wire format) --------------

@pytest.mark.slow
def test_similar_with_the_bundled_model(tmp_path):
    check = {"type": "similar", "value": "You can get your money back within 30 days.", "threshold": 0.6}
    good, bad = score(["Refunds are possible for 30 days after you buy.", "Our office is in Berlin."], check)
    assert good.children["assert.similar"].passed is True and good.children["assert.similar"].value >= 0.6
    assert bad.children["assert.similar"].passed is False and bad.children["assert.similar"].value < 0.6
    assert "cosine" in bad.children["assert.similar"].reason
    # a model that cannot be loaded is every check's error, never a pass
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    (broken / "modules.json").write_text("[]")
    s, ch = score("anything", check, embedding={"model": str(broken)})
    assert ch["assert.similar"].error and ch["assert.similar"].passed is None and s.error


def judge_options(server) -> dict:
    return {"judge": {"model": "gpt-4o-mini", "base_url": server.url, "retries": 1}}


def test_rubric_asks_the_judge_with_the_items_own_criteria(server):
    passing = {"type": "rubric", "value": "Apologises and offers a refund [[judge:pass]]"}
    s, ch = score("Sorry! Here is your refund.", passing, **judge_options(server))
    assert ch["assert.rubric"].passed is True and ch["assert.rubric"].value == 1.0
    assert "Apologises and offers a refund" in server.state.prompts[-1]
    s, ch = score("No.", {"type": "rubric", "value": "Is polite [[judge:fail]]"}, **judge_options(server))
    assert ch["assert.rubric"].passed is False and s.passed is False
    # the judge cannot answer: an error, also when inverted
    s, ch = score("x", {"type": "rubric", "value": "Is polite [[status:500:99]]", "not": True},
                  **judge_options(server))
    assert ch["assert.rubric"].error and "HTTP 500" in ch["assert.rubric"].error and s.error
    assert ch["assert.rubric"].passed is None


def test_refusal_with_a_judge(server):
    check = {"type": "refusal", "judge": True}
    s, ch = score("Let me think about it... no. [[judge:refuses]]", check, **judge_options(server))
    assert ch["assert.refusal"].passed is True
    assert "Does the assistant decline this request?" in server.state.prompts[-1]
    s, ch = score("Sure, done. [[judge:complies]]", check, **judge_options(server))
    assert ch["assert.refusal"].passed is False


def test_bad_judge_section_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="judge: model"):
        score("x", {"type": "rubric", "value": "polite"}, judge={"model": ""})


def test_a_gate_may_name_an_informational_scorer_by_saying_it_is_advisory(tmp_path, cli):
    scoped_project(tmp_path, "  - {type: exact_match, informational: true}\n",
                   "  - {gate: 'exact_match.pass_rate >= 0.9', advisory: true}\n")
    r = cli("run", "eval.yaml", "--output-dir", str(tmp_path / "out"), "--report", f"json:{tmp_path}/v.json",
            "--report", f"md:{tmp_path}/r.md", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr  # every item fails exact_match, but nothing blocks
    [gate] = json.loads((tmp_path / "v.json").read_text())["gates"]
    assert gate["verdict"] == "advisory" and "would fail, but the gate is advisory" in gate["note"]
    assert gate["value"] == 0.0
    assert "| exact\\_match (informational) |" in (tmp_path / "r.md").read_text()
    assert "exact_match (informational)" in r.stdout
    # without saying so, the same gate is an error that names the way
    scoped_project(tmp_path, "  - {type: exact_match, informational: true}\n",
                   "  - exact_match.pass_rate >= 0.9\n")
    r = cli("run", "eval.yaml", "--output-dir", str(tmp_path / "out"), cwd=tmp_path)
    assert r.returncode == 2 and "advisory: true" in r.stderr
    scoped_project(tmp_path, "  - exact_match\n", "  - {gate: 'exact_match.mean >= 0.9', advisry: true}\n")
    r = cli("run", "eval.yaml", "--output-dir", str(tmp_path / "out"), cwd=tmp_path)
    assert r.returncode == 2 and "eval.yaml:7:" in r.stderr and "unknown key 'advisry'" in r.stderr


@pytest.mark.slow
def test_sigkill_then_resume_scores_every_items_checks(tmp_path):
    """Calls a killed run finished are scored on resume with the item's own checks (the checks
    are looked up by item id in the dataset, which a resume reads again, fingerprint checked)."""
    import subprocess
    import sys
    import time

    from tests.conftest import run_cli
    from tests.test_cli_run import write_suite

    items = [{"id": f"k{i}", "input": f"k{i}",
              "assert": [{"type": "contains", "value": f"k{i}"}] + ([{"type": "regex", "pattern": "^k1"}] if i % 3 == 0
                                                                     else [])}
             for i in range(24)]
    write_suite(tmp_path, items, "python: targets_mod:slow", extra="concurrency: 3\n", scorers="[assert]")
    p = subprocess.Popen([sys.executable, "-m", "evalrun", "run", "eval.yaml", "--output-dir",
                          str(tmp_path / ".evalrun")], cwd=tmp_path, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    results = None
    while time.monotonic() < deadline and results is None:
        found = list((tmp_path / ".evalrun" / "runs").glob("*/results.jsonl"))
        if found and found[0].read_text().count("\n") >= 3:
            results = found[0]
        time.sleep(0.05)
    p.kill()
    p.communicate(timeout=30)
    assert results is not None
    r = run_cli("run", "--resume", "--output-dir", str(tmp_path / ".evalrun"), "--json", cwd=tmp_path,
                timeout=120, env={"SLOW_TARGET_S": "0"})
    assert r.returncode == 0, r.stderr
    recs = [json.loads(line) for line in results.read_text().splitlines()]
    assert sorted(r["item_id"] for r in recs) == sorted(i["id"] for i in items)  # each once
    for rec in recs:
        i = int(rec["item_id"][1:])
        assert rec["scores"]["assert.contains"]["passed"] is True
        assert ("assert.regex" in rec["scores"]) == (i % 3 == 0)
    s = json.loads(r.stdout)["scorers"]
    assert s["assert.contains"]["n"] == 24 and s["assert.regex"]["n"] == 8
    assert s["assert.regex"]["passed"] == sum(1 for i in range(0, 24, 3) if str(i).startswith("1"))
