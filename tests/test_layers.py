"""The import contract: evalrun's layers point one way and no module imports itself back.

Every ``import`` of an evalrun module counts, wherever it stands: module level, inside a
function (the lazy imports that keep start-up cheap) or under ``if TYPE_CHECKING``. A module
may import modules of its own layer or of a lower one, never a higher one, and the import
graph has no cycle at all.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "evalrun"

# lowest first: config -> datasets -> engine -> runs -> compare -> gates -> verdict ->
# report / integrations -> the API and the CLI (CONTRIBUTING.md draws it)
LAYERS: list[tuple[str, list[str]]] = [
    ("base", ["evalrun._version", "evalrun.errors", "evalrun._json", "evalrun._yaml", "evalrun._retry",
              "evalrun._user_modules", "evalrun._secrets", "evalrun.records", "evalrun.stats", "evalrun.agreement", "evalrun.prices",
              "evalrun._text", "evalrun._http",  # (issue 32: the control-character filter, capped answers)
              "evalrun.production", "evalrun.production.redact",
              "evalrun.overrides", "evalrun.progress", "evalrun.runs", "evalrun.store", "evalrun.summary",
              "evalrun.selectors",  # (issue 25: slice keys, when: conditions, paths into data)
              "evalrun.openai_client", "evalrun.langfuse.client", "evalrun.langfuse.wire",
              "evalrun.langfuse.otlp", "evalrun.trajectory", "evalrun.toolcalls"]),
    # what config validates against: the scorer base class and its registry
    ("plugin interfaces", ["evalrun.scoring", "evalrun.scoring.base"]),
    ("config", ["evalrun.config", "evalrun.prompts", "evalrun.langfuse.prompts"]),
    ("datasets", ["evalrun.datasets", "evalrun.langfuse.datasets", "evalrun.production.traces"]),
    ("engine", ["evalrun.targets", "evalrun.chat", "evalrun.engine", "evalrun.scoring.*", "evalrun.agents",
                "evalrun.agents.*"]),
    ("runs", ["evalrun.merge"]),
    ("compare", ["evalrun.compare", "evalrun.attempts", "evalrun.slices", "evalrun.baseline", "evalrun.history",
                 "evalrun.thresholds",  # (issue 25: --suggest-thresholds)
                 "evalrun.langfuse.baseline"]),
    ("gates", ["evalrun.gates"]),
    ("verdict", ["evalrun.verdict"]),
    ("report / integrations", ["evalrun.report", "evalrun.report.*", "evalrun.github", "evalrun.langfuse",
                               "evalrun.langfuse.push", "evalrun.langfuse.tracecontext", "evalrun.postrun", "evalrun.variants",
                               "evalrun.production.harvest"]),
    ("API / CLI", ["evalrun", "evalrun.api", "evalrun.cli", "evalrun.__main__", "evalrun.scaffold"]),
]


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The evalrun modules ``name`` imports anywhere in its source."""
    is_pkg = path.name == "__init__.py"
    package = name if is_pkg else name.rpartition(".")[0]

    def resolve(dotted: str) -> str | None:
        while dotted and dotted not in known:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    out: set[str | None] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(resolve(a.name) for a in node.names if a.name.split(".")[0] == "evalrun")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] != "evalrun":
                continue
            for a in node.names:  # `from evalrun import stats` imports the module evalrun.stats
                full = f"{mod}.{a.name}"
                out.add(full if full in known else resolve(mod))
    out.discard(None)
    out.discard(name)
    return {m for m in out if m is not None}


def layer_of(name: str) -> int:
    best, rank = -1, None
    for i, (_, patterns) in enumerate(LAYERS):
        for p in patterns:
            if p == name:
                return i
            if p.endswith(".*") and name.startswith(p[:-1]) and len(p) > best:
                best, rank = len(p), i
    assert rank is not None, f"{name} is in no layer: add it to LAYERS in tests/test_layers.py"
    return rank


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    x = stack.pop()
                    on_stack.discard(x)
                    comp.append(x)
                    if x == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def test_no_import_cycle():
    assert cycles(graph()) == []


def upward(edges: dict[str, set[str]]) -> list[str]:
    """Every import of a higher layer by a lower one, named. There is no allow-list: the last
    one (the engine installing the Langfuse trace context) became a hook the API passes in."""
    bad = []
    for name, targets in sorted(edges.items()):
        for t in sorted(targets):
            if layer_of(t) > layer_of(name):
                bad.append(f"{name} ({LAYERS[layer_of(name)][0]}) imports {t} ({LAYERS[layer_of(t)][0]})")
    return bad


def test_no_lower_layer_imports_a_higher_one():
    assert upward(graph()) == []


def test_the_contract_catches_what_it_claims(tmp_path):
    """A cycle and an upward import (function-level, TYPE_CHECKING) are seen."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    known = modules()
    src = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from evalrun.verdict import Verdict\n"
           "def f():\n    from evalrun import stats\n    import evalrun.report.markdown\n"
           "    from . import records\n")
    fake = tmp_path / "probe.py"
    fake.write_text(src, encoding="utf-8")
    found = imports("evalrun.config", fake, known)
    assert found == {"evalrun.verdict", "evalrun.stats", "evalrun.report.markdown", "evalrun.records"}
    assert layer_of("evalrun.config") < layer_of("evalrun.verdict")
    # the edge this contract used to allow, and any like it, is named
    assert upward({"evalrun.engine": {"evalrun.langfuse.tracecontext", "evalrun.targets"},
                   "evalrun.langfuse.tracecontext": {"evalrun.targets"}}) == [
        "evalrun.engine (engine) imports evalrun.langfuse.tracecontext (report / integrations)"]
    assert upward({"evalrun.config": found}) == [
        "evalrun.config (config) imports evalrun.report.markdown (report / integrations)",
        "evalrun.config (config) imports evalrun.verdict (verdict)"]
    assert layer_of("evalrun.scoring.judge.scorer") == layer_of("evalrun.engine")
