"""Variants of a chat target: two Langfuse prompt versions side by side (the issue's own
example), against the local OpenAI-compatible and Langfuse servers; ``--set`` applies to every
variant, under each variant's own overrides."""

from __future__ import annotations

import json

from tests.test_chat import REGRESSED, chat, cli, fake, records, write_suite  # noqa: F401 (fixture: fake; server is conftest's)
from tests.test_slices_browser import needs_chromium


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


@needs_chromium
def test_the_variant_matrix_first_screen_names_each_variants_prompt_and_model(tmp_path, server, fake):  # noqa: F811
    """Issue 24: the variants HTML opens on the scorer x variant matrix, each column headed by
    the variant's prompt name@version and model, and the failing gate, all at 1280 x 800."""
    from tests.test_report_browser import layout, on_first_screen

    write_suite(tmp_path, chat(server, prompt="langfuse://qa@3"),
                variants={"v3": {}, "v4": {"target.chat.prompt": "langfuse://qa@4"}},
                gates=["exact_match.pass_rate >= baseline - 10%"], gate_policy="point")
    r = cli("run", "eval.yaml", "--report", "html", "-q", cwd=tmp_path, env=fake.env())
    assert r.returncode == 1, r.stderr
    [g] = list((tmp_path / ".evalrun" / "groups").iterdir())
    group = json.loads((g / "group.json").read_text())
    models = {n: json.loads((tmp_path / ".evalrun" / "runs" / rid / "manifest.json").read_text())["target_model"]
              for n, rid in group["variants"].items()}
    found, console = layout(g / "report.html", 1280, 800)
    assert console == []
    heads = found["heads"]
    assert [h["text"] for h in heads] == [f"v3 (ref)prompt qa@3{models['v3']}", f"v4prompt qa@4{models['v4']}"]  # three lines
    assert all(on_first_screen(h, found) for h in heads) and on_first_screen(found["summary"], found)
    assert "▼" in found["summary"]["text"] or "FAIL" in found["summary"]["text"]
    assert on_first_screen(found["matrix_gates"], found) and "v4" in found["matrix_gates"]["text"]
    assert found["page_width"] <= 1280 and found["clipped"] == []
