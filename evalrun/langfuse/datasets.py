"""Langfuse datasets: load ``langfuse://<name>[?version=<ISO timestamp>]`` as a Dataset, push a
local golden file to Langfuse (an upsert by item id that changes nothing the second time), pull
one back into a YAML file ``load_dataset`` reads.

Items keep Langfuse's ids, so a run on a Langfuse dataset links its traces to the items and
pairs with baselines item by item. ARCHIVED items are dropped on load.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from evalrun import _json
from evalrun.datasets import Dataset, register_source
from evalrun.errors import RunFailed, UsageError
from evalrun.langfuse import wire
from evalrun.langfuse.client import Client, Refused, Unreachable, credentials
from evalrun.records import Item

SCHEME = "langfuse://"
#: items per page when reading a dataset (the largest page Langfuse's list endpoints allow)
PAGE_SIZE = 100


def parse_dataset_ref(ref: str) -> tuple[str, datetime | None]:
    """``langfuse://name[?version=ts]`` -> (name, version)."""
    if not ref.startswith(SCHEME):
        raise UsageError(f"not a Langfuse dataset reference: {ref!r} (expected {SCHEME}<name>)")
    parts = urlsplit(ref)
    name = unquote(ref[len(SCHEME):].split("?", 1)[0]).strip()
    if not name:
        raise UsageError(f"{ref}: no dataset name (expected {SCHEME}<name>)")
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = [k for k in query if k != "version"]
    if unknown:
        raise UsageError(f"{ref}: unknown option '{unknown[0]}' (only ?version=<ISO timestamp>)")
    version = None
    if "version" in query:
        version = parse_version(query["version"][-1], ref)
    return name, version


def parse_version(text: str, where: str) -> datetime:
    try:
        v = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{where}: version must be an ISO 8601 timestamp like 2026-01-21T14:35:42Z "
                         f"(got {text!r})") from None
    # a timestamp without an offset means UTC, as Langfuse reads it
    return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)


def _open(budget: float | None = 120.0) -> Client:
    return Client(credentials(), budget=budget)


def _call(client: Client, what: str, fn: Any) -> Any:
    try:
        return client.call(what, fn)
    except Unreachable as e:  # Langfuse down is infrastructure (exit 3), not bad input
        raise RunFailed(f"Langfuse at {client.creds.base_url}: {e}") from None


def get_dataset(client: Client, name: str) -> Any | None:
    """The dataset record, or None when the project has no dataset of that name."""
    try:
        # the SDK puts the name into the path as it is: a '/' in it would be a path separator
        return client.call(f"get dataset {name!r}",
                           lambda o: client.api.datasets.get(quote(name, safe=""), request_options=o))
    except Refused as e:
        if e.status == 404:
            return None
        raise UsageError(f"{SCHEME}{name}: Langfuse refused: {e}") from None
    except Unreachable as e:  # Langfuse down is infrastructure (exit 3), not bad input
        raise RunFailed(f"Langfuse at {client.creds.base_url}: {e}") from None


def fetch_items(client: Client, name: str, version: datetime | None = None) -> tuple[Any, list[Any]]:
    """The dataset and all its items (every status), page by page."""
    ds = get_dataset(client, name)
    if ds is None:
        raise UsageError(f"{SCHEME}{name}: no such dataset in the Langfuse project at {client.creds.base_url}")
    items: list[Any] = []
    page = 1
    while True:
        def get_page(o: dict[str, Any], page: int = page) -> Any:
            return client.api.dataset_items.list(dataset_name=name, page=page, limit=PAGE_SIZE, version=version,
                                                 request_options=o)

        try:
            res = _call(client, f"list items of {name!r} (page {page})", get_page)
        except Refused as e:
            raise UsageError(f"{SCHEME}{name}: Langfuse refused the item listing: {e}") from None
        items.extend(res.data)
        if page >= (res.meta.total_pages or 0) or not res.data:
            break
        page += 1
    return ds, items


def to_item(raw: Any, ref: str) -> Item:
    meta = raw.metadata
    if meta is None:
        meta = {}
    elif not isinstance(meta, dict):
        meta = {"metadata": meta}  # evalrun metadata is a mapping; keep a scalar under one key
    if raw.input is None:
        raise UsageError(f"{ref}: item {raw.id} has no input")
    media = {m.reference_string: {"type": wire.MEDIA_TYPE, "reference": m.reference_string,
                                  "media_id": m.media.media_id, "content_type": m.media.content_type,
                                  "content_length": m.media.content_length, "url": m.media.url}
             for m in (getattr(raw, "media_references", None) or [])}
    if media:
        return Item(id=str(raw.id), input=wire.resolve_media(raw.input, media),
                    expected_output=wire.resolve_media(raw.expected_output, media),
                    metadata=wire.resolve_media(meta, media), source=f"{ref}#{raw.id}")
    return Item(id=str(raw.id), input=raw.input, expected_output=raw.expected_output, metadata=meta,
                source=f"{ref}#{raw.id}")


def load_dataset(ref: str) -> Dataset:
    name, version = parse_dataset_ref(ref)
    with _open() as client:
        ds, raw_items = fetch_items(client, name, version)
    active = [r for r in raw_items if str(getattr(r.status, "value", r.status)) != "ARCHIVED"]
    items = [to_item(r, ref) for r in active]
    if not items:
        raise UsageError(f"{ref}: the dataset has no active items")
    # media as their reference strings: a signed URL changes on every read, the item does not
    fingerprint = "sha256:" + _fingerprint([wire.media_references((it.id, it.input, it.expected_output, it.metadata))
                                            for it in items])
    return Dataset(name=name, items=items, source=ref, description=ds.description, fingerprint=fingerprint,
                   extra={"langfuse_dataset_id": ds.id,
                          "langfuse_version": version.isoformat().replace("+00:00", "Z") if version else None,
                          "archived": len(raw_items) - len(active)})


def _fingerprint(value: Any) -> str:
    from evalrun.store import content_key

    return content_key(value)


def push_dataset(path: str, name: str | None = None, base_dir: Path | None = None,
                 description: str | None = None) -> dict[str, int | str]:
    """Upsert a local dataset file's items into the Langfuse dataset ``name`` by item id.

    Items whose content already matches are not written again, so pushing twice changes nothing.
    """
    from evalrun.datasets import load_dataset as load_local

    local = load_local(path, base_dir or Path.cwd())
    name = name or local.name
    counts: dict[str, int | str] = {"dataset": name, "created": 0, "updated": 0, "unchanged": 0, "archived": 0}
    with _open(budget=None) as client:
        existing: dict[str, Any] = {}
        if get_dataset(client, name) is not None:
            existing = {r.id: r for r in fetch_items(client, name)[1]}
        else:
            desc = description or local.description
            _call_refused(client, f"create dataset {name!r}",
                          lambda o: client.api.datasets.create(name=name, description=desc, request_options=o))
        for it in local.items:
            old = existing.get(it.id)
            if old is not None and _same(old, it):
                counts["unchanged"] = int(counts["unchanged"]) + 1
                continue

            # no status: a new item starts ACTIVE, an item archived in Langfuse (which the listing
            # does not show) stays ARCHIVED -- archiving is Langfuse's decision, not the file's
            def create(o: dict[str, Any], it: Item = it) -> Any:
                return client.api.dataset_items.create(dataset_name=name, id=it.id, input=it.input,
                                                       expected_output=it.expected_output,
                                                       metadata=it.metadata or None, request_options=o)

            saved = _call_refused(client, f"upsert item {it.id!r}", create, it.source)
            if str(getattr(saved.status, "value", saved.status)) == "ARCHIVED":
                key = "archived"
            else:
                key = "updated" if old is not None else "created"
            counts[key] = int(counts[key]) + 1
    return counts


def _call_refused(client: Client, what: str, fn: Any, where: str | None = None) -> Any:
    try:
        return _call(client, what, fn)
    except Refused as e:
        raise UsageError(f"Langfuse refused to {what}: {e}", where) from None


def _same(old: Any, it: Item) -> bool:
    status = str(getattr(old.status, "value", old.status))
    return (status == "ACTIVE" and _json.canonical(old.input) == _json.canonical(it.input)
            and _json.canonical(old.expected_output) == _json.canonical(it.expected_output)
            and _json.canonical(old.metadata or {}) == _json.canonical(it.metadata or {}))


def _archived_known(client: Client, name: str, out: Path, listed: set[str]) -> list[Any]:
    """Langfuse's item listing never returns ARCHIVED items, so they cannot be discovered: the
    ones a previous pull wrote to ``out`` are read back by id and kept when Langfuse says ARCHIVED."""
    if not out.is_file():
        return []
    from evalrun.datasets import load_dataset as load_local

    try:
        known = [it.id for it in load_local(str(out), out.parent).items]
    except UsageError:
        return []
    found = []
    for item_id in known:
        if item_id in listed:
            continue
        try:
            def get_item(o: Any, i: str = item_id) -> Any:
                return client.api.dataset_items.get(quote(i, safe=""), request_options=o)

            raw = client.call(f"get item {item_id!r}", get_item)
        except Refused:
            continue  # deleted, or never there
        except Unreachable as e:
            raise RunFailed(f"Langfuse at {client.creds.base_url}: {e}") from None
        if raw.dataset_name == name and str(getattr(raw.status, "value", raw.status)) == "ARCHIVED":
            found.append(raw)
    return found


def pull_dataset(name: str, out: Path, version: str | None = None, include_archived: bool = False) -> int:
    """Write the Langfuse dataset ``name`` as a YAML golden file; returns the number of items."""
    import yaml

    v = parse_version(version, f"--version {version}") if version else None
    with _open() as client:
        ds, raw_items = fetch_items(client, name, v)
        if include_archived:
            raw_items += _archived_known(client, name, out, {r.id for r in raw_items})
    rows = []
    for r in raw_items:
        archived = str(getattr(r.status, "value", r.status)) == "ARCHIVED"
        if archived and not include_archived:
            continue
        row: dict[str, Any] = {"id": r.id, "input": r.input}
        if r.expected_output is not None:
            row["expected_output"] = r.expected_output
        meta = r.metadata if isinstance(r.metadata, dict) else ({"metadata": r.metadata} if r.metadata else {})
        if archived:
            meta = {**meta, "langfuse_status": "ARCHIVED"}
        if meta:
            row["metadata"] = meta
        rows.append(row)
    # Langfuse lists newest first; a golden file reads better oldest first
    rows.reverse()
    doc: dict[str, Any] = {"name": name}
    if ds.description:
        doc["description"] = ds.description
    doc["items"] = rows
    text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return len(rows)


register_source("langfuse", load_dataset)
