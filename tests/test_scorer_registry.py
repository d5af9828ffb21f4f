"""A scorer is declared in one place, its class: the registry agrees with the classes, another
package adds a scorer through the ``evalrun.scorers`` entry-point group, and ``type: python``
takes a class as well as a function."""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import sys

import pytest

import evalrun
from evalrun import Scorer, ScorerConfig, UsageError
from evalrun.scoring import base

PLUGIN = '''
from evalrun import Score, Scorer, ScorerConfig


class ShoutConfig(ScorerConfig):
    min_length: int = 1


class Shouted(Scorer):
    """Passes when the output is upper case (and long enough)."""

    type = "shouted"
    Config = ShoutConfig
    langfuse_data_type = "BOOLEAN"

    def score_one(self, record):
        text = str(record.output)
        ok = text.isupper() and len(text) >= self.config.min_length
        return Score(1.0 if ok else 0.0, ok)


class Misnamed(Shouted):
    type = "something_else"
'''


def test_every_builtin_is_declared_by_its_class():
    for name, spec in base.BUILTIN_SCORERS.items():
        cls = base.scorer_class(name)
        assert f"{cls.__module__}:{cls.__qualname__}" == spec
        assert issubclass(cls, Scorer) and cls.type == name
        assert issubclass(cls.Config, ScorerConfig)
        assert cls.langfuse_data_type in ("NUMERIC", "BOOLEAN", "CATEGORICAL")
        assert isinstance(cls.uses_cache, bool)
    assert {n for n in base.BUILTIN_SCORERS if base.scorer_class(n).uses_cache} == {"embedding_similarity",
                                                                                    "llm_judge", "judge_panel"}


def test_every_scorer_class_in_the_package_is_registered():
    import evalrun.scoring as scoring

    found = {}
    for mod in pkgutil.walk_packages(scoring.__path__, "evalrun.scoring."):
        module = importlib.import_module(mod.name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, Scorer) and obj.__module__ == module.__name__ and "type" in vars(obj):
                found[obj.type] = f"{obj.__module__}:{obj.__qualname__}"
    # a class re-exported by a package __init__ (evalrun.scoring.judge) is the same class
    assert {k: base.scorer_class(k) for k in found} == {k: base.scorer_class(k) for k in base.BUILTIN_SCORERS}


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """An installed distribution (a dist-info on sys.path) declaring two scorers."""
    site = tmp_path / "site"
    (site / "evalrun_shout_plugin").mkdir(parents=True)
    (site / "evalrun_shout_plugin" / "__init__.py").write_text(PLUGIN)
    info = site / "evalrun_shout_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: evalrun-shout-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[evalrun.scorers]\nshouted = evalrun_shout_plugin:Shouted\nmisnamed = evalrun_shout_plugin:Misnamed\n"
        "exact_match = evalrun_shout_plugin:Shouted\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(base, "_plugins", None)
    monkeypatch.delitem(sys.modules, "evalrun_shout_plugin", raising=False)
    yield tmp_path
    sys.modules.pop("evalrun_shout_plugin", None)


def _eval(root, scorers: str, target: str = "echo") -> str:
    (root / "reg_targets.py").write_text(
        "def echo(x):\n    return x\n\n\nclass Judge:\n    def __init__(self):\n        self.seen = 0\n\n"
        "    def __call__(self, output, expected_output):\n        self.seen += 1\n"
        "        return {'value': float(output == expected_output), 'reason': f'call {self.seen}'}\n")
    (root / "data.jsonl").write_text("".join(json.dumps(i) + "\n" for i in (
        {"id": "a", "input": "LOUD", "expected_output": "LOUD"},
        {"id": "b", "input": "quiet", "expected_output": "x"})))
    cfg = root / "eval.yaml"
    cfg.write_text(f"name: reg\ndataset: data.jsonl\ntarget:\n  python: reg_targets:{target}\nscorers:\n{scorers}")
    return str(cfg)


def test_a_scorer_from_another_package(plugin, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "reg_targets", raising=False)
    assert base.scorer_types()["shouted"] == "evalrun_shout_plugin:Shouted"
    # a plugin cannot take a built-in's name
    assert base.scorer_types()["exact_match"] == base.BUILTIN_SCORERS["exact_match"]
    result = evalrun.run(_eval(plugin, "  - {type: shouted, min_length: 2}\n"), home=plugin / ".evalrun")
    s = result.summary["scorers"]["shouted"]
    assert (s["passed"], s["failed"]) == (1, 1)
    assert result.manifest()["scorers"] == ["shouted"]


def test_a_plugin_that_breaks_its_promise_is_a_usage_error_in_the_file(plugin):
    with pytest.raises(UsageError) as e:
        evalrun.run(_eval(plugin, "  - {type: misnamed}\n"), home=plugin / ".evalrun")
    assert "not an evalrun Scorer subclass declaring type = 'misnamed'" in str(e.value)
    assert e.value.file and e.value.file.endswith("eval.yaml") and e.value.line == 6
    with pytest.raises(UsageError, match=r"unknown scorer type 'shoutd' \(did you mean 'shouted'\?\)"):
        evalrun.run(_eval(plugin, "  - {type: shoutd}\n"), home=plugin / ".evalrun")


def test_python_scorer_may_be_a_class(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "reg_targets", raising=False)
    result = evalrun.run(_eval(tmp_path, "  - {type: python, name: cls, function: reg_targets:Judge}\n"),
                         home=tmp_path / ".evalrun")
    recs = sorted(result.records(), key=lambda r: r.item_id)
    assert [r.scores["cls"].value for r in recs] == [1.0, 0.0]
    # one instance for the run: it counted both calls
    assert sorted(r.scores["cls"].reason for r in recs) == ["call 1", "call 2"]
