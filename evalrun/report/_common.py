"""What every report shows, computed once: the scorer rows, item texts, the headline."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from evalrun._json import as_text
from evalrun.prompts import describe

if TYPE_CHECKING:

    from evalrun.compare import ItemDiff, ScorerComparison
    from evalrun.records import Record
    from evalrun.verdict import Verdict


def num(x: float | None, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{digits}f}"


def p_text(x: float | None, digits: int = 3) -> str:
    """A p-value for a table: fixed digits, a small one in scientific notation (0.000 would read
    as 0, and a p-value is never 0); at the floor of what a double holds, "<=" that floor."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if x >= 10.0 ** -digits:
        return f"{x:.{digits}f}"
    from evalrun.stats import P_FLOOR

    return f"<={P_FLOOR:.2g}" if x <= P_FLOOR else f"{x:.2g}"


def signed(x: float | None, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:+.{digits}f}"


def pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def interval(lo: float | None, hi: float | None, digits: int = 3, signed: bool = True) -> str:
    """``[lo, hi]``; signed for differences, plain for a mean's own interval."""
    if lo is None or hi is None or math.isnan(lo) or math.isnan(hi):
        return "–"
    sign = "+" if signed else ""
    return f"[{lo:{sign}.{digits}f}, {hi:{sign}.{digits}f}]"


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"… (+{len(text) - limit} chars)"


def output_text(records: list[Record], limit: int | None = None) -> str:
    """An item's output as text: its first trial's, or the error; ``(none)`` when missing."""
    if not records:
        return "(none)"
    r = records[0]
    text = f"ERROR {r.error.get('type', 'Error')}: {r.error.get('message', '')}" if r.error else as_text(r.output)
    if len(records) > 1:
        text += f"  [trial 1 of {len(records)}]"
    return clip(text, limit) if limit else text


def expected_text(it: ItemDiff, limit: int | None = None) -> str:
    exp = it.first.expected_output
    text = "(none)" if exp is None else as_text(exp)
    return clip(text, limit) if limit else text


def input_text(it: ItemDiff, limit: int | None = None) -> str:
    text = as_text(it.first.input)
    return clip(text, limit) if limit else text


def score_brief(records: list[Record], scorer: str) -> str:
    """``0.83 ✓`` for one trial, ``2/3 passed, mean 0.71`` over several; ``–`` when absent."""
    vals, passed, judged, errors = [], 0, 0, 0
    for r in records:
        if r.error:
            judged += 1
            continue
        s = r.scores.get(scorer)
        if s is None:
            continue
        if s.error is not None:
            errors += 1
            continue
        if s.value is not None:
            vals.append(float(s.value))
        if s.passed is not None:
            judged += 1
            passed += bool(s.passed)
    if not vals and not judged:
        return "scorer error" if errors else "–"
    mean = sum(vals) / len(vals) if vals else None
    if len(records) == 1:
        mark = "" if not judged else (" ✓" if passed else " ✗")
        return (num(mean) if mean is not None else "") + mark if (mean is not None or judged) else "–"
    return f"{passed}/{judged} passed" + (f", mean {num(mean)}" if mean is not None else "")


def trajectory_lines(records: list[Record], limit: int = 600) -> list[str]:
    """Expected vs actual tool calls of an item's first trial, per scorer that compared them
    (``tool_calls``), the first divergence marked ``▶``; [] when no scorer did."""
    if not records or records[0].error:
        return []
    out = []
    for name, s in records[0].scores.items():
        extra = s.extra or {}
        actual = extra.get("actual")
        if not isinstance(actual, list) or s.passed is not False:
            continue
        expected = extra.get("expected")
        at = extra.get("divergence")
        steps = [("▶ " if i == at else "") + str(c) for i, c in enumerate(actual)]
        if isinstance(at, int) and at >= len(actual):
            steps.append("▶ (no more calls)")
        if isinstance(expected, list):
            out.append(clip(f"{name} expected: " + (" → ".join(map(str, expected)) or "(no calls)"), limit))
        out.append(clip(f"{name} actual:   " + (" → ".join(steps) or "(no calls)"), limit))
    return out


def reasons(records: list[Record]) -> list[str]:
    out = []
    for r in records:
        if r.error:
            out.append(f"trial {r.trial}: {r.error.get('type', 'Error')}: {r.error.get('message', '')}")
            continue
        for name, s in r.scores.items():
            if s.error:
                out.append(f"trial {r.trial} {name}: scorer error: {s.error}")
            elif s.passed is False and s.reason:
                out.append(f"trial {r.trial} {name}: {s.reason}")
    return out


@dataclass
class ScorerRow:
    name: str
    n: str  # items, with the number of clusters when the eval clusters them
    mean: str
    base_mean: str
    d_mean: str
    ci_mean: str
    pass_rate: str
    base_pass: str
    d_pass: str
    ci_pass: str
    regressions: int | None
    improvements: int | None
    mcnemar: str
    mde: str  # the drop a `>= baseline` gate (default policy) catches with 80% power; "n/a" without a basis
    flaky: int
    ci_own: str  # the candidate's own 95% interval of its mean (no baseline)
    errors: int  # this scorer's errors: target errors and its own (counted as failures unless excluded)


def scorer_rows(verdict: Verdict) -> list[ScorerRow]:
    rows = []
    for name, sc in verdict.comparison.scorers.items():
        rows.append(_scorer_row(name, sc))
    return rows


def _scorer_row(name: str, sc: ScorerComparison) -> ScorerRow:
    c, b = sc.candidate, sc.baseline or {}
    pm, pp = sc.paired("mean"), sc.paired("pass_rate")
    has_b = sc.baseline is not None
    lo, hi = (c.get("ci95") or [None, None])[:2]
    mde_src = pp if pp is not None and pp.diff.n else pm
    n = c["n"] or (c["passed"] + c["failed"])
    return ScorerRow(
        name=f"{name} (informational)" if sc.informational else name,
        n=f"{n} ({c['clusters']} clusters)" if c.get("clusters") is not None else str(n),
        mean=num(c["mean"]), base_mean=num(b.get("mean")) if has_b else "",
        d_mean=signed(pm.diff.diff) if pm is not None and pm.diff.n and b.get("mean") is not None else "",
        ci_mean=interval(pm.diff.lo, pm.diff.hi) if pm is not None and pm.diff.n and b.get("mean") is not None else "",
        pass_rate=pct(c["pass_rate"]), base_pass=pct(b.get("pass_rate")) if has_b else "",
        d_pass=signed(pp.diff.diff) if pp is not None and pp.diff.n and b.get("pass_rate") is not None else "",
        ci_pass=interval(pp.diff.lo, pp.diff.hi) if pp is not None and pp.diff.n and b.get("pass_rate") is not None
        else "",
        regressions=len(sc.regressions) if has_b else None,
        improvements=len(sc.improvements) if has_b else None,
        mcnemar=p_text(sc.mcnemar_p, 3) if sc.mcnemar_p is not None else "",
        mde=(num(mde_src.mde) if not math.isnan(mde_src.mde) else "n/a")
        if mde_src is not None and mde_src.diff.n else "",
        flaky=len(sc.flaky),
        errors=int(c.get("target_errors") or 0) + int(c.get("errors") or 0),
        ci_own=interval(lo, hi, signed=False) if lo is not None else "–",
    )


def headline(verdict: Verdict) -> str:
    cmp = verdict.comparison
    run = cmp.run
    head = f"{run.get('eval')} · run {run.get('run_id')}"
    if run.get("prompt"):
        head += f" · prompt {describe(run['prompt'])}"
    if cmp.baseline_info:
        bi = cmp.baseline_info
        head += f" vs baseline {bi.get('run_id') or bi.get('source')}"
        if bi.get("prompt"):
            head += f" (prompt {describe(bi['prompt'])})"
    return head


def counts_line(verdict: Verdict) -> str:
    cmp = verdict.comparison
    if not cmp.has_baseline:
        flaky = len(cmp.by_status("flaky"))
        return f"{len(cmp.items)} items" + (f", {flaky} flaky" if flaky else "")
    parts = [f"{cmp.paired_items} paired items", f"{len(cmp.by_status('regressed'))} regressed",
             f"{len(cmp.by_status('improved'))} improved"]
    for status in ("flaky", "new", "removed"):
        k = len(cmp.by_status(status))
        if k:
            parts.append(f"{k} {status}")
    lost = len(cmp.baseline_errored)
    if lost:
        parts.append(f"{lost} errored in the baseline (left out of the pairs)")
    return ", ".join(parts)


def gate_mark(verdict_word: str) -> str:
    return {"pass": "✅", "fail": "❌", "skip": "⏭️", "incomplete": "⚠️", "advisory": "⚠️"}.get(verdict_word, "?")


#: how many items an error line names before it says "…"
ERROR_IDS = 10


def budget_line(budget: Mapping[str, Any]) -> str:
    """``error budget: target calls 5% · judge 10%``: what a run may lose to errors before it
    counts as failed (exit 3)."""
    parts = [f"target calls {100 * float(budget.get('target') or 0):g}%"]
    parts += [f"{n} {100 * float(b or 0):g}%" for n, b in (budget.get("scorers") or {}).items()]
    return "error budget: " + " · ".join(parts)


def error_lines(scorers: Mapping[str, Mapping[str, Any]], samples: Mapping[str, Any] | None, exclude: bool,
                failure: str | None = None, budget: Mapping[str, Any] | None = None) -> list[str]:
    """What every report says of errors: how they count (failures in every number, or left out
    when the eval file says ``exclude_errors: true``), per scorer, the first distinct messages
    of the target and of each scorer, the error budgets, and why the run could not complete."""
    out = []
    if failure:
        out.append(f"run failed (exit 3): {failure}")
    target = max((int(s.get("target_errors") or 0) for s in scorers.values()), default=0)
    own = {name: int(s.get("errors") or 0) for name, s in scorers.items() if s.get("errors")}
    if target or own:
        parts = ([f"{target} target errors (every scorer)"] if target else []) + \
            [f"{name} {k} scorer errors" for name, k in own.items()]
        n = max((int(s.get("n") or 0) for s in scorers.values()), default=0)
        out.append(f"errors left out of every number (exclude_errors: true): {' · '.join(parts)}" if exclude else
                   f"n {n} · errors counted as failures: {' · '.join(parts)}")
    for source, entries in [("target", (samples or {}).get("target") or []),
                            *(((f"scorer {name}"), e) for name, e in ((samples or {}).get("scorers") or {}).items())]:
        for e in entries:
            out.append(f"{source} error ×{e.get('count')}: {e.get('message')}")
    if budget and (target or own):
        out.append(budget_line(budget))
    return out


def verdict_error_lines(verdict: Verdict) -> list[str]:
    """:func:`error_lines` of a judged run, and the items left out of the paired comparison
    because they errored in the baseline."""
    cmp = verdict.comparison
    out = error_lines({n: sc.candidate for n, sc in cmp.scorers.items()}, cmp.error_samples, cmp.exclude_errors,
                      cmp.run.get("failure") if verdict.run_status == "failed" else None, cmp.error_budget)
    lost = cmp.baseline_errored if cmp.has_baseline else []
    if lost:
        shown = ", ".join(lost[:ERROR_IDS]) + (" …" if len(lost) > ERROR_IDS else "")
        out.append(f"warning: {len(lost)} items errored in the baseline and are left out of the paired "
                   f"comparison (not counted as the candidate's improvements): {shown}")
    return out


def item_scorer_pairs(it: ItemDiff, scorers: list[str]) -> list[tuple[str, str, str]]:
    """(scorer, baseline brief, candidate brief) for every scorer that scored this item (a
    scoped scorer, or an item check, another item has is left out)."""
    given = {name for r in (*it.candidate, *it.baseline) for name in r.scores}
    if given:
        scorers = [s for s in scorers if s in given]
    return [(s, score_brief(it.baseline, s) if it.baseline else "", score_brief(it.candidate, s)) for s in scorers]


def failing_items(verdict: Verdict) -> list[ItemDiff]:
    """Items the candidate fails (any scorer, every trial) or errors on, that did not regress."""
    return [it for it in verdict.comparison.items
            if it.candidate and it.status != "regressed" and (it.failed or it.errored)]



def metrics_line(m: dict, base: dict | None = None) -> str:
    """records, errors, latency and cost of the run (with the baseline's in parentheses)."""
    def with_base(key: str, text: str, fmt: str = "{:.0f}") -> str:
        if base is None or base.get(key) is None:
            return text
        return f"{text} (baseline {fmt.format(base[key])})"

    parts = [f"records {m['records']}",
             with_base("errors", f"errors {m['errors']} ({pct(m['error_rate'])})", "{}")]
    if m.get("latency_p95_ms") is not None:
        parts.append(with_base("latency_p95_ms", f"latency p50 {m['latency_p50_ms']:.0f} ms, "
                                                 f"p95 {m['latency_p95_ms']:.0f} ms"))
    if m.get("cost_usd") is not None:
        parts.append(with_base("cost_usd", f"cost ${m['cost_usd']:.4f}", "${:.4f}"))
    return " · ".join(parts)


@dataclass
class SliceCells:
    """One slice row as the text every report shows."""

    slice: str
    scorer: str
    n: str
    mean: str  # the candidate's mean and its interval
    baseline: str
    diff: str  # paired difference and its interval
    regressed: str
    improved: str
    flag: str  # "significant drop", "significant gain", "tiny (n<10)", combined


def slice_cells(row: Any, has_baseline: bool) -> SliceCells:
    from evalrun.slices import TINY

    d = row.diff
    flags = []
    if row.change:
        flags.append(f"significant {row.change}")
    if row.tiny:
        flags.append(f"tiny (n<{TINY})")
    return SliceCells(
        slice=row.label, scorer=row.scorer, n=str(row.n),
        mean=f"{num(row.mean)} {interval(row.lo, row.hi, signed=False)}",
        baseline=num(d.baseline_mean) if has_baseline and d is not None else "",
        diff=f"{signed(d.diff)} {interval(d.lo, d.hi)}" if has_baseline and d is not None else "",
        regressed="" if row.regressions is None else str(row.regressions),
        improved="" if row.improvements is None else str(row.improvements),
        flag=", ".join(flags))



# --- the reading order every report shares (issue 24): verdict and reason -> failing gates ->
# regressed items with the change in their output -> slices that moved -> everything else

def verdict_reason(verdict: Verdict) -> str:
    """Why the run passed or failed, in one line: the gates, then the items that moved."""
    cmp = verdict.comparison
    failed, gates = len(verdict.failed_gates), len(verdict.gates)
    if verdict.run_status != "finished":
        parts = [f"run {verdict.run_status}"]
    elif failed:
        bad = sum(1 for g in verdict.failed_gates if g.verdict == "fail")
        parts = ([f"{bad} of {gates} gate{'s' if gates != 1 else ''} failed"] if bad else []) + \
            ([f"{failed - bad} could not be judged (incomplete)"] if failed - bad else [])
    elif gates:
        skipped = sum(1 for g in verdict.gates if g.verdict == "skip")
        parts = [f"all {gates} gate{'s' if gates != 1 else ''} passed" if not skipped else
                 f"{gates - skipped} of {gates} gates passed, {skipped} skipped"]
    else:
        parts = ["no gates"]
    if cmp.has_baseline:
        reg, imp = len(cmp.by_status("regressed")), len(cmp.by_status("improved"))
        parts.append(f"{reg} of {cmp.paired_items} paired items regressed, {imp} improved")
    else:
        failing = sum(1 for it in cmp.items if it.candidate and (it.failed or it.errored))
        parts.append(f"{failing} of {len(cmp.items)} items failing, no baseline")
    return " · ".join(parts)


def verdict_label(verdict: Verdict) -> str:
    """``PASS`` / ``FAIL`` / the run's status when it did not finish."""
    return {"passed": "PASS", "failed": "FAIL"}.get(verdict.word, verdict.word.upper())


#: tokens of a word diff: words, runs of spaces, and every other character on its own
_TOKEN = re.compile(r"\w+|\s+|[^\w\s]", re.UNICODE)
#: outputs longer than this are shown whole, not diffed (a runaway generation costs no time)
DIFF_LIMIT = 5_000


def word_diff(old: str, new: str) -> list[tuple[str, str]]:
    """``old`` -> ``new`` as ``(op, text)`` runs: ``=`` shared, ``-`` only in ``old``, ``+``
    only in ``new``; word-level (a changed number is one run, not a character soup). Texts
    above :data:`DIFF_LIMIT` characters come back as one removal and one addition."""
    if old == new:
        return [("=", old)] if old else []
    if len(old) > DIFF_LIMIT or len(new) > DIFF_LIMIT:
        return [op for op in (("-", old), ("+", new)) if op[1]]
    a, b = _TOKEN.findall(old), _TOKEN.findall(new)
    # the shared start and end are taken off first: most changed outputs differ in a few words,
    # and the matcher then sees only those (20,000 items diffed in a fraction of a second)
    pre = 0
    while pre < len(a) and pre < len(b) and a[pre] == b[pre]:
        pre += 1
    post = 0
    while post < len(a) - pre and post < len(b) - pre and a[-1 - post] == b[-1 - post]:
        post += 1
    head, tail = "".join(a[:pre]), "".join(a[len(a) - post:])
    a, b = a[pre:len(a) - post], b[pre:len(b) - post]
    if not a or not b or len(a) + len(b) <= 2:
        return [op for op in (("=", head), ("-", "".join(a)), ("+", "".join(b)), ("=", tail)) if op[1]]
    ops = difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes()
    out: list[tuple[str, str]] = []
    k = 0
    while k < len(ops):
        tag, i1, i2, j1, j2 = ops[k]
        if tag == "equal":
            out.append(("=", "".join(a[i1:i2])))
            k += 1
            continue
        # changes separated only by spaces read as one change: "[-is free-]{+costs 10 euros+}",
        # not a word-by-word interleaving
        m = k
        while (m + 2 < len(ops) and ops[m + 1][0] == "equal" and ops[m + 2][0] != "equal"
               and "".join(a[ops[m + 1][1]:ops[m + 1][2]]).isspace()):
            m += 2
        i2, j2 = ops[m][2], ops[m][4]
        if i2 > i1:
            out.append(("-", "".join(a[i1:i2])))
        if j2 > j1:
            out.append(("+", "".join(b[j1:j2])))
        k = m + 1
    return ([("=", head)] if head else []) + out + ([("=", tail)] if tail else [])


def diff_outputs(it: ItemDiff) -> list[tuple[str, str]] | None:
    """The word diff of an item's first-trial outputs, baseline -> new (None without both)."""
    if not it.baseline or not it.candidate:
        return None
    return word_diff(output_text(it.baseline[:1]), output_text(it.candidate[:1]))


_SPACES = re.compile(r"\s+")


def clip_diff(runs: list[tuple[str, str]], limit: int, context: int = 24) -> list[tuple[str, str]]:
    """``runs`` shortened for one line of about ``limit`` characters: long shared stretches keep
    ``context`` characters beside each change (the cut marked ``…``), changes stay whole
    where they fit; line breaks become spaces."""
    runs = [(op, _SPACES.sub(" ", text)) for op, text in runs]
    out: list[tuple[str, str]] = []
    for k, (op, text) in enumerate(runs):
        if op == "=" and len(text) > 2 * context + 1:
            first, last = k == 0, k == len(runs) - 1
            if first:
                text = "…" + text[-context:]
            elif last:
                text = text[:context] + "…"
            else:
                text = text[:context] + "…" + text[-context:]
        out.append((op, text))
    total, clipped = 0, []
    for op, text in out:
        room = limit - total
        if room <= 1:
            clipped.append(("=", "…"))
            break
        if len(text) > room:
            clipped.append((op, text[:room - 1]))
            clipped.append(("=", "…"))
            break
        clipped.append((op, text))
        total += len(text)
    return clipped


def moved_slices(rows: list[Any]) -> list[Any]:
    """The slice rows that moved (already ranked by evidence of harm): something got worse or
    better. Without a baseline nothing can move: every row, worst first."""
    return [r for r in rows if r.regressions is None or r.harm < 2 or r.change or r.improvements
            or (r.diff is not None and r.diff.n and r.diff.diff != 0)]


def short_label(row: Any) -> str:
    """A slice's label without the ``metadata.`` prefix (compact tables)."""
    label = str(row.label)
    return label[len("metadata."):] if label.startswith("metadata.") else label
