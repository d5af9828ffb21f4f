"""Deterministic scorers that compare the output with the expected output(s).

All of them accept several expected outputs (any match passes) and share one text
normaliser, so ``normalize: [case, whitespace]`` means the same thing everywhere.
"""

from __future__ import annotations

import math
import re
import string
import unicodedata
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field

from evalrun import _json
from evalrun.records import Record, Score
from evalrun.scoring.base import Scorer, ScorerConfig

Normalization = Literal["case", "whitespace", "punctuation", "unicode", "articles"]

_PUNCT = str.maketrans("", "", string.punctuation)
_WS = re.compile(r"\s+")
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.IGNORECASE)


def normalize(text: str, steps: Sequence[str]) -> str:
    """Apply the normalisations in a fixed order (unicode first, whitespace last)."""
    if "unicode" in steps:
        text = unicodedata.normalize("NFKD", text)
        text = "".join(c for c in text if not unicodedata.combining(c))
    if "case" in steps:
        text = text.casefold()
    if "punctuation" in steps:
        text = text.translate(_PUNCT)
    if "articles" in steps:
        text = _ARTICLES.sub(" ", text)
    if "whitespace" in steps:
        text = _WS.sub(" ", text).strip()
    return text


class TextConfig(ScorerConfig):
    normalize: list[Normalization] = Field(default_factory=list)
    #: strip leading/trailing whitespace from both sides before comparing
    strip: bool = True


NO_EXPECTED = Score(None, None, "no expected_output for this item")


class _TextScorer(Scorer):
    """Shared logic: text of the output vs. text of each expected output; best match wins."""

    Config = TextConfig
    config: TextConfig
    batch_size = 4096

    def prep(self, value: Any) -> str:
        text = _json.as_text(value)
        if self.config.strip:
            text = text.strip()
        return normalize(text, self.config.normalize) if self.config.normalize else text

    def match(self, output: str, expected: str) -> bool:  # pragma: no cover - overridden
        raise NotImplementedError

    def score_one(self, record: Record) -> Score:
        expected = record.expected_list
        if not expected:
            return NO_EXPECTED
        out = self.prep(record.output)
        for e in expected:
            if self.match(out, self.prep(e)):
                return Score(1.0, True)
        reason = f"output {out[:80]!r} does not match any of {len(expected)} expected"
        flag = next((e for e in expected if isinstance(e, bool)), None)
        if flag is not None and isinstance(record.output, str):
            # `expected_output: NO` is YAML's boolean false: say so where the failure is read
            reason += (f"; the expected {str(flag).lower()} is a boolean, not text (YAML reads an unquoted "
                       "yes/no/on/off as one): quote it, like 'NO', to compare text")
        return Score(0.0, False, reason)


class ExactMatch(_TextScorer):
    """Output equals an expected output (after the configured normalisation)."""

    type = "exact_match"
    langfuse_data_type = "BOOLEAN"

    def match(self, output: str, expected: str) -> bool:
        return output == expected

    def score_one(self, record: Record) -> Score:
        # the hot path of large runs: a plain string compare without building reasons first
        expected = record.expected_output
        out = record.output
        if (type(out) is str and type(expected) is str and not self.config.normalize
                and (out.strip() if self.config.strip else out) == (expected.strip() if self.config.strip else expected)):
            return Score(1.0, True)
        return super().score_one(record)


class Contains(_TextScorer):
    """An expected output appears inside the output."""

    type = "contains"
    langfuse_data_type = "BOOLEAN"

    def match(self, output: str, expected: str) -> bool:
        return expected in output


class RegexFields(BaseModel):
    """The fields of a regex scorer and of a regex item check."""

    pattern: str
    ignore_case: bool = False
    #: search: anywhere in the output; fullmatch: the whole output
    mode: Literal["search", "fullmatch"] = "search"
    #: seconds one match may take; a pattern that backtracks without end on some output
    #: becomes that record's scorer error instead of hanging the run
    timeout: float = Field(1.0, gt=0, le=60)


class RegexConfig(ScorerConfig, RegexFields):
    pass


def compile_regex(cfg: RegexFields) -> Any:
    """The compiled pattern (``regex`` module); ValueError saying why it is bad."""
    import regex

    try:
        return regex.compile(cfg.pattern, regex.IGNORECASE if cfg.ignore_case else 0)
    except (regex.error, re.error, ValueError, OverflowError, RecursionError) as e:
        raise ValueError(f"bad regex {cfg.pattern!r}: {e}") from None


def regex_score(rx: Any, cfg: RegexFields, output: Any) -> Score:
    """Whether ``output`` matches, as a Score; a match that runs past ``timeout`` is an error."""
    text = output if type(output) is str else _json.as_text(output)
    t = cfg.timeout
    try:
        m = rx.fullmatch(text, timeout=t) if cfg.mode == "fullmatch" else rx.search(text, timeout=t)
    except TimeoutError:
        return Score.failed(f"regex took longer than {t:g}s on this output (catastrophic backtracking?)")
    return Score(1.0, True) if m else Score(0.0, False, f"no match for /{cfg.pattern}/")


class Regex(Scorer):
    """The output matches a regular expression (no expected output needed). Matching uses
    the ``regex`` module, whose matches take a time limit (``re`` cannot be stopped)."""

    type = "regex"
    langfuse_data_type = "BOOLEAN"
    Config = RegexConfig
    config: RegexConfig
    batch_size = 4096

    async def setup(self) -> None:
        try:
            self.rx = compile_regex(self.config)
        except ValueError as e:
            raise self.ctx.error(str(e), "pattern", "__value__") from None

    def score_one(self, record: Record) -> Score:
        return regex_score(self.rx, self.config, record.output)


class NumericConfig(ScorerConfig):
    tolerance: float = Field(0.0, ge=0)
    #: tolerance as a fraction of the expected value instead of an absolute difference
    relative: bool = False


_NUMBER = re.compile(r"[-+]?(?:\d[\d,]*\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def parse_number(value: Any) -> float | None:
    """A number from a number, or the first number written in a text ("about 1,234.5 km")."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        m = _NUMBER.search(value)
        if m:
            try:
                return float(m.group(0).replace(",", ""))
            except ValueError:
                return None
    return None


class Numeric(Scorer):
    """The first number in the output is within ``tolerance`` of an expected number."""

    type = "numeric"
    langfuse_data_type = "BOOLEAN"
    Config = NumericConfig
    config: NumericConfig
    batch_size = 4096

    def score_one(self, record: Record) -> Score:
        expected = [n for n in (parse_number(e) for e in record.expected_list) if n is not None]
        if not expected:
            return NO_EXPECTED if not record.expected_list else Score(None, None, "expected_output is not a number")
        got = parse_number(record.output)
        if got is None or math.isnan(got):
            return Score(0.0, False, "no number in output")
        for e in expected:
            allowed = self.config.tolerance * abs(e) if self.config.relative else self.config.tolerance
            if abs(got - e) <= allowed + 1e-12:
                return Score(1.0, True)
        return Score(0.0, False, f"{got:g} is not within {self.config.tolerance:g} of {expected[0]:g}")


class JsonMatchConfig(ScorerConfig):
    #: exact: equal JSON values; subset: every key/value of the expected is in the output
    mode: Literal["exact", "subset"] = "exact"


def json_subset(expected: Any, actual: Any) -> bool:
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(k in actual and json_subset(v, actual[k]) for k, v in expected.items())
    if isinstance(expected, list):
        return isinstance(actual, list) and len(expected) == len(actual) and all(
            json_subset(e, a) for e, a in zip(expected, actual, strict=True))
    return expected == actual


class JsonMatch(Scorer):
    """The output, parsed as JSON when it is text, equals (or contains) the expected JSON."""

    type = "json_match"
    langfuse_data_type = "BOOLEAN"
    Config = JsonMatchConfig
    config: JsonMatchConfig
    batch_size = 4096

    def score_one(self, record: Record) -> Score:
        if record.expected_output is None:
            return NO_EXPECTED
        out = record.output
        if isinstance(out, str):
            try:
                out = _json.loads(out.strip().removeprefix("```json").removesuffix("```").strip() or "null")
            except ValueError:
                return Score(0.0, False, "output is not valid JSON")
        expected = record.expected_output
        # a list expected with subset mode is one JSON value, not several alternatives
        ok = json_subset(expected, out) if self.config.mode == "subset" else expected == out
        return Score(1.0, True) if ok else Score(0.0, False, f"JSON {'subset' if self.config.mode == 'subset' else 'value'} differs")
