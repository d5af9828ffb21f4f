"""Calibration help for thresholds (``evalrun show RUN --suggest-thresholds``).

For each scorer of a run whose values are not just 0/1 (a similarity, a judge on a scale, a
``similar`` or ``rubric`` item check), it describes the distribution of the item values (each
item's trials averaged: the item is the unit, as everywhere else) and, when items carry a
human label (``metadata.human_label`` by default: right/wrong, true/false, pass/fail, 1/0...),
the threshold that best separates the items labelled right from those labelled wrong.

"Best" is the highest balanced accuracy, (true-pass rate + true-fail rate) / 2, so a set with
few wrong answers is not served by a threshold that passes everything; it is the same point as
the maximum of Youden's J on the ROC curve. Among thresholds that tie, the middle of the widest
gap between two values is taken, the choice least sensitive to the next run's noise. A
threshold reads ``passed = value >= threshold``, as the scorers do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from evalrun.records import Record
from evalrun.selectors import find, parse_path

#: label texts read as "this answer is right" / "wrong"
RIGHT = frozenset({"right", "correct", "pass", "passed", "good", "yes", "true", "1"})
WRONG = frozenset({"wrong", "incorrect", "fail", "failed", "bad", "no", "false", "0"})
DEFAULT_LABELS = "metadata.human_label"


def read_label(value: Any) -> bool | None:
    """True (right), False (wrong), or None when ``value`` is not a label."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        v = value.strip().casefold()
        if v in RIGHT:
            return True
        if v in WRONG:
            return False
    return None


@dataclass
class Cut:
    threshold: float
    balanced_accuracy: float
    accuracy: float
    false_passes: int  # labelled wrong, value >= threshold
    false_fails: int  # labelled right, value < threshold


@dataclass
class Suggestion:
    scorer: str
    n: int
    quantiles: dict[str, float]  # min, p10, p25, median, p75, p90, max
    histogram: list[tuple[float, float, int]]  # (from, to, items)
    current_threshold: float | None  # the smallest value the run passed, when it is consistent
    labelled: int = 0
    right: int = 0
    best: Cut | None = None
    at_current: Cut | None = None
    note: str = ""
    unlabelled_values: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"scorer": self.scorer, "n": self.n, "quantiles": self.quantiles,
                             "histogram": [list(h) for h in self.histogram],
                             "current_threshold": self.current_threshold, "labelled": self.labelled,
                             "right": self.right}
        for k in ("best", "at_current"):
            cut = getattr(self, k)
            d[k] = None if cut is None else {"threshold": cut.threshold,
                                             "balanced_accuracy": round(cut.balanced_accuracy, 6),
                                             "accuracy": round(cut.accuracy, 6), "false_passes": cut.false_passes,
                                             "false_fails": cut.false_fails}
        d["note"] = self.note
        return d


def _quantile(sorted_values: list[float], q: float) -> float:
    # linear interpolation between order statistics (numpy's default, "type 7")
    pos = (len(sorted_values) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def cut_at(threshold: float, values: list[float], labels: list[bool]) -> Cut:
    right = sum(labels)
    wrong = len(labels) - right
    tp = sum(1 for v, y in zip(values, labels, strict=True) if y and v >= threshold)
    tn = sum(1 for v, y in zip(values, labels, strict=True) if not y and v < threshold)
    rates = [tp / right] if right else []
    rates += [tn / wrong] if wrong else []
    return Cut(threshold, sum(rates) / len(rates), (tp + tn) / len(labels), wrong - tn, right - tp)


def best_cut(values: list[float], labels: list[bool]) -> Cut:
    """The threshold with the highest balanced accuracy (ties: the middle of the widest gap)."""
    distinct = sorted(set(values))
    # a threshold between two neighbouring values, or below / above them all
    candidates = [(distinct[0] - 1.0, distinct[0] - 1.0, distinct[0])]
    candidates += [((a + b) / 2, a, b) for a, b in zip(distinct, distinct[1:], strict=False)]
    candidates.append((distinct[-1] + 1.0, distinct[-1], distinct[-1] + 1.0))
    best: tuple[float, float, Cut] | None = None
    for t, a, b in candidates:
        c = cut_at(t, values, labels)
        key = (round(c.balanced_accuracy, 12), b - a)
        if best is None or key > best[:2]:
            best = (key[0], key[1], c)
    assert best is not None
    return best[2]


def suggest(records: list[Record], labels_key: str = DEFAULT_LABELS, bins: int = 10) -> list[Suggestion]:
    """One Suggestion per scorer whose item values are not all 0 or 1."""
    path = parse_path(labels_key)
    if not path or path[0] not in ("metadata", "input", "expected_output"):
        raise ValueError(f"--labels {labels_key}: use metadata.KEY (where each item's human label is)")
    values: dict[str, dict[str, list[float]]] = {}
    verdicts: dict[str, list[tuple[float, bool]]] = {}
    item_labels: dict[str, Any] = {}
    for r in records:
        if r.error:
            continue
        source = {"metadata": r.metadata, "input": r.input, "expected_output": r.expected_output}[str(path[0])]
        found = find(source, path[1:]) if len(path) > 1 else [source]
        if found:
            item_labels[r.item_id] = found[0]
        for name, s in r.scores.items():
            if s.error is None and s.value is not None:
                values.setdefault(name, {}).setdefault(r.item_id, []).append(float(s.value))
                if s.passed is not None:
                    verdicts.setdefault(name, []).append((float(s.value), s.passed))
    out = []
    for name, per_item in values.items():
        flat = [v for vs in per_item.values() for v in vs]
        if all(v in (0.0, 1.0) for v in flat):
            continue
        ids = sorted(per_item)
        item_values = [math.fsum(per_item[i]) / len(per_item[i]) for i in ids]
        sv = sorted(item_values)
        qs = {"min": sv[0], "p10": _quantile(sv, 0.1), "p25": _quantile(sv, 0.25), "median": _quantile(sv, 0.5),
              "p75": _quantile(sv, 0.75), "p90": _quantile(sv, 0.9), "max": sv[-1]}
        lo, hi = sv[0], sv[-1]
        width = (hi - lo) / bins if hi > lo else 1.0
        counts = [0] * bins
        for v in sv:
            counts[min(bins - 1, int((v - lo) / width))] += 1
        hist = [(round(lo + k * width, 6), round(lo + (k + 1) * width, 6), c) for k, c in enumerate(counts)]
        # the run's own threshold, read back from its verdicts: the lowest passing value, when
        # every value at or above it passed and every one below failed
        current = None
        vs = verdicts.get(name) or []
        passing = [v for v, p in vs if p]
        if passing:
            t = min(passing)
            if all(p == (v >= t) for v, p in vs):
                current = t
        sug = Suggestion(name, len(ids), {k: round(v, 6) for k, v in qs.items()}, hist, current)
        pairs = [(v, read_label(item_labels[i])) for i, v in zip(ids, item_values, strict=True) if i in item_labels]
        sug.unlabelled_values = sorted({str(item_labels[i]) for i in ids
                                        if i in item_labels and read_label(item_labels[i]) is None})[:5]
        known = [(v, y) for v, y in pairs if y is not None]
        sug.labelled = len(known)
        sug.right = sum(1 for _, y in known if y)
        if known:
            xs, ys = [v for v, _ in known], [y for _, y in known]
            sug.best = best_cut(xs, ys)
            if current is not None:
                sug.at_current = cut_at(current, xs, ys)
            if sug.right in (0, len(known)):
                sug.note = ("every labelled item is " + ("right" if sug.right else "wrong")
                            + ": label some of the other kind to place a threshold between them")
        else:
            sug.note = (f"no item has a label at {labels_key}; label some items right/wrong to have "
                        "a threshold chosen from data")
        out.append(sug)
    return out


def render(suggestions: list[Suggestion], labels_key: str) -> str:
    """Plain text for the terminal."""
    if not suggestions:
        return "no scorer of this run has values between 0 and 1 (only pass/fail): no threshold to choose\n"
    lines = []
    for s in suggestions:
        q = s.quantiles
        lines.append(f"{s.scorer}  (n={s.n} items)")
        lines.append("  values: " + "  ".join(f"{k} {v:.3f}" for k, v in q.items()))
        peak = max(c for _, _, c in s.histogram) or 1
        for a, b, c in s.histogram:
            lines.append(f"  [{a:7.3f}, {b:7.3f})  {'#' * max(1 if c else 0, round(30 * c / peak)):30} {c}")
        if s.current_threshold is not None:
            lines.append(f"  this run passes values >= {s.current_threshold:.3f}")
        if s.best is not None:
            best = s.best
            lines.append(f"  labelled items ({labels_key}): {s.labelled} ({s.right} right, {s.labelled - s.right} wrong)")
            lines.append(f"  suggested threshold: {best.threshold:.3f}  (balanced accuracy "
                         f"{best.balanced_accuracy:.1%}, accuracy {best.accuracy:.1%}; {best.false_passes} wrong "
                         f"items would pass, {best.false_fails} right items would fail)")
            if s.at_current is not None:
                cur = s.at_current
                lines.append(f"  at the run's threshold {cur.threshold:.3f}: balanced accuracy "
                             f"{cur.balanced_accuracy:.1%}, {cur.false_passes} false passes, {cur.false_fails} false fails")
        if s.unlabelled_values:
            lines.append(f"  labels not understood (use right/wrong, true/false, pass/fail, 1/0): "
                         f"{', '.join(repr(v) for v in s.unlabelled_values)}")
        if s.note:
            lines.append(f"  note: {s.note}")
        lines.append("")
    return "\n".join(lines)
