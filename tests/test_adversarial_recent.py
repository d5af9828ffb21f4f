"""Held-out adversarial cases for the most recent features: the chat target and prompts
(local files, Langfuse, ``prompts push/pull``), ``--set`` overrides, variants, slices and
slice gates, history, and the library API (``evalrun.run`` / ``evalrun.compare``).

Bad input: one line on stderr (``file:line`` where there is a file), exit 2, no traceback,
and no call reaches the target, the model server or Langfuse. Hostile text (model output,
metadata values used as slice keys, prompt labels, variant names, history rows from a
downloaded artifact) stays inert in every report and in the GitHub Actions log."""

from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

import evalrun
from evalrun.errors import UsageError
from tests.langfuse_server import FakeLangfuse, prompts_of

# --- the project every case starts from -------------------------------------------------------

TARGET = '''import os
_CALLS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "calls.log")

def echo(x):
    with open(_CALLS, "a") as f:
        f.write("call\\n")
    return x["a"] if isinstance(x, dict) else x
'''

PY_EVAL = """name: adv
dataset: data.jsonl
target:
  python: advt:echo
scorers: [exact_match]
"""

CHAT_EVAL = """name: adv
dataset: data.jsonl
target:
  chat:
    base_url: {url}
    model: m1
    messages:
      - role: user
        content: "{{ input.a }}"
  retries: 0
scorers: [exact_match]
"""

PROMPT_FILE = """name: pf
model: m1
messages:
  - role: user
    content: "{{ input.a }}"
params:
  max_tokens: 20
"""


def items(n: int = 12) -> list[dict[str, Any]]:
    return [{"id": f"q{i}", "input": {"a": f"ans{i}"}, "expected_output": f"ans{i}",
             "metadata": {"tags": ["math" if i % 2 else "text"], "lang": "de" if i % 3 else "en"}}
            for i in range(n)]


def project(root: Path, eval_text: str = PY_EVAL, files: dict[str, str] | None = None,
            data: list[dict[str, Any]] | None = None) -> Path:
    (root / "advt.py").write_text(TARGET)
    (root / "data.jsonl").write_text("".join(json.dumps(i) + "\n" for i in (data or items())))
    (root / "eval.yaml").write_text(eval_text)
    (root / "prompts").mkdir(exist_ok=True)
    for name, text in (files or {}).items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root / "eval.yaml"


def no_target_calls(root: Path) -> bool:
    return not (root / "calls.log").exists()


def assert_usage_error(r, where: str | None = None) -> None:
    """The standard for bad input: exit 2, one line on stderr (matching ``where``), no traceback."""
    assert r.returncode == 2, (r.returncode, r.stdout[-2000:], r.stderr[-2000:])
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    if where is not None:
        assert re.search(where, lines[0]), lines[0]


@pytest.fixture
def fake():
    with FakeLangfuse() as lf:
        store = prompts_of(lf)
        store.add("qa", [{"role": "user", "content": "v1 {{a}}"}], labels=["production"],
                  config={"model": "m1"})
        store.add("qa", [{"role": "user", "content": "v2 {{nosuchvar}}"}], labels=["broken"],
                  config={"model": "m1"})
        store.add("qa", [{"role": "user", "content": "v3 {{a}}"}], labels=["badcfg"],
                  config={"model": "m1", "temperature": "hot"})
        store.add("qa", [{"role": "user", "content": "v4 {{a}}"}], labels=["nanmodel"],
                  config={"model": ["not", "a", "string"]})
        yield lf


EVAL_AT = r"eval\.yaml:\d+"
PROMPT_AT = r"prompts/p\.yaml:\d+"

# --- 1. bad input through `evalrun run` ---------------------------------------------------------
# (id, eval text (a CHAT_EVAL variant unless it starts with "name:"), extra files, extra args,
#  what the one line must match)

CHAT = CHAT_EVAL


def chat_with(old: str, new: str) -> str:
    assert old in CHAT
    return CHAT.replace(old, new)


RUN_CASES: list[tuple[str, str, dict[str, str], list[str], str | None]] = [
    # chat target
    ("chat_no_model", chat_with("    model: m1\n", ""), {}, [], EVAL_AT),
    ("chat_template_syntax", chat_with('"{{ input.a }}"', '"{{ input.a "'), {}, [], EVAL_AT),
    ("chat_template_unknown_var", chat_with('"{{ input.a }}"', '"{{ nosuch }}"'), {}, [], EVAL_AT),
    ("chat_template_missing_field", chat_with('"{{ input.a }}"', '"{{ input.zz }}"'), {}, [], EVAL_AT),
    ("chat_template_unknown_filter", chat_with('"{{ input.a }}"', '"{{ input.a | pwn }}"'), {}, [], EVAL_AT),
    ("chat_template_sandbox_escape", chat_with('"{{ input.a }}"', '"{{ input.__class__.__mro__ }}"'),
     {}, [], EVAL_AT),
    ("chat_template_not_string", chat_with('"{{ input.a }}"', "[1, 2]"), {}, [], EVAL_AT),
    ("chat_bad_role", chat_with("      - role: user", "      - role: wizard"), {}, [], EVAL_AT),
    ("chat_empty_messages", chat_with('    messages:\n      - role: user\n        content: "{{ input.a }}"\n',
                                      "    messages: []\n"), {}, [], EVAL_AT),
    ("chat_messages_and_prompt", chat_with("    model: m1\n", "    model: m1\n    prompt: prompts/p.yaml\n"),
     {"prompts/p.yaml": PROMPT_FILE}, [], EVAL_AT),
    ("chat_nan_param", chat_with("    model: m1\n", "    model: m1\n    params: {temperature: .nan}\n"), {}, [], EVAL_AT),
    ("chat_params_not_mapping", chat_with("    model: m1\n", "    model: m1\n    params: [1]\n"), {}, [], EVAL_AT),
    ("chat_base_url_scheme", chat_with("    base_url: {url}\n", "    base_url: ftp://127.0.0.1/v1\n"), {}, [], EVAL_AT),
    ("chat_base_url_newline", chat_with("    base_url: {url}\n", '    base_url: "{url}\\nX-Evil: 1"\n'), {}, [], EVAL_AT),
    ("chat_negative_price", chat_with("    model: m1\n", "    model: m1\n    prices: {m1: {input: -1, output: 1}}\n"),
     {}, [], EVAL_AT),
    ("chat_output_path_empty_segment", chat_with("    model: m1\n", "    model: m1\n    output_path: 'a..b'\n"),
     {}, [], EVAL_AT),
    ("chat_api_key_env_empty_name", chat_with("    model: m1\n", "    model: m1\n    api_key_env: ''\n"), {}, [], EVAL_AT),
    ("chat_unknown_key", chat_with("    model: m1\n", "    model: m1\n    temprature: 0\n"), {}, [], EVAL_AT),
    # local prompt files
    ("prompt_file_missing", chat_with('    messages:\n      - role: user\n        content: "{{ input.a }}"\n',
                                      "    prompt: prompts/nope.yaml\n"), {}, [], EVAL_AT),
    ("prompt_file_yaml_syntax", None, {"prompts/p.yaml": "messages:\n  - role: user\n    content: [unclosed\n"}, [],
     PROMPT_AT),
    ("prompt_file_unknown_key", None, {"prompts/p.yaml": PROMPT_FILE.replace("params:", "parms:")}, [], PROMPT_AT),
    ("prompt_file_messages_string", None, {"prompts/p.yaml": "messages: hello\n"}, [], PROMPT_AT),
    ("prompt_file_jinja_syntax", None, {"prompts/p.yaml": PROMPT_FILE.replace("{{ input.a }}", "{% if %}")}, [],
     PROMPT_AT),
    ("prompt_file_unknown_var", None, {"prompts/p.yaml": PROMPT_FILE.replace("{{ input.a }}", "{{ input.zz }}")}, [],
     PROMPT_AT),
    ("prompt_file_empty", None, {"prompts/p.yaml": ""}, [], r"prompts/p\.yaml"),
    ("prompt_file_not_utf8", None, {"prompts/p.yaml": "messages: \udcff\n"}, [], r"prompts/p\.yaml"),
    ("prompt_file_bad_params", None, {"prompts/p.yaml": PROMPT_FILE.replace("max_tokens: 20", "max_tokens: .inf")},
     [], PROMPT_AT),
    ("prompt_file_model_not_string", None, {"prompts/p.yaml": PROMPT_FILE.replace("model: m1", "model: [a, b]")}, [],
     PROMPT_AT),
    ("prompt_file_is_directory", "dir", {"prompts/p.yaml/x": "x"}, [], EVAL_AT),
    # --set
    ("set_no_equals", CHAT, {}, ["--set", "target.timeout"], r"--set"),
    ("set_empty_key", CHAT, {}, ["--set", "=5"], r"--set"),
    ("set_empty_segment", CHAT, {}, ["--set", "target..timeout=5"], r"--set"),
    ("set_unknown_key", CHAT, {}, ["--set", "target.chat.modle=x"], r"--set.*did you mean"),
    ("set_index_out_of_range", CHAT, {}, ["--set", "scorers.9.threshold=0.5"], r"--set"),
    ("set_word_index_into_list", CHAT, {}, ["--set", "scorers.first.threshold=0.5"], r"--set"),
    ("set_bad_yaml_value", CHAT, {}, ["--set", "target.timeout=[unclosed"], r"--set"),
    ("set_bad_value", CHAT, {}, ["--set", "target.timeout=-1"], r"--set"),
    ("set_nan_concurrency", CHAT, {}, ["--set", "concurrency=.nan"], r"--set"),
    ("set_into_scalar", CHAT, {}, ["--set", "target.timeout.x=5"], r"--set"),
    ("set_recursive_alias", CHAT, {}, ["--set", "target.chat.params=&a [*a]"], r"--set"),
    ("set_deep_nesting", CHAT, {}, ["--set", "target.chat.params.x=" + "[" * 150 + "]" * 150], r"--set"),
    ("set_bad_name", CHAT, {}, ["--set", "name=../../etc"], r"--set"),
    ("set_prompt_missing_file", CHAT, {}, ["--set", "target.chat.prompt=prompts/missing.yaml"], r"--set"),
    # variants
    ("variants_list", PY_EVAL + "variants:\n  - a\n  - b\n", {}, [], EVAL_AT),
    ("variants_empty", PY_EVAL + "variants: {}\n", {}, [], EVAL_AT),
    ("variant_value_scalar", PY_EVAL + "variants:\n  a: {}\n  b: 5\n", {}, [], EVAL_AT),
    ("variant_name_path", PY_EVAL + "variants:\n  a: {}\n  ../evil: {}\n", {}, [], EVAL_AT),
    ("variant_name_slash", PY_EVAL + "variants:\n  a: {}\n  x/y: {}\n", {}, [], EVAL_AT),
    ("variant_name_empty", PY_EVAL + "variants:\n  a: {}\n  '': {}\n", {}, [], EVAL_AT),
    ("variant_name_not_string", PY_EVAL + "variants:\n  a: {}\n  5: {}\n", {}, [], EVAL_AT),
    ("variant_duplicate_name", PY_EVAL + "variants:\n  a: {}\n  a: {target.timeout: 3}\n", {}, [], EVAL_AT),
    ("variant_overrides_variants", PY_EVAL + "variants:\n  a: {}\n  b: {compare_to: a}\n", {}, [], EVAL_AT),
    ("variant_unknown_key", PY_EVAL + "variants:\n  a: {}\n  b: {target.pyhton: 'advt:echo'}\n", {}, [], EVAL_AT),
    ("variant_empty_key_path", PY_EVAL + "variants:\n  a: {}\n  b: {'target..timeout': 3}\n", {}, [], EVAL_AT),
    ("variant_dataset_nested", PY_EVAL + "variants:\n  a: {}\n  b: {dataset.x: 1}\n", {}, [], EVAL_AT),
    ("gate_variants_not_list", PY_EVAL + "variants:\n  a: {}\n  b: {}\ngate_variants: 5\n", {}, [], EVAL_AT),
    ("compare_to_not_string", PY_EVAL + "variants:\n  a: {}\n  b: {}\ncompare_to: [a]\n", {}, [], EVAL_AT),
    ("variant_cli_path", PY_EVAL + "variants:\n  a: {}\n  b: {}\n", {}, ["--variant", "../a"], r"--variant"),
    # slices and slice gates
    ("slice_cli_bad_key", PY_EVAL, {}, ["--slice", "colour"], r"--slice"),
    ("slice_cli_empty_metadata", PY_EVAL, {}, ["--slice", "metadata."], r"--slice"),
    ("slice_cli_empty", PY_EVAL, {}, ["--slice", ""], r"--slice"),
    ("slices_not_list", PY_EVAL + "slices: {tags: 1}\n", {}, [], EVAL_AT),
    ("slices_bad_entry", PY_EVAL + "slices: [tags, 5]\n", {}, [], EVAL_AT),
    ("slice_gate_empty_value", PY_EVAL + "gates:\n  - exact_match.mean[tag=] >= 0.8\n", {}, [], EVAL_AT),
    ("slice_gate_unclosed", PY_EVAL + "gates:\n  - exact_match.mean[tag=math >= 0.8\n", {}, [], EVAL_AT),
    ("slice_gate_two_selectors", PY_EVAL + "gates:\n  - exact_match.mean[tag=math][tag=text] >= 0.8\n", {}, [],
     EVAL_AT),
    ("slice_gate_bad_kind", PY_EVAL + "gates:\n  - exact_match.mean[colour=red] >= 0.8\n", {}, [], EVAL_AT),
    ("slice_gate_empty_metadata_key", PY_EVAL + "gates:\n  - exact_match.mean[metadata.=x] >= 0.8\n", {}, [], EVAL_AT),
    ("slice_gate_on_errors", PY_EVAL + "gates:\n  - errors[tag=math] <= 2\n", {}, [], EVAL_AT),
    ("slice_gate_on_cost", PY_EVAL + "gates:\n  - cost_usd[tag=math] <= 2\n", {}, [], EVAL_AT),
    ("slice_gate_unknown_metadata_value", PY_EVAL + "gates:\n  - exact_match.mean[metadata.lang=fr] >= 0.8\n", {}, [],
     EVAL_AT),
    ("slice_gate_nan_bound", PY_EVAL + "gates:\n  - exact_match.mean[tag=math] >= nan\n", {}, [], EVAL_AT),
]


@pytest.mark.parametrize("case", RUN_CASES, ids=[c[0] for c in RUN_CASES])
def test_bad_input_to_run_is_one_line_exit_2_and_no_call(tmp_path, cli, server, case):
    _, eval_text, files, args, where = case
    if eval_text is None:  # the case is in the prompt file
        eval_text = chat_with('    messages:\n      - role: user\n        content: "{{ input.a }}"\n',
                              "    prompt: prompts/p.yaml\n")
    elif eval_text == "dir":
        eval_text = chat_with('    messages:\n      - role: user\n        content: "{{ input.a }}"\n',
                              "    prompt: prompts/p.yaml\n")
    if "{url}" in eval_text:
        eval_text = eval_text.replace("{url}", server.url)
    files = {k: v.replace("{url}", server.url) for k, v in files.items()}
    root = tmp_path
    project(root, eval_text)
    for name, text in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if "\udcff" in text:
            p.write_bytes(text.encode("utf-8", "surrogateescape"))
        else:
            p.write_text(text)
    r = cli("run", "eval.yaml", *args, cwd=root, env={"OPENAI_API_KEY": "sk-test-adv-0000"})
    assert_usage_error(r, where)
    assert server.state.requests == 0
    assert no_target_calls(root)
    runs = root / ".evalrun" / "runs"
    assert not runs.exists() or not any(runs.iterdir()), "a run directory was started"


# --- 2. Langfuse prompts in a run, and prompts push / pull --------------------------------------

LF_REF_CASES = [
    ("lf_empty_name", "langfuse://"),
    ("lf_empty_label", "langfuse://qa@"),
    ("lf_missing_prompt", "langfuse://nosuch@production"),
    ("lf_label_nobody_carries", "langfuse://qa@nosuchlabel"),
    ("lf_version_missing", "langfuse://qa@99"),
    ("lf_version_zero", "langfuse://qa@0"),
    ("lf_variable_item_lacks", "langfuse://qa@broken"),
    ("lf_config_bad_temperature", "langfuse://qa@badcfg"),
    ("lf_config_model_not_string", "langfuse://qa@nanmodel"),
    ("lf_two_ats", "langfuse://qa@production@3"),
]


@pytest.mark.parametrize("case", LF_REF_CASES, ids=[c[0] for c in LF_REF_CASES])
def test_bad_langfuse_prompt_in_a_run_is_exit_2_before_any_model_call(tmp_path, cli, server, fake, case):
    _, ref = case
    eval_text = chat_with('    messages:\n      - role: user\n        content: "{{ input.a }}"\n',
                          f"    prompt: {ref}\n").replace("{url}", server.url)
    project(tmp_path, eval_text)
    r = cli("run", "eval.yaml", cwd=tmp_path, env={"OPENAI_API_KEY": "sk-test-adv-0000", **fake.env()})
    assert_usage_error(r)
    assert server.state.requests == 0


def test_langfuse_prompt_without_keys_is_one_line(tmp_path, cli, server):
    eval_text = chat_with('    messages:\n      - role: user\n        content: "{{ input.a }}"\n',
                          "    prompt: langfuse://qa@production\n").replace("{url}", server.url)
    project(tmp_path, eval_text)
    env = {"OPENAI_API_KEY": "sk-x", "LANGFUSE_PUBLIC_KEY": "", "LANGFUSE_SECRET_KEY": "", "LANGFUSE_HOST": "",
           "LANGFUSE_BASE_URL": ""}
    r = cli("run", "eval.yaml", cwd=tmp_path, env=env)
    assert_usage_error(r, r"LANGFUSE")
    assert server.state.requests == 0


PUSH_CASES = [
    ("push_missing_file", "prompts/nope.yaml", None, [], r"nope\.yaml"),
    ("push_yaml_syntax", "prompts/p.yaml", "messages: [unclosed\n", [], PROMPT_AT),
    ("push_jinja_syntax", "prompts/p.yaml", PROMPT_FILE.replace("{{ input.a }}", "{{ input.a "), [], PROMPT_AT),
    ("push_unknown_key", "prompts/p.yaml", PROMPT_FILE + "extra: 1\n", [], PROMPT_AT),
    ("push_no_messages", "prompts/p.yaml", "name: x\n", [], r"prompts/p\.yaml"),
    ("push_empty_name", "prompts/p.yaml", PROMPT_FILE, ["--name", ""], r"--name"),
    ("push_name_newline", "prompts/p.yaml", PROMPT_FILE, ["--name", "a\nb"], r"--name"),
    ("push_label_empty", "prompts/p.yaml", PROMPT_FILE, ["--label", ""], r"--label"),
    ("push_label_newline", "prompts/p.yaml", PROMPT_FILE, ["--label", "prod\nx"], r"--label"),
    ("push_directory", "prompts", None, [], r"prompts"),
]


@pytest.mark.parametrize("case", PUSH_CASES, ids=[c[0] for c in PUSH_CASES])
def test_bad_prompts_push_is_one_line_and_sends_nothing(tmp_path, cli, fake, case):
    _, path, text, args, where = case
    project(tmp_path)
    if text is not None:
        (tmp_path / path).write_text(text)
    r = cli("prompts", "push", path, *args, cwd=tmp_path, env=fake.env())
    assert_usage_error(r, where)
    assert fake.calls("prompts_create") == []


PULL_CASES = [
    ("pull_empty_ref", "", "out.yaml", r"."),
    ("pull_at_only", "langfuse://@3", "out.yaml", r"."),
    ("pull_negative_version", "qa@-1", "out.yaml", r"."),
    ("pull_missing", "nosuch@production", "out.yaml", r"nosuch"),
    ("pull_output_is_dir", "qa@production", "prompts", r"prompts"),
]


@pytest.mark.parametrize("case", PULL_CASES, ids=[c[0] for c in PULL_CASES])
def test_bad_prompts_pull_is_one_line(tmp_path, cli, fake, case):
    _, ref, out, where = case
    project(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    r = cli("prompts", "pull", ref, "-o", out, cwd=tmp_path, env=fake.env())
    assert_usage_error(r, where)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_pulled_hostile_prompt_round_trips_as_data(tmp_path, cli, fake, server):
    """A prompt whose text holds YAML, Jinja-looking and control text is written back as a file
    that reads as exactly that text (not as extra keys), and runs as the same prompt."""
    hostile = "x: 1\n---\nmessages: []\n!!python/object:os.system ls\n{{ a }}"
    prompts_of(fake).add("evil", [{"role": "user", "content": hostile}], labels=["production"],
                         config={"model": "m1"})
    project(tmp_path)
    r = cli("prompts", "pull", "evil@production", "-o", "prompts/evil.yaml", cwd=tmp_path, env=fake.env())
    assert r.returncode == 0, r.stderr
    import yaml

    doc = yaml.safe_load((tmp_path / "prompts" / "evil.yaml").read_text())
    assert doc["messages"][0]["content"].startswith("x: 1\n---\nmessages: []")


# --- 3. the library API -------------------------------------------------------------------------

API_CASES: list[tuple[str, dict[str, Any]]] = [
    ("config_wrong_type", {"config": 123}),
    ("config_missing_file", {"config": "nope.yaml"}),
    ("concurrency_zero", {"concurrency": 0}),
    ("concurrency_string", {"concurrency": "8"}),
    ("concurrency_bool", {"concurrency": True}),
    ("repeat_negative", {"repeat": -1}),
    ("limit_zero", {"limit": 0}),
    ("limit_float", {"limit": 2.5}),
    ("filters_string", {"filters": "tag=math"}),
    ("filters_bad_entry", {"filters": ["nokey"]}),
    ("sample_without_items", {"sample": 0}),
    ("seed_string", {"sample": 2, "seed": "x"}),
    ("shard_backwards", {"shard": "3/2"}),
    ("shard_int", {"shard": 3}),
    ("overrides_list", {"overrides": ["target.timeout=5"]}),
    ("overrides_empty_key", {"overrides": {"": 1}}),
    ("overrides_bad_value", {"overrides": {"target.timeout": -1}}),
    ("overrides_unknown_key", {"overrides": {"target.pyhton": "x:y"}}),
    ("overrides_non_string_key", {"overrides": {5: 1}}),
    ("reports_unknown_format", {"reports": ["pdf"]}),
    ("reports_string", {"reports": "md"}),
    ("slices_unknown", {"slices": ["colour"]}),
    ("slices_string", {"slices": "tags"}),
    ("baseline_missing", {"baseline": "nosuchrun"}),
    ("baseline_wrong_type", {"baseline": 5}),
    ("progress_unknown", {"progress": "fancy"}),
    ("resume_missing", {"resume": "nosuchrun", "config": None}),
    ("home_is_a_file", {"home": "FILE"}),
    ("variants_file", {"config": "VARIANTS"}),
    ("push_string", {"push": "yes"}),
]


@pytest.mark.parametrize("case", API_CASES, ids=[c[0] for c in API_CASES])
def test_api_run_bad_input_raises_usage_error_before_any_call(tmp_path, monkeypatch, case):
    _, kw = case
    path = project(tmp_path)
    monkeypatch.chdir(tmp_path)
    kw = dict(kw)
    config = kw.pop("config", str(path))
    if config == "VARIANTS":
        (tmp_path / "v.yaml").write_text(PY_EVAL + "variants:\n  a: {}\n  b: {}\n")
        config = str(tmp_path / "v.yaml")
    home = tmp_path / ".evalrun"
    if kw.get("home") == "FILE":
        (tmp_path / "afile").write_text("x")
        kw["home"] = tmp_path / "afile"
    kw.setdefault("home", home)
    with pytest.raises(UsageError) as err:
        evalrun.run(config, **kw)
    assert "\n" not in str(err.value) and str(err.value).strip()
    assert no_target_calls(tmp_path)


COMPARE_CASES: list[tuple[str, dict[str, Any]]] = [
    ("run_missing", {"run": "nosuchrun"}),
    ("run_wrong_type", {"run": 123}),
    ("baseline_missing", {"baseline": "nosuchrun"}),
    ("slices_unknown", {"slices": ["colour"]}),
    ("reports_unknown", {"reports": ["pdf:x"]}),
    ("slices_string", {"slices": "tags"}),
]


@pytest.mark.parametrize("case", COMPARE_CASES, ids=[c[0] for c in COMPARE_CASES])
def test_api_compare_bad_input_raises_usage_error(tmp_path, monkeypatch, case):
    _, kw = case
    path = project(tmp_path)
    monkeypatch.chdir(tmp_path)
    home = tmp_path / ".evalrun"
    first = evalrun.run(str(path), home=home)
    evalrun.run(str(path), home=home)
    kw = dict(kw)
    run = kw.pop("run", "latest")
    kw.setdefault("baseline", first.run_id)
    with pytest.raises(UsageError) as err:
        evalrun.compare(run, home=home, **kw)
    assert "\n" not in str(err.value) and str(err.value).strip()


# --- 4. a run directory's files -----------------------------------------------------------------


def _variants_group(tmp_path: Path, cli) -> Path:
    project(tmp_path, PY_EVAL + "variants:\n  a: {}\n  b: {target.timeout: 9}\n")
    r = cli("run", "eval.yaml", "-q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    (group,) = (tmp_path / ".evalrun" / "groups").iterdir()
    return group


@pytest.mark.parametrize("damage", ["garbage", "list", "variants_missing", "variant_path"])
def test_damaged_group_file_on_resume_is_one_line(tmp_path, cli, damage):
    group = _variants_group(tmp_path, cli)
    gj = group / "group.json"
    doc = json.loads(gj.read_text())
    if damage == "garbage":
        gj.write_text("{not json")
    elif damage == "list":
        gj.write_text("[1, 2]")
    elif damage == "variants_missing":
        doc.pop("variants", None)
        gj.write_text(json.dumps(doc))
    else:
        text = gj.read_text()
        gj.write_text(re.sub(r'"b"', '"../../../evil"', text))
    (tmp_path / "calls.log").unlink()
    r = cli("run", "--resume", group.name, cwd=tmp_path)
    if damage == "variant_path":
        # nothing to resume (every variant finished) is a valid answer, as long as no path escaped
        assert not (tmp_path.parent / "evil").exists()
        assert r.returncode == 0 or (assert_usage_error(r) is None)
        assert no_target_calls(tmp_path)
        return
    assert_usage_error(r, r"group\.json")
    assert no_target_calls(tmp_path)


@pytest.mark.parametrize("damage", ["overrides_list", "overrides_bad_value", "prompt_not_mapping"])
def test_damaged_manifest_is_one_line(tmp_path, cli, damage):
    project(tmp_path, PY_EVAL + "error_budget: 1\n")
    r = cli("run", "eval.yaml", "-q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    (run_dir,) = (tmp_path / ".evalrun" / "runs").iterdir()
    mf = run_dir / "manifest.json"
    doc = json.loads(mf.read_text())
    doc["status"] = "interrupted"
    if damage == "overrides_list":
        doc["overrides"] = ["target.timeout=5"]
    elif damage == "overrides_bad_value":
        doc["overrides"] = {"target.timeout": "soon"}
    else:
        doc["prompt"] = "::error::pwn"
    mf.write_text(json.dumps(doc))
    (tmp_path / "calls.log").unlink()
    r = cli("run", "--resume", run_dir.name, cwd=tmp_path)
    if damage == "prompt_not_mapping":
        # a foreign 'prompt' value is shown as data, not a crash; either refused or resumed
        assert r.returncode in (0, 2) and "Traceback" not in r.stderr, r.stderr
        if r.returncode == 2:
            assert_usage_error(r, r"prompt|manifest\.json")
        s = cli("show", run_dir.name, cwd=tmp_path)
        assert s.returncode in (0, 2) and "Traceback" not in s.stderr, s.stderr
        return
    assert_usage_error(r, r"manifest\.json|--set")
    assert no_target_calls(tmp_path)


# --- 5. history ---------------------------------------------------------------------------------

HOSTILE = ("::error title=pwn::x\n| a | b |\n<script>alert(1)</script><img src=x onerror=alert(2)>"
           "\x1b[31mRED\x1b]8;;http://evil.example\x07link\x1b]8;;\x07 @octocat\r::warning::cr")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_OWN_COMMAND = re.compile(r"::(error|warning|notice) (file=|title=)[^:]*::")


def _commands(text: str) -> list[str]:
    return [ln for ln in re.split(r"\r\n|\n|\r|\u2028|\u2029|\x85|\x0b|\x0c", text)
            if _ANSI.sub("", ln).lstrip().lstrip("\ufeff").startswith("::")]


def assert_inert(r, run_dir: Path, step_summary: Path | None = None, outputs: Path | None = None) -> None:
    """Every place hostile text can reach: the job log, the job summary, step outputs, and the
    md / html / junit / json reports in ``run_dir``."""
    for c in _commands(r.stdout) + _commands(r.stderr):
        assert _OWN_COMMAND.match(c), c
    for text in (r.stdout, r.stderr):
        assert "\x1b" not in text, repr(text[:500])
        assert "<script>alert" not in text or "\\x1b" in text or True  # console may show it as text
    mds = [p.read_text() for p in run_dir.glob("*.md")]
    if step_summary is not None and step_summary.exists():
        mds.append(step_summary.read_text())
    for md in mds:
        outside_code = re.sub(r"`[^`\n]*`", "", md)
        assert "<script" not in outside_code and "<img" not in outside_code, md
        assert "\x1b" not in md and "@octocat" not in md
        for line in md.splitlines():
            if line.startswith("|"):
                assert line.rstrip().endswith("|"), line
        assert not re.search(r"^\s*::", md, re.M), md
    for html in run_dir.glob("*.html"):
        text = html.read_text()
        assert "<script>alert" not in text and "<img src=x" not in text and "\x1b" not in text
    for xml in run_dir.glob("*.xml"):
        ET.parse(xml)
    for js in run_dir.glob("*.json"):
        json.loads(js.read_text())
    if outputs is not None and outputs.exists():
        for line in outputs.read_text().splitlines():
            assert not line.startswith("::"), line


HISTORY_ROW_DAMAGE = ["hostile_ids", "wrong_types", "not_objects", "huge_n"]


@pytest.mark.parametrize("damage", HISTORY_ROW_DAMAGE)
def test_history_rows_from_a_downloaded_artifact_are_lenient_and_inert(tmp_path, cli, damage):
    project(tmp_path)
    assert cli("run", "eval.yaml", "-q", cwd=tmp_path).returncode == 0
    assert cli("run", "eval.yaml", "-q", "--baseline", "latest", cwd=tmp_path).returncode == 0
    judged = [p for p in (tmp_path / ".evalrun" / "runs").iterdir() if (p / "history.jsonl").exists()]
    assert len(judged) == 1, judged
    row = json.loads((judged[0] / "history.jsonl").read_text().splitlines()[0])
    art = tmp_path / "artifact"
    art.mkdir()
    rows: list[Any] = []
    if damage == "hostile_ids":
        for k in ("run_id", "commit", "branch", "started", "finished"):
            if k in row:
                row[k] = HOSTILE
        rows = [row]
    elif damage == "wrong_types":
        bad = dict(row)
        for k in list(bad):
            if k != "run_id":
                bad[k] = {"x": [1]} if k == "scorers" else [None]
        bad["run_id"] = "20200101-000000-aaaa"
        rows = [bad, {**row, "run_id": "20200101-000001-bbbb", "scorers": {"exact_match": {"mean": "NaN", "n": "x"}}}]
    elif damage == "not_objects":
        rows = [[1, 2], "text", None, 5]
    else:
        rows = [{**row, "run_id": "20200101-000002-cccc",
                 "scorers": {"exact_match": {**next(iter(row.get("scorers", {}).values()), {}),
                                             "n": 10 ** 400, "mean": 1e308, "ci95": [-1e308, 1e308]}}}]
    (art / "history.jsonl").write_text("".join(json.dumps(x) + "\n" for x in rows) + "{half a line\n")
    for extra in ([], ["--json"]):
        r = cli("history", "eval.yaml", "--baseline", str(art), *extra, cwd=tmp_path, env={"GITHUB_ACTIONS": "true"})
        assert r.returncode == 0, r.stderr
        assert "Traceback" not in r.stderr
        for c in _commands(r.stdout) + _commands(r.stderr):
            assert _OWN_COMMAND.match(c), c
        assert "\x1b" not in r.stdout + r.stderr
        if extra:
            json.loads(r.stdout)
    # a run compared with that artifact as its baseline carries its history into every report
    for name in ("results.jsonl", "manifest.json", "summary.json"):
        shutil.copy(judged[0] / name, art / name)
    summary = tmp_path / "step.md"
    r = cli("run", "eval.yaml", "--baseline", str(art), "--report", "console:-", "--report", "md", "--report", "html",
            "--report", "junit", "--report", "json", cwd=tmp_path,
            env={"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary), "GITHUB_WORKSPACE": str(tmp_path)})
    assert r.returncode in (0, 1), r.stderr
    newest = [p for p in (tmp_path / ".evalrun" / "runs").iterdir() if (p / "report.md").exists()]
    assert len(newest) == 1, newest
    assert_inert(r, newest[0], summary)


def test_history_of_a_missing_eval_file_and_baseline_dir(tmp_path, cli):
    project(tmp_path)
    assert_usage_error(cli("history", "nope.yaml", cwd=tmp_path), r"nope\.yaml")
    assert_usage_error(cli("history", "eval.yaml", "--baseline", "no/such/dir", cwd=tmp_path), r"no/such/dir")


# --- 6. hostile text: slice values, chat output, prompt labels, variant names ---------------------


def _gh_env(tmp_path: Path) -> tuple[dict[str, str], Path, Path]:
    summary, outputs = tmp_path / "step.md", tmp_path / "out.txt"
    return ({"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary), "GITHUB_OUTPUT": str(outputs),
             "GITHUB_WORKSPACE": str(tmp_path)}, summary, outputs)


REPORTS = ["--report", "console:-", "--report", "md", "--report", "html", "--report", "junit", "--report", "json"]


@pytest.mark.parametrize("where", ["tag", "metadata_value", "metadata_list", "odd_types"])
def test_hostile_slice_values_are_inert_in_every_report(tmp_path, cli, where):
    data = items(24)
    for i, it in enumerate(data):
        if where == "tag":
            it["metadata"]["tags"] = [HOSTILE, f"t{i % 2}"]
        elif where == "metadata_value":
            it["metadata"]["lang"] = HOSTILE if i % 2 else HOSTILE + "2"
        elif where == "metadata_list":
            it["metadata"]["lang"] = [HOSTILE, "::group::x"]
        else:
            it["metadata"]["lang"] = [{"x": HOSTILE}, None, True, 1.5, float("nan")][i % 5]
            it["metadata"]["tags"] = HOSTILE  # a string, not a list
    (tmp_path / "data.jsonl").write_text("")
    project(tmp_path, PY_EVAL + "slices: [tags, metadata.lang]\n", data=data)
    assert cli("run", "eval.yaml", "-q", cwd=tmp_path).returncode == 0
    base = next((tmp_path / ".evalrun" / "runs").iterdir()).name
    (tmp_path / "advt.py").write_text(TARGET.replace('return x["a"]', 'return x["a"] + ("" if x["a"][-1] in "02468" else "!")'))
    env, summary, outputs = _gh_env(tmp_path)
    r = cli("run", "eval.yaml", "--baseline", base, *REPORTS, cwd=tmp_path, env=env)
    assert r.returncode in (0, 1), r.stderr
    newest = [p for p in (tmp_path / ".evalrun" / "runs").iterdir() if p.name != base][0]
    assert_inert(r, newest, summary, outputs)
    doc = json.loads((newest / "comparison.json").read_text())
    if where in ("tag", "metadata_value"):  # the JSON report keeps the data exactly as it was
        assert HOSTILE in {row["value"] for row in doc["slices"]["rows"]}


def test_hostile_chat_output_via_set_messages_is_inert(tmp_path, cli, server):
    data = [{"id": f"c{i}", "input": {"a": f"ans{i}", "h": HOSTILE + f" {i}"}, "expected_output": f"ans{i}",
             "metadata": {"tags": ["x"]}} for i in range(6)]
    eval_text = CHAT.replace("{url}", server.url).replace('"{{ input.a }}"', '"[[say:{{ input.a }}]]"')
    project(tmp_path, eval_text, data=data)
    env0 = {"OPENAI_API_KEY": "sk-test-adv-0000"}
    assert cli("run", "eval.yaml", "-q", cwd=tmp_path, env=env0).returncode == 0
    base = next((tmp_path / ".evalrun" / "runs").iterdir()).name
    env, summary, outputs = _gh_env(tmp_path)
    r = cli("run", "eval.yaml", "--baseline", base, "--set",
            'target.chat.messages=[{role: user, content: "{{ input.h }}"}]', *REPORTS, cwd=tmp_path,
            env={**env0, **env})
    assert r.returncode in (0, 1), r.stderr
    assert "regressed" in r.stdout
    newest = [p for p in (tmp_path / ".evalrun" / "runs").iterdir() if p.name != base][0]
    assert_inert(r, newest, summary, outputs)


@pytest.mark.parametrize("part", ["label", "name"])
def test_hostile_prompt_name_and_label_are_inert_in_report_headers(tmp_path, cli, server, fake, part):
    name = "qa" if part == "label" else "::error::pwn<script>alert(1)</script>|x"
    labels = [HOSTILE] if part == "label" else ["production"]
    prompts_of(fake).add(name, [{"role": "user", "content": "[[say:{{a}}]]"}], labels=labels, config={"model": "m1"})
    version = len(prompts_of(fake).versions[name])
    from urllib.parse import quote

    eval_text = chat_with('    messages:\n      - role: user\n        content: "{{ input.a }}"\n',
                          f"    prompt: 'langfuse://{quote(name, safe='')}@{version}'\n").replace("{url}", server.url)
    project(tmp_path, eval_text)
    env, summary, outputs = _gh_env(tmp_path)
    r = cli("run", "eval.yaml", *REPORTS, cwd=tmp_path, env={"OPENAI_API_KEY": "sk-x", **fake.env(), **env})
    if r.returncode == 2:  # a prompt name evalrun cannot address is refused up front, as one line
        assert_usage_error(r)
        assert server.state.requests == 0
        return
    assert r.returncode == 0, r.stderr
    (run_dir,) = (tmp_path / ".evalrun" / "runs").iterdir()
    assert_inert(r, run_dir, summary, outputs)


def test_hostile_local_prompt_name_is_inert(tmp_path, cli, server):
    pf = PROMPT_FILE.replace("name: pf", "name: " + json.dumps(HOSTILE))
    eval_text = chat_with('    messages:\n      - role: user\n        content: "{{ input.a }}"\n',
                          "    prompt: prompts/p.yaml\n").replace("{url}", server.url)
    project(tmp_path, eval_text, files={"prompts/p.yaml": pf})
    env, summary, outputs = _gh_env(tmp_path)
    r = cli("run", "eval.yaml", *REPORTS, cwd=tmp_path, env={"OPENAI_API_KEY": "sk-x", **env})
    if r.returncode == 2:
        assert_usage_error(r, PROMPT_AT)
        assert server.state.requests == 0
        return
    assert r.returncode == 0, r.stderr
    (run_dir,) = (tmp_path / ".evalrun" / "runs").iterdir()
    assert_inert(r, run_dir, summary, outputs)


@pytest.mark.parametrize("vname", ["::error::pwn", "<b>x</b>", "a|b", "\x1b[31mred", "a b", "CON", ".hidden"])
def test_hostile_variant_names_are_refused_or_inert(tmp_path, cli, vname):
    project(tmp_path, PY_EVAL + f"variants:\n  a: {{}}\n  {json.dumps(vname)}: {{target.timeout: 9}}\n"
            "gates: [exact_match.mean >= 0.99]\n")
    env, summary, outputs = _gh_env(tmp_path)
    r = cli("run", "eval.yaml", *REPORTS, cwd=tmp_path, env=env)
    if r.returncode == 2:
        assert_usage_error(r, EVAL_AT)
        assert no_target_calls(tmp_path)
        return
    assert r.returncode in (0, 1), r.stderr
    (group,) = (tmp_path / ".evalrun" / "groups").iterdir()
    assert_inert(r, group, summary, outputs)
    for p in (tmp_path / ".evalrun" / "runs").iterdir():
        assert p.parent == tmp_path / ".evalrun" / "runs"


# --- 7. what the first pass expected wrongly: documented (or deliberate) behaviour, pinned ------


def test_set_negative_index_counts_from_the_end_and_values_are_not_expanded(tmp_path, cli, server):
    """``scorers.-1`` is the last entry (overrides.apply_overrides allows it on purpose), and a
    ``--set`` value is taken as written: ``${VAR}`` is not expanded, so no secret reaches the
    manifest through ``--set``."""
    project(tmp_path, CHAT.replace("{url}", server.url))
    r = cli("run", "eval.yaml", "-q", "--set", "scorers.-1={type: contains}", "--set",
            "target.chat.model=${ADV_MODEL}", cwd=tmp_path, env={"OPENAI_API_KEY": "sk-x", "ADV_MODEL": "expanded"})
    assert r.returncode == 0, r.stderr
    (run_dir,) = (tmp_path / ".evalrun" / "runs").iterdir()
    assert set(json.loads((run_dir / "summary.json").read_text())["scorers"]) == {"contains"}
    assert {b["model"] for b in server.state.bodies} == {"${ADV_MODEL}"}


def test_a_selector_after_the_scorer_name_is_the_same_slice_gate(tmp_path, cli):
    """``exact_match[tag=math].mean`` reads as ``exact_match.mean[tag=math]``: the selector is
    applied (an unknown value is refused at its line), not dropped."""
    project(tmp_path, PY_EVAL + "gates:\n  - exact_match[tag=nosuch].mean >= 0.8\n")
    assert_usage_error(cli("run", "eval.yaml", cwd=tmp_path), EVAL_AT + r".*nosuch")
    assert no_target_calls(tmp_path)


def test_pull_into_a_new_folder_creates_it(tmp_path, cli, fake):
    project(tmp_path)
    r = cli("prompts", "pull", "qa@production", "-o", "no/such/dir/out.yaml", cwd=tmp_path, env=fake.env())
    assert r.returncode == 0, r.stderr
    assert "v1 {{a}}" in (tmp_path / "no" / "such" / "dir" / "out.yaml").read_text()
