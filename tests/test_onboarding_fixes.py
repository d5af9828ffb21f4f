"""The smaller defects a new user met (issue 23), each fixed and held here: ``baseline set``
and ``baseline show`` agree on the path; ``--resume`` compares with the interrupted run's own
``--baseline``; a misspelt ``slices:`` key is an error with a suggestion; ``--set`` appends
to a list; ``python -m evalrun.github --help`` helps."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import invoke_cli

TARGET = ("import os\n\n\ndef answer(x):\n"
          "    broken = os.environ.get('BROKEN', '').split(',')\n"
          "    return 'wrong' if x in broken else x\n")


def suite(root: Path, extra: str = "", items: int = 4) -> None:
    lines = ["items:"] + [f"  - {{id: k{i}, input: k{i}, expected_output: k{i}, metadata: {{language: "
                          f"{'de' if i % 2 else 'en'}, tags: [t{i % 2}]}}}}" for i in range(items)]
    (root / "items.yaml").write_text("\n".join(lines) + "\n")
    (root / "tgt.py").write_text(TARGET)
    (root / "eval.yaml").write_text("name: fixes\ndataset: items.yaml\ntarget:\n  python: tgt:answer\n"
                                    "scorers: [exact_match]\n" + extra)


def runs(root: Path) -> set[Path]:
    return set((root / ".evalrun" / "runs").iterdir())


def test_baseline_set_writes_where_baseline_show_and_run_look(tmp_path):
    suite(tmp_path, "baseline: old.json\n")
    assert invoke_cli("run", "eval.yaml", "-q", cwd=tmp_path).returncode == 0
    # the eval file moves its accepted baseline after the run
    (tmp_path / "eval.yaml").write_text((tmp_path / "eval.yaml").read_text().replace("old.json", "ci/new.json"))
    r = invoke_cli("baseline", "set", "latest", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "ci" / "new.json").is_file() and not (tmp_path / "old.json").exists()
    show = invoke_cli("baseline", "show", "eval.yaml", cwd=tmp_path)
    assert show.returncode == 0 and show.stdout.startswith("ci/new.json: "), show.stdout + show.stderr
    again = invoke_cli("run", "eval.yaml", cwd=tmp_path)
    assert again.returncode == 0 and " vs baseline " in again.stdout


def test_baseline_set_falls_back_to_the_runs_own_path_when_the_eval_file_is_gone(tmp_path):
    suite(tmp_path, "baseline: kept.json\n")
    assert invoke_cli("run", "eval.yaml", "-q", cwd=tmp_path).returncode == 0
    (tmp_path / "eval.yaml").unlink()
    r = invoke_cli("baseline", "set", "latest", cwd=tmp_path)
    assert r.returncode == 0 and (tmp_path / "kept.json").is_file(), r.stderr


def test_resume_compares_with_the_interrupted_runs_own_baseline(tmp_path):
    suite(tmp_path, "gates:\n  - no_regressions: {scorer: exact_match}\n")
    home = ["--output-dir", str(tmp_path / ".evalrun")]
    assert invoke_cli("run", "eval.yaml", "-q", *home, cwd=tmp_path).returncode == 0
    (good,) = runs(tmp_path)
    # a run started against `latest` (the good run), then killed: status running, a record short
    r = invoke_cli("run", "eval.yaml", "--baseline", "latest", "-q", *home, cwd=tmp_path, env={"BROKEN": "k1"})
    assert r.returncode == 1  # k1 regressed against the good run
    (killed,) = runs(tmp_path) - {good}
    m = json.loads((killed / "manifest.json").read_text())
    assert m["options"]["baseline"] == str(good)  # where `latest` pointed, not the word
    lines = (killed / "results.jsonl").read_text().splitlines(keepends=True)
    (killed / "results.jsonl").write_text("".join(line for line in lines if '"k1"' not in line))
    m["status"] = "running"
    (killed / "manifest.json").write_text(json.dumps(m))
    # meanwhile a run with k1 broken finishes: `latest` now means a run where k1 already fails
    assert invoke_cli("run", "eval.yaml", "-q", *home, cwd=tmp_path, env={"BROKEN": "k1"}).returncode == 0
    resumed = invoke_cli("run", "--resume", str(killed), *home, cwd=tmp_path, env={"BROKEN": "k1"})
    assert resumed.returncode == 1, resumed.stdout + resumed.stderr  # still compared with the good run
    assert f"vs baseline {good.name}" in resumed.stdout and "1 regressed: k1" in resumed.stdout
    m = json.loads((killed / "manifest.json").read_text())
    assert m["status"] == "finished" and m["options"]["baseline"] == str(good)


def test_a_misspelt_slice_key_is_an_error_with_a_suggestion(tmp_path):
    suite(tmp_path, "slices:\n  - tags\n  - metadata.langauge\n")
    r = invoke_cli("run", "eval.yaml", cwd=tmp_path)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "eval.yaml:8:5: slices: no item has" in r.stderr and "metadata.langauge" in r.stderr
    assert "did you mean 'metadata.language'" in r.stderr
    assert not (tmp_path / ".evalrun" / "runs").exists()  # before any call
    suite(tmp_path, "slices: [metadata.language]\n")
    r = invoke_cli("run", "eval.yaml", "--slice", "metadata.lang", cwd=tmp_path)
    assert r.returncode == 2 and "--slice metadata.lang" in r.stderr and "did you mean" in r.stderr
    r = invoke_cli("run", "eval.yaml", "--slice", "tags", cwd=tmp_path)
    assert r.returncode == 0 and "slice" in r.stdout.lower(), r.stderr


def test_set_appends_to_a_list_at_the_index_past_its_end(tmp_path):
    suite(tmp_path)
    r = invoke_cli("run", "eval.yaml", "--set", "scorers.1={type: contains, name: has}", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert set(json.loads(r.stdout)["scorers"]) == {"exact_match", "has"}
    r = invoke_cli("run", "eval.yaml", "--set", "scorers.1.type=regex", "--set", "scorers.1.pattern=^k",
                   "--json", cwd=tmp_path)
    assert r.returncode == 0 and set(json.loads(r.stdout)["scorers"]) == {"exact_match", "regex"}, r.stderr
    r = invoke_cli("run", "eval.yaml", "--set", "scorers.3.type=contains", cwd=tmp_path)
    assert r.returncode == 2 and "no index 3 (index 1 adds one)" in r.stderr


def test_github_module_help_lists_its_commands():
    h = subprocess.run([sys.executable, "-m", "evalrun.github", "--help"], capture_output=True, text=True, timeout=60)
    assert h.returncode == 0 and "comment --report FILE" in h.stdout and "GITHUB_TOKEN" in h.stdout, h.stderr
    bad = subprocess.run([sys.executable, "-m", "evalrun.github", "frob"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "unknown command 'frob'" in bad.stderr
