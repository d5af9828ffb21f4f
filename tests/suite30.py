"""The suite issue 24 was found on, as a fixture: a 30-item support-desk QA set in three
languages, 4 items broken by a prompt change, slices on tags and language (18 slices x 3
scorers = 54 slice rows, most of them "+0.000, tiny"), two failing gates.

The reports' order tests (tests/test_report_order.py) and the browser screenshot tests read
it: the verdict, the failing gate and the first regressed item with its highlighted change
must come first in every format, and the critical slice (1.0 -> 0.8, 2 regressions) near the
top of the slice ranking."""

from __future__ import annotations

from evalrun.compare import compare
from evalrun.gates import evaluate, parse_gates
from evalrun.records import Record, Score
from evalrun.slices import slice_report
from evalrun.verdict import Verdict

SCORERS = ("exact_match", "has_facts", "similarity")
GATES = ["exact_match.pass_rate >= 0.9", {"no_regressions": {"tag": "critical"}},
         "similarity.mean >= baseline - 0.1", "errors <= 5%"]

# (id, language, tags, baseline output, new output): the four regressions; the first is the
# one the issue quotes (30 days -> 14 days), two of them are critical
REGRESSIONS = [
    ("refund-window", "en", ["critical", "billing", "refunds"],
     "Refunds are accepted within 30 days of purchase with the original receipt.",
     "Refunds are accepted within 14 days of purchase with the original receipt."),
    ("cancel-fee", "de", ["critical", "billing", "account"],
     "Die Kündigung ist jederzeit kostenlos möglich.",
     "Die Kündigung kostet eine Gebühr von 10 Euro."),
    ("intl-shipping", "en", ["shipping", "international"],
     "We ship to 42 countries; delivery takes 5 to 10 business days.",
     "We ship to 42 countries; delivery takes 2 to 3 weeks."),
    ("warranty-length", "fr", ["warranty", "policy"],
     "La garantie couvre les défauts pendant deux ans.",
     "La garantie couvre les défauts pendant un an."),
]

# the 26 items that did not move: 8 more critical ones (critical has 10 items), the rest
# spread over 7 more tags so most slices are tiny and unchanged
_OTHER_TAGS = ["gift-cards", "pricing", "express", "returns", "login", "privacy", "invoices"]
_LANGS = ["en", "de", "fr"]


def _others() -> list[tuple[str, str, list[str], str]]:
    out = []
    for i in range(26):
        tags = [_OTHER_TAGS[i % len(_OTHER_TAGS)]]
        if i < 8:
            tags.insert(0, "critical")
        out.append((f"faq-{i:02d}", _LANGS[i % 3], tags, f"Answer {i}: see the help center article {100 + i}."))
    return out


def _record(item: str, lang: str, tags: list[str], output: str, *, good: bool, sim: float) -> Record:
    scores = {"exact_match": Score(float(good), good, None if good else "output differs from the expected answer"),
              "has_facts": Score(1.0 if good else 0.5, good, None if good else "1 of 2 facts missing"),
              "similarity": Score(sim, sim >= 0.8)}
    return Record(item, 0, f"Question about {item.replace('-', ' ')}?", None, output, None, 420.0 + len(item) * 7,
                  {"input_tokens": 120, "output_tokens": 30, "cost_usd": 0.0004}, scores,
                  {"tags": tags, "language": lang})


def suite30_verdict(*, hostile: str | None = None) -> Verdict:
    """The compared, gated and sliced 30-item run. ``hostile`` replaces the first regressed
    item's new output (reports must keep it inert and still show it first)."""
    base, cand = [], []
    for item, lang, tags, old, new in REGRESSIONS:
        base.append(_record(item, lang, tags, old, good=True, sim=0.97))
        cand.append(_record(item, lang, tags, hostile if hostile and item == "refund-window" else new,
                            good=False, sim=0.74))
    for item, lang, tags, out in _others():
        base.append(_record(item, lang, tags, out, good=True, sim=0.95))
        cand.append(_record(item, lang, tags, out, good=True, sim=0.95))
    cmp = compare(cand, base, run={"run_id": "run-new", "eval": "support-qa", "prompt": None},
                  baseline_info={"source": "run-base", "run_id": "run-base", "eval": "support-qa"},
                  scorers=list(SCORERS))
    gates = parse_gates(GATES, scorers=list(SCORERS))
    return Verdict(cmp, evaluate(gates, cmp, "significant"), "significant",
                   slices=slice_report(cmp, ["tags", "metadata.language"]))
