"""``evalrun datasets harvest``: production traces -> reviewable, redacted, de-duplicated golden items.

The steps, each counted in the report (``--dry-run`` prints the counts and writes nothing):

1. read the source (Langfuse, a JSONL export, an OTLP JSON file: :mod:`.traces`);
2. filter (name, tags, environment, release, version, user, session, time window, score
   conditions such as ``user_feedback<0``, errors, latency and cost thresholds);
3. map: the input, the expected output (a human correction: the comment of the score named by
   ``--correction``; else the production output, marked ``review: unreviewed``), kept metadata;
4. redact every string (:mod:`.redact`); an item whose redaction fails is dropped and counted;
5. de-duplicate: exact (normalised input) and near (embedding cosine at or above a threshold,
   with the bundled model), against each other and against the existing golden file;
6. sample: all, a fixed size, stratified by a metadata key, or diverse (farthest-point over the
   inputs' embeddings), always seeded;
7. write: the golden file (YAML or JSONL) with the new items appended, sorted by a stable id
   derived from the file and the trace, each with ``metadata.provenance`` (source trace id,
   source, filter, seed). The same inputs and seed write the same file.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from evalrun.errors import UsageError
from evalrun.production.redact import RedactionFailed, Redactor
from evalrun.production.traces import Trace

_SCORE = re.compile(r"^\s*([A-Za-z0-9_.:-]+)\s*(<=|>=|==|!=|<|>)\s*(-?\d+(?:\.\d+)?)\s*$")


@dataclass
class Options:
    out: Path
    name: str | None = None
    tags: list[str] = field(default_factory=list)
    environment: str | None = None
    release: str | None = None
    version: str | None = None
    user: str | None = None
    session: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    scores: list[tuple[str, str, float]] = field(default_factory=list)
    errors: bool = False
    min_latency: float | None = None
    min_cost: float | None = None
    correction: str | None = None
    keep_metadata: list[str] = field(default_factory=list)
    add_tags: list[str] = field(default_factory=list)
    sample: int | None = None
    stratify: str | None = None
    diverse: bool = False
    seed: int = 0
    near_dup: float | None = 0.95
    redactor: Redactor = field(default_factory=Redactor.build)
    dry_run: bool = False

    def filter_text(self) -> str:
        parts = [f"{k}={v}" for k, v in (("name", self.name), ("environment", self.environment),
                                         ("release", self.release), ("version", self.version),
                                         ("user", self.user), ("session", self.session)) if v]
        parts += [f"tag={t}" for t in self.tags]
        parts += [f"{n}{op}{v:g}" for n, op, v in self.scores]
        if self.since:
            parts.append(f"since={self.since.isoformat()}")
        if self.until:
            parts.append(f"until={self.until.isoformat()}")
        if self.errors:
            parts.append("errors")
        if self.min_latency is not None:
            parts.append(f"latency>={self.min_latency:g}")
        if self.min_cost is not None:
            parts.append(f"cost>={self.min_cost:g}")
        return " ".join(parts) or "all"

    def api_query(self) -> dict[str, Any]:
        """The filters the Langfuse traces API applies itself (the rest are applied here too)."""
        q: dict[str, Any] = {"name": self.name, "environment": self.environment, "release": self.release,
                             "version": self.version, "userId": self.user, "sessionId": self.session,
                             "tags": self.tags or None,
                             "fromTimestamp": self.since.isoformat() if self.since else None,
                             "toTimestamp": self.until.isoformat() if self.until else None}
        return {k: v for k, v in q.items() if v is not None}


def parse_score(text: str) -> tuple[str, str, float]:
    m = _SCORE.match(text)
    if not m:
        raise UsageError(f"--score {text!r}: write NAME OP NUMBER, e.g. 'user_feedback<0' (OP: < <= > >= == !=)")
    return m.group(1), m.group(2), float(m.group(3))


def parse_time(text: str, flag: str) -> datetime:
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{flag} {text!r}: an ISO 8601 time (2026-12-01 or 2026-12-01T08:00:00Z)") from None
    if t.tzinfo is None:

        t = t.replace(tzinfo=UTC)
    return t


def _holds(value: Any, op: str, bound: float) -> bool:
    if isinstance(value, bool):
        value = float(value)
    if not isinstance(value, int | float):
        return False
    return {"<": value < bound, "<=": value <= bound, ">": value > bound, ">=": value >= bound,
            "==": value == bound, "!=": value != bound}[op]


def _time(t: Trace) -> datetime | None:
    if not t.timestamp:
        return None
    try:
        return parse_time(t.timestamp, "")
    except UsageError:
        return None


def _filters(o: Options) -> list[tuple[str, Any]]:
    """(label, predicate) of every filter asked for, in order; the report counts what each drops."""
    out: list[tuple[str, Any]] = []
    eq = (("name", o.name, "name"), ("environment", o.environment, "environment"), ("release", o.release, "release"),
          ("version", o.version, "version"), ("user", o.user, "user_id"), ("session", o.session, "session_id"))
    for label, want, attr in eq:
        if want is not None:
            out.append((f"{label}={want}", lambda t, want=want, attr=attr: getattr(t, attr) == want))
    for tag in o.tags:
        out.append((f"tag={tag}", lambda t, tag=tag: tag in t.tags))
    if o.since:
        out.append(("since", lambda t: (ts := _time(t)) is not None and ts >= o.since))
    if o.until:
        out.append(("until", lambda t: (ts := _time(t)) is not None and ts < o.until))
    for name, op, bound in o.scores:
        out.append((f"{name}{op}{bound:g}", lambda t, n=name, op=op, b=bound: _holds(t.scores.get(n), op, b)))
    if o.errors:
        out.append(("errors", lambda t: t.error))
    if o.min_latency is not None:
        out.append((f"latency>={o.min_latency:g}", lambda t: t.latency is not None and t.latency >= o.min_latency))
    if o.min_cost is not None:
        out.append((f"cost>={o.min_cost:g}", lambda t: t.cost is not None and t.cost >= o.min_cost))
    return out


def normalise(value: Any) -> str:
    """The input as exact duplicates are found: the exact_match scorer's normalisations."""
    from evalrun.scoring.match import normalize

    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)
    return normalize(text, ("unicode", "case", "punctuation", "whitespace"))


def item_id(dataset: str, trace_id: str) -> str:
    return "h-" + hashlib.sha256(f"{dataset}\x00{trace_id}".encode()).hexdigest()[:16]


@dataclass
class Candidate:
    trace: Trace
    item: dict[str, Any]
    key: str  # normalised input


def _map(t: Trace, o: Options, dataset: str) -> dict[str, Any]:
    corrected = o.correction is not None and o.correction in t.comments
    meta: dict[str, Any] = {k: t.metadata[k] for k in o.keep_metadata if k in t.metadata}
    tags = sorted(set(t.tags) | set(o.add_tags))
    if tags:
        meta["tags"] = tags
    meta["review"] = "corrected" if corrected else "unreviewed"
    meta["provenance"] = {"source_trace_id": t.id, "source": t.source.rpartition(":")[0] or t.source,
                          "filter": o.filter_text(), "seed": o.seed,
                          **({"trace_timestamp": t.timestamp} if t.timestamp else {})}
    return {"id": item_id(dataset, t.id), "input": t.input,
            "expected_output": t.comments[o.correction] if corrected and o.correction else t.output,
            "metadata": meta}


def _texts(cands: list[Candidate]) -> list[str]:
    return [c.item["input"] if isinstance(c.item["input"], str) else json.dumps(c.item["input"], sort_keys=True)
            for c in cands]


class _Embedder:
    def __init__(self) -> None:
        from evalrun.scoring._embed_model import DEFAULT_MODEL, encode, load_model, resolve_model

        self._encode = encode
        self.model, _ = load_model(resolve_model(DEFAULT_MODEL, Path.cwd()), "cpu")

    def __call__(self, texts: list[str]) -> Any:
        import numpy as np

        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        v = self._encode(self.model, texts, 64)
        return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def _allocate(sizes: dict[str, int], n: int) -> dict[str, int]:
    """n split across strata: one each first (when n allows: every stratum is represented), the
    rest in proportion to their sizes (largest remainder), none above its size."""
    total = sum(sizes.values())
    if total <= n:
        return dict(sizes)
    floor = {k: 1 if n >= len(sizes) and s > 0 else 0 for k, s in sizes.items()}
    rest_sizes = {k: s - floor[k] for k, s in sizes.items()}
    rest, rest_total = n - sum(floor.values()), sum(rest_sizes.values())
    raw = {k: rest * s / rest_total if rest_total else 0.0 for k, s in rest_sizes.items()}
    alloc = {k: floor[k] + min(rest_sizes[k], int(v)) for k, v in raw.items()}
    for k in sorted(raw, key=lambda k: (-(raw[k] - int(raw[k])), k)):
        if sum(alloc.values()) >= n:
            break
        if alloc[k] < sizes[k]:
            alloc[k] += 1
    return alloc


def harvest(traces: Iterable[Trace], o: Options, existing: list[dict[str, Any]] | None = None,
            progress: Any = None) -> dict[str, Any]:
    """Run the steps; returns the report (and writes the file unless dry run)."""
    dataset = o.out.stem
    existing = existing or []
    counts: dict[str, Any] = {"read": 0}
    filters = _filters(o)
    dropped_by: Counter[str] = Counter()
    kept: list[Trace] = []
    for t in traces:
        counts["read"] += 1
        failed = next((label for label, pred in filters if not pred(t)), None)
        if failed is not None:
            dropped_by[failed] += 1
            continue
        if t.input is None:
            dropped_by["no input"] += 1
            continue
        kept.append(t)
    counts["filtered_out"] = dict(dropped_by)
    counts["matched"] = len(kept)
    # redaction: before anything is compared or written
    cands: list[Candidate] = []
    redaction_failed: Counter[str] = Counter()
    known_ids = {str(it.get("id")) for it in existing}
    already = 0
    for t in kept:
        item = _map(t, o, dataset)
        if item["id"] in known_ids:
            already += 1
            continue
        try:
            item["input"] = o.redactor.value(item["input"], "input")
            item["expected_output"] = o.redactor.value(item["expected_output"], "expected_output")
            item["metadata"] = o.redactor.value(item["metadata"], "metadata")
        except RedactionFailed as e:
            redaction_failed[str(e).split(":")[0][:80]] += 1
            continue
        cands.append(Candidate(t, item, normalise(item["input"])))
    counts["already_in_file"] = already
    counts["redaction"] = {**o.redactor.report(), "dropped": sum(redaction_failed.values()),
                           "dropped_by_reason": dict(redaction_failed)}
    # exact duplicates: the first by trace id wins (a stable choice)
    cands.sort(key=lambda c: c.trace.id)
    seen = {normalise(it.get("input")) for it in existing}
    unique: list[Candidate] = []
    exact = 0
    for c in cands:
        if c.key in seen:
            exact += 1
            continue
        seen.add(c.key)
        unique.append(c)
    counts["duplicates_exact"] = exact
    # the order candidates are taken in: seeded
    rng = random.Random(o.seed)
    rng.shuffle(unique)
    embed = _Embedder() if (o.near_dup is not None or o.diverse) and unique else None
    chosen, near = _choose(unique, o, existing, embed, rng)
    counts["duplicates_near"] = near
    counts["written"] = len(chosen)
    items = sorted([*existing, *(c.item for c in chosen)], key=lambda it: str(it.get("id")))
    if not o.dry_run:
        _write(o.out, items)
    return {"source_counts": counts, "out": str(o.out), "dry_run": o.dry_run, "new_items": len(chosen),
            "items_in_file": len(items)}


class _Accepted:
    """The unit vectors of the inputs kept so far (and the golden file's), for near-duplicate checks."""

    def __init__(self, dim: int) -> None:
        import numpy as np

        self.buf = np.zeros((64, dim), dtype=np.float32)
        self.n = 0

    def add(self, vecs: Any) -> None:
        import numpy as np

        need = self.n + len(vecs)
        if need > len(self.buf):
            grown = np.zeros((max(need, 2 * len(self.buf)), self.buf.shape[1]), dtype=np.float32)
            grown[:self.n] = self.buf[:self.n]
            self.buf = grown
        self.buf[self.n:need] = vecs
        self.n = need

    def closest(self, v: Any) -> float:
        return float((self.buf[:self.n] @ v).max()) if self.n else -1.0


def _choose(unique: list[Candidate], o: Options, existing: list[dict[str, Any]], embed: Any,
            rng: random.Random) -> tuple[list[Candidate], int]:
    groups: dict[str, list[Candidate]] = defaultdict(list)
    for c in unique:
        key = "" if o.stratify is None else str(_dig(c.trace.metadata, o.stratify.removeprefix("metadata.")))
        groups[key].append(c)
    want = _allocate({k: len(v) for k, v in groups.items()}, o.sample) if o.sample is not None else \
        {k: len(v) for k, v in groups.items()}
    accepted = None
    if embed is not None:
        accepted = _Accepted(384)
        if o.near_dup is not None and existing:
            accepted.add(embed([it["input"] if isinstance(it.get("input"), str)
                                else json.dumps(it.get("input"), sort_keys=True) for it in existing]))
    chosen: list[Candidate] = []
    near = 0
    for key in sorted(groups):
        pool = groups[key]
        texts = _texts(pool)
        vecs: dict[int, Any] = {}
        order = list(range(len(pool)))
        if o.diverse and embed is not None and len(pool) > want[key]:
            every = embed(texts)
            vecs = dict(enumerate(every))
            order = _farthest_first(every, rng)
        taken = 0
        for pos, i in enumerate(order):
            if taken >= want[key]:
                break
            if embed is not None and i not in vecs:  # embed lazily, a chunk ahead
                ahead = [j for j in order[pos:pos + 64] if j not in vecs]
                vecs.update(zip(ahead, embed([texts[j] for j in ahead]), strict=True))
            if accepted is not None and o.near_dup is not None and accepted.closest(vecs[i]) >= o.near_dup:
                near += 1
                continue
            if accepted is not None:
                accepted.add(vecs[i][None, :])
            chosen.append(pool[i])
            taken += 1
    return chosen, near


def _farthest_first(vecs: Any, rng: random.Random) -> list[int]:
    """Every index, each next one the farthest (cosine) from those before: diverse first."""
    import numpy as np

    n = len(vecs)
    first = rng.randrange(n)
    order = [first]
    best = 1.0 - vecs @ vecs[first]
    best[first] = -1.0
    for _ in range(n - 1):
        i = int(np.argmax(best))
        order.append(i)
        best = np.minimum(best, 1.0 - vecs @ vecs[i])
        best[order] = -1.0
    return order


def _dig(data: dict[str, Any], dotted: str) -> Any:
    from evalrun.targets import dig

    try:
        return dig(data, dotted)
    except KeyError:
        return None


def _write(path: Path, items: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if path.suffix.lower() == ".jsonl":
        text = "".join(json.dumps(it, ensure_ascii=False, sort_keys=True) + "\n" for it in items)
    else:
        import yaml

        text = ("# golden items harvested from production traces (evalrun datasets harvest); review each\n"
                "# item marked review: unreviewed before relying on its expected_output\n"
                + yaml.safe_dump({"items": items}, sort_keys=True, allow_unicode=True, width=100))
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def read_existing(path: Path) -> list[dict[str, Any]]:
    """The golden file's items as written (harvest appends to it)."""
    if not path.exists():
        return []
    if path.suffix.lower() == ".jsonl":
        out = []
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except ValueError as e:
                    raise UsageError(f"not valid JSON: {e}", str(path), n) from None
        return out
    from evalrun.datasets import load_dataset

    ds = load_dataset(str(path), path.parent)  # checks it the way a run will
    return [{"id": it.id, "input": it.input, "expected_output": it.expected_output, "metadata": it.metadata}
            for it in ds.items]
