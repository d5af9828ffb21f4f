"""What evalrun writes for GitHub Actions: step outputs, the job summary and annotations,
checked by running the real CLI with the Actions environment pointed at temp files."""

from __future__ import annotations

import io
import json
from pathlib import Path

from evalrun.datasets import run_item_sources
from evalrun.github import Finding, annotation, annotation_lines, format_outputs, places
from tests.conftest import invoke_cli


def parse_env_file(text: str) -> dict[str, str]:
    """Read $GITHUB_OUTPUT as the Actions runner does: ``name=value`` lines and
    ``name<<DELIM`` ... ``DELIM`` blocks."""
    out: dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line:
            continue
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delim = line.split("<<", 1)
            value = []
            while lines[i] != delim:
                value.append(lines[i])
                i += 1
            i += 1
            out[name] = "\n".join(value)
        else:
            name, value = line.split("=", 1)
            out[name] = value
    return out


def test_outputs_are_safe_for_any_value():
    hostile = "line one\nverdict<<EOF\npass\nEOF\nEVALRUN_EOF_0\nrun_id=forged"
    text = format_outputs({"verdict": "fail", "report": hostile, "empty": "", "none": None, "n": 0.5})
    assert parse_env_file(text) == {"verdict": "fail", "report": hostile, "empty": "", "none": "", "n": "0.5"}


def test_annotation_escaping():
    assert annotation("error", "50% worse\nsee report", file="data/a,b:c.yaml", line=12, title="gate: x") == \
        "::error file=data/a%2Cb%3Ac.yaml,line=12,title=gate%3A x::50%25 worse%0Asee report"
    assert annotation("warning", "plain") == "::warning::plain"
    lines = annotation_lines([Finding("error", "regressed", "item a", item_id="a")] * 60, {"a": ("d.yaml", 3)})
    assert len(lines) == 51 and lines[0] == "::error file=d.yaml,line=3,title=regressed::item a"
    assert lines[-1].startswith("::warning title=evalrun::10 more findings")


SUITE = '''name: gh
dataset: data/items.yaml
target:
  python: tgt:answer
scorers: [exact_match]
'''

DATA = '''items:
  - id: good
    input: a
    expected_output: A
  - id: bad
    input: b
    expected_output: nope
  - input: c
    expected_output: C
'''


def write_suite(root: Path) -> None:
    (root / "data").mkdir(parents=True)
    (root / "data" / "items.yaml").write_text(DATA)
    (root / "tgt.py").write_text("def answer(x):\n    return x.upper()\n")
    (root / "eval.yaml").write_text(SUITE)


def actions_env(root: Path, **extra: str) -> dict[str, str]:
    return {"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(root / "gh_output"),
            "GITHUB_STEP_SUMMARY": str(root / "gh_summary.md"), "GITHUB_WORKSPACE": str(root),
            "NO_COLOR": "", **extra}


def test_run_in_actions_sets_outputs_and_stays_plain(tmp_path):
    write_suite(tmp_path)
    r = invoke_cli("run", "eval.yaml", "--output-dir", str(tmp_path / ".evalrun"), cwd=tmp_path,
                env=actions_env(tmp_path, COLUMNS="100"))
    assert r.returncode == 0, r.stderr
    # no cursor movement, no colour: Actions logs are plain text
    assert "\x1b" not in r.stdout and "\x1b" not in r.stderr and "\r" not in r.stderr
    assert "gh: 3/3 (100%)" in r.stderr  # the progress line, not a bar
    out = parse_env_file((tmp_path / "gh_output").read_text())
    run_dir = next((tmp_path / ".evalrun" / "runs").iterdir())
    assert out["verdict"] == "pass"
    assert out["run_id"] == run_dir.name
    assert out["run_dir"] == str(run_dir.resolve())
    assert out["pass_rate"] == "0.666667"
    # --json keeps stdout pure JSON in Actions too
    r = invoke_cli("run", "eval.yaml", "--output-dir", str(tmp_path / ".evalrun"), "--json", cwd=tmp_path,
                env=actions_env(tmp_path))
    assert json.loads(r.stdout)["records"] == 3


def test_outside_actions_nothing_is_written(tmp_path):
    write_suite(tmp_path)
    env = actions_env(tmp_path)
    env["GITHUB_ACTIONS"] = "false"
    r = invoke_cli("run", "eval.yaml", "--output-dir", str(tmp_path / ".evalrun"), "-q", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "gh_output").exists() and not (tmp_path / "gh_summary.md").exists()


def test_a_failed_run_is_verdict_error(tmp_path):
    write_suite(tmp_path)
    (tmp_path / "tgt.py").write_text("def answer(x):\n    raise ValueError('down')\n")
    r = invoke_cli("run", "eval.yaml", "--output-dir", str(tmp_path / ".evalrun"), "-q", cwd=tmp_path,
                env=actions_env(tmp_path))
    assert r.returncode == 3
    out = parse_env_file((tmp_path / "gh_output").read_text())
    assert out["verdict"] == "error" and out["pass_rate"] == "0"


def test_merge_in_actions_sets_the_merged_run(tmp_path):
    write_suite(tmp_path)
    home = str(tmp_path / ".evalrun")
    for i in (1, 2):
        assert invoke_cli("run", "eval.yaml", "--output-dir", home, "-q", "--shard", f"{i}/2", cwd=tmp_path).returncode == 0
    shards = sorted((tmp_path / ".evalrun" / "runs").iterdir())
    r = invoke_cli("merge", *map(str, shards), "--output-dir", home, "-q", cwd=tmp_path, env=actions_env(tmp_path))
    assert r.returncode == 0, r.stderr
    out = parse_env_file((tmp_path / "gh_output").read_text())
    assert out["verdict"] == "pass" and out["pass_rate"] == "0.666667"
    assert out["run_id"] not in {s.name for s in shards}
    assert json.loads((Path(out["run_dir"]) / "manifest.json").read_text())["merged_from"]


def test_item_sources_point_at_dataset_lines(tmp_path):
    write_suite(tmp_path)
    r = invoke_cli("run", "eval.yaml", "--output-dir", str(tmp_path / ".evalrun"), "-q", cwd=tmp_path)
    assert r.returncode == 0
    run_dir = next((tmp_path / ".evalrun" / "runs").iterdir())
    manifest = json.loads((run_dir / "manifest.json").read_text())
    sources = places(run_item_sources(manifest), {"GITHUB_WORKSPACE": str(tmp_path)})
    assert sources["good"] == ("data/items.yaml", 2) and sources["bad"] == ("data/items.yaml", 5)
    assert len(sources) == 3
    # once the dataset changes, its lines may belong to other items: no place rather than a wrong one
    (tmp_path / "data" / "items.yaml").write_text("items:\n  - {id: x, input: y}\n" + DATA.split("\n", 1)[1])
    assert places(run_item_sources(manifest), {"GITHUB_WORKSPACE": str(tmp_path)}) == {}
    log = io.StringIO()
    lines = annotation_lines([Finding("warning", "regressed", "bad got worse", item_id="bad")], sources)
    print(*lines, file=log)
    assert log.getvalue() == "::warning file=data/items.yaml,line=5,title=regressed::bad got worse\n"


def test_gated_run_in_actions_reports_verdict_summary_and_annotations(tmp_path):
    write_suite(tmp_path)
    (tmp_path / "eval.yaml").write_text(SUITE + "gates:\n  - exact_match.pass_rate >= 0.9\n"
                                                "  - no_regressions: {}\n")
    home = str(tmp_path / ".evalrun")
    base = invoke_cli("run", "eval.yaml", "--output-dir", home, "-q", cwd=tmp_path)
    assert base.returncode == 1  # 2 of 3 pass: the absolute gate fails on the baseline too
    baseline = next((tmp_path / ".evalrun" / "runs").iterdir())
    # the candidate breaks item "good" (data/items.yaml line 2)
    (tmp_path / "tgt.py").write_text("def answer(x):\n    return 'oops' if x == 'a' else x.upper()\n")
    r = invoke_cli("run", "eval.yaml", "--output-dir", home, "--baseline", str(baseline), cwd=tmp_path,
                env=actions_env(tmp_path))
    assert r.returncode == 1, r.stderr
    out = parse_env_file((tmp_path / "gh_output").read_text())
    assert out["verdict"] == "fail" and out["pass_rate"] == "0.333333"
    summary_md = (tmp_path / "gh_summary.md").read_text()
    report = Path(out["report_path"]).read_text()
    assert summary_md == (report if report.endswith("\n") else report + "\n")
    assert Path(out["report_path"]).parent == Path(out["run_dir"])
    assert "exact_match" in summary_md and "no_regressions" in summary_md
    errors = [x for x in r.stderr.splitlines() if x.startswith("::error")]
    assert any(x.startswith("::error file=data/items.yaml,line=2,title=evalrun gate failed%3A no_regressions")
               for x in errors), errors
    assert any(x.startswith("::error title=evalrun gate failed%3A exact_match.pass_rate >= 0.9::value")
               for x in errors), errors
    assert "\x1b" not in r.stdout + r.stderr


def test_regressed_items_without_a_gate_are_warnings(tmp_path):
    write_suite(tmp_path)
    home = str(tmp_path / ".evalrun")
    assert invoke_cli("run", "eval.yaml", "--output-dir", home, "-q", cwd=tmp_path).returncode == 0
    baseline = next((tmp_path / ".evalrun" / "runs").iterdir())
    (tmp_path / "tgt.py").write_text("def answer(x):\n    return 'oops' if x == 'a' else x.upper()\n")
    r = invoke_cli("run", "eval.yaml", "--output-dir", home, "-q", "--baseline", str(baseline),
                "--report", f"md:{tmp_path / 'out' / 'r.md'}", cwd=tmp_path, env=actions_env(tmp_path))
    assert r.returncode == 0, r.stderr  # no gates: a regression is worth a warning, not a failure
    out = parse_env_file((tmp_path / "gh_output").read_text())
    assert out["verdict"] == "pass" and out["report_path"] == str(tmp_path / "out" / "r.md")
    warnings = [x for x in r.stderr.splitlines() if x.startswith("::warning")]
    assert warnings == ["::warning file=data/items.yaml,line=2,title=evalrun%3A item good regressed::exact_match "
                        "went from pass to fail; expected 'A'; baseline output 'A'; new output 'oops'"]


def test_remote_items_get_annotations_without_a_file():
    """A Langfuse item's source (``langfuse://set#id``, as evalrun.langfuse.datasets writes it)
    names no file: its annotation carries no ``file=``, a file item's keeps its line."""
    from evalrun.datasets import item_sources
    from evalrun.records import Item

    items = [Item("r1", "q", source="langfuse://qa-set#abc123"), Item("f1", "q", source="data/items.yaml:7")]
    sources = places(item_sources(items), {})
    assert sources == {"f1": ("data/items.yaml", 7)}
    lines = annotation_lines([Finding("error", "regressed", "r1 got worse", item_id="r1"),
                              Finding("error", "regressed", "f1 got worse", item_id="f1")], sources)
    assert lines == ["::error title=regressed::r1 got worse",
                     "::error file=data/items.yaml,line=7,title=regressed::f1 got worse"]
