"""Statistics: means, standard errors, confidence intervals, paired comparisons."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

# two-sided 97.5% quantiles of Student's t for small df; larger df use the normal value
_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


def t_quantile_975(df: int) -> float:
    if df <= 0:
        return math.nan
    if df <= len(_T975):
        return _T975[df - 1]
    # Cornish-Fisher style correction on the normal quantile; within 1e-3 for df > 30
    z = 1.959963984540054
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def mean_ci(values: Sequence[float] | np.ndarray) -> tuple[float, float, float]:
    """Mean and a 95% t interval. With fewer than two values the interval is the mean itself."""
    a = np.asarray(values, dtype=float)
    n = a.size
    if n == 0:
        return (math.nan, math.nan, math.nan)
    m = float(a.mean())
    if n < 2:
        return (m, m, m)
    se = float(a.std(ddof=1)) / math.sqrt(n)
    h = t_quantile_975(n - 1) * se
    return (m, m - h, m + h)
