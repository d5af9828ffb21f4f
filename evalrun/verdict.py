"""What a run comes to: the comparison, each gate's result, pass or fail and the exit code.

No rendering and no I/O here: :mod:`evalrun.postrun` judges a run into a :class:`Verdict`,
:mod:`evalrun.report` renders it, :mod:`evalrun.github` publishes it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from evalrun.compare import Comparison
from evalrun.errors import ExitCode, verdict_word
from evalrun.gates import GateResult

if TYPE_CHECKING:
    from evalrun.slices import SliceReport
    from evalrun.store import RunDir


@dataclass
class Verdict:
    """What a run comes to: the comparison, each gate's result, and pass or fail."""

    comparison: Comparison
    gates: list[GateResult]
    policy: str
    run_status: str = "finished"  # a RunStatus; a run judged while its manifest says "running" keeps that
    written: list[tuple[str, str]] = field(default_factory=list)  # (format, path) of reports written
    notes: list[str] = field(default_factory=list)
    slices: SliceReport | None = None
    history: list[dict[str, Any]] = field(default_factory=list)  # earlier runs and this one, oldest first
    attempt: int | None = None  # re-runs of one commit (evalrun.attempts): this attempt's number
    pooled: list[str] = field(default_factory=list)  # the earlier attempts' run ids judged with it

    @property
    def failed_gates(self) -> list[GateResult]:
        """Gates that keep the run from passing: failed, or incomplete (could not be judged)
        without the eval file's ``incomplete: pass``."""
        return [g for g in self.gates if g.failed]

    @property
    def passed(self) -> bool:
        return not self.failed_gates

    @property
    def incomplete(self) -> bool:
        """Not passed only because some gate could not be judged (no gate failed outright)."""
        return bool(self.failed_gates) and all(g.verdict == "incomplete" for g in self.failed_gates)

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.of_run(self.run_status, self.passed, self.incomplete)

    @property
    def word(self) -> str:
        if self.run_status != "finished":
            return self.run_status
        return "passed" if self.passed else "incomplete" if self.incomplete else "failed"

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": verdict_word(self.run_status, self.passed, self.incomplete), "run_status": self.run_status,
                "gate_policy": self.policy, "gates": [g.to_dict() for g in self.gates], "notes": self.notes,
                "slices": self.slices.to_dict() if self.slices is not None else None,
                "history": self.history, "attempt": self.attempt, "pooled_attempts": self.pooled,
                "comparison": self.comparison.to_dict()}

    def brief(self) -> dict[str, Any]:
        """The verdict without the per-item data (for ``--json`` next to the summary)."""
        cmp = self.comparison
        return {"verdict": verdict_word(self.run_status, self.passed, self.incomplete), "gate_policy": self.policy,
                "gates": [g.to_dict() for g in self.gates], "baseline": cmp.baseline_info,
                "counts": {s: len(cmp.by_status(s)) for s in
                           ("regressed", "improved", "flaky", "unchanged", "new", "removed")},
                "attempt": self.attempt, "notes": self.notes,
                "reports": [{"format": f, "path": p} for f, p in self.written]}


# --- a variant group (evalrun.variants): each variant's verdict, and the group's

@dataclass
class VariantResult:
    name: str
    run_dir: RunDir
    status: str
    paired: Verdict  # against the reference variant (the reference itself: alone)
    gate_verdict: Verdict  # what its gates were judged on: ``paired``, or the accepted baseline
    gated: bool
    overrides: dict[str, Any]

    @property
    def failed(self) -> bool:
        return self.gated and not self.gate_verdict.passed

    @property
    def gates(self) -> list[GateResult]:
        return self.gate_verdict.gates


@dataclass
class GroupVerdict:
    group_id: str
    eval: str
    reference: str
    results: list[VariantResult]
    policy: str
    gate_baseline: dict[str, Any] | None  # the accepted baseline gates used, None: the reference
    status: str
    notes: list[str] = field(default_factory=list)
    written: list[tuple[str, str]] = field(default_factory=list)

    def result(self, name: str) -> VariantResult:
        return next(r for r in self.results if r.name == name)

    @property
    def passed(self) -> bool:
        return not any(r.failed for r in self.results)

    @property
    def incomplete(self) -> bool:
        """Not passed only because gates could not be judged."""
        failing = [r for r in self.results if r.failed]
        return bool(failing) and all(r.gate_verdict.incomplete for r in failing)

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.of_run(self.status, self.passed, self.incomplete)

    @property
    def word(self) -> str:
        if self.status != "finished":
            return self.status
        return "passed" if self.passed else "incomplete" if self.incomplete else "failed"

    def brief(self) -> dict[str, Any]:
        return {"verdict": verdict_word(self.status, self.passed, self.incomplete), "group_id": self.group_id,
                "compare_to": self.reference, "gate_policy": self.policy, "gate_baseline": self.gate_baseline,
                "variants": {r.name: {"run_id": r.run_dir.id, "status": r.status, "gated": r.gated,
                                      "verdict": verdict_word(r.status, r.gate_verdict.passed,
                                                              r.gate_verdict.incomplete),
                                      "gates": [g.to_dict() for g in r.gates]} for r in self.results},
                "notes": self.notes, "reports": [{"format": f, "path": p} for f, p in self.written]}

    def to_dict(self) -> dict[str, Any]:
        out = self.brief()
        out["variants"] = {r.name: {**out["variants"][r.name], "overrides": r.overrides,
                                    "comparison": r.paired.comparison.to_dict()} for r in self.results}
        return out
