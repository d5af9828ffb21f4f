"""Command-line overrides of eval-file keys: ``--set target.chat.prompt=langfuse://qa@4``.

An override replaces (or adds) one value in the parsed eval file before it is validated, so
an overridden file is checked exactly like a written one. Keys are dotted; a number steps into
a list (``scorers.0.threshold=0.9``). Values are read as YAML scalars or flow collections
(``4`` is a number, ``true`` a boolean, ``[a, b]`` a list, ``x`` a string).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from evalrun.errors import UsageError


def parse_set_options(specs: Iterable[str]) -> dict[str, Any]:
    """``["a.b=1", "c=x"]`` -> ``{"a.b": 1, "c": "x"}``; a malformed one is a UsageError."""
    out: dict[str, Any] = {}
    for spec in specs:
        key, sep, text = spec.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--set {spec}: expected KEY=VALUE with a dotted key, like target.chat.model=gpt-4o")
        parts = key.split(".")
        if any(not p.strip() for p in parts):
            raise UsageError(f"--set {spec}: empty part in the key '{key}'")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError as e:
            problem = str(e).splitlines()[0]
            raise UsageError(f"--set {spec}: value is not valid YAML ({problem})") from None
        out[key] = value
    return out


def apply_overrides(config: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``config`` with each dotted key set to its value (the input is not changed).

    Missing mappings on the way are created, so ``--set langfuse.push=true`` works on a file
    without a ``langfuse:`` section. Stepping through a value that is neither a mapping nor a
    list, or past the end of a list, is a UsageError naming the key.
    """
    out = copy.deepcopy(dict(config))
    for dotted, value in overrides.items():
        parts = dotted.split(".")
        cur: Any = out
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            here = ".".join(parts[:depth]) or "the eval file"
            if isinstance(cur, list):
                try:
                    index = int(part)
                except ValueError:
                    raise UsageError(f"--set {dotted}: '{here}' is a list; use an index like {here}.0") from None
                if not -len(cur) <= index < len(cur):
                    raise UsageError(f"--set {dotted}: '{here}' has {len(cur)} entries; no index {index}")
                if last:
                    cur[index] = value
                else:
                    if isinstance(cur[index], str):
                        # a scorer given by name (``- exact_match``) becomes its mapping form
                        cur[index] = {"type": cur[index]}
                    cur = cur[index]
            elif isinstance(cur, dict):
                if last:
                    cur[part] = value
                else:
                    if cur.get(part) is None:
                        cur[part] = {}
                    cur = cur[part]
            else:
                kind = type(cur).__name__ if cur is not None else "empty"
                raise UsageError(f"--set {dotted}: '{here}' is a {kind} value, not a section")
    return out


def override_for(path: tuple[Any, ...], overrides: Mapping[str, Any]) -> str | None:
    """The override that set the value at ``path`` (or a value under or above it), if any."""
    dotted = ".".join(map(str, path))
    for key in overrides:
        if dotted == key or dotted.startswith(key + ".") or (dotted and key.startswith(dotted + ".")):
            return key
    return None
