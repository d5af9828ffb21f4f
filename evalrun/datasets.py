"""Golden datasets: loading YAML / JSONL / CSV files (and ``langfuse://`` datasets) into Items,
and choosing which items a run covers (filters, limit, sample)."""

from __future__ import annotations

import io
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalrun import _json
from evalrun._yaml import load_located, read_text
from evalrun.errors import UsageError, shown_key, suggest
from evalrun.records import Item, scrub_text, stable_id
from evalrun.store import file_fingerprint

if TYPE_CHECKING:
    import csv

    from evalrun.runs import Manifest

ITEM_KEYS = {"id", "input", "expected_output", "metadata", "assert", "expected_tool_calls", "tool_results"}


@dataclass
class Dataset:
    name: str
    items: list[Item]
    source: str  # a path, or langfuse://name
    description: str | None = None
    fingerprint: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


# Dataset sources by scheme (``langfuse://name``): a source module registers its loader with
# :func:`register_source` when imported, so it depends on this module and never the reverse.
# A scheme nobody registered yet is looked up here: the module that provides it, imported only
# when a reference uses it.
_SOURCES: dict[str, Callable[[str], Dataset]] = {}
SOURCE_MODULES = {"langfuse": "evalrun.langfuse.datasets"}


def register_source(scheme: str, loader: Callable[[str], Dataset]) -> None:
    """Make ``scheme://...`` dataset references load with ``loader(ref)``."""
    _SOURCES[scheme] = loader


def source_of(ref: str) -> Callable[[str], Dataset] | None:
    """The loader of a ``scheme://`` reference, or None for a file path."""
    scheme, sep, _ = ref.partition("://")
    if not sep:
        return None
    if scheme not in _SOURCES and scheme in SOURCE_MODULES:
        import importlib

        importlib.import_module(SOURCE_MODULES[scheme])
    return _SOURCES.get(scheme)


def load_dataset(ref: str | Dataset, base_dir: Path) -> Dataset:
    """Load ``ref`` (a path relative to ``base_dir``, or a registered source's ``scheme://...``;
    a :class:`Dataset` given in its place, by a library caller, is that dataset)."""
    if isinstance(ref, Dataset):
        return ref
    source = source_of(ref)
    if source is not None:
        return source(ref)
    path = Path(ref).expanduser()
    if not path.is_absolute():
        path = base_dir / path
    suffix = path.suffix.lower()
    loaders = {".yaml": _load_yaml, ".yml": _load_yaml, ".jsonl": _load_jsonl, ".csv": _load_csv}
    if suffix not in loaders:
        raise UsageError(f"unsupported dataset format '{suffix or path.name}' (use .yaml, .yml, .jsonl or .csv)",
                         str(path))
    text = read_text(path, "dataset")
    name, description, items = loaders[suffix](text, str(path))
    if not items:
        raise UsageError("dataset has no items", str(path))
    _check_unique(items, str(path))
    return Dataset(name=name or path.stem, items=items, source=str(path), description=description,
                   fingerprint=file_fingerprint(path))


def item_sources(items: Iterable[Item]) -> dict[str, str]:
    """item id -> ``path:line`` where it was written: items of a file only (a remote item's
    source, ``langfuse://set#id``, names no file an annotation could point at)."""
    return {it.id: it.source for it in items if it.source and "://" not in it.source}


def run_item_sources(manifest: Manifest) -> dict[str, str]:
    """:func:`item_sources` of a saved run nobody in this process ran (a merge of shards): its
    dataset file as it is now, read only while unchanged since the run (else its lines could
    belong to other items); {} for a remote dataset or a file that cannot be read."""
    ref = (manifest.get("config") or {}).get("dataset")
    config_path = manifest.get("config_path")
    if not isinstance(ref, str) or not config_path or "://" in ref or "$" in ref:
        return {}
    try:
        dataset = load_dataset(ref, Path(config_path).parent)
    except UsageError:
        return {}
    if dataset.fingerprint and dataset.fingerprint != (manifest.get("dataset") or {}).get("fingerprint"):
        return {}
    return item_sources(dataset.items)


def make_item(raw: Any, file: str, line: int | None, error: Any) -> Item:
    """An Item from one raw mapping; ``error(msg, key)`` builds a located UsageError."""
    if not isinstance(raw, dict):
        raise error("an item must be a mapping with 'input' (and optional id, expected_output, metadata)", None)
    if not raw.keys() <= ITEM_KEYS:
        k = next(k for k in raw if k not in ITEM_KEYS)
        raise error(f"unknown item key '{k}'{suggest(str(k), ITEM_KEYS)}", k)
    inp, expected, item_id = raw.get("input"), raw.get("expected_output"), raw.get("id")
    if (type(inp) is str and inp.isascii() and type(item_id) is str and item_id.isascii() and item_id.strip()
            and (expected is None or (type(expected) is str and expected.isascii())) and not raw.get("metadata")
            and "assert" not in raw and "expected_tool_calls" not in raw and "tool_results" not in raw):
        # the common case (a large JSONL of plain text items): nothing below can object or repair
        return Item(id=item_id, input=inp, expected_output=expected, metadata={},
                    source=f"{file}:{line}" if line else file)
    if "input" not in raw or raw["input"] is None:
        raise error("item has no 'input'", None)
    for key in ("input", "expected_output", "metadata", "expected_tool_calls", "tool_results"):
        problem = _json_problem(raw.get(key))
        if problem is not None:
            raise error(f"{key}: {problem}", key)
    inp = raw["input"]
    if not isinstance(inp, str | dict | list | int | float | bool):
        raise error(f"input must be a string or a mapping (got {type(inp).__name__})", "input")
    meta = raw.get("metadata") or {}
    if not isinstance(meta, dict):
        raise error("metadata must be a mapping", "metadata")
    tags = meta.get("tags")
    if tags is not None and not isinstance(tags, list | str):
        raise error("metadata.tags must be a list", "metadata")
    item_id = raw.get("id")
    if item_id is None:
        item_id = stable_id(inp)
    elif isinstance(item_id, bool) or not isinstance(item_id, str | int) or str(item_id).strip() == "":
        raise error("id must be a non-empty string or integer", "id")
    asserts = _asserts(raw, error)
    expected_calls, tool_results = raw.get("expected_tool_calls"), raw.get("tool_results")
    if expected_calls is not None:
        from evalrun.trajectory import ToolCall

        if not isinstance(expected_calls, list):
            raise error("expected_tool_calls must be a list of {name, arguments}", "expected_tool_calls")
        for i, c in enumerate(expected_calls):
            try:
                ToolCall.from_dict(c, f"expected_tool_calls[{i}]")
            except ValueError as e:
                raise error(str(e), "expected_tool_calls") from None
    if tool_results is not None and not isinstance(tool_results, dict):
        raise error("tool_results must be a mapping of tool name to result", "tool_results")
    # text UTF-8 cannot hold (a YAML "\ud800" escape) is repaired here, once, so the id a
    # record is saved under is the id the next resume looks for
    return Item(id=scrub_text(str(item_id))[0], input=scrub_text(inp)[0],
                expected_output=scrub_text(raw.get("expected_output"))[0], metadata=scrub_text(meta)[0],
                source=f"{file}:{line}" if line else file, asserts=asserts,
                expected_tool_calls=scrub_text(expected_calls)[0], tool_results=scrub_text(tool_results)[0])


def _asserts(raw: dict[str, Any], error: Any) -> list[dict[str, Any]] | None:
    """An item's ``assert:`` list: its shape checked here (each check a mapping with a ``type``);
    each type's own fields are checked by the ``assert`` scorer before any call."""
    if "assert" not in raw or raw["assert"] is None:
        return None
    checks = raw["assert"]
    if isinstance(checks, dict):
        checks = [checks]
    if not isinstance(checks, list) or not checks:
        raise error("assert must be a list of checks, like [{type: contains, value: refund}]", "assert")
    for i, check in enumerate(checks):
        if not isinstance(check, dict) or not isinstance(check.get("type"), str) or not check["type"]:
            raise error(f"assert[{i}]: a check is a mapping with a 'type' (contains, regex, refusal...)",
                        ("assert", i))
    if not _json.is_plain(checks):  # (the common case is checked at C speed)
        problem = _json_problem(checks)
        if problem is not None:
            raise error(f"assert: {problem}", "assert") from None
        checks = scrub_text(checks)[0]
    return checks


MAX_DEPTH = 100


def _json_problem(value: Any) -> str | None:
    """Why ``value`` cannot be stored as JSON in a record (a mapping key that is not a
    string, nesting deeper than MAX_DEPTH), or None."""
    if not isinstance(value, (dict, list)):  # the common case, checked once per item field
        return None
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        v, depth = stack.pop()
        if depth > MAX_DEPTH:
            return f"nests more than {MAX_DEPTH} levels deep"
        if isinstance(v, dict):
            for k, x in v.items():
                if not isinstance(k, str):
                    return f"mapping keys must be strings (got {type(k).__name__} {k!r})"
                stack.append((x, depth + 1))
        elif isinstance(v, list):
            stack.extend((x, depth + 1) for x in v)
    return None


def _check_unique(items: list[Item], file: str) -> None:
    seen: dict[str, Item] = {}
    for it in items:
        first = seen.get(it.id)
        if first is not None:
            line = int(it.source.rsplit(":", 1)[1]) if it.source and ":" in it.source else None
            first_line = first.source.rsplit(":", 1)[-1] if first.source else "?"
            raise UsageError(f"duplicate item id '{it.id}' (first at line {first_line})"
                             + ("; two items have the same input, give them ids" if it.id == stable_id(it.input) else ""),
                             file, line)
        seen[it.id] = it


def _load_yaml(text: str, file: str) -> tuple[str | None, str | None, list[Item]]:
    located = load_located(text, file)
    data = located.data
    name = description = None
    prefix: tuple = ()
    if data is None:
        return None, None, []
    if isinstance(data, dict):
        unknown = [k for k in data if k not in {"name", "description", "items"}]
        if unknown:
            raise located.error(f"unknown dataset key '{unknown[0]}'{suggest(str(unknown[0]), {'name', 'description', 'items'})}",
                                (unknown[0],))
        if "items" not in data:
            raise located.error("dataset mapping needs 'items:' (or make the file a list of items)")
        name, description = data.get("name"), data.get("description")
        data = data["items"]
        prefix = ("items",)
        if data is None:
            return name, description, []
    if not isinstance(data, list):
        raise located.error("items must be a list", prefix)
    items = []
    for i, raw in enumerate(data):
        path = prefix + (i,)
        line = located.where(path)[0]

        def err(msg: str, key: Any, path: tuple = path) -> UsageError:
            return located.error(msg, path + (key if isinstance(key, tuple) else (key,) if key is not None else ()))

        item = make_item(raw, file, line, err)
        if item.asserts:  # each check's own line, for its messages
            item.assert_sources = tuple(f"{file}:{located.where(path + ('assert', i))[0] or line}"
                                        for i in range(len(item.asserts)))
        items.append(item)
    return name, description, items


def _load_jsonl(text: str, file: str) -> tuple[str | None, str | None, list[Item]]:
    items = []
    # lines end at \n only: U+2028 and friends are ordinary characters inside a JSON string
    for lineno, line in enumerate(text.split("\n"), 1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        try:
            raw = _json.loads(line)
        except ValueError as e:
            raw = _lenient_json(line)
            if raw is None:
                raise UsageError(f"invalid JSON: {e}", file, lineno) from None
        if line.count(":") > _keys_in(raw):
            # some key may have been given twice (the last one silently winning), or a value
            # holds a colon: only then is the line read again, key by key
            duplicate = _duplicate_key(line)
            if duplicate is not None:
                raise UsageError(f"key {shown_key(duplicate)} appears twice in one object", file, lineno)

        def err(msg: str, key: Any, lineno: int = lineno) -> UsageError:
            return UsageError(msg, file, lineno)

        items.append(make_item(raw, file, lineno, err))
    return None, None, items


def _keys_in(value: Any) -> int:
    """How many keys the objects in a parsed JSON value hold, all levels."""
    if isinstance(value, dict):
        return len(value) + sum(_keys_in(v) for v in value.values() if isinstance(v, dict | list))
    if isinstance(value, list):
        return sum(_keys_in(v) for v in value if isinstance(v, dict | list))
    return 0


def _duplicate_key(line: str) -> str | None:
    """The first key of ``line``'s JSON that one object holds twice, or None. (A JSON line has
    a colon outside its strings for every key, so when it has no more colons than its parsed
    objects have keys, no key was lost: the caller asks only otherwise.)"""
    import json

    found: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        for k, _v in items:
            if k in seen and not found:
                found.append(k)
            seen.add(k)
        return dict(items)

    try:
        json.loads(line, object_pairs_hook=pairs)
    except (ValueError, RecursionError):
        return None
    return found[0] if found else None


def _lenient_json(line: str) -> Any:
    """JSON the fast parser refuses but the standard one reads (an escaped lone surrogate,
    ``"\\ud800"``): parsed, with such text repaired to U+FFFD. None if not JSON at all."""
    import json

    try:
        value = json.loads(line)
    except (ValueError, RecursionError):  # RecursionError: arrays nested thousands deep
        return None
    return scrub_text(value)[0]


def _maybe_json(cell: str) -> Any:
    s = cell.strip()
    if s[:1] in "[{":
        try:
            return _json.loads(s)
        except ValueError:
            return cell
    return cell


def _load_csv(text: str, file: str) -> tuple[str | None, str | None, list[Item]]:
    import csv  # only CSV datasets need it

    # strict: an unterminated quote is an error, not a cell that swallows the rest of the file
    reader = csv.DictReader(io.StringIO(text), strict=True)
    row_start = [1]  # the line the row being read starts on, for the message
    try:
        return _csv_items(reader, file, row_start)
    except csv.Error as e:
        raise UsageError(f"malformed CSV: {e}", file, row_start[0]) from None


def _csv_items(reader: csv.DictReader, file: str, row_start: list[int]) -> tuple[str | None, str | None, list[Item]]:
    fieldnames = reader.fieldnames
    row_start[0] = reader.line_num + 1
    if not fieldnames or "input" not in fieldnames:
        raise UsageError("CSV dataset needs a header row with an 'input' column", file, 1)
    dupes = sorted({c for c in fieldnames if fieldnames.count(c) > 1})
    if dupes:
        raise UsageError(f"CSV header names column '{dupes[0]}' twice", file, 1)
    items = []
    for row in reader:
        lineno = reader.line_num
        if None in row:
            raise UsageError("row has more cells than the header", file, lineno)

        def err(msg: str, key: Any, lineno: int = lineno) -> UsageError:
            return UsageError(msg, file, lineno)

        meta: dict[str, Any] = {}
        if row.get("metadata"):
            meta = _maybe_json(row["metadata"])
            if not isinstance(meta, dict):
                raise err("metadata cell must be a JSON object", "metadata")
        for k, v in row.items():
            if k not in ITEM_KEYS and v not in (None, ""):
                meta[k] = [t.strip() for t in v.replace(";", ",").split(",") if t.strip()] if k == "tags" else v
        raw: dict[str, Any] = {"input": _maybe_json(row["input"]) if row["input"] else None, "metadata": meta}
        if row.get("id"):
            raw["id"] = row["id"]
        for key in ("expected_output", "expected_tool_calls", "tool_results"):
            if row.get(key) not in (None, ""):
                raw[key] = _maybe_json(row[key])
        items.append(make_item(raw, file, lineno, err))
        row_start[0] = reader.line_num + 1
    return None, None, items


def parse_filters(filters: Iterable[str]) -> list[tuple[str, str]]:
    out = []
    for f in filters:
        key, sep, value = f.partition("=")
        if not sep or not key:
            raise UsageError(f"--filter takes key=value (got {f!r})")
        out.append((key.strip(), value.strip()))
    return out


def _matches(item: Item, key: str, value: str) -> bool:
    if key in ("tag", "tags"):
        return value in item.tags
    if key == "id":
        return item.id == value
    v = item.metadata.get(key)
    if isinstance(v, list):
        return value in map(str, v)
    return v is not None and str(v) == value


def select_items(items: list[Item], filters: list[tuple[str, str]] | None = None, limit: int | None = None,
                 sample: int | None = None, seed: int | None = None) -> list[Item]:
    """Filters (all must match), then a seeded random sample, then the first ``limit``."""
    if filters:
        items = [it for it in items if all(_matches(it, k, v) for k, v in filters)]
    if sample is not None and sample < len(items):
        rng = random.Random(seed if seed is not None else 0)
        keep = set(rng.sample(range(len(items)), sample))
        items = [it for i, it in enumerate(items) if i in keep]
    if limit is not None:
        items = items[:limit]
    return items
