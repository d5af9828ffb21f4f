"""Text checks: contains, not_contains, regex, equals, numeric. They share the match scorers'
normaliser (``normalize: [case, whitespace]`` means the same everywhere) and number reader."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, model_validator

from evalrun import _json
from evalrun.records import Item, Record, Score
from evalrun.scoring.assertions.registry import Check, CheckConfig, FinalScore
from evalrun.scoring.match import (
    Normalization,
    RegexFields,
    compile_regex,
    json_subset,
    normalize,
    parse_number,
    regex_score,
)


def ok() -> Score:
    """A pass (a new Score each time: the scorer marks scores, so none may be shared)."""
    return Score(1.0, True)


def _text(value: Any, cfg: TextCheckConfig) -> str:
    text = value if type(value) is str else _json.as_text(value)
    if cfg.ignore_case and "case" not in cfg.normalize:
        text = text.casefold()
    return normalize(text, cfg.normalize) if cfg.normalize else text


def _quote(text: str, n: int = 60) -> str:
    return repr(text if len(text) <= n else text[:n] + "…")


class TextCheckConfig(CheckConfig):
    ignore_case: bool = False
    normalize: list[Normalization] = Field(default_factory=list)


class ContainsConfig(TextCheckConfig):
    #: one phrase, or several
    value: str | list[str]
    #: with several phrases: all must appear (default), or any one
    match: Literal["all", "any"] = "all"

    @model_validator(mode="after")
    def _some(self) -> ContainsConfig:
        phrases = [self.value] if isinstance(self.value, str) else self.value
        if not phrases or any(p == "" for p in phrases):
            raise ValueError("value needs at least one non-empty phrase")
        return self

    @property
    def phrases(self) -> list[str]:
        return [self.value] if isinstance(self.value, str) else list(self.value)


class _PhraseCheck(Check):
    Config = ContainsConfig

    def _phrases(self, cfg: ContainsConfig) -> list[tuple[str, str]]:
        """(phrase, phrase as compared) of a check, worked out once per check config in a run."""
        cache: dict[int, tuple[ContainsConfig, list[tuple[str, str]]]] = self.__dict__.setdefault("_folded", {})
        got = cache.get(id(cfg))
        if got is None or got[0] is not cfg:  # (the config is kept with the entry: its id stays its own)
            got = cache[id(cfg)] = (cfg, [(p, _text(p, cfg)) for p in cfg.phrases])
        return got[1]


class Contains(_PhraseCheck):
    """The output contains the phrase (all of the phrases, or ``match: any`` one of them)."""

    type = "contains"
    Config = ContainsConfig

    def check(self, cfg: ContainsConfig, output: Any, record: Record) -> Score:
        text = _text(output, cfg)
        missing = [p for p, folded in self._phrases(cfg) if folded not in text]
        if cfg.match == "any":
            hit = len(missing) < len(cfg.phrases)
            return ok() if hit else Score(0.0, False, f"none of {len(cfg.phrases)} phrases appears: "
                                                     + ", ".join(_quote(p, 30) for p in cfg.phrases[:5]))
        if not missing:
            return ok()
        value = 1.0 - len(missing) / len(cfg.phrases)
        return Score(round(value, 6), False, "missing " + ", ".join(_quote(p, 30) for p in missing[:5]))


class NotContains(_PhraseCheck):
    """None of the phrases appears in the output."""

    type = "not_contains"
    Config = ContainsConfig

    def check(self, cfg: ContainsConfig, output: Any, record: Record) -> Score:
        text = _text(output, cfg)
        found = [p for p, folded in self._phrases(cfg) if folded in text]
        if not found:
            return ok()
        return Score(0.0, False, "contains forbidden " + ", ".join(_quote(p, 30) for p in found[:5]))


class RegexConfig(CheckConfig, RegexFields):
    pass


class Regex(Check):
    """The output matches a regular expression (the ``regex`` module: matches take a time limit)."""

    type = "regex"
    Config = RegexConfig

    def _rx(self, cfg: RegexConfig) -> Any:
        cache: dict[tuple[str, bool], Any] = self.__dict__.setdefault("_compiled", {})
        key = (cfg.pattern, cfg.ignore_case)
        if key not in cache:
            cache[key] = compile_regex(cfg)
        return cache[key]

    def validate(self, cfg: RegexConfig, item: Item) -> None:  # type: ignore[override]  # (its own Config)
        self._rx(cfg)

    def check(self, cfg: RegexConfig, output: Any, record: Record) -> Score:
        return regex_score(self._rx(cfg), cfg, output)


class EqualsConfig(TextCheckConfig):
    #: text: compared as text (after normalisation); anything else: as JSON (the output parsed)
    value: Any
    #: JSON only: subset passes when every key/value of ``value`` is in the output
    mode: Literal["exact", "subset"] = "exact"
    strip: bool = True


def parse_json_output(output: Any) -> tuple[Any, str | None]:
    """The output as JSON data (a text output parsed, code fences removed); (None, why) if not JSON."""
    if not isinstance(output, str):
        return output, None
    text = output.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        text = text.removesuffix("```").strip()
    try:
        return _json.loads(text or "null"), None
    except ValueError:
        return None, "output is not valid JSON"


class Equals(Check):
    """The output equals the value: text after normalisation, or JSON data (``mode: subset``)."""

    type = "equals"
    Config = EqualsConfig

    def check(self, cfg: EqualsConfig, output: Any, record: Record) -> Score:
        if isinstance(cfg.value, str):
            got, want = _text(output, cfg), _text(cfg.value, cfg)
            if cfg.strip:
                got, want = got.strip(), want.strip()
            return ok() if got == want else Score(0.0, False, f"{_quote(got)} is not {_quote(want)}")
        data, why = parse_json_output(output)
        if why:  # not JSON at all: a failure, inverted or not
            return FinalScore(0.0, False, why)
        same = json_subset(cfg.value, data) if cfg.mode == "subset" else data == cfg.value
        return ok() if same else Score(0.0, False, f"JSON {'subset' if cfg.mode == 'subset' else 'value'} differs")


class NumericConfig(CheckConfig):
    value: float | None = Field(None, allow_inf_nan=False)
    tolerance: float = Field(0.0, ge=0, allow_inf_nan=False)
    #: tolerance as a fraction of the value
    relative: bool = False
    min: float | None = Field(None, allow_inf_nan=False)
    max: float | None = Field(None, allow_inf_nan=False)

    @model_validator(mode="after")
    def _bounds(self) -> NumericConfig:
        if self.value is None and self.min is None and self.max is None:
            raise ValueError("numeric needs value (with tolerance) or min / max")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min:g} is above max {self.max:g}")
        return self


class Numeric(Check):
    """The first number in the output is within ``tolerance`` of ``value`` (and within min/max)."""

    type = "numeric"
    Config = NumericConfig

    def check(self, cfg: NumericConfig, output: Any, record: Record) -> Score:
        got = parse_number(output)
        if got is None or math.isnan(got):
            return Score(0.0, False, "no number in output")
        if cfg.value is not None:
            allowed = cfg.tolerance * abs(cfg.value) if cfg.relative else cfg.tolerance
            if abs(got - cfg.value) > allowed + 1e-12:
                return Score(0.0, False, f"{got:g} is not within {allowed:g} of {cfg.value:g}")
        if cfg.min is not None and got < cfg.min:
            return Score(0.0, False, f"{got:g} is below {cfg.min:g}")
        if cfg.max is not None and got > cfg.max:
            return Score(0.0, False, f"{got:g} is above {cfg.max:g}")
        return ok()
