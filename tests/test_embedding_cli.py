"""embedding_similarity end to end through the real CLI: scores in results.jsonl and
summary.json, the disk cache across runs (a warm run embeds nothing and never imports torch),
and the repository's demo suite."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, invoke_cli

ANSWERS = {
    "refund": "You can get your money back within thirty days.",
    "capital": "Paris is the capital of France.",
    "weather": "I like turtles.",
    "json": {"city": "Paris", "country": "France"},
    "empty": "",
}
ITEMS = [
    {"id": "refund", "input": "refund", "expected_output": "Refunds are possible for 30 days after purchase."},
    {"id": "capital", "input": "capital", "expected_output": ["Lyon", "The capital city of France is Paris."]},
    {"id": "weather", "input": "weather", "expected_output": "Tomorrow will be sunny and warm."},
    {"id": "json", "input": "json", "expected_output": {"country": "France", "city": "Paris"}},
    {"id": "empty", "input": "empty", "expected_output": "Something."},
    {"id": "no-expected", "input": "capital"},
]


def write_suite(root: Path) -> None:
    (root / "pipeline.py").write_text(f"ANSWERS = {ANSWERS!r}\n\ndef answer(q):\n    return ANSWERS[q]\n")
    (root / "data.jsonl").write_text("".join(json.dumps(i) + "\n" for i in ITEMS))
    (root / "eval.yaml").write_text(
        "name: semantic\ndataset: data.jsonl\ntarget:\n  python: pipeline:answer\nrepeat: 2\n"
        "scorers:\n  - exact_match\n  - {name: similar, type: embedding_similarity, threshold: 0.6}\n")


def run_dirs(home: Path) -> list[Path]:
    from evalrun.store import list_runs

    return [r.path for r in list_runs(home)]  # oldest first, to the exact start time


def scores_by_item(run_dir: Path) -> dict[tuple[str, int], dict]:
    out = {}
    for line in (run_dir / "results.jsonl").read_text().splitlines():
        r = json.loads(line)
        out[(r["item_id"], r["trial"])] = r["scores"]["similar"]
    return out


def test_embedding_scorer_through_the_cli_and_its_cache(tmp_path):
    write_suite(tmp_path)
    home = tmp_path / ".evalrun"
    r = invoke_cli("run", "eval.yaml", "--output-dir", str(home), "--json", cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    similar = summary["scorers"]["similar"]
    assert similar["model"] == "all-MiniLM-L6-v2" and len(similar["model_fingerprint"]) == 16
    # refund and weather (2 texts each), capital (output + 2 expected); the JSON item is an exact
    # match once canonical; the second trial's identical texts are not embedded again
    assert similar["texts_embedded"] == 7 and similar["cache_hits"] == 0
    assert summary["scorer_usage"]["embedding"]["texts_embedded"] == 7  # run-wide, summed over scorers
    # 5 items with expected output x 2 trials; no-expected has no value. n counts items
    assert similar["n"] == 5 and similar["trials"] == 10
    first = scores_by_item(run_dirs(home)[0])
    assert first[("refund", 0)]["passed"] is True and first[("refund", 0)]["value"] > 0.6
    assert first[("weather", 0)]["passed"] is False and "< threshold 0.6" in first[("weather", 0)]["reason"]
    assert first[("capital", 1)]["extra"] == {"best_expected": 1}
    assert first[("json", 0)] == {"value": 1.0, "passed": True, "reason": None}
    assert first[("empty", 0)] == {"value": 0.0, "passed": False, "reason": "empty output"}
    assert first[("no-expected", 0)]["value"] is None
    assert "Loading weights" not in r.stderr  # the library's progress bar stays off the CLI's stderr

    # a second run in a fresh process: every embedding comes from the disk cache, so the
    # model is never loaded and torch never imported
    code = ("import sys; from evalrun.cli import main\n"
            "try:\n    main(['run', 'eval.yaml', '--quiet', '--output-dir', sys.argv[1]])\n"
            "except SystemExit as e:\n    print('exit', e.code)\n"
            "print(sorted(m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules))")
    r2 = subprocess.run([sys.executable, "-c", code, str(home)], cwd=tmp_path, capture_output=True,
                        text=True, timeout=300)
    assert r2.stdout.strip().splitlines()[-2:] == ["exit 0", "[]"], r2.stdout + r2.stderr
    second_dir = run_dirs(home)[-1]
    second = json.loads((second_dir / "summary.json").read_text())["scorers"]["similar"]
    assert second["texts_embedded"] == 0 and second["cache_hits"] == 7 and second["device"] is None
    assert scores_by_item(second_dir) == first


def test_demo_suite_scores_with_embeddings(tmp_path):
    r = invoke_cli("run", "--output-dir", str(tmp_path), "--json", cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert {"exact_match", "embedding_similarity"} <= set(summary["scorers"])
    run_dir = next((tmp_path / "runs").iterdir())
    recs = {json.loads(line)["item_id"]: json.loads(line) for line in (run_dir / "results.jsonl").open()}
    assert recs["france"]["scores"]["embedding_similarity"] == {"value": 1.0, "passed": True, "reason": None}
    # the pipeline cannot answer this one: a low similarity, with the reason
    miss = recs["mongolia"]["scores"]["embedding_similarity"]
    assert miss["passed"] is False and miss["value"] < 0.8 and "threshold" in miss["reason"]
