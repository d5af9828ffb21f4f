"""Variants of a chat target: two Langfuse prompt versions side by side (the issue's own
example), against the local OpenAI-compatible and Langfuse servers; ``--set`` applies to every
variant, under each variant's own overrides."""

from __future__ import annotations

import json

from tests.test_chat import REGRESSED, chat, cli, fake, records, write_suite  # noqa: F401 (fixture: fake; server is conftest's)


def test_two_prompt_versions_as_variants_with_a_set_for_both(tmp_path, server, fake):  # noqa: F811
    write_suite(tmp_path, chat(server, prompt="langfuse://qa@3"),
                variants={"v3": {}, "v4": {"target.chat.prompt": "langfuse://qa@4"}},
                gates=["exact_match.pass_rate >= baseline - 10%"], gate_policy="point")  # 6 items: no interval excludes it
    r = cli("run", "eval.yaml", "--set", "target.retries=1", "--report", "json", "-q", cwd=tmp_path,
            env=fake.env())
    assert r.returncode == 1, r.stderr  # v4 answers with the largest city: its gate fails
    [g] = list((tmp_path / ".evalrun" / "groups").iterdir())
    doc = json.loads((g / "comparison.json").read_text())
    v4 = doc["variants"]["v4"]
    assert set(v4["comparison"]["scorers"]["exact_match"]["regressions"]) == REGRESSED
    assert v4["verdict"] == "fail" and doc["variants"]["v3"]["verdict"] == "pass"
    group = json.loads((g / "group.json").read_text())
    assert group["set"] == {"target.retries": 1}
    for name, run_id in group["variants"].items():
        run = tmp_path / ".evalrun" / "runs" / run_id
        m = json.loads((run / "manifest.json").read_text())
        assert m["overrides"] == {"target.retries": 1}  # --set reached every variant
        assert m["prompt"]["version"] == {"v3": 3, "v4": 4}[name]
        assert len(records(run)) == 6
