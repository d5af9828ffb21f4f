"""Variants in Langfuse: each variant its own experiment run ``<run>/<variant>`` on the same
dataset items, through the real CLI and SDK against the spec-checking server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict

from tests.test_langfuse import _no_ambient_keys, cli, fake, write_project  # noqa: F401 (fixtures)


def test_each_variant_is_its_own_experiment_run_on_the_same_dataset_items(fake, tmp_path):  # noqa: F811
    fake.add_dataset_items("dbl", [{"id": f"q{i:04d}", "input": f"double {i}", "expectedOutput": str(2 * i)}
                                   for i in range(30)])
    root = write_project(tmp_path / "p", 0, dataset="langfuse://dbl", langfuse={"run_name": "nightly-7"})
    cfg = json.loads((root / "eval.yaml").read_text())
    cfg["variants"] = {"control": {}, "strict": {"scorers.1.threshold": 0.9}}
    (root / "eval.yaml").write_text(json.dumps(cfg))
    r = cli(fake, "run", "eval.yaml", "--output-dir", "home", "--push", "langfuse", "-q", cwd=root)
    assert r.returncode == 0, r.stderr
    assert "control: langfuse: pushed 30/30 traces" in r.stderr and "strict: langfuse: pushed 30/30" in r.stderr

    ds_id = fake.datasets["dbl"]["id"]
    exp_ids = {}
    for name in ("control", "strict"):
        run_name = f"nightly-7/{name}"
        exp_ids[name] = hashlib.sha256(json.dumps(["langfuse-experiment-v1", fake.project_id, ds_id, run_name],
                                                  separators=(",", ":")).encode()).hexdigest()[:16]
    exps = {e["id"]: e for e in fake.experiments()}
    assert set(exps) == set(exp_ids.values())
    assert all(e["itemCount"] == 30 for e in exps.values())
    # both runs point at the same dataset items, so Langfuse's compare view lines them up
    items_by_run: dict[str, set[str]] = defaultdict(set)
    names = set()
    for spans in fake.spans_by_trace().values():
        task = next(s for s in spans if s["name"] == "experiment-item-task")
        a = task["attributes"]
        assert a["langfuse.experiment.dataset.id"] == ds_id
        items_by_run[a["langfuse.experiment.id"]].add(a["langfuse.experiment.item.id"])
        names.add(a["langfuse.experiment.name"])
    assert names == {"nightly-7/control", "nightly-7/strict"}
    assert items_by_run[exp_ids["control"]] == items_by_run[exp_ids["strict"]] and \
        len(items_by_run[exp_ids["control"]]) == 30
