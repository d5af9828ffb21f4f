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

from evalrun._yaml import load_located
from evalrun.errors import UsageError


def parse_set_options(specs: Iterable[str]) -> dict[str, Any]:
    """``["a.b=1", "c=x"]`` -> ``{"a.b": 1, "c": "x"}``; a malformed one is a UsageError."""
    out: dict[str, Any] = {}
    for spec in specs:
        key, sep, text = spec.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--set {spec}: expected KEY=VALUE with a dotted key, like target.chat.model=gpt-4o")
        key_problem(key, spec)
        try:
            # the eval file's own reader: aliases that refer to themselves or expand without
            # bound, and nesting past its limit, are refused here as they are there
            value = load_located(text, "").data if text.strip() else ""
        except UsageError as e:
            raise UsageError(f"--set {spec}: value is not valid YAML ({e.message})") from None
        out[key] = value
    return out


def key_problem(key: Any, spec: Any = None) -> None:
    """A UsageError unless ``key`` is a dotted key (text, no empty part)."""
    shown = key if spec is None else spec
    if not isinstance(key, str) or not key.strip():
        raise UsageError(f"--set {shown!s}: expected KEY=VALUE with a dotted key, like target.chat.model=gpt-4o")
    if any(not p.strip() for p in key.split(".")):
        raise UsageError(f"--set {shown}: empty part in the key '{key}'")


def check_overrides(overrides: Any) -> dict[str, Any]:
    """``overrides`` as a dict of dotted keys to values (what ``--set`` gives, the library's
    ``overrides=`` and a run's manifest hold), or a UsageError saying what is wrong."""
    if overrides is None:
        return {}
    if not isinstance(overrides, Mapping):
        raise UsageError(f"overrides must map dotted keys to values, like {{'target.timeout': 5}} "
                         f"(got {type(overrides).__name__})")
    for key in overrides:
        key_problem(key)
    return dict(overrides)


def apply_overrides(config: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``config`` with each dotted key set to its value (the input is not changed).

    Missing mappings on the way are created, so ``--set langfuse.push=true`` works on a file
    without a ``langfuse:`` section, and the index just past a list's end appends to it
    (``--set scorers.2={type: contains}``, or ``scorers.2.type=contains``). Stepping through a
    value that is neither a mapping nor a list, or further past the end of a list, is a
    UsageError naming the key.
    """
    out = copy.deepcopy(dict(config))
    for dotted, value in check_overrides(overrides).items():
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
                if index == len(cur):  # one past the end: a new entry
                    cur.append(value if last else {})
                elif not -len(cur) <= index < len(cur):
                    raise UsageError(f"--set {dotted}: '{here}' has {len(cur)} entries; no index {index} "
                                     f"(index {len(cur)} adds one)")
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
