"""``evalrun show RUN --suggest-thresholds``: the distribution of a scorer's item values and the
threshold that best separates items labelled right from wrong (checked against numpy's
quantiles and scikit-learn's ROC curve)."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from evalrun.records import Record, Score
from evalrun.thresholds import best_cut, cut_at, read_label, suggest


def test_best_cut_is_the_maximum_of_youdens_j():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = random.Random(7)
    for trial in range(200):
        n = rng.randint(2, 60)
        labels = [rng.random() < 0.6 for _ in range(n)]
        if all(labels) or not any(labels):
            labels[0] = not labels[0]
        # right answers score higher on average, with overlap and ties (rounded values)
        values = [round(min(1, max(0, rng.gauss(0.7 if y else 0.45, 0.15))), 2) for y in labels]
        fpr, tpr, _ = metrics.roc_curve(labels, values)
        j = float(np.max(tpr - fpr))
        cut = best_cut(values, labels)
        assert cut.balanced_accuracy == pytest.approx(0.5 + j / 2, abs=1e-12), trial
        # and the cut really scores what it says
        again = cut_at(cut.threshold, values, labels)
        assert again.balanced_accuracy == pytest.approx(cut.balanced_accuracy)
        passed = [v >= cut.threshold for v in values]
        assert cut.false_passes == sum(p and not y for p, y in zip(passed, labels, strict=True))
        assert cut.false_fails == sum(y and not p for p, y in zip(passed, labels, strict=True))


def test_separable_labels_get_a_threshold_in_the_middle_of_the_gap():
    cut = best_cut([0.2, 0.3, 0.35, 0.6, 0.8, 0.9], [False, False, False, True, True, True])
    assert cut.threshold == pytest.approx(0.475) and cut.balanced_accuracy == 1.0
    assert (cut.false_passes, cut.false_fails) == (0, 0)


def test_labels_are_read_in_the_usual_spellings():
    assert [read_label(x) for x in (True, 1, "right", " Correct ", "PASS", "yes")] == [True] * 6
    assert [read_label(x) for x in (False, 0, "wrong", "incorrect", "fail", "no")] == [False] * 6
    assert read_label("maybe") is None and read_label(0.5) is None and read_label(None) is None


def _records(values, labels, trials=1):
    recs = []
    for i, (v, y) in enumerate(zip(values, labels, strict=True)):
        meta = {} if y is None else {"human_label": y}
        for t in range(trials):
            recs.append(Record(item_id=f"i{i}", trial=t, input="q", output="a", metadata=meta,
                               scores={"sim": Score(v, v >= 0.5), "exact": Score(1.0, True)}))
    return recs


def test_suggestion_numbers_match_numpy_and_binary_scorers_are_left_out():
    rng = random.Random(3)
    values = [round(rng.random(), 3) for _ in range(57)]
    [s] = suggest(_records(values, [None] * 57))
    assert s.scorer == "sim" and s.n == 57
    for key, q in (("p10", 10), ("p25", 25), ("median", 50), ("p75", 75), ("p90", 90)):
        assert s.quantiles[key] == pytest.approx(float(np.percentile(values, q)), abs=1e-6)
    assert sum(c for _, _, c in s.histogram) == 57
    counts, _ = np.histogram(values, bins=10, range=(min(values), max(values)))
    assert [c for _, _, c in s.histogram] == counts.tolist()
    assert s.current_threshold == min(v for v in values if v >= 0.5)  # read back from the verdicts
    assert s.best is None and "no item has a label" in s.note


def test_items_are_the_unit_trials_averaged():
    [s] = suggest(_records([0.2, 0.8], ["wrong", "right"], trials=3))
    assert s.n == 2 and s.labelled == 2 and s.right == 1


def test_cli_suggests_thresholds(tmp_path, cli):
    (tmp_path / "tgt.py").write_text("def answer(q):\n    return q\n")
    (tmp_path / "sc.py").write_text("def sim(input):\n    return float(input.split()[1])\n")
    items = [{"id": f"i{k}", "input": f"x {v}", "metadata": {"human_label": lab}}
             for k, (v, lab) in enumerate([(0.91, "right"), (0.85, "right"), (0.7, "right"), (0.66, "wrong"),
                                           (0.64, "right"), (0.4, "wrong"), (0.35, "wrong"), (0.2, "wrong")])]
    (tmp_path / "items.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    (tmp_path / "eval.yaml").write_text("name: t\ndataset: items.jsonl\ntarget: {python: tgt:answer}\n"
                                        "scorers:\n  - {type: python, function: 'sc:sim', threshold: 0.8}\n")
    out = str(tmp_path / "out")
    assert cli("run", "eval.yaml", "--output-dir", out, "-q", cwd=tmp_path).returncode == 0
    r = cli("show", "latest", "--output-dir", out, "--suggest-thresholds", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "python  (n=8 items)" in r.stdout and "this run passes values >= 0.850" in r.stdout
    # 0.675 (one right item fails) and 0.52 (one wrong item passes) tie at 87.5%: the wider gap wins
    assert "suggested threshold: 0.520  (balanced accuracy 87.5%" in r.stdout
    assert "at the run's threshold 0.850: balanced accuracy 75.0%" in r.stdout
    data = json.loads(cli("show", "latest", "--output-dir", out, "--suggest-thresholds", "--json",
                          cwd=tmp_path).stdout)
    assert data[0]["best"]["threshold"] == pytest.approx(0.52) and data[0]["best"]["false_passes"] == 1
    bad = cli("show", "latest", "--output-dir", out, "--suggest-thresholds", "--labels", "label", cwd=tmp_path)
    assert bad.returncode == 2 and "--labels label: use metadata.KEY" in bad.stderr
