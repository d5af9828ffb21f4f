"""The ``assert`` scorer: runs each item's own checks (``assert:`` in the dataset).

Every check counts under its own statistic, ``assert.NAME`` (NAME: its ``name:`` or its type),
over the items that carry it: an item without a refusal check has no ``assert.refusal`` score,
so that statistic's n is the items that have one. The scorer's own score (``assertions`` by
default) is the item's verdict on all its blocking checks together: value = the weighted mean
of their values, passed = every one passed. A check that could not run is an error, never a
pass; it makes the item's ``assertions`` score an error too.

Applied here, for every check type alike: ``not: true`` (inverted only when the check ran and
gave a verdict: an error stays an error, and a missing output or path is a failure either way),
``output:`` (a path into a structured output), ``weight:`` and ``informational: true``
(reported under its name, never part of the item's verdict, the Actions pass rate or a gate).

Checks are validated before any target call (``check_items``): a bad one is a UsageError at
its line in the dataset.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pydantic import ValidationError

from evalrun import selectors
from evalrun._json import key as data_key
from evalrun._json import loads
from evalrun.errors import UsageError
from evalrun.records import Item, Record, Score
from evalrun.scoring.assertions.registry import Check, CheckConfig, FinalScore, check_class
from evalrun.scoring.base import Scorer, ScorerConfig
from evalrun.store import gc_paused

#: the statistic of check NAME is ``assert.NAME``
PREFIX = "assert."


class AssertConfig(ScorerConfig):
    #: the item-level verdict's name (``assertions.pass_rate``)
    name: str | None = "assertions"
    #: the judge the ``rubric`` checks (and ``refusal`` checks with ``judge: true``) ask: the
    #: ``llm_judge`` scorer's fields (model, base_url, api_key_env, samples...)
    judge: dict[str, Any] | None = None
    #: the embedding model of ``similar`` checks: the embedding scorer's fields (model, device...)
    embedding: dict[str, Any] | None = None


def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    where = ".".join(str(x) for x in err["loc"] if not isinstance(x, int))
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return f"unknown field '{where}'"
    if err["type"] == "missing":
        return f"'{where}' is required"
    return f"{where}: {msg}" if where else msg


def _fail_final(reason: str) -> Score:
    return FinalScore(0.0, False, reason)


def invert(s: Score) -> Score:
    """``not:``: a verdict turned over; an error, a check that gave no verdict, or a failure that
    fails both ways (no output, an empty answer) stays as it is."""
    if s.error is not None or s.passed is None or isinstance(s, FinalScore):
        return s
    value = None if s.value is None else round(1.0 - s.value, 6) if 0.0 <= s.value <= 1.0 else s.value
    reason = "not: " + (s.reason or "the check passed") if s.passed else None
    return Score(value, not s.passed, reason, None, s.extra)


class AssertScorer(Scorer):
    """Each item's own checks; one statistic per check name, and the item's verdict on all of them."""

    type = "assert"
    langfuse_data_type = "NUMERIC"
    Config = AssertConfig
    config: AssertConfig
    batch_size = 1024

    @classmethod
    def needs_cache(cls, config: ScorerConfig) -> bool:
        # judge verdicts and embeddings are kept in the content cache
        return bool(getattr(config, "judge", None) or getattr(config, "embedding", None))

    def __init__(self, config: ScorerConfig, ctx: Any) -> None:
        super().__init__(config, ctx)
        self.scoped = True
        #: item id -> its checks (validated config, the handler of its type)
        self.plans: dict[str, list[Planned]] = {}
        self.handlers: dict[str, Check] = {}
        #: every ``assert.NAME`` some item has, in the order first seen; and the informational ones
        self.names: list[str] = []
        self.informational: set[str] = set()

    def _handler(self, type_name: str) -> Check:
        h = self.handlers.get(type_name)
        if h is None:
            cls = check_class(type_name)
            options = {"judge": self.config.judge, "embedding": self.config.embedding}
            h = self.handlers[type_name] = cls(self.ctx, options)
        return h

    def check_items(self, items: list[Item]) -> None:
        # (tens of thousands of small objects, none in a cycle: a collection would rescan them all)
        with gc_paused():
            self._check_items(items)

    def _check_items(self, items: list[Item]) -> None:
        seen_names: dict[str, None] = {}
        # a check written the same way on many items ({type: refusal}, one schema) is read once
        configs: dict[bytes | str, tuple[CheckConfig, Check]] = {}
        for it in items:
            if not it.asserts:
                continue
            checks: list[Planned] = []
            stats: set[str] = set()
            for i, raw in enumerate(it.asserts):
                key = data_key(raw)
                try:
                    known = configs.get(key)
                    if known is None:
                        h = self._handler(str(raw.get("type")))
                        known = configs[key] = (h.Config.model_validate(raw), h)
                    cfg, h = known
                    h.validate(cfg, it)
                except UsageError as e:
                    raise _located(it, i, e.message) from None
                except ValidationError as e:
                    raise _located(it, i, _first_error(e)) from None
                except ValueError as e:
                    raise _located(it, i, str(e)) from None
                if cfg.stat in stats:
                    raise _located(it, i, f"two checks of this item are named '{cfg.stat}'; give one a name: "
                                          "(or list several phrases in one check's value:)")
                stats.add(cfg.stat)
                planned = Planned(cfg, h)
                seen_names.setdefault(planned.name)
                if cfg.informational:
                    self.informational.add(planned.name)
                checks.append(planned)
            self.plans[it.id] = checks
        self.names = list(seen_names)

    def stat_names(self) -> list[str]:
        return [self.name, *self.names]

    def informational_names(self) -> list[str]:
        return [*super().informational_names(), *(n for n in self.names if n in self.informational)]

    async def setup(self) -> None:
        for h in self.handlers.values():
            await h.setup([p.cfg for checks in self.plans.values() for p in checks if p.handler is h])

    async def close(self) -> None:
        for h in self.handlers.values():
            try:
                await h.close()
            except Exception:  # closing must not hide the run's own outcome
                pass

    def applies(self, record: Record) -> bool:
        return record.item_id in self.plans and super().applies(record)

    def not_applicable(self, record: Record) -> list[str]:
        if not self.applies(record):
            return [self.name, *self.names]
        carried = {p.name for p in self.plans[record.item_id]}
        return [n for n in self.names if n not in carried]

    async def score_batch(self, records: list[Record]) -> list[Score]:
        rows: list[list[Score | None]] = []
        jobs: dict[int, tuple[Check, list[tuple[Any, Any, Record]], list[tuple[int, int]]]] = {}
        for ri, rec in enumerate(records):
            checks = self.plans[rec.item_id]
            row: list[Score | None] = [None] * len(checks)
            rows.append(row)
            output = rec.output
            if output is None:
                for ci in range(len(checks)):
                    row[ci] = _fail_final("no output")
                continue
            parsed: Any = None
            for ci, p in enumerate(checks):
                out = output
                if p.output is not None:
                    if parsed is None:
                        parsed = _parse(output)
                    found = selectors.find(parsed, p.output) if parsed is not _NOT_JSON else []
                    if not found:
                        row[ci] = _fail_final(f"output has no {p.cfg.output}" if parsed is not _NOT_JSON
                                              else f"output is not JSON, so it has no {p.cfg.output}")
                        continue
                    out = found[0] if len(found) == 1 else found
                entry = jobs.get(id(p.handler))
                if entry is None:
                    entry = jobs[id(p.handler)] = (p.handler, [], [])
                entry[1].append((p.cfg, out, rec))
                entry[2].append((ri, ci))
        for h, batch, places in jobs.values():
            try:
                scores = await h.check_batch(batch)
                if len(scores) != len(batch):
                    raise RuntimeError(f"{h.type} gave {len(scores)} results for {len(batch)} checks")
            except Exception as e:  # a type's failure marks its checks, never the others
                msg = f"{type(e).__name__}: {e}"[:2000]
                scores = [Score.failed(msg) for _ in batch]
            for (ri, ci), (cfg, _, _), s in zip(places, batch, scores, strict=True):
                rows[ri][ci] = invert(s) if cfg.negate else s
        return [self._verdict(self.plans[rec.item_id], row) for rec, row in zip(records, rows, strict=True)]

    @staticmethod
    def _verdict(checks: list[Planned], row: list[Score | None]) -> Score:
        children: dict[str, Score] = {}
        total = weights = 0.0
        failed: list[str] = []
        errors: list[str] = []
        verdicts = 0
        for p, s in zip(checks, row, strict=True):
            assert s is not None
            if p.informational:
                if not s.informational:
                    s = replace(s, informational=True)  # (a copy: a check may hand out a shared Score)
                children[p.name] = s
                continue
            children[p.name] = s
            if s.error is not None:
                errors.append(p.name)
                continue
            if s.value is not None:
                total += p.weight * s.value
                weights += p.weight
            if s.passed is not None:
                verdicts += 1
                if not s.passed:
                    failed.append(p.name)
        if errors:
            out = Score.failed(f"{', '.join(errors)} could not run" + (f"; failed: {', '.join(failed)}" if failed else ""))
        elif not verdicts and not weights:
            out = Score(None, None, "only informational checks")
        else:
            value = round(total / weights, 6) if weights else (0.0 if failed else 1.0)
            out = Score(value, not failed, f"failed: {', '.join(failed)}" if failed else None)
        out.children = children
        return out


class Planned:
    """One check of one item, as the scorer runs it."""

    __slots__ = ("cfg", "handler", "name", "informational", "weight", "output")

    def __init__(self, cfg: CheckConfig, handler: Check) -> None:
        self.cfg = cfg
        self.handler = handler
        self.name = PREFIX + cfg.stat
        self.informational = cfg.informational
        self.weight = cfg.weight
        self.output = selectors.parse_path(cfg.output) if cfg.output is not None else None


_NOT_JSON = object()


def _parse(output: Any) -> Any:
    if not isinstance(output, str):
        return output
    try:
        return loads(output)
    except ValueError:
        return _NOT_JSON


def _located(item: Item, i: int, message: str) -> UsageError:
    """``message`` about check ``i`` of ``item``, at its line in the dataset."""
    where = item.assert_sources[i] if i < len(item.assert_sources) else (item.source or "")
    file, sep, line = where.rpartition(":")
    if not sep or not line.isdigit():
        file, line = where, ""
    kind = (item.asserts or [{}])[i].get("type")
    return UsageError(f"item '{item.id}': assert[{i}] ({kind}): {message}", file or None,
                      int(line) if line else None)
