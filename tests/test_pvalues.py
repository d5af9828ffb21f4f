"""p-values are never 0: not when computed (McNemar's exact test at a million items), not when
stored (six decimals made 1e-25 a 0), not when printed (0.000)."""

from __future__ import annotations

import pytest
from scipy import stats as sps

from evalrun import stats
from evalrun.compare import compare
from evalrun.records import Record, Score
from evalrun.report._common import p_text
from evalrun.runs import rounded_p


def test_mcnemar_never_underflows_to_zero():
    # 10^-301030: no double holds it; scipy gives 0.0 here, evalrun its floor
    assert sps.binomtest(0, 10**6, 0.5).pvalue == 0.0
    assert stats.mcnemar_exact(0, 10**6) == stats.P_FLOOR > 0.0
    assert stats.mcnemar_exact(400_000, 600_000) == stats.P_FLOOR
    # where a double holds it, the exact value (scipy's binomial test)
    for b, c in ((1000, 3000), (3, 30), (20, 21)):
        assert stats.mcnemar_exact(b, c) == pytest.approx(sps.binomtest(b, b + c, 0.5).pvalue, rel=1e-9)
    assert stats.mcnemar_exact(5, 5) == 1.0


def test_tiny_p_values_survive_the_json_and_the_tables():
    assert rounded_p(1.23456789e-25) == 1.23457e-25 and rounded_p(0.5) == 0.5 and rounded_p(None) is None
    assert p_text(1e-25) == "1e-25" and p_text(0.0312) == "0.031" and p_text(stats.P_FLOOR) == "<=2.2e-308"
    base = [Record(f"i{i}", 0, "x", "y", "o", scores={"em": Score(1.0, True)}) for i in range(200)]
    cand = [Record(f"i{i}", 0, "x", "y", "o", scores={"em": Score(0.0, False)}) for i in range(200)]
    data = compare(cand, base, baseline_info={"source": "b"}).scorers["em"].to_dict()
    assert data["mcnemar_p"] > 0 and data["mcnemar_p"] == pytest.approx(sps.binomtest(0, 200, 0.5).pvalue, rel=1e-5)
    assert data["paired"]["pass_rate"]["p_value"] > 0
