"""Agreement between two raters (a judge and a human), and among several (a judge panel).

Pure Python, like :mod:`evalrun.stats`, and checked against statsmodels in the tests:

- :func:`cohen_kappa`: Cohen's kappa, unweighted or with linear / quadratic weights, with the
  large-sample standard error of Fleiss, Cohen & Everitt (1969) and a Wald interval;
- :func:`binary_agreement`: the confusion matrix of a pass/fail judge against human labels,
  TPR, TNR and precision with Wilson intervals, raw agreement and the base rate beside kappa
  (kappa alone misleads when one class dominates);
- :func:`fleiss_kappa`: agreement of k raters per item (a panel, or one judge asked k times);
- :func:`spearman`: rank correlation for numeric rubrics.

Undefined values (one category only: the chance agreement is 1) are ``None`` with a reason,
never 1.0 or NaN.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from evalrun.stats import Z975, wilson_interval

Weights = Literal["linear", "quadratic"] | None


@dataclass(frozen=True)
class Kappa:
    value: float | None
    se: float | None
    ci: tuple[float, float] | None
    n: int
    observed: float | None  # raw agreement (weighted agreement for a weighted kappa)
    expected: float | None  # chance agreement from the two raters' marginals
    weights: Weights = None
    reason: str = ""  # why value is None

    def to_dict(self) -> dict[str, Any]:
        return {"kappa": _r(self.value), "se": _r(self.se),
                "ci95": None if self.ci is None else [_r(self.ci[0]), _r(self.ci[1])],
                "n": self.n, "observed_agreement": _r(self.observed), "chance_agreement": _r(self.expected),
                "weights": self.weights, **({"undefined": self.reason} if self.reason else {})}

    def text(self) -> str:
        if self.value is None:
            return f"kappa undefined ({self.reason})"
        ci = f" [{self.ci[0]:.2f}, {self.ci[1]:.2f}]" if self.ci is not None else ""
        return f"κ {self.value:.2f}{ci}"


def _r(x: float | None, digits: int = 4) -> float | None:
    return None if x is None else round(x, digits)


def _agreement_weights(labels: Sequence[Hashable], weights: Weights) -> list[list[float]]:
    """w[i][j] in [0, 1]: 1 on the diagonal; for ordered labels 1 - |i-j|/(k-1) (linear) or
    1 - (i-j)^2/(k-1)^2 (quadratic), by the labels' positions."""
    k = len(labels)
    if weights is None or k < 2:
        return [[1.0 if i == j else 0.0 for j in range(k)] for i in range(k)]
    if weights not in ("linear", "quadratic"):
        raise ValueError(f"weights must be None, 'linear' or 'quadratic', not {weights!r}")
    power = 1 if weights == "linear" else 2
    return [[1.0 - (abs(i - j) / (k - 1)) ** power for j in range(k)] for i in range(k)]


def cohen_kappa(y1: Sequence[Hashable], y2: Sequence[Hashable], *, labels: Sequence[Hashable] | None = None,
                weights: Weights = None) -> Kappa:
    """Cohen's kappa of two raters' labels of the same items (``y1[i]`` and ``y2[i]`` rate item i).

    ``labels`` orders the categories (needed for weights; default: sorted). The standard error
    is the large-sample one under the alternative (Fleiss, Cohen & Everitt 1969), the interval
    kappa +/- 1.96 se, clipped to [-1, 1]."""
    if len(y1) != len(y2):
        raise ValueError("the two raters must rate the same items")
    n = len(y1)
    cats = list(labels) if labels is not None else sorted(set(y1) | set(y2), key=_sort_key)
    index = {c: i for i, c in enumerate(cats)}
    unknown = [v for v in (*y1, *y2) if v not in index]
    if unknown:
        raise ValueError(f"label {unknown[0]!r} is not among the labels {cats!r}")
    if n == 0:
        return Kappa(None, None, None, 0, None, None, weights, "no items")
    k = len(cats)
    counts = Counter((index[a], index[b]) for a, b in zip(y1, y2, strict=True))
    p = [[counts[(i, j)] / n for j in range(k)] for i in range(k)]
    rows = [sum(p[i]) for i in range(k)]
    cols = [sum(p[i][j] for i in range(k)) for j in range(k)]
    w = _agreement_weights(cats, weights)
    po = math.fsum(w[i][j] * p[i][j] for i in range(k) for j in range(k))
    pe = math.fsum(w[i][j] * rows[i] * cols[j] for i in range(k) for j in range(k))
    if pe >= 1.0 - 1e-12:
        return Kappa(None, None, None, n, po, pe, weights,
                     "both raters used one category only: chance agreement is 1")
    kappa = (po - pe) / (1.0 - pe)
    # Fleiss, Cohen & Everitt (1969): var = [sum p_ij (w_ij - (wbar_i. + wbar_.j)(1-k))^2
    #                                        - (k - pe (1-k))^2] / (n (1-pe)^2)
    wrow = [math.fsum(cols[j] * w[i][j] for j in range(k)) for i in range(k)]
    wcol = [math.fsum(rows[i] * w[i][j] for i in range(k)) for j in range(k)]
    total = math.fsum(p[i][j] * (w[i][j] - (wrow[i] + wcol[j]) * (1.0 - kappa)) ** 2
                      for i in range(k) for j in range(k))
    var = (total - (kappa - pe * (1.0 - kappa)) ** 2) / (n * (1.0 - pe) ** 2)
    se = math.sqrt(max(var, 0.0))
    ci = (max(-1.0, kappa - Z975 * se), min(1.0, kappa + Z975 * se))
    return Kappa(kappa, se, ci, n, po, pe, weights)


def _sort_key(v: Any) -> tuple[int, Any]:
    # numbers in numeric order before text; booleans as numbers (False < True)
    if isinstance(v, bool | int | float):
        return (0, float(v))
    return (1, str(v))


@dataclass(frozen=True)
class BinaryAgreement:
    """A pass/fail rater (the judge) against reference labels (the humans)."""

    tp: int
    fp: int
    fn: int
    tn: int
    kappa: Kappa

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    def rate(self, num: int, den: int) -> dict[str, Any]:
        if den == 0:
            return {"value": None, "ci95": None, "n": 0}
        lo, hi = wilson_interval(num, den)
        return {"value": round(num / den, 4), "ci95": [round(lo, 4), round(hi, 4)], "n": den}

    def to_dict(self) -> dict[str, Any]:
        n = self.n
        return {"n": n, "confusion": {"tp": self.tp, "fp": self.fp, "fn": self.fn, "tn": self.tn},
                "base_rate": round((self.tp + self.fn) / n, 4) if n else None,
                "judge_pass_rate": round((self.tp + self.fp) / n, 4) if n else None,
                "raw_agreement": self.rate(self.tp + self.tn, n),
                "tpr": self.rate(self.tp, self.tp + self.fn),
                "tnr": self.rate(self.tn, self.tn + self.fp),
                "precision": self.rate(self.tp, self.tp + self.fp),
                "kappa": self.kappa.to_dict()}


def binary_agreement(judge: Sequence[bool], human: Sequence[bool]) -> BinaryAgreement:
    """The judge's pass/fail against the humans' (the humans are the reference: a "positive"
    is an item the humans passed)."""
    c = Counter(zip(judge, human, strict=True))
    return BinaryAgreement(tp=c[(True, True)], fp=c[(True, False)], fn=c[(False, True)], tn=c[(False, False)],
                           kappa=cohen_kappa(list(judge), list(human), labels=[False, True]))


def fleiss_kappa(ratings: Sequence[Sequence[Hashable]]) -> Kappa:
    """Fleiss' kappa of ``ratings[i]``: the labels the raters gave item i (the same number of
    raters per item). Items with fewer than two ratings are left out. No interval (use it as a
    description of a panel or of one judge's self-consistency)."""
    rows = [list(r) for r in ratings if len(r) >= 2]
    if not rows:
        return Kappa(None, None, None, 0, None, None, None, "no item has two ratings")
    m = len(rows[0])
    if any(len(r) != m for r in rows):
        raise ValueError("every item needs the same number of ratings")
    n = len(rows)
    cats = sorted({v for r in rows for v in r}, key=_sort_key)
    counts = [Counter(r) for r in rows]
    pj = [math.fsum(c[cat] for c in counts) / (n * m) for cat in cats]
    pi = [math.fsum(c[cat] * (c[cat] - 1) for cat in cats) / (m * (m - 1)) for c in counts]
    po = math.fsum(pi) / n
    pe = math.fsum(x * x for x in pj)
    if pe >= 1.0 - 1e-12:
        return Kappa(None, None, None, n, po, pe, None, "every rating is the same category: chance agreement is 1")
    return Kappa((po - pe) / (1.0 - pe), None, None, n, po, pe)


def _ranks(values: Sequence[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for t in range(i, j + 1):
            ranks[order[t]] = (i + j) / 2.0 + 1.0  # ties share their mean rank
        i = j + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rank correlation (ties at their mean rank); None when either side is constant."""
    if len(x) != len(y):
        raise ValueError("x and y must have the same length")
    if len(x) < 2:
        return None
    rx, ry = _ranks(x), _ranks(y)
    mx, my = math.fsum(rx) / len(rx), math.fsum(ry) / len(ry)
    sxy = math.fsum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    sxx = math.fsum((a - mx) ** 2 for a in rx)
    syy = math.fsum((b - my) ** 2 for b in ry)
    if sxx == 0 or syy == 0:
        return None
    return sxy / math.sqrt(sxx * syy)


def proportion(successes: int, n: int) -> dict[str, Any]:
    """A share with its Wilson interval, as reported for probes (flip rates)."""
    if n == 0:
        return {"value": None, "ci95": None, "n": 0}
    lo, hi = wilson_interval(successes, n)
    return {"value": round(successes / n, 4), "ci95": [round(lo, 4), round(hi, 4)], "n": n, "count": successes}
