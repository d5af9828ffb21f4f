"""``cites``: the answer cites the sources named for the item.

Sources come from ``sources:`` on the check or, by default, from the item's
``metadata.sources`` (another path with ``from:``). A source is an id (``kb-12``) or a
mapping ``{id: kb-12, quote: "refunds within 30 days"}``. A source counts as cited when its id
appears in the answer as a whole word (``[kb-12]``, ``(source: kb-12)``, ``kb-12``; case
ignored), or, for a source with a quote, when the quoted span appears (case and spacing
ignored). ``match: all`` (default) needs every source, ``any`` one. ``only: true`` also fails
an answer that cites an id in brackets that is not one of the item's sources.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field

from evalrun import _json, selectors
from evalrun.records import Item, Record, Score
from evalrun.scoring.assertions.registry import Check, CheckConfig

_WS = re.compile(r"\s+")
_BRACKETED = re.compile(r"\[([^\[\]\n]{1,80})\]")


def _fold(text: str) -> str:
    return _WS.sub(" ", text.casefold()).strip()


class CitesConfig(CheckConfig):
    #: the sources: ids, or {id, quote}; default: read from ``from``
    sources: list[str | dict[str, str]] | None = None
    from_: str = Field("metadata.sources", alias="from")
    match: Literal["all", "any"] = "all"
    #: fail an answer that cites, in brackets, an id that is not one of the sources
    only: bool = False


def _sources(cfg: CitesConfig, metadata: dict[str, Any], inp: Any) -> list[tuple[str, str | None]]:
    raw: Any = cfg.sources
    if raw is None:
        head, rest = selectors.parse_path(cfg.from_)[0], selectors.parse_path(cfg.from_)[1:]
        data = {"metadata": metadata, "input": inp}.get(str(head))
        found = selectors.find(data, rest) if rest else []
        raw = found[0] if len(found) == 1 else found
    if isinstance(raw, str | dict):
        raw = [raw]
    out = []
    for s in raw or []:
        if isinstance(s, dict):
            sid = s.get("id")
            quote = s.get("quote")
            if not (isinstance(sid, str | int) or isinstance(quote, str)):
                raise ValueError(f"a source mapping needs an id or a quote (got {sorted(s)})")
            out.append((str(sid) if sid is not None else "", quote if isinstance(quote, str) else None))
        elif isinstance(s, str | int) and str(s).strip():
            out.append((str(s).strip(), None))
        else:
            raise ValueError(f"a source is an id or {{id, quote}} (got {s!r})")
    return out


class Cites(Check):
    """The answer cites the item's sources, by id or by a quoted span."""

    type = "cites"
    Config = CitesConfig

    def validate(self, cfg: CitesConfig, item: Item) -> None:  # type: ignore[override]  # (its own Config)
        if cfg.from_.split(".")[0] not in ("metadata", "input"):
            raise ValueError(f"from: {cfg.from_!r} must start with metadata or input")
        if not _sources(cfg, item.metadata, item.input):
            raise ValueError(f"no sources to cite: give sources: on the check, or {cfg.from_} on the item")

    def _id_rx(self, sid: str) -> re.Pattern[str]:
        cache: dict[str, re.Pattern[str]] = self.__dict__.setdefault("_ids", {})
        rx = cache.get(sid)
        if rx is None:
            rx = cache[sid] = re.compile(rf"(?<![\w-]){re.escape(sid.casefold())}(?![\w-])")
        return rx

    def check(self, cfg: CitesConfig, output: Any, record: Record) -> Score:
        sources = _sources(cfg, record.metadata, record.input)
        if not sources:
            return Score.failed(f"no sources to cite ({cfg.from_} is missing on this record)")
        text = output if type(output) is str else _json.as_text(output)
        low, folded = text.casefold(), _fold(text)
        cited = [(sid or quote or "") for sid, quote in sources
                 if (sid and self._id_rx(sid).search(low)) or (quote and _fold(quote) in folded)]
        missing = [sid or repr(quote) for sid, quote in sources if (sid or quote or "") not in cited]
        if cfg.only:
            known = {sid.casefold() for sid, _ in sources if sid}
            stray = [m.group(1) for m in _BRACKETED.finditer(text)
                     if any(part.strip().casefold() not in known for part in m.group(1).split(","))]
            if stray:
                return Score(0.0, False, f"cites {stray[0]!r}, which is not a source of this item")
        n = len(sources)
        ok = bool(cited) if cfg.match == "any" else not missing
        value = 1.0 if ok else round(len(cited) / n, 6)
        return Score(value, ok, None if ok else f"does not cite {', '.join(missing[:5])}")
