"""The chat target and prompt versions, end to end: the real CLI in a subprocess against a local
OpenAI-compatible server (tests/openai_server.py) and a local Langfuse server that serves
versioned prompts in the API's own shape (tests/langfuse_server.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from evalrun.errors import UsageError
from evalrun.overrides import apply_overrides, parse_set_options
from evalrun.prices import price_for
from tests.conftest import REPO, invoke_cli
from tests.langfuse_server import FakeLangfuse, prompts_of
from tests.openai_server import OpenAIServer

# the capital, and the largest city where that is a different one: prompt v4 asks for the
# largest city, so exactly those items regress
COUNTRIES = [("France", "Paris", "Paris"), ("Japan", "Tokyo", "Tokyo"), ("Australia", "Canberra", "Sydney"),
             ("Turkey", "Ankara", "Istanbul"), ("Egypt", "Cairo", "Cairo"), ("Canada", "Ottawa", "Toronto")]
REGRESSED = {"australia", "turkey", "canada"}


@pytest.fixture
def fake():
    with FakeLangfuse() as lf:
        store = prompts_of(lf)
        store.add("qa", [{"role": "user", "content": "v1 {{country}}"}])
        store.add("qa", [{"role": "user", "content": "v2 {{country}}"}])
        store.add("qa", [{"role": "system", "content": "You answer with the capital city only."},
                         {"role": "user", "content": "Capital of {{country}}? [[say:{{capital}}]]"}],
                  labels=["production"], config={"model": "gpt-4o-mini", "temperature": 0, "note": "x"})
        store.add("qa", "Which is the biggest city of {{ country }}? Answer with its name. [[say:{{input.city}}]]",
                  labels=["staging"], config={"model": "gpt-4o-mini", "max_tokens": 30})
        yield lf


def write_suite(root: Path, target: dict[str, Any], **extra: Any) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    items = [{"id": c.lower(), "input": {"country": c, "capital": cap, "city": city}, "expected_output": cap}
             for c, cap, city in COUNTRIES]
    (root / "golden.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    cfg = {"name": "qa-suite", "dataset": "golden.jsonl", "target": target, "concurrency": 3,
           "scorers": ["exact_match"], **extra}
    (root / "eval.yaml").write_text(json.dumps(cfg, indent=1))
    return root / "eval.yaml"


def chat(server: OpenAIServer, **kw: Any) -> dict[str, Any]:
    return {"chat": {"base_url": server.url, **kw}, "cache": True, "retries": 2, "backoff": 0.01}


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None):
    return invoke_cli(*args, cwd=cwd, env={"OPENAI_API_KEY": "sk-test-chat-0000", **(env or {})})


def newest_run(home: Path) -> Path:
    from evalrun.store import list_runs

    # run ids sort by their start second only; runs in one second are ordered by their manifests
    return list_runs(home)[-1].path


def records(run: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (run / "results.jsonl").read_text().splitlines()]


def test_prompt_versions_from_langfuse_compare_and_cache(tmp_path, server, fake):
    suite = write_suite(tmp_path, chat(server, prompt="langfuse://qa@3"), gates=["cost_usd <= 0.01"])
    env = fake.env()

    a = cli("run", "eval.yaml", "--report", "md", "--report", "html", "--report", "junit", cwd=tmp_path, env=env)
    assert a.returncode == 0, a.stderr
    assert "prompt qa v3 (production)" in " ".join(a.stdout.split())  # the console report's (wrapped) header
    run_a = newest_run(tmp_path / ".evalrun")
    b = cli("run", "eval.yaml", "--set", "target.chat.prompt=langfuse://qa@4", "--report", "md",
            "--report", "html", cwd=tmp_path, env=env)
    assert b.returncode == 0, b.stderr
    run_b = newest_run(tmp_path / ".evalrun")
    assert server.state.requests == 2 * len(COUNTRIES)

    # outputs follow their prompts: v3 says the capital, v4 the largest city
    out_a = {r["item_id"]: r["output"] for r in records(run_a)}
    out_b = {r["item_id"]: r["output"] for r in records(run_b)}
    assert out_a == {c.lower(): cap for c, cap, _ in COUNTRIES}
    assert out_b == {c.lower(): city for c, _, city in COUNTRIES}
    # what reached the model: v3 chat messages + its config; v4 a text prompt as one user message
    bodies = server.state.bodies
    v3 = [b for b in bodies if b["messages"][0]["role"] == "system"]
    v4 = [b for b in bodies if b["messages"][0]["role"] == "user"]
    assert len(v3) == len(v4) == len(COUNTRIES)
    assert all(b["model"] == "gpt-4o-mini" and b["temperature"] == 0 and "note" not in b for b in v3)
    assert all(b["max_tokens"] == 30 and "temperature" not in b and len(b["messages"]) == 1 for b in v4)
    assert {b["messages"][0]["content"] for b in v4} >= {
        "Which is the biggest city of Australia? Answer with its name. [[say:Sydney]]"}

    # every record names the model, why it stopped and the prompt version (for the Langfuse push)
    for run, version, labels in ((run_a, 3, ["production"]), (run_b, 4, ["staging", "latest"])):
        for r in records(run):
            tm = r["target_metadata"]
            assert tm["model"] == "gpt-4o-mini-2026-01-01" and tm["finish_reason"] == "stop"
            assert tm["prompt"] == {"name": "qa", "version": version, "labels": labels, "source": "langfuse"}
        manifest = json.loads((run / "manifest.json").read_text())
        summary = json.loads((run / "summary.json").read_text())
        for doc in (manifest, summary):
            assert doc["prompt"]["name"] == "qa" and doc["prompt"]["version"] == version
            assert doc["prompt"]["labels"] == labels
        head = f"prompt qa v{version} ({', '.join(labels)})"
        assert head in (run / "report.md").read_text().splitlines()[0]
        html = (run / "report.html").read_text()
        assert head in html[html.index("<h1"):html.index("</h1>")]
    assert '<property name="prompt" value="qa v3 (production)"' in (run_a / "junit.xml").read_text()
    assert json.loads((run_b / "manifest.json").read_text())["overrides"] == {
        "target.chat.prompt": "langfuse://qa@4"}
    assert "overrides" not in json.loads((run_a / "manifest.json").read_text())

    # usage and cost: tokens the server reported, priced at gpt-4o-mini's built-in price
    summary_a = json.loads((run_a / "summary.json").read_text())
    price = price_for("gpt-4o-mini")
    recs = records(run_a)
    pt = sum(r["usage"]["prompt_tokens"] for r in recs)
    ct = sum(r["usage"]["completion_tokens"] for r in recs)
    assert summary_a["usage"]["prompt_tokens"] == pt and summary_a["usage"]["completion_tokens"] == ct
    expected_cost = (pt * price.input + ct * price.output) / 1e6
    assert sum(r["usage"]["cost_usd"] for r in recs) == pytest.approx(expected_cost, rel=1e-9)
    assert summary_a["usage"]["cost_usd"] == round(expected_cost, 6) > 0  # summary.json keeps 6 decimals

    # compare names the regressed items
    c = cli("compare", run_b.name, run_a.name, "--json", cwd=tmp_path)
    assert c.returncode in (0, 1), c.stderr
    verdict = json.loads(c.stdout)
    assert verdict["counts"]["regressed"] == len(REGRESSED)
    md = cli("compare", run_b.name, run_a.name, "--report", "md:-", cwd=tmp_path)
    regressed_part = md.stdout[md.stdout.index("Regressed"):]
    for item in REGRESSED:
        assert item in regressed_part
    assert "prompt qa v4" in md.stdout.splitlines()[0]
    assert "(prompt qa v3 (production))" in md.stdout.splitlines()[0]  # the baseline's version too

    # the cache: the unchanged re-run makes no call and costs nothing
    again = cli("run", "eval.yaml", "--json", cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stderr
    assert server.state.requests == 2 * len(COUNTRIES)
    s = json.loads(again.stdout)
    assert s["usage"]["cost_usd"] == 0 and s["prompt"]["version"] == 3
    assert s["verdict"]["gates"][0]["verdict"] == "pass"  # the cost gate sees a known, zero cost
    run_c = newest_run(tmp_path / ".evalrun")
    assert all(r["usage"]["cached"] and r["output"] == out_a[r["item_id"]] for r in records(run_c))
    assert all(r["target_metadata"]["prompt"]["version"] == 3 for r in records(run_c))
    # a label that moves to a new version is a new prompt: no stale cache hit
    prompts_of(fake).add("qa", [{"role": "user", "content": "[[say:{{country}}]]"}], labels=["production"],
                         config={"model": "gpt-4o-mini"})
    moved = cli("run", "eval.yaml", "--set", "target.chat.prompt=langfuse://qa@production", "--json",
                cwd=tmp_path, env=env)
    assert moved.returncode == 0, moved.stderr
    assert json.loads(moved.stdout)["prompt"]["version"] == 5
    assert server.state.requests == 3 * len(COUNTRIES)
    assert suite.exists()
    assert not fake.errors  # every prompt request and answer matched Langfuse's OpenAPI spec


def test_cost_gate_fails_an_expensive_run(tmp_path, server):
    write_suite(tmp_path, chat(server, model="gpt-4o", messages=[
        {"role": "user", "content": "{{ input.country }} [[say:{{ input.capital }}]]"}]),
        gates=["cost_usd <= 0.000001"])
    r = cli("run", "eval.yaml", "--json", cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    out = json.loads(r.stdout)
    assert out["usage"]["cost_usd"] > 0.000001
    gate = out["verdict"]["gates"][0]
    assert gate["gate"] == "cost_usd <= 0.000001" and gate["verdict"] == "fail"
    # the same gate through --set with a cost the run stays under
    ok = cli("run", "eval.yaml", "--set", "gates=[cost_usd <= 1]", "--set", "target.cache=false", "--json",
             cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["verdict"]["gates"][0]["verdict"] == "pass"
    # prices: in the eval file override the built-in table
    priced = cli("run", "eval.yaml", "--set", "target.chat.prices={gpt-4o: {input: 1000000, output: 0}}",
                 "--set", "target.cache=false", "--set", "gates=[]", "--json", cwd=tmp_path)
    assert priced.returncode == 0, priced.stderr
    s = json.loads(priced.stdout)
    assert s["usage"]["cost_usd"] == pytest.approx(s["usage"]["prompt_tokens"])


def _one_line_exit_2(r, *needles: str) -> None:
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.mark.parametrize(("target_kw", "args", "needles"), [
    ({"prompt": "langfuse://nope@3"}, (), ["eval.yaml:", "no prompt 'nope' with version 3"]),
    ({"prompt": "langfuse://qa@canary"}, (), ["eval.yaml:", "with a version labelled 'canary'"]),
    ({"prompt": "langfuse://qa@3"}, ("--set", "target.chat.prompt=langfuse://qa@9"),
     ["--set target.chat.prompt=langfuse://qa@9", "no prompt 'qa' with version 9"]),
    ({"messages": [{"role": "system", "content": "Be brief."},
                   {"role": "user", "content": "Capital of {{ input.country }"}]}, (),
     ["eval.yaml:", "template error", "unexpected '}'"]),
    ({"messages": [{"role": "user", "content": "Capital of {{ input.contry }}"}]}, (),
     ["eval.yaml:", "template error for item france", "contry"]),
    ({"prompt": "langfuse://qa@5"}, (), ["langfuse://qa@5 message 1", "'population' is not in item france"]),
    ({"messages": [{"role": "user", "content": "{{ input.__class__.__mro__ }}"}]}, (),
     ["eval.yaml:", "template error for item france", "unsafe"]),  # the sandbox holds
    ({"prompt": "prompts/missing.yaml"}, (), ["eval.yaml:", "prompt file prompts/missing.yaml not found"]),
    ({"prompt": "langfuse://qa@3"}, ("--set", "target.chat.promt=langfuse://qa@4"),
     ["--set target.chat.promt=", "unknown key 'promt'", "did you mean 'prompt'"]),
    ({"prompt": "langfuse://qa@3"}, ("--set", "name.first=x"), ["--set name.first: 'name' is a str value"]),
    ({"prompt": "langfuse://qa@3"}, ("--set", "concurrency=many"), ["--set concurrency=", "concurrency"]),
    ({"prompt": "langfuse://qa@3"}, ("--set", "scorers.9.threshold=1"), ["--set scorers.9.threshold", "no index 9"]),
    ({"prompt": "langfuse://qa@3"}, ("--set", "novalue"), ["--set novalue: expected KEY=VALUE"]),
    ({"prompt": "langfuse://qa@3", "messages": [{"role": "user", "content": "x"}]}, (),
     ["eval.yaml:", "exactly one of: messages, prompt"]),
])
def test_bad_prompt_template_or_set_is_one_line_before_any_call(tmp_path, server, fake, target_kw, args, needles):
    prompts_of(fake).add("qa", "{{country}} has {{population}} people", labels=["x"])  # version 5
    write_suite(tmp_path, chat(server, model="gpt-4o-mini", **target_kw))
    r = cli("run", "eval.yaml", *args, cwd=tmp_path, env=fake.env())
    _one_line_exit_2(r, *needles)
    assert server.state.requests == 0
    assert not (tmp_path / ".evalrun" / "runs").exists() or not list((tmp_path / ".evalrun" / "runs").iterdir())


def test_template_error_in_a_local_prompt_file_points_into_it(tmp_path, server):
    (tmp_path / "prompts").mkdir(parents=True)
    (tmp_path / "prompts" / "p.yaml").write_text(
        "messages:\n  - role: system\n    content: Be brief.\n  - role: user\n    content: |\n"
        "      Line one\n      Capital of {{ input.country }\n")
    write_suite(tmp_path, chat(server, model="m", prompt="prompts/p.yaml"))
    r = cli("run", "eval.yaml", cwd=tmp_path)
    _one_line_exit_2(r, "prompts/p.yaml:7: template error", "unexpected '}'")  # the block's 2nd line
    assert server.state.requests == 0


def test_demo_chat_example_runs_offline_and_reruns_free(tmp_path, server):
    """The shipped chat example against the local server (a user would point OPENAI_BASE_URL
    at OpenAI, vLLM, Ollama or LiteLLM); the cache makes the second run free."""
    work = tmp_path / "w"
    shutil.copytree(REPO / "examples" / "chat", work / "examples" / "chat")
    shutil.copytree(REPO / "datasets", work / "datasets")
    env = {"OPENAI_BASE_URL": server.url}
    first = cli("run", "examples/chat/capitals-chat.yaml", "--json", cwd=work, env=env)
    assert first.returncode == 0, first.stderr
    s1 = json.loads(first.stdout)
    n = s1["records"]
    assert n > 10 and s1["errors"] == 0 and server.state.requests == n
    assert s1["usage"]["cost_usd"] > 0 and s1["prompt"]["name"] == "capital-qa"
    assert s1["prompt"]["file"] == "prompts/capital.yaml"
    body = server.state.bodies[0]
    assert body["model"] == "gpt-4o-mini" and body["temperature"] == 0 and body["max_tokens"] == 20
    assert body["messages"][0]["content"].startswith("You answer with the name of the capital city only")
    # the local server echoes the rendered user message: the question reached the model as written
    run = newest_run(work / ".evalrun")
    for r in records(run):
        assert r["output"] == f"echo: {r['input']}"
    second = cli("run", "examples/chat/capitals-chat.yaml", "--json", cwd=work, env=env)
    assert second.returncode == 0, second.stderr
    assert server.state.requests == n
    assert json.loads(second.stdout)["usage"]["cost_usd"] == 0
    # pointed at OpenAI itself without a key: one line, before any call
    no_key = invoke_cli("run", "examples/chat/capitals-chat.yaml", cwd=work,
                     env={"OPENAI_API_KEY": "", "OPENAI_BASE_URL": ""})
    _one_line_exit_2(no_key, "capitals-chat.yaml:", "OPENAI_API_KEY is not set")


def test_retries_with_retry_after_and_output_path(tmp_path, server):
    server.state.retry_after = 0.05
    write_suite(tmp_path, chat(server, model="gpt-4o-mini", output_path="answer", messages=[
        {"role": "user", "content": '{% if input.country == "Japan" %}[[429:2]]{% endif %}'
                                    '[[say:{"answer": "{{ input.capital }}"}]]'}]))
    r = cli("run", "eval.yaml", "--set", "target.cache=false", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    recs = {x["item_id"]: x for x in records(newest_run(tmp_path / ".evalrun"))}
    assert recs["japan"]["attempts"] == 3 and recs["japan"]["output"] == "Tokyo"
    assert recs["france"]["attempts"] == 1 and recs["france"]["output"] == "Paris"
    assert server.state.statuses[429] == 2
    # a bad key is not retried, and the key never lands in the run directory
    server.state.require_key = "sk-right"
    bad = cli("run", "eval.yaml", "--set", "target.cache=false", "--json", cwd=tmp_path)
    assert bad.returncode == 3
    run = newest_run(tmp_path / ".evalrun")
    errs = [x["error"]["message"] for x in records(run)]
    assert all("chat endpoint answered HTTP 401" in e for e in errs)
    assert all(x["attempts"] == 1 for x in records(run))
    assert "sk-test-chat-0000" not in "".join(p.read_text() for p in run.iterdir() if p.is_file())


def test_prompts_push_and_pull_round_trip(tmp_path, server, fake):
    work = tmp_path / "w"
    shutil.copytree(REPO / "examples" / "chat", work)
    env = fake.env()
    p = cli("prompts", "push", "prompts/capital.yaml", "--label", "production", "-m", "from git", cwd=work, env=env)
    assert p.returncode == 0, p.stderr
    assert "langfuse://capital-qa@1 (production, latest)" in p.stderr
    stored = prompts_of(fake).versions["capital-qa"][0]
    assert stored["type"] == "chat" and stored["config"] == {"max_tokens": 20, "model": "gpt-4o-mini"}
    assert stored["commitMessage"] == "from git" and not fake.errors
    pulled = cli("prompts", "pull", "capital-qa@production", "-o", "prompts/pulled.yaml", cwd=work, env=env)
    assert pulled.returncode == 0, pulled.stderr
    import yaml

    doc = yaml.safe_load((work / "prompts" / "pulled.yaml").read_text())
    orig = yaml.safe_load((work / "prompts" / "capital.yaml").read_text())
    assert doc == orig
    # the Langfuse version and the local file send the same requests
    suite = {"OPENAI_BASE_URL": server.url, **env}
    for ref in ("prompts/capital.yaml", "langfuse://capital-qa@production"):
        r = cli("run", "capitals-chat.yaml", "--set", f"target.chat.prompt={ref}", "--set", "dataset=golden.yaml",
                "--set", "target.cache=false", "--set", "gates=[]", "-q", cwd=work, env=suite)
        if ref.endswith(".yaml"):
            assert r.returncode == 2 and "golden.yaml" in r.stderr  # no such dataset: written below
            (work / "golden.yaml").write_text("items:\n  - {id: fr, input: What is the capital of France?}\n")
            r = cli("run", "capitals-chat.yaml", "--set", f"target.chat.prompt={ref}", "--set",
                    "dataset=golden.yaml", "--set", "target.cache=false", "--set", "gates=[]", "-q",
                    cwd=work, env=suite)
        assert r.returncode == 0, r.stderr
    first, second = server.state.bodies
    assert first == second
    missing = cli("prompts", "pull", "langfuse://nope@2", "-o", "x.yaml", cwd=work, env=env)
    _one_line_exit_2(missing, "no prompt 'nope' with version 2")


# --- overrides, without a subprocess -------------------------------------------------------------

def test_apply_overrides_sets_nested_keys_and_leaves_the_input_alone():
    raw = {"name": "x", "target": {"chat": {"model": "a"}}, "scorers": ["exact_match", {"type": "regex"}]}
    got = apply_overrides(raw, parse_set_options([
        "target.chat.model=b", "target.timeout=5", "langfuse.push=true", "scorers.0.name=em",
        "scorers.1.pattern=^A", "gates=[errors <= 0]"]))
    assert got == {"name": "x", "target": {"chat": {"model": "b"}, "timeout": 5}, "langfuse": {"push": True},
                   "scorers": [{"type": "exact_match", "name": "em"}, {"type": "regex", "pattern": "^A"}],
                   "gates": ["errors <= 0"]}
    assert raw == {"name": "x", "target": {"chat": {"model": "a"}}, "scorers": ["exact_match", {"type": "regex"}]}
    with pytest.raises(UsageError, match="'target.chat.model' is a str value"):
        apply_overrides(raw, {"target.chat.model.x": 1})
    with pytest.raises(UsageError, match="'scorers' is a list; use an index"):
        apply_overrides(raw, {"scorers.name": 1})
    with pytest.raises(UsageError, match="empty part"):
        parse_set_options(["target..model=x"])


def test_hostile_prompt_name_is_inert_in_reports(tmp_path, server):
    (tmp_path / "prompts").mkdir(parents=True)
    name = "<script>alert(1)</script> [red]x[/red] **b** @team"
    (tmp_path / "prompts" / "p.yaml").write_text(json.dumps({
        "name": name, "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "[[say:{{ input.capital }}]]"}]}))
    write_suite(tmp_path, chat(server, prompt="prompts/p.yaml"), gates=["errors <= 0"])
    r = cli("run", "eval.yaml", "--report", "md", "--report", "html", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    run = newest_run(tmp_path / ".evalrun")
    assert "[red]x[/red]" in r.stdout  # printed as text, not as console markup
    html = (run / "report.html").read_text()
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    md_head = (run / "report.md").read_text().splitlines()[0]
    assert "<script>" not in md_head and "&lt;script&gt;" in md_head and "\\*\\*b\\*\\*" in md_head
    assert json.loads((run / "manifest.json").read_text())["prompt"]["name"] == name


def test_resume_keeps_the_runs_overrides(tmp_path, server):
    write_suite(tmp_path, chat(server, model="gpt-4o-mini", messages=[
        {"role": "user", "content": "[[say:{{ input.capital }}]]"}]))
    first = cli("run", "eval.yaml", "--set", "target.chat.params.seed=7", "--limit", "2", "-q", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    run = newest_run(tmp_path / ".evalrun")
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["overrides"] == {"target.chat.params.seed": 7}
    # pretend it was interrupted: resuming re-applies --set, so the config fingerprint matches
    manifest["status"] = "interrupted"
    (run / "manifest.json").write_text(json.dumps(manifest))
    again = cli("run", "--resume", run.name, "-q", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert all(b.get("seed") == 7 for b in server.state.bodies) and len(server.state.bodies) == 2
    refused = cli("run", "--resume", run.name, "--set", "target.chat.params.seed=8", cwd=tmp_path)
    _one_line_exit_2(refused, "drop --set")


def test_merge_keeps_the_prompt_and_refuses_shards_of_two_versions(tmp_path, server, fake):
    write_suite(tmp_path, chat(server, prompt="langfuse://qa@production"))
    env = fake.env()
    for shard in ("1/2", "2/2"):
        r = cli("run", "eval.yaml", "--shard", shard, "-q", cwd=tmp_path, env=env)
        assert r.returncode == 0, r.stderr
    s1, s2 = sorted((tmp_path / ".evalrun" / "runs").iterdir())
    merged = cli("merge", s1.name, s2.name, "--json", cwd=tmp_path)
    assert merged.returncode == 0, merged.stderr
    assert json.loads(merged.stdout)["prompt"]["version"] == 3
    # the label moves before the second shard job runs: its records came from another prompt
    prompts_of(fake).add("qa", [{"role": "user", "content": "[[say:{{country}}]]"}], labels=["production"],
                         config={"model": "gpt-4o-mini"})
    r = cli("run", "eval.yaml", "--shard", "2/2", "-q", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    s3 = newest_run(tmp_path / ".evalrun")
    bad = cli("merge", s1.name, s3.name, cwd=tmp_path)
    _one_line_exit_2(bad, "different prompt version")


def test_python_target_metadata_is_saved_with_the_record(tmp_path):
    (tmp_path / "pipe.py").write_text(
        "from evalrun import Output\n"
        "def answer(x):\n"
        "    return Output(x['capital'], metadata={'model': 'rules-v2', 'prompt': {'name': 'qa', 'version': 7,"
        " 'labels': ['production']}})\n")
    write_suite(tmp_path, {"python": "pipe:answer"})
    r = cli("run", "eval.yaml", "-q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for rec in records(newest_run(tmp_path / ".evalrun")):
        assert rec["target_metadata"] == {"model": "rules-v2", "prompt": {"name": "qa", "version": 7,
                                                                          "labels": ["production"]}}


def test_fetch_prompt_in_a_folder_and_the_default_label(fake, monkeypatch):
    from evalrun.langfuse.prompts import fetch_prompt, parse_prompt_ref

    for k, v in fake.env().items():
        monkeypatch.setenv(k, v)
    prompts_of(fake).add("team/qa", [{"role": "user", "content": "{{x}}"}], labels=["production"],
                         config={"model": "m", "max_tokens": 5})
    p = fetch_prompt("langfuse://team/qa")  # no @: the production label, as in Langfuse
    assert p.info == {"name": "team/qa", "version": 1, "labels": ["production", "latest"], "source": "langfuse",
                      "type": "chat"}
    assert (p.model, p.params, p.syntax) == ("m", {"max_tokens": 5}, "langfuse")
    assert parse_prompt_ref("langfuse://a@b@7") == ("a@b", 7, None)
    with pytest.raises(UsageError, match="expected langfuse://<name>@<label>"):
        parse_prompt_ref("langfuse://qa@")
    assert not fake.errors


def test_pushed_generations_link_the_prompt_version(tmp_path, server, fake):
    """A chat run pushed to Langfuse: each item's generation names the model and the prompt
    version that produced it (so Langfuse's per-version metrics count the eval)."""
    write_suite(tmp_path, chat(server, prompt="langfuse://qa@3"))
    r = cli("run", "eval.yaml", "--push", "langfuse", "-q", cwd=tmp_path, env=fake.env())
    assert r.returncode == 0, r.stderr
    gens = [s["attributes"] for s in fake.spans
            if s["attributes"].get("langfuse.observation.type") == "generation"]
    assert len(gens) == len(COUNTRIES)
    for a in gens:
        assert a["langfuse.observation.prompt.name"] == "qa" and a["langfuse.observation.prompt.version"] == 3
        assert a["langfuse.observation.model.name"].startswith("gpt-4o-mini")  # the model the server says answered
        assert json.loads(a["langfuse.observation.usage_details"])["input"] > 0
        # the input is what the model was sent (the prompt rendered for the item), with its
        # parameters: what Langfuse's prompt view and playground show
        messages = json.loads(a["langfuse.observation.input"])
        assert [m["role"] for m in messages] == ["system", "user"]
        assert messages[1]["content"].startswith("Capital of ") and "{{" not in messages[1]["content"]
        assert json.loads(a["langfuse.observation.model.parameters"]) == {"temperature": 0}
    assert fake.errors == []


def test_numeric_params_from_the_environment_are_sent_as_numbers(tmp_path, server):
    """``${VAR}`` expands to text: a number setting spelled by one is sent as the number it
    spells; text that spells no number is still one line before any call."""
    write_suite(tmp_path, chat(server, model="gpt-4o-mini", params={
        "temperature": "${EVAL_TEMP:-0.2}", "max_tokens": "${EVAL_MAX_TOKENS}", "seed": "${EVAL_SEED:-7}"},
        messages=[{"role": "user", "content": "{{ input.country }} [[say:{{ input.capital }}]]"}]))
    r = cli("run", "eval.yaml", "--json", cwd=tmp_path, env={"EVAL_MAX_TOKENS": "64"})
    assert r.returncode == 0, r.stderr
    body = server.state.bodies[0]
    assert body["temperature"] == 0.2 and body["max_tokens"] == 64 and body["seed"] == 7
    assert type(body["max_tokens"]) is int and type(body["temperature"]) is float
    calls = server.state.requests
    bad = cli("run", "eval.yaml", "--set", "target.cache=false", cwd=tmp_path,
              env={"EVAL_MAX_TOKENS": "lots", "EVAL_TEMP": "nan"})
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    assert "eval.yaml:" in bad.stderr and "temperature must be a finite number" in bad.stderr
    assert server.state.requests == calls


@pytest.mark.parametrize(("content", "needle"), [
    ("{% macro m(a, a) %}{% endmacro %}{{ input.country }}", "template error"),
    ("{{ input.country | shout }}", "unknown filter 'shout'"),
    ("{% if input.country is polite %}x{% endif %}", "unknown test 'polite'"),
    ("{% include 'other.txt' %}", "'include' is not available"),
])
def test_a_chat_template_that_would_fail_only_when_run_is_refused_before_any_call(tmp_path, server, content, needle):
    """The chat prompt's templates go through the same checks as a judge rubric's."""
    write_suite(tmp_path, chat(server, model="gpt-4o-mini", messages=[{"role": "user", "content": content}]))
    r = cli("run", "eval.yaml", cwd=tmp_path)
    _one_line_exit_2(r, "eval.yaml:", needle)
    assert server.state.requests == 0
