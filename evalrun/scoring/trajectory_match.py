"""Matching a pipeline's tool calls against the expected ones (pure functions, no I/O).

A pair (expected call, actual call) matches when the names are equal, the actual call's
arguments parsed (a call with a ``parse_error`` never matches) and its arguments compare with
the expected ones under the argument mode and the per-argument matchers. Over the two lists:

- ``exact``: the same calls in the same order, nothing more;
- ``in_order``: the expected calls appear in this order; other calls may come between;
- ``unordered``: the same calls (as a multiset) in any order;
- ``superset``: the actual calls include every expected call (extra calls allowed);
- ``subset``: every actual call is one of the expected calls (expected ones may be missing);
- ``f1``: 2·matched / (expected + actual), matched by a maximum matching.

Calls are multisets: two expected ``search`` calls need two actual ones. The unordered modes
use a maximum bipartite matching (a greedy pairing gives false negatives once matchers are not
plain equality: an early expected call can take the only actual call a later one could use).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from evalrun import _json
from evalrun.trajectory import ToolCall

MODES = ("exact", "in_order", "unordered", "superset", "subset", "f1")
ARG_MODES = ("superset", "exact", "subset", "ignore")

#: why a value does not match an expected one, or None when it does
ValueCheck = Callable[[Any, Any], "str | None"]


def json_equal(a: Any, b: Any) -> bool:
    """Equal as JSON values: 1 == 1.0, but true is not 1 and "1" is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(v, b[k]) for k, v in a.items())
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def json_contains(expected: Any, actual: Any) -> bool:
    """Every key of an expected object is in the actual one with a containing value; lists and
    scalars compare as :func:`json_equal` (lists element by element)."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(k in actual and json_contains(v, actual[k]) for k, v in expected.items())
    if isinstance(expected, list):
        return isinstance(actual, list) and len(expected) == len(actual) and all(
            json_contains(e, a) for e, a in zip(expected, actual, strict=True))
    return json_equal(expected, actual)


def show(value: Any, limit: int = 60) -> str:
    text = _json.canonical(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def as_number(value: Any) -> float | None:
    """A number, or a string that is exactly one ("25", " 2.5e1 "); never a bool."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            f = float(value.strip())
        except ValueError:
            return None
        return f if math.isfinite(f) else None
    return None


# --- per-argument checks ----------------------------------------------------------------------

def equals() -> ValueCheck:
    return lambda e, a: None if json_equal(e, a) else f"{show(a)} is not {show(e)}"


def numeric(tolerance: float, relative: bool) -> ValueCheck:
    def check(e: Any, a: Any) -> str | None:
        x, y = as_number(e), as_number(a)
        if x is None:
            return f"the expected value {show(e)} is not a number"
        if y is None:
            return f"{show(a)} is not a number"
        allowed = tolerance * abs(x) if relative else tolerance
        return None if abs(x - y) <= allowed + 1e-12 else f"{y:g} is not within {tolerance:g}{' (relative)' if relative else ''} of {x:g}"
    return check


def regex(pattern: str | None, ignore_case: bool) -> ValueCheck:
    flags = re.IGNORECASE if ignore_case else 0
    fixed = re.compile(pattern, flags) if pattern is not None else None

    def check(e: Any, a: Any) -> str | None:
        rx = fixed or re.compile(str(e), flags)  # no pattern configured: the expected value is one
        return None if isinstance(a, str) and rx.search(a) else f"{show(a)} does not match /{rx.pattern}/"
    return check


def contains(ignore_case: bool) -> ValueCheck:
    def check(e: Any, a: Any) -> str | None:
        x, y = _json.as_text(e), _json.as_text(a)
        if ignore_case:
            x, y = x.casefold(), y.casefold()
        return None if x in y else f"{show(a)} does not contain {show(e)}"
    return check


def subset() -> ValueCheck:
    return lambda e, a: None if json_contains(e, a) else f"{show(a)} does not contain {show(e)}"


def anything() -> ValueCheck:
    return lambda e, a: None


def similar(threshold: float, cosine: Callable[[str, str], float | None]) -> ValueCheck:
    """Cosine of the two texts' embeddings >= threshold (``cosine`` looks up precomputed ones)."""
    def check(e: Any, a: Any) -> str | None:
        x, y = _json.as_text(e).strip(), _json.as_text(a).strip()
        if x == y:
            return None
        c = cosine(x, y)
        if c is None:
            return f"no embedding for {show(a)}"
        return None if c >= threshold else f"{show(a)} is not similar to {show(e)} (cosine {c:.2f} < {threshold:g})"
    return check


@dataclass
class CallMatcher:
    """Whether an actual call matches an expected one. ``checks`` maps (tool, argument) to a
    value check; the tool ``*`` applies to every tool."""

    args: str = "superset"
    checks: dict[tuple[str, str], ValueCheck] = field(default_factory=dict)

    def check_for(self, tool: str, arg: str) -> ValueCheck:
        return self.checks.get((tool, arg)) or self.checks.get(("*", arg)) or _EQUALS

    def why_not(self, exp: ToolCall, act: ToolCall) -> str | None:
        """None when ``act`` matches ``exp``, else why not (the first differing argument)."""
        if exp.name != act.name:
            return f"expected {exp.name}, got {act.name}"
        if act.arguments is None:
            return f"{act.name}: {act.parse_error or 'arguments could not be read'}"
        if self.args == "ignore":
            return None
        e_args, a_args = exp.arguments or {}, act.arguments
        if self.args in ("exact", "superset"):
            for k, v in e_args.items():
                if k not in a_args:
                    return f"{act.name}: argument {k!r} is missing"
                problem = self.check_for(exp.name, k)(v, a_args[k])
                if problem:
                    return f"{act.name}: argument {k!r}: {problem}"
        if self.args in ("exact", "subset"):
            for k, v in a_args.items():
                if k not in e_args:
                    return f"{act.name}: unexpected argument {k!r}"
                if self.args == "subset":
                    problem = self.check_for(exp.name, k)(e_args[k], v)
                    if problem:
                        return f"{act.name}: argument {k!r}: {problem}"
        return None

    def matches(self, exp: ToolCall, act: ToolCall) -> bool:
        return self.why_not(exp, act) is None


_EQUALS = equals()


def max_matching(expected: list[ToolCall], actual: list[ToolCall], ok: Callable[[int, int], bool]
                 ) -> dict[int, int]:
    """A maximum matching {expected index: actual index} of the bipartite graph whose edges are
    the pairs ``ok(i, j)`` accepts (augmenting paths, Kuhn's algorithm: lists are short)."""
    edges = [[j for j in range(len(actual)) if ok(i, j)] for i in range(len(expected))]
    owner: dict[int, int] = {}  # actual index -> expected index

    def augment(i: int, seen: set[int]) -> bool:
        for j in edges[i]:
            if j in seen:
                continue
            seen.add(j)
            if j not in owner or augment(owner[j], seen):
                owner[j] = i
                return True
        return False

    for i in range(len(expected)):
        augment(i, set())
    return {i: j for j, i in owner.items()}


def in_order_matching(expected: list[ToolCall], actual: list[ToolCall], ok: Callable[[int, int], bool]
                      ) -> dict[int, int]:
    """The expected calls matched, in order, to the earliest actual calls that fit (leftmost
    greedy finds a subsequence whenever one exists). Stops at the first expected call that
    finds no place."""
    out: dict[int, int] = {}
    j = 0
    for i in range(len(expected)):
        while j < len(actual) and not ok(i, j):
            j += 1
        if j == len(actual):
            break
        out[i] = j
        j += 1
    return out


@dataclass
class MatchResult:
    passed: bool
    value: float  # 1/0, or the F1 in f1 mode
    f1: float
    matched: dict[int, int]  # expected index -> actual index
    missing: list[int]  # expected calls with no match
    extra: list[int]  # actual calls matched to no expected call
    divergence: int | None  # the first step (0-based) where the actual calls leave the expected ones
    reason: str | None


def match(expected: list[ToolCall], actual: list[ToolCall], mode: str, matcher: CallMatcher,
          threshold: float = 1.0) -> MatchResult:
    """Judge ``actual`` against ``expected`` under ``mode`` (see the module docstring)."""
    cache: dict[tuple[int, int], bool] = {}

    def ok(i: int, j: int) -> bool:
        key = (i, j)
        if key not in cache:
            cache[key] = matcher.matches(expected[i], actual[j])
        return cache[key]

    ordered = mode in ("exact", "in_order")
    if mode == "exact":
        matched = {}
        for i in range(min(len(expected), len(actual))):
            if not ok(i, i):
                break
            matched[i] = i
    elif mode == "in_order":
        matched = in_order_matching(expected, actual, ok)
    else:
        matched = max_matching(expected, actual, ok)
    used = set(matched.values())
    missing = [i for i in range(len(expected)) if i not in matched]
    extra = [j for j in range(len(actual)) if j not in used]
    m = len(max_matching(expected, actual, ok)) if ordered else len(matched)
    f1 = 1.0 if not expected and not actual else 2 * m / (len(expected) + len(actual))
    if mode == "exact":
        passed = len(matched) == len(expected) == len(actual)
    elif mode == "in_order":
        passed = not missing
    elif mode == "unordered":
        passed = not missing and not extra
    elif mode == "superset":
        passed = not missing
    elif mode == "subset":
        passed = not extra
    else:
        passed = f1 >= threshold - 1e-12
    divergence = first_divergence(expected, actual, matched, ordered, mode)
    reason = None if passed else explain(expected, actual, missing, extra, divergence, mode, matcher, f1)
    return MatchResult(passed, f1 if mode == "f1" else float(passed), f1, matched, missing, extra, divergence, reason)


def first_divergence(expected: list[ToolCall], actual: list[ToolCall], matched: dict[int, int], ordered: bool,
                     mode: str) -> int | None:
    """The first step (0-based index into the actual calls, or len(actual) when an expected
    call never came) where the actual calls stop following the expected ones; None if never."""
    if ordered and mode == "exact":
        n = len(matched)
        return None if n == len(expected) == len(actual) else n
    if ordered:  # in_order: the step after the last matched call, when an expected call is missing
        if len(matched) == len(expected):
            return None
        return (max(matched.values()) + 1) if matched else 0
    # unordered modes: the first actual call matched to nothing, or the end when one is missing
    used = set(matched.values())
    extra = [j for j in range(len(actual)) if j not in used]
    missing = len(matched) < len(expected)
    if mode == "superset":
        return len(actual) if missing else None
    if mode == "subset":
        return extra[0] if extra else None
    if extra:
        return extra[0]
    return len(actual) if missing else None


def explain(expected: list[ToolCall], actual: list[ToolCall], missing: list[int], extra: list[int],
            divergence: int | None, mode: str, matcher: CallMatcher, f1: float) -> str:
    parts = []
    if mode == "exact" and divergence is not None:
        want = expected[divergence].brief(60) if divergence < len(expected) else "no more calls"
        got = actual[divergence].brief(60) if divergence < len(actual) else "no more calls"
        parts.append(f"first divergence at call {divergence + 1}: expected {want}, got {got}")
        if divergence < len(expected) and divergence < len(actual):
            parts.append(matcher.why_not(expected[divergence], actual[divergence]) or "")
        if len(expected) != len(actual):
            parts.append(f"{len(actual)} calls, expected {len(expected)}")
        return "; ".join(p for p in parts if p)
    if missing and mode != "subset":
        parts.append("missing " + ", ".join(expected[i].brief(60) for i in missing[:3])
                     + (f" and {len(missing) - 3} more" if len(missing) > 3 else ""))
    if extra and mode not in ("superset", "in_order"):
        parts.append("unexpected " + ", ".join(actual[j].brief(60) for j in extra[:3])
                     + (f" and {len(extra) - 3} more" if len(extra) > 3 else ""))
    # the first differing argument: the closest expected call of the same name
    for i in missing:
        same = [a for a in actual if a.name == expected[i].name]
        if same:
            parts.append(matcher.why_not(expected[i], same[0]) or "")
            break
    if divergence is not None:
        got = actual[divergence].brief(60) if divergence < len(actual) else "(no more calls)"
        parts.append(f"first divergence at call {divergence + 1}: {got}")
    if mode == "f1":
        parts.append(f"F1 {f1:.2f}")
    return "; ".join(p for p in parts if p) or f"the calls do not match ({mode})"
