"""The JUnit XML report: one testcase per item (and one per gate), in the Ant JUnit format that
CI test reporters (Jenkins, GitLab, GitHub test-report actions) read.

An item fails when the new run fails it under any scorer (in every trial) or is flaky; its
``<failure>`` carries the scores and the scorers' reasons. A failed target call is an
``<error>``. The layout follows the published Ant schema (``properties``, testcases,
``system-out``, ``system-err``, in that order; ``package`` and ``id`` on each suite).
"""

from __future__ import annotations

import socket
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from evalrun._text import without_controls
from evalrun.prompts import describe
from evalrun.report._common import expected_text, item_scorer_pairs, output_text, reasons, trajectory_lines

if TYPE_CHECKING:
    from evalrun.compare import ItemDiff
    from evalrun.verdict import Verdict

# (what XML 1.0 cannot hold at all, even escaped, is among the controls every report replaces)
_x = without_controls


def _timestamp(started: str | None) -> str:
    # the schema's timestamp has no zone: ISO 8601 seconds, in UTC
    try:
        dt = datetime.fromisoformat(started) if started else datetime.now(UTC)
    except ValueError:
        dt = datetime.now(UTC)
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S")


def _suite(parent: ET.Element, name: str, idx: int, package: str, timestamp: str) -> ET.Element:
    return ET.SubElement(parent, "testsuite", {"name": name, "package": package, "id": str(idx),
                                               "timestamp": timestamp, "hostname": socket.gethostname() or "localhost",
                                               "tests": "0", "failures": "0", "errors": "0", "time": "0"})


def _item_case(suite: ET.Element, it: ItemDiff, classname: str, scorers: list[str],
               name: str | None = None) -> tuple[int, int, float]:
    secs = sum((r.latency_ms or 0.0) for r in it.candidate) / 1000.0
    case = ET.SubElement(suite, "testcase", {"name": _x(name or it.item_id), "classname": classname,
                                             "time": f"{secs:.3f}"})
    scores = "; ".join(f"{s}: {b} -> {c}" if b else f"{s}: {c}" for s, b, c in item_scorer_pairs(it, scorers))
    detail = [f"expected: {expected_text(it, 2000)}"]
    if it.baseline:
        detail.append(f"baseline output: {output_text(it.baseline, 2000)}")
    detail += [f"output: {output_text(it.candidate, 2000)}", f"scores: {scores}",
               *trajectory_lines(it.candidate), *reasons(it.candidate)]
    if it.errored and all(r.error for r in it.candidate):
        err = it.candidate[0].error or {}
        el = ET.SubElement(case, "error", {"message": _x(f"{err.get('type', 'Error')}: {err.get('message', '')}"[:500]),
                                           "type": _x(str(err.get("type", "Error")))})
        el.text = _x("\n".join(detail))
        return 0, 1, secs
    bad = it.regressed or it.failed or it.flaky or ([] if not it.errored else ["target"])
    if bad:
        kind = "regressed" if it.regressed else ("flaky" if not it.failed and it.flaky else "failed")
        el = ET.SubElement(case, "failure", {"message": _x(f"{kind}: {', '.join(bad)} ({scores})"[:500]),
                                             "type": kind})
        el.text = _x("\n".join(detail))
        return 1, 0, secs
    return 0, 0, secs


def _finish_suite(suite: ET.Element, tests: int, failures: int, errors: int, secs: float) -> None:
    suite.set("tests", str(tests))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    suite.set("time", f"{secs:.3f}")
    ET.SubElement(suite, "system-out").text = ""
    ET.SubElement(suite, "system-err").text = ""


def render_junit(verdict: Verdict) -> str:
    cmp = verdict.comparison
    eval_name = str(cmp.run.get("eval") or "eval")
    ts = _timestamp(cmp.run.get("started_at"))
    root = ET.Element("testsuites")
    items = _suite(root, f"{eval_name} items", 0, "evalrun", ts)
    props = ET.SubElement(items, "properties")
    for k, v in (("run_id", cmp.run.get("run_id")), ("baseline", (cmp.baseline_info or {}).get("source")),
                 ("gate_policy", verdict.policy), ("verdict", verdict.word),
                 ("prompt", describe(cmp.run.get("prompt")) or None)):
        if v is not None:
            ET.SubElement(props, "property", {"name": k, "value": _x(str(v))})
    scorers = list(cmp.scorers)
    tests = failures = errors = 0
    total = 0.0
    classname = f"evalrun.{eval_name}"
    for it in cmp.items:
        if not it.candidate:
            continue  # removed items did not run; the report lists them elsewhere
        f, e, secs = _item_case(items, it, classname, scorers)
        tests += 1
        failures += f
        errors += e
        total += secs
    _finish_suite(items, tests, failures, errors, total)

    gates = _suite(root, f"{eval_name} gates", 1, "evalrun", ts)
    ET.SubElement(gates, "properties")
    gfail = 0
    for g in verdict.gates:
        case = ET.SubElement(gates, "testcase", {"name": _x(g.gate.text), "classname": f"{classname}.gates",
                                                 "time": "0"})
        if g.failed:
            gfail += 1
            el = ET.SubElement(case, "failure", {"message": _x(g.numbers()[:500]),
                                                 "type": "gate" if g.verdict == "fail" else "gate-incomplete"})
            el.text = _x(f"{g.gate.text}\n{g.numbers()}\n{g.note}")
    _finish_suite(gates, len(verdict.gates), gfail, 0, 0.0)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
