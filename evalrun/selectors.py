"""Selectors shared by slices, gates and scorers: which items a key picks (``tags``,
``metadata.KEY``), the ``when:`` condition of a scoped scorer, and paths into an item's data
(``metadata.gold_sql``, ``answer.ticket_id``, ``items[*].id``).

Base layer: the eval file schema (config), the scorer interface (``ScorerConfig.when``), the
engine and the slices all read the one syntax defined here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator

from evalrun.errors import suggest

# --- slice keys (`slices:`, `--slice`, gate selectors, `when:`) -----------------------------

SLICE_TAGS = "tags"
SLICE_METADATA = "metadata."


def normalize_key(key: str) -> str | None:
    """``tags`` / ``tag`` -> ``tags``; ``metadata.X`` -> itself; anything else -> None."""
    key = key.strip()
    if key in ("tag", "tags"):
        return SLICE_TAGS
    if key.startswith(SLICE_METADATA) and len(key) > len(SLICE_METADATA):
        return key
    return None


def key_error(key: str) -> str:
    """Why ``key`` is not a slice key, with a suggestion."""
    hint = suggest(key, [SLICE_TAGS, "tag"])
    if not hint and key and "." not in key:
        hint = f" (did you mean 'metadata.{key}'?)"
    return f"unknown slice key '{key}'{hint}; use tags or metadata.KEY"


def values_of(metadata: dict[str, Any] | None, key: str) -> list[str]:
    """The slice values of one item under ``key`` (several for a list, none when absent)."""
    meta = metadata or {}
    v = meta.get(SLICE_TAGS) if key == SLICE_TAGS else meta.get(key[len(SLICE_METADATA):])
    if v is None or v == "":
        return []
    if isinstance(v, list):
        return list(dict.fromkeys(str(x) for x in v))
    return [str(v)]


# --- when: a scoped scorer's condition --------------------------------------------------------

@dataclass(frozen=True)
class Condition:
    """``KEY=VALUE`` (or ``KEY!=VALUE``) over an item's tags or metadata; several conditions
    must all hold. ``tag=refusal`` holds for an item tagged refusal."""

    key: str  # "tags" | "metadata.X"
    value: str
    negate: bool = False

    def holds(self, metadata: dict[str, Any] | None) -> bool:
        return (self.value in values_of(metadata, self.key)) != self.negate

    def __str__(self) -> str:
        key = "tag" if self.key == SLICE_TAGS else self.key
        return f"{key}{'!=' if self.negate else '='}{self.value}"


def parse_when(raw: Any) -> tuple[Condition, ...]:
    """``when:`` as written (a string ``tag=x``, a list of them, or a mapping ``{tag: x}``) ->
    conditions; ValueError saying what is wrong otherwise."""
    if isinstance(raw, str):
        parts: list[tuple[str, str, bool]] = []
        for piece in (p.strip() for p in raw.split(" and ")):
            key, op, value = _split_condition(piece)
            parts.append((key, value, op == "!="))
    elif isinstance(raw, list):
        return tuple(c for x in raw for c in parse_when(x))
    elif isinstance(raw, dict):
        parts = [(str(k), v, False) for k, v in raw.items()]
    else:
        raise ValueError("when takes 'tag=NAME' / 'metadata.KEY=VALUE' (or a list, or a mapping {tag: NAME})")
    out = []
    for key, value, negate in parts:
        norm = normalize_key(key)
        if norm is None:
            raise ValueError(key_error(key).replace("slice key", "when key"))
        if isinstance(value, dict | list) or value is None or str(value).strip() == "":
            raise ValueError(f"when: {key} needs a single value")
        out.append(Condition(norm, str(value).strip(), negate))
    if not out:
        raise ValueError("when: is empty; write e.g. 'tag=refusal'")
    return tuple(out)


def _split_condition(piece: str) -> tuple[str, str, str]:
    for op in ("!=", "="):
        key, sep, value = piece.partition(op)
        if sep:
            return key.strip(), op, value.strip()
    raise ValueError(f"when '{piece}': write KEY=VALUE, e.g. tag=refusal or metadata.kind=json")


def holds(conditions: tuple[Condition, ...], metadata: dict[str, Any] | None) -> bool:
    return all(c.holds(metadata) for c in conditions)


# --- paths into data ---------------------------------------------------------------------------

_SEGMENT = re.compile(r"\[(\*|-?\d+|'[^']*'|\"[^\"]*\")\]|\.?([^.\[\]]+)")


def parse_path(path: str) -> tuple[str | int, ...]:
    """``$.a.b[0]``, ``a.b.0``, ``items[*].id``, ``a['x.y']`` -> segments ("*" for every element).
    ValueError for a path that cannot be read."""
    text = path.strip()
    if text.startswith("$"):
        text = text[1:]
    segs: list[str | int] = []
    pos = 0
    while pos < len(text):
        m = _SEGMENT.match(text, pos)
        if m is None or m.end() == pos:
            raise ValueError(f"bad path {path!r} at {text[pos:][:10]!r}; write a.b[0].c or items[*].id")
        if m.group(1) is not None:
            g = m.group(1)
            segs.append(g[1:-1] if g[0] in "'\"" else ("*" if g == "*" else int(g)))
        else:
            g = m.group(2)
            segs.append("*" if g == "*" else g)
        pos = m.end()
    return tuple(segs)


def _checked_path(path: str) -> str:
    parse_path(path)
    return path


#: a config field holding a path into data (``output: ticket.id``): checked when the config is read
PathStr = Annotated[str, AfterValidator(_checked_path)]

_MISSING = object()


def find(data: Any, path: str | tuple[str | int, ...]) -> list[Any]:
    """Every value at ``path`` in ``data`` (one at most without ``*``; none when absent). A
    ``list`` step by a digit string (``choices.0``) indexes it."""
    segs = parse_path(path) if isinstance(path, str) else path
    cur = [data]
    for seg in segs:
        nxt = []
        for v in cur:
            if seg == "*":
                if isinstance(v, list):
                    nxt.extend(v)
                elif isinstance(v, dict):
                    nxt.extend(v.values())
                continue
            got = _step(v, seg)
            if got is not _MISSING:
                nxt.append(got)
        cur = nxt
        if not cur:
            break
    return cur


def _step(v: Any, seg: str | int) -> Any:
    if isinstance(v, dict):
        return v.get(seg, _MISSING) if isinstance(seg, str) else v.get(str(seg), _MISSING)
    if isinstance(v, list):
        try:
            i = seg if isinstance(seg, int) else int(seg)
            return v[i]
        except (ValueError, IndexError):
            return _MISSING
    return _MISSING


#: where ``expected:`` may read a scorer's reference from
SOURCES = ("expected_output", "metadata", "input")


def check_source(source: str) -> str:
    """``expected:`` as written -> itself; ValueError unless it starts with a known source."""
    head = parse_path(source)[:1]
    if not head or head[0] not in SOURCES:
        raise ValueError(f"expected: {source!r} must start with one of {', '.join(SOURCES)} "
                         "(e.g. metadata.must_contain)")
    return source
