"""Gates: the eval file's pass/fail conditions, parsed by a small grammar (never ``eval``'d),
and judged on a :class:`~evalrun.compare.Comparison`.

Grammar of a gate string::

    gate    := metric OP rhs
    metric  := SCORER "." STAT [slice] | RUN_METRIC
    slice   := "[" ("tag" | "metadata." KEY) "=" VALUE "]"
    STAT    := mean | pass_rate | pass@K | pass^K
    OP      := >= | <= | > | <
    rhs     := NUMBER ["%"] | "baseline" [("+" | "-") NUMBER ["%"]]

A gate may also be the mapping ``no_regressions: {tag: T, scorer: S, max: N}`` (all optional):
no more than N (default 0) items (tagged T) may go from passed to failed (under S, or under
any scorer).

Numbers with ``%`` are percentage points for rates (``errors <= 2%``, ``x.mean >= baseline -
2%``) and a share of the baseline for cost and latency (``cost_usd <= baseline + 10%``).

A relative gate on a scorer stat is judged on the *paired* difference (see :mod:`evalrun.stats`)
under ``gate_policy``:

- ``significant`` (default): fails when the candidate is significantly worse than the baseline
  (the 95% interval lies entirely on the worse side of zero) *and* the point estimate is beyond
  the margin. Noise alone fails at most 2.5% of unchanged runs; a real drop well past the
  margin is caught.
- ``point``: fails when the point estimate is beyond the margin (noise alone can fail it).
- ``strict``: passes only when the whole interval is within the margin (non-inferiority shown).

A slice selector (``exact_match.mean[tag=math] >= baseline - 0.05``) judges the same
statistic on the items of that slice only (see :mod:`evalrun.slices`). An unknown key or value
is a UsageError at the gate's line: checked against a local dataset before a run
(:func:`check_slices`), and against the run's items when the gate is judged.

The relative slice gates of one verdict are one family: under ``significant`` a slice gate
fails only when its Holm-adjusted p-value (:meth:`evalrun.stats.PairedDifference.worse_p`) is
below 0.05, so ten or twenty slice gates together fail an unchanged run no more often than one
gate does; under ``point`` each says how often noise alone fails one of them.

Each relative gate reports the drop it catches with 80% power on this set under its policy.

Cannot judge means cannot pass. A relative gate that has a baseline but no paired items, no
interval (one item, one cluster: too few units) under ``significant`` or ``strict``, or that lost
more than :data:`MATERIAL_LOSS` of its pairs to items that errored in the baseline, is
``incomplete``; so is a relative run-metric gate whose baseline lacks the metric. An incomplete
gate keeps the run from passing (exit 4, :attr:`ExitCode.INCOMPLETE
<evalrun.errors.ExitCode.INCOMPLETE>`, when no gate failed outright), unless the eval file says
so for that gate: ``{gate: "x.mean >= baseline", incomplete: pass}``. Its point estimate is
shown all the same. Without any baseline a relative gate is ``skip`` (the run says so).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from evalrun import stats
from evalrun.compare import ITEM_STATS, Comparison, parse_k_stat
from evalrun.errors import UsageError
from evalrun.runs import RUN_METRICS, rounded_p

#: run-level metrics (no scorer) a gate can name
RATE_METRICS = ("errors", "error_rate")
OPS = (">=", "<=", ">", "<")
POLICIES = stats.POLICIES

_NUMBER = r"[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?|\.[0-9]+(?:[eE][+-]?[0-9]+)?"
_TOKEN = re.compile(rf"\s*(?:(?P<op>>=|<=|=>|=<|>|<|==|!=|=)|(?P<num>{_NUMBER})(?P<pct>%)?|(?P<sign>[+-])"
                    rf"|(?P<word>[A-Za-z_][^\s<>=!+%-]*(?:-[A-Za-z_][^\s<>=!+%-]*)*))")

#: errors: a function (message, gate index, field) -> UsageError at that gate in the eval file
Locate = Callable[..., UsageError]

#: a relative gate that loses more than this share of its pairs to items that errored in the
#: baseline cannot be judged (incomplete); a smaller loss is noted on the gate
MATERIAL_LOSS = 0.05
#: what an incomplete gate does to the verdict: ``fail`` (default) keeps the run from passing
INCOMPLETE_RULES = ("fail", "pass")


@dataclass(frozen=True)
class Gate:
    text: str
    index: int
    kind: str  # "threshold" | "no_regressions"
    metric: str = ""  # "exact_match.mean", "errors", ...
    scorer: str | None = None
    stat: str | None = None
    op: str = ">="
    number: float = 0.0  # the threshold, or the margin added to the baseline
    relative: bool = False
    percent: bool = False
    tag: str | None = None  # no_regressions only
    max_regressions: int = 0  # no_regressions only: how many regressed items it tolerates
    slice_key: str | None = None  # "tags" | "metadata.KEY": judged on that slice's items only
    slice_value: str | None = None
    #: ``pass``: the eval file lets this gate pass when it cannot be judged (``incomplete: pass``)
    incomplete: str = "fail"
    where: tuple[str | None, int | None, int | None] | None = field(default=None, compare=False)
    #: written as {gate: ..., advisory: true}: reported, a failure never fails the run
    advisory: bool = False

    @property
    def selector(self) -> str:
        if self.slice_key is None:
            return ""
        return f"[{'tag' if self.slice_key == 'tags' else self.slice_key}={self.slice_value}]"

    def error(self, message: str) -> UsageError:
        """A UsageError at this gate's line in the eval file."""
        file, line, col = self.where or (None, None, None)
        return UsageError(message, file, line, col)


@dataclass
class GateResult:
    gate: Gate
    verdict: str  # pass | fail | skip | incomplete | advisory (a failing gate on a judge short of its calibration)
    value: float | None = None
    baseline: float | None = None
    diff: float | None = None
    ci: tuple[float, float] | None = None
    mde: float | None = None  # the drop this gate, under its policy, catches with 80% power here
    n: int | None = None
    clusters: int | None = None
    note: str = ""
    items: list[str] = field(default_factory=list)  # no_regressions: the offending items
    # the default policy's test, for the slice-gate family (Holm): its p-value, whether the
    # point estimate misses the margin, and the Holm-adjusted p once corrected
    test_p: float | None = None
    misses: bool = False
    p_adjusted: float | None = None
    noise: float | None = None  # P(an unchanged run fails this gate), where computed

    @property
    def failed(self) -> bool:
        """Whether this gate keeps the run from passing: it failed, or it could not be judged
        and the eval file does not let it pass then."""
        return self.verdict == "fail" or (self.verdict == "incomplete" and self.gate.incomplete != "pass")

    def to_dict(self) -> dict[str, Any]:
        return {"gate": self.gate.text, "verdict": self.verdict, "blocks": self.failed, "value": _r(self.value),
                "baseline": _r(self.baseline), "diff": _r(self.diff),
                "ci95": None if self.ci is None else [_r(self.ci[0]), _r(self.ci[1])],
                "detectable_drop": _r(self.mde), "n": self.n, "clusters": self.clusters, "note": self.note,
                "items": self.items} | ({"p_value": rounded_p(self.test_p), "p_holm": rounded_p(self.p_adjusted)}
                                        if self.p_adjusted is not None else {})

    def numbers(self) -> str:
        """value, baseline, difference, interval and detectable drop as one line of text."""
        g = self.gate
        if g.kind == "no_regressions":
            allowed = f" (allowed: {g.max_regressions})" if g.max_regressions else ""
            return f"{len(self.items)} regressed{allowed}" + (
                f": {', '.join(self.items[:10])}" if self.items else "") + (
                f" (+{len(self.items) - 10} more)" if len(self.items) > 10 else "")
        parts = [f"value {fmt(self.value, g)}"]
        if g.relative:
            parts.append(f"baseline {fmt(self.baseline, g)}")
            if self.diff is not None:
                parts.append(f"diff {fmt(self.diff, g, signed=True)}")
            if self.ci is not None:
                parts.append(f"95% CI [{fmt(self.ci[0], g, signed=True)}, {fmt(self.ci[1], g, signed=True)}]")
            if self.mde is not None:
                parts.append(f"detectable drop {fmt(self.mde, g)} (80% power)")
            if self.n is not None:
                parts.append(f"n={self.n}" + (f" ({self.clusters} clusters)" if self.clusters is not None else ""))
        return ", ".join(parts)


def _r(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), 6)


def fmt(x: float | None, gate: Gate | None = None, signed: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    s = f"{x:+.4g}" if signed else f"{x:.4g}"
    if gate is not None and gate.metric == "errors" and not gate.percent and not signed and x == int(x):
        return str(int(x))
    return s


# --- parsing ------------------------------------------------------------------------------

def _tokens(text: str, err: Callable[[str], UsageError]) -> list[tuple[str, str, bool]]:
    out: list[tuple[str, str, bool]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise err(f"gate '{text}': unexpected '{text[pos:].strip()[:10]}'")
        if m.group("op"):
            out.append(("op", m.group("op"), False))
        elif m.group("num"):
            out.append(("num", m.group("num"), bool(m.group("pct"))))
        elif m.group("sign"):
            out.append(("sign", m.group("sign"), False))
        else:
            out.append(("word", m.group("word"), False))
        pos = m.end()
    return out


def _suggest(word: str, choices: list[str]) -> str:
    from evalrun.errors import suggest

    return suggest(word, choices)


_SELECTOR = re.compile(r"^(\s*[^\s\[\]<>=!]+)\[([^\]]*)\]")


def _selector(text: str, err: Callable[[str], UsageError]) -> tuple[str, str | None, str | None]:
    """``x.mean[tag=math] >= 1`` -> (``x.mean >= 1``, ``tags``, ``math``); no selector -> (text, None, None)."""
    m = _SELECTOR.match(text)
    if m is None:
        if "[" in text or "]" in text:
            raise err(f"gate '{text}': a slice selector goes right after the statistic, as in "
                      "'exact_match.mean[tag=math] >= 0.8'")
        return text, None, None
    from evalrun.selectors import key_error, normalize_key

    key, sep, value = m.group(2).partition("=")
    if not sep or not key.strip() or not value.strip():
        raise err(f"gate '{text}': a slice selector is [KEY=VALUE], e.g. [tag=math] or [metadata.language=de]")
    norm = normalize_key(key)
    if norm is None:
        raise err(f"gate '{text}': {key_error(key.strip())}")
    return m.group(1) + text[m.end():], norm, value.strip()


def _slice_of(gate: Gate, cmp: Comparison) -> Any:
    """The gate's scorer restricted to its slice; an unknown key or value is the user's error."""
    from evalrun.slices import check_selector, members, restrict

    assert gate.scorer is not None and gate.slice_key is not None and gate.slice_value is not None
    why = check_selector(cmp, gate.slice_key, gate.slice_value)
    if why is not None:
        raise gate.error(f"gate '{gate.text}': {why}")
    return restrict(cmp, gate.scorer, members(cmp, gate.slice_key)[gate.slice_value])


def check_slices(gates: list[Gate], metadatas: list[dict[str, Any]]) -> None:
    """Before a run: every slice selector must name a key and value some item has (UsageError
    at the gate's line otherwise), so a typo costs no target calls."""
    from evalrun.slices import check_in

    for g in gates:
        if g.slice_key is not None and g.slice_value is not None:
            why = check_in(metadatas, g.slice_key, g.slice_value)
            if why is not None:
                raise g.error(f"gate '{g.text}': {why}")


#: scorer names a gate may use before the dataset says which exist: the item assertions
#: (``assert.NAME``), checked against the dataset by :func:`check_assertions`
ASSERT_PREFIX = "assert."


def parse_gate(text: str, index: int, scorers: list[str], repeat: int | None,
               err: Callable[[str], UsageError], informational: frozenset[str] = frozenset(),
               assertions: bool = False) -> Gate:
    known = scorers
    if assertions:
        head = re.match(r"\s*([^\s<>=!\[]*)", text)
        name = (head.group(1) if head else "").rpartition(".")[0]
        if name.startswith(ASSERT_PREFIX) and name not in scorers:
            known = [*scorers, name]  # checked against the items' checks when they are known
    bare, slice_key, slice_value = _selector(text, err)
    gate = _parse_bare(text, bare, index, known, repeat, err)
    if gate.scorer is not None and gate.scorer in informational:
        raise err(f"gate '{text}': '{gate.scorer}' is informational (reported, never blocking); "
                  f"remove informational: true from it to gate on it, or write {{gate: '{text}', advisory: true}} "
                  "to see the gate without it blocking")
    if slice_key is None and not (gate.scorer or "").startswith(ASSERT_PREFIX):
        return gate
    if slice_key is not None and gate.scorer is None:
        raise err(f"gate '{text}': a slice selector needs a scorer statistic (e.g. exact_match.mean[tag=math]); "
                  f"{gate.metric} is run-wide")
    loc = err("")  # (checked again once the items are known: the error points here)
    return replace(gate, slice_key=slice_key, slice_value=slice_value, where=(loc.file, loc.line, loc.col))


def _parse_bare(text: str, bare: str, index: int, scorers: list[str], repeat: int | None,
                err: Callable[[str], UsageError]) -> Gate:
    """A gate without a slice selector (``bare``); messages quote the gate as written (``text``)."""
    toks = _tokens(bare, err)
    if not toks:
        raise err("empty gate; write e.g. 'exact_match.mean >= 0.85'")
    if toks[0][0] != "word":
        raise err(f"gate '{text}' must start with a metric (e.g. exact_match.mean, errors, cost_usd)")
    metric = toks[0][1]
    if len(toks) < 2 or toks[1][0] != "op":
        raise err(f"gate '{text}': expected a comparison (>=, <=, >, <) after '{metric}'")
    op = toks[1][1]
    if op not in OPS:
        hint = {"=>": " (did you mean '>='?)", "=<": " (did you mean '<='?)"}.get(op, "")
        raise err(f"gate '{text}': '{op}' is not a comparison gates use (>=, <=, >, <){hint}")
    rest = toks[2:]
    relative = False
    number, percent = 0.0, False
    if rest and rest[0] == ("word", "baseline", False):
        relative = True
        rest = rest[1:]
        if rest:
            if rest[0][0] != "sign" or len(rest) < 2 or rest[1][0] != "num":
                raise err(f"gate '{text}': after 'baseline' write '+ NUMBER' or '- NUMBER'")
            number = float(rest[1][1]) * (-1 if rest[0][1] == "-" else 1)
            percent = rest[1][2]
            rest = rest[2:]
    elif rest and rest[0][0] == "num":
        number, percent = float(rest[0][1]), rest[0][2]
        rest = rest[1:]
    elif rest and rest[0][0] == "sign" and len(rest) > 1 and rest[1][0] == "num":
        number, percent = -float(rest[1][1]) if rest[0][1] == "-" else float(rest[1][1]), rest[1][2]
        rest = rest[2:]
    else:
        got = f"'{rest[0][1]}'" if rest else "nothing"
        hint = _suggest(rest[0][1], ["baseline"]) if rest and rest[0][0] == "word" else ""
        raise err(f"gate '{text}': expected a number or 'baseline' after '{op}', got {got}{hint}")
    if rest:
        raise err(f"gate '{text}': unexpected '{rest[0][1]}' at the end")
    if not math.isfinite(number):
        raise err(f"gate '{text}': the bound must be a finite number")

    scorer = stat = None
    if metric in RUN_METRICS:
        pass
    elif "." in metric:
        scorer, _, stat = metric.rpartition(".")
        if scorer not in scorers:
            known = scorers + list(RUN_METRICS)
            raise err(f"gate '{text}': no scorer named '{scorer}'{_suggest(scorer, known)}"
                      + (f"; scorers: {', '.join(scorers)}" if scorers else "; the eval has no scorers"))
        if stat not in ITEM_STATS:
            try:
                _kind, k = parse_k_stat(stat)
            except ValueError:
                raise err(f"gate '{text}': unknown statistic '{stat}'"
                          f"{_suggest(stat, [*ITEM_STATS, 'pass@1', 'pass^1'])}; "
                          "use mean, pass_rate, pass@K or pass^K") from None
            if repeat is not None and k > repeat:
                raise err(f"gate '{text}': {stat} needs repeat >= {k} (this run repeats {repeat}x)")
    else:
        choices = list(RUN_METRICS) + [f"{s}.mean" for s in scorers] + [f"{s}.pass_rate" for s in scorers]
        if metric in scorers:
            raise err(f"gate '{text}': '{metric}' is a scorer; name a statistic: {metric}.mean or {metric}.pass_rate")
        raise err(f"gate '{text}': unknown metric '{metric}'{_suggest(metric, choices)}")
    if percent:
        number /= 100.0  # for cost / latency a share of the baseline, applied when judged
    elif stat is None and metric == "error_rate" and number > 1:
        raise err(f"gate '{text}': error_rate is a fraction; write {number:g}% or {number / 100:g}")
    return Gate(text=text, index=index, kind="threshold", metric=metric, scorer=scorer, stat=stat, op=op,
                number=number, relative=relative, percent=percent)


def check_assertions(gates: list[Gate], names: list[str], informational: set[str]) -> None:
    """Before a run: every ``assert.NAME`` a gate names must be a check some item carries, and
    not an informational one (UsageError at the gate's line)."""
    for g in gates:
        if g.scorer is None or not g.scorer.startswith(ASSERT_PREFIX):
            continue
        if g.scorer in informational and not g.advisory:
            raise g.error(f"gate '{g.text}': '{g.scorer}' is informational (reported, never blocking); "
                          "remove informational: true from its checks to gate on it, or write "
                          f"{{gate: '{g.text}', advisory: true}} to see the gate without it blocking")
        if g.scorer not in names:
            raise g.error(f"gate '{g.text}': no item has a check named '{g.scorer[len(ASSERT_PREFIX):]}'"
                          f"{_suggest(g.scorer, names)}"
                          + (f"; item checks: {', '.join(names)}" if names else "; no item has assert: checks"))


def _no_regressions(body: Any, text: str, index: int, scorers: list[str], err: Callable[[str], UsageError]) -> Gate:
    if body is None or body is True or body == {}:
        return Gate(text=text, index=index, kind="no_regressions")
    if not isinstance(body, dict):
        raise err("no_regressions takes a mapping like {tag: critical} (or nothing, for every item)")
    unknown = [k for k in body if k not in ("tag", "scorer", "max")]
    if unknown:
        raise err(f"no_regressions: unknown key '{unknown[0]}'{_suggest(str(unknown[0]), ['tag', 'scorer', 'max'])}; "
                  "allowed: tag, scorer, max")
    most = body.get("max", 0)
    if isinstance(most, bool) or not isinstance(most, int) or most < 0:
        raise err(f"no_regressions: max must be a whole number >= 0 (got {most!r})")
    scorer = body.get("scorer")
    if scorer is not None and scorer not in scorers:
        raise err(f"no_regressions: no scorer named '{scorer}'{_suggest(str(scorer), scorers)}")
    tag = body.get("tag")
    if tag is not None and not isinstance(tag, str | int):
        raise err("no_regressions: tag must be a single tag name")
    return Gate(text=text, index=index, kind="no_regressions", scorer=scorer,
                tag=None if tag is None else str(tag), max_regressions=most)


def _string_gate(entry: str, index: int, scorers: list[str], repeat: int | None, err: Callable[[str], UsageError],
                 informational: frozenset[str] = frozenset(), assertions: bool = False) -> Gate:
    s = entry.strip()
    if s == "no_regressions":
        return Gate(text=s, index=index, kind="no_regressions")
    return parse_gate(s, index, scorers, repeat, err, informational, assertions)


def parse_gates(raw: list[Any] | None, *, scorers: list[str], repeat: int | None = None,
                locate: Locate | None = None, informational: frozenset[str] = frozenset(),
                assertions: bool = False) -> list[Gate]:
    """Parse the eval file's ``gates:`` list. ``locate(message, index)`` builds the UsageError
    for gate ``index`` (pointing at its line in the eval file). A gate may not name an
    ``informational`` scorer; with ``assertions`` it may name any ``assert.NAME`` (checked
    against the items by :func:`check_assertions`)."""
    gates: list[Gate] = []
    for i, entry in enumerate(raw or []):
        def err(msg: str, _i: int = i) -> UsageError:
            return locate(msg, _i) if locate is not None else UsageError(msg)

        if isinstance(entry, str):
            gates.append(_string_gate(entry, i, scorers, repeat, err, informational, assertions))
        elif isinstance(entry, dict) and len(entry) == 1 and "no_regressions" in entry:
            body = entry["no_regressions"]
            text = "no_regressions" + ("" if not body or body is True else
                                       ": {" + ", ".join(f"{k}: {v}" for k, v in body.items()) + "}"
                                       if isinstance(body, dict) else f": {body}")
            gates.append(_no_regressions(body, text, i, scorers, err))
        elif isinstance(entry, dict) and "gate" in entry:
            gates.append(_advisory_gate(entry, i, scorers, repeat, err, informational, assertions))
        elif isinstance(entry, dict) and len(entry) == 1:
            key = next(iter(entry))
            raise err(f"unknown gate '{key}'{_suggest(str(key), ['no_regressions', 'gate'])}; a gate is a string "
                      "like 'exact_match.mean >= 0.85', no_regressions: {tag: T} or {gate: ..., incomplete: pass}")
        else:
            raise err("a gate is a string like 'exact_match.mean >= 0.85', the mapping no_regressions: {tag: T} "
                      "or {gate: ..., incomplete: pass}")
    return gates


def _advisory_gate(entry: dict[str, Any], index: int, scorers: list[str], repeat: int | None,
                   err: Callable[[str], UsageError], informational: frozenset[str], assertions: bool) -> Gate:
    """``{gate: TEXT, advisory: true}``: the gate judged and reported, but never failing the run
    (the way a gate may name an informational scorer: by saying so). ``incomplete: pass`` lets
    the gate pass when it cannot be judged (default ``fail``: cannot judge means cannot pass)."""
    keys = ["gate", "advisory", "incomplete"]
    unknown = [k for k in entry if k not in keys]
    if unknown:
        raise err(f"gate mapping: unknown key '{unknown[0]}'{_suggest(str(unknown[0]), keys)}; "
                  "write {gate: 'x.mean >= 0.8', advisory: true} or {gate: ..., incomplete: pass}")
    text, advisory = entry.get("gate"), entry.get("advisory", False)
    if not isinstance(text, str) or not text.strip() or not isinstance(advisory, bool):
        raise err("a gate mapping is {gate: 'x.mean >= 0.8', advisory: true}")
    rule = entry.get("incomplete", "fail")
    if rule not in INCOMPLETE_RULES:
        raise err(f"gate '{text.strip()}': incomplete must be fail or pass (got {rule!r})")
    g = _string_gate(text, index, scorers, repeat, err, frozenset() if advisory else informational, assertions)
    if advisory and g.where is None:
        loc = err("")
        g = replace(g, where=(loc.file, loc.line, loc.col))
    return replace(g, advisory=advisory, incomplete=rule)


def check_policy(policy: str) -> str:
    if policy not in POLICIES:
        raise UsageError(f"gate_policy must be significant, point or strict (got {policy!r})")
    return policy


# --- judging ------------------------------------------------------------------------------

def _holds(value: float, op: str, bound: float) -> bool:
    eps = 1e-12  # 0.1 + 0.2 >= 0.3 should hold
    return {">=": value >= bound - eps, "<=": value <= bound + eps, ">": value > bound, "<": value < bound}[op]


def _run_metric(metrics: dict[str, Any] | None, gate: Gate) -> float | None:
    if metrics is None:
        return None
    if gate.metric == "errors":
        return metrics.get("error_rate") if gate.percent else metrics.get("errors")
    if gate.metric == "error_rate":
        return metrics.get("error_rate")
    return metrics.get(gate.metric)


def evaluate_gate(gate: Gate, cmp: Comparison, policy: str = "significant") -> GateResult:
    """Judge one gate; relative scorer gates under ``policy`` (significant | point | strict)."""
    if gate.kind == "no_regressions":
        return _judge_no_regressions(gate, cmp)
    if gate.scorer is None:
        return _judge_run_metric(gate, cmp)
    sc = cmp.scorers.get(gate.scorer)
    if sc is not None and gate.slice_key is not None:
        sc = _slice_of(gate, cmp)
    assert gate.stat is not None
    value = sc.value(gate.stat) if sc is not None else None
    if not gate.relative:
        if value is None:
            return GateResult(gate, "fail", note=f"no {gate.metric} in this run (did the scorer give "
                                                 f"{'verdicts' if gate.stat != 'mean' else 'values'}?)")
        ok = _holds(value, gate.op, gate.number)
        return GateResult(gate, "pass" if ok else "fail", value=value)
    if not cmp.has_baseline:
        return GateResult(gate, "skip", value=value, note="no baseline to compare with")
    paired = sc.paired(gate.stat) if sc is not None else None
    lost = sc.unpaired if sc is not None else []
    if paired is None or paired.diff.n == 0:
        why = "no paired items: the baseline has no values for this scorer on these items"
        if lost:
            why = f"no paired items: {len(lost)} items errored in the baseline and were left out"
        elif gate.stat not in ITEM_STATS:
            why += f" (pass@k and pass^k need at least {gate.stat[5:]} trials per item on both sides)"
        return GateResult(gate, "incomplete", value=value, note=f"{why}; cannot be judged")
    d = paired.diff
    res = GateResult(gate, "pass", value=d.candidate_mean, baseline=d.baseline_mean, diff=d.diff,
                     ci=(d.lo, d.hi) if d.has_interval else None, n=d.n, clusters=d.clusters)
    res = _judge_paired(res, gate, paired, policy)
    if lost:
        share = len(lost) / (len(lost) + d.n)
        said = (f"{len(lost)} of {len(lost) + d.n} items ({100 * share:.0f}%) errored in the baseline and are left "
                f"out of this comparison ({', '.join(lost[:5])}{', …' if len(lost) > 5 else ''})")
        if share > MATERIAL_LOSS and res.verdict == "pass":
            res.verdict = "incomplete"
            said += (f": more than {100 * MATERIAL_LOSS:g}% of the pairs, so this gate cannot be judged; "
                     "re-run or re-accept the baseline")
        res.note = f"{said}; {res.note}" if res.note else said
    return res


def _judge_paired(res: GateResult, gate: Gate, paired: Any, policy: str) -> GateResult:
    """A relative gate on a paired difference under ``policy``."""
    d = paired.diff
    # judge every gate as "diff >= margin": a "<=" gate (lower is better) is its mirror image
    up = gate.op in (">=", ">")
    margin = gate.number if up else -gate.number
    diff = d.diff if up else -d.diff
    lo, hi = (d.lo, d.hi) if up else (-d.hi, -d.lo)
    point_ok = diff >= margin - 1e-12 if gate.op in (">=", "<=") else diff > margin
    if policy == "point":
        res.verdict = "pass" if point_ok else "fail"
        return _power_note(res, paired, margin, policy)
    if not d.has_interval or d.n < 2:
        # cannot judge means cannot pass, whichever side of the margin the point estimate falls
        res.verdict = "incomplete"
        why = d.note or "no interval" if d.n >= 2 else "one paired item: too few to judge"
        res.note = (f"{why}: cannot be judged under the {policy} policy "
                    f"(the point estimate {'meets' if point_ok else 'misses'} the margin)")
        return res
    if d.se == 0.0 and d.diff != 0.0:
        # every item moved by exactly the same amount: nothing to test, the data decide
        res.verdict = "pass" if point_ok else "fail"
        res.note = f"{d.note}; judged on the point estimate"
        return res
    fails = stats.gate_fails(diff, lo, hi, margin, policy, d.p_value)
    res.verdict = "fail" if fails else "pass"
    if policy == "significant":
        res.test_p = d.worse_p(max(0.0, margin), lower_is_better=not up)
        res.misses = diff < margin - 1e-12
    if policy == "strict":
        res.note = ("the interval does not show the change is within the margin" if fails
                    else "the interval shows the change is within the margin")
    elif fails:
        res.note = SIGNIFICANT
    elif not point_ok:
        res.note = "the point estimate misses the margin, but the drop is not significant"
    if d.note:
        res.note = f"{res.note}; {d.note}" if res.note else d.note
    return _power_note(res, paired, margin, policy)


SIGNIFICANT = "significant: the 95% interval is entirely on the worse side, and the drop is beyond the margin"


def _power_note(res: GateResult, paired: Any, margin: float, policy: str) -> GateResult:
    """The drop this gate catches with 80% power on this set, and a warning when the set is too
    small for the margin (or noise alone fails the gate often)."""
    d = paired.diff
    if res.gate.stat is not None and res.gate.stat.startswith("pass@") and res.gate.stat != "pass@1":
        note = (f"{res.gate.stat} barely moves when items get worse (an item counts while any one of its "
                "trials passes), so this gate catches only large drops; gate pass_rate or pass^k to catch regressions")
        res.note = f"{res.note}; {note}" if res.note else note
    drop = stats.detectable_drop(d, margin, policy)
    res.mde = None if math.isnan(drop) else drop
    warn = ""
    if math.isnan(drop):
        if d.n >= 2:
            warn = "detectable drop n/a (no spread or too few items to estimate it)"
    else:
        noise = res.noise = stats.gate_fail_probability(0.0, d, margin, policy)
        if policy != "significant" and (noise >= 0.8 or drop < 1e-4):
            # an unchanged run already fails this gate (almost) as often as the power asked for:
            # "catches a drop of 0" would read as perfect power; there is no detectable drop
            res.mde = None
            warn = ("no detectable drop: even an unchanged run fails this gate "
                    + (f"{100 * noise:.0f}% of the time" if noise >= 0.5 else "here")
                    + "; the set is too small for this margin")
        elif policy != "significant" and noise > 0.2:
            warn = (f"an unchanged run fails this gate {100 * noise:.0f}% of the time: the set is too small "
                    "for this margin" if policy == "strict" else
                    f"noise alone fails this gate {100 * noise:.0f}% of the time")
        elif policy == "significant" and margin < 0 and drop > 2 * abs(margin):
            warn = (f"this set catches drops of about {drop:.3g} (80% power), over twice the margin: "
                    "it is too small for this margin")
        elif policy == "significant" and margin >= 0 and res.verdict == "pass" and drop > 0.05:
            warn = f"this set catches drops of about {drop:.3g} (80% power); smaller drops can pass unnoticed"
    if warn:
        res.note = f"{res.note}; {warn}" if res.note else warn
    return res


def _judge_run_metric(gate: Gate, cmp: Comparison) -> GateResult:
    value = _run_metric(cmp.metrics, gate)
    if value is None:
        return GateResult(gate, "fail" if not gate.relative else "skip" if not cmp.has_baseline else "incomplete",
                          note=f"this run has no {gate.metric} (no record reported it)")
    if not gate.relative:
        return GateResult(gate, "pass" if _holds(value, gate.op, gate.number) else "fail", value=value)
    base = _run_metric(cmp.baseline_metrics, gate)
    if base is None:
        if not cmp.has_baseline:
            return GateResult(gate, "skip", value=value, note="no baseline to compare with")
        return GateResult(gate, "incomplete", value=value,
                          note=f"the baseline has no {gate.metric} to compare with; cannot be judged")
    margin = gate.number
    if gate.percent and gate.metric not in RATE_METRICS:
        margin = base * gate.number  # cost / latency: a share of the baseline
    ok = _holds(value - base, gate.op, margin)
    return GateResult(gate, "pass" if ok else "fail", value=value, baseline=base, diff=value - base,
                      note="point comparison (no paired interval for this metric)")


def _judge_no_regressions(gate: Gate, cmp: Comparison) -> GateResult:
    if not cmp.has_baseline:
        return GateResult(gate, "skip", note="no baseline to compare with")
    bad = [it.item_id for it in cmp.regressed
           if (gate.scorer is None or gate.scorer in it.regressed) and (gate.tag is None or gate.tag in it.tags)]
    res = GateResult(gate, "fail" if len(bad) > gate.max_regressions else "pass", value=float(len(bad)), items=bad)
    # items that errored in the baseline cannot regress: the gate did not see them
    scorers = [cmp.scorers[gate.scorer]] if gate.scorer in cmp.scorers else list(cmp.scorers.values())
    lost = sorted({i for sc in scorers for i in sc.unpaired})
    if gate.tag is not None:
        tagged = {it.item_id for it in cmp.items if gate.tag in it.tags}
        lost = [i for i in lost if i in tagged]
    if lost:
        seen = sum(1 for it in cmp.items if it.candidate and it.baseline
                   and (gate.tag is None or gate.tag in it.tags))
        share = len(lost) / seen if seen else 1.0
        res.note = (f"{len(lost)} of {seen} items ({100 * share:.0f}%) errored in the baseline and could not be "
                    f"checked ({', '.join(lost[:5])}{', …' if len(lost) > 5 else ''})")
        if share > MATERIAL_LOSS and res.verdict == "pass":
            res.verdict = "incomplete"
            res.note += f": more than {100 * MATERIAL_LOSS:g}%, so this gate cannot be judged"
    return res


def evaluate(gates: list[Gate], cmp: Comparison, policy: str = "significant") -> list[GateResult]:
    """Judge every gate; the slice gates are one family (see :func:`correct_slice_family`)."""
    results = correct_slice_family([evaluate_gate(g, cmp, policy) for g in gates], policy)
    for r in results:
        if r.gate.advisory:  # the eval file says so: seen, never blocking
            if r.verdict == "fail":
                r.verdict = "advisory"
                r.note = "; ".join(x for x in (r.note, "would fail, but the gate is advisory") if x)
            else:
                r.note = "; ".join(x for x in (r.note, "advisory gate") if x)
    return results


#: the family-wise level of the slice gates: noise alone fails any of them at most this often
#: (two-sided; on the worse side at most half of it)
FAMILY_LEVEL = 0.05


def correct_slice_family(results: list[GateResult], policy: str) -> list[GateResult]:
    """The slice gates of one verdict are one family. Under ``significant``, Holm's step-down
    correction: a slice gate fails only when its Holm-adjusted p-value is below 0.05 (and its
    point estimate misses the margin), so noise alone fails one of ten or twenty slice gates at
    most as often as it fails one gate. Under ``point`` there is no test to correct: each slice
    gate says how often noise alone fails at least one of them. ``strict`` needs no correction
    (every gate must show its own margin, which a family only makes harder)."""
    family = [r for r in results if r.gate.slice_key is not None and r.gate.relative]
    if len(family) < 2:
        return results
    if policy == "point":
        noise = [r.noise for r in family if r.noise is not None]
        if noise:
            any_fail = 1.0 - math.prod(1.0 - x for x in noise)
            warn = (f"{len(family)} point slice gates: noise alone fails at least one of them about "
                    f"{100 * any_fail:.0f}% of the time (if the slices were independent); the default "
                    "policy corrects for the family")
            for r in family:
                r.note = f"{r.note}; {warn}" if r.note else warn
        return results
    tested = [r for r in family if r.test_p is not None and not math.isnan(r.test_p)]
    if len(tested) < 2:
        return results
    adjusted = stats.holm([r.test_p for r in tested if r.test_p is not None])
    for r, adj in zip(tested, adjusted, strict=True):
        r.p_adjusted = adj
        if r.verdict == "fail" and not (r.misses and adj < FAMILY_LEVEL):
            r.verdict = "pass"
            rest = r.note.replace(SIGNIFICANT, "").strip("; ")
            r.note = (f"significant alone (p {r.test_p:.3g}), but not after Holm's correction for the "
                      f"{len(tested)} slice gates of this verdict (adjusted p {adj:.3g})"
                      + (f"; {rest}" if rest else ""))
        elif r.verdict == "fail":
            r.note = f"{r.note}; still significant after Holm's correction for {len(tested)} slice gates " \
                     f"(adjusted p {adj:.3g})"
    return results


def make_advisory(results: list[GateResult], advisory: dict[str, str]) -> None:
    """Gates on a scorer whose gates may not bind (a judge short of its required calibration,
    by scorer name, with the reason) are reported, never failing: a failing one becomes
    ``advisory``."""
    for r in results:
        why = advisory.get(r.gate.scorer or "")
        if why is None:
            continue
        if r.verdict in ("fail", "incomplete"):  # (a gate that cannot bind cannot block unjudged either)
            word = "would fail" if r.verdict == "fail" else "cannot be judged"
            r.verdict = "advisory"
            r.note = "; ".join(x for x in (r.note, f"{word}, but advisory: {why}") if x)
        else:
            r.note = "; ".join(x for x in (r.note, f"advisory: {why}") if x)
