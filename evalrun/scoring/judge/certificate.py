"""A judge's calibration certificate: what ``evalrun judge calibrate`` measured, bound to the
judge it measured.

The certificate is a small JSON file committed beside the eval file (default
``calibration/<scorer name>.json``), so CI sees it. It holds the judge's fingerprint: the
model, the server, the rubric file's text, the instructions evalrun appends, the call
parameters, samples and mode. A run recomputes the fingerprint; any change (a reworded rubric,
another model, a new temperature) makes the certificate *stale*, and a stale or missing one is
*uncalibrated*.

A judge may require a certificate: ``require: {kappa: 0.6}`` (or ``kappa_lower``, the
interval's lower end), with ``on_fail: advisory`` (default: the judge still scores, and every
gate on it is reported but never fails the run) or ``refuse`` (the run stops before any call).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

FORMAT = "evalrun-judge-certificate/v1"


class Requirement(BaseModel):
    """``require:`` of a judge scorer."""

    model_config = ConfigDict(extra="forbid")

    kappa: float | None = Field(None, ge=-1, le=1)
    kappa_lower: float | None = Field(None, ge=-1, le=1)
    min_labels: int = Field(30, ge=1)
    on_fail: Literal["advisory", "refuse"] = "advisory"


def default_path(base_dir: Path, scorer_name: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in scorer_name)[:100] or "judge"
    return base_dir / "calibration" / f"{safe}.json"


@dataclass
class Status:
    """Where a judge stands: calibrated (a current certificate), stale or uncalibrated; and
    whether its gates bind."""

    state: Literal["calibrated", "stale", "uncalibrated", "unreadable"]
    path: Path
    certificate: dict[str, Any] | None
    required: Requirement | None
    binding: bool
    reason: str

    def line(self, scorer: str) -> str:
        """One line for every report's header."""
        cert = self.certificate or {}
        k = (cert.get("agreement") or {}).get("kappa") or {}
        if self.state == "calibrated" and k.get("kappa") is not None:
            lo, hi = k.get("ci95") or (None, None)
            ci = f" [{lo:.2f}, {hi:.2f}]" if lo is not None and hi is not None else ""
            text = f"judge {scorer}: calibrated: κ {k['kappa']:.2f}{ci} on {cert.get('labels', {}).get('n', '?')} labels"
        elif self.state == "calibrated":
            text = f"judge {scorer}: calibrated, but kappa is undefined ({k.get('undefined', 'no value')})"
        else:
            text = f"judge {scorer}: {self.state}" + (f" ({self.reason})" if self.reason else "")
        if self.required is not None:
            text += "; its gates bind" if self.binding else "; its gates are advisory (reported, never failing)"
        return text

    def to_dict(self) -> dict[str, Any]:
        cert = self.certificate or {}
        return {"state": self.state, "certificate": str(self.path), "binding": self.binding, "reason": self.reason,
                "required": self.required.model_dump(exclude_none=True) if self.required else None,
                "kappa": (cert.get("agreement") or {}).get("kappa"), "labels": cert.get("labels")}


def read(path: Path) -> dict[str, Any] | None:
    """The certificate at ``path``; None when there is none. A file that is not one raises ValueError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    data = json.loads(text)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path} is not an evalrun judge certificate (format {FORMAT})")
    return data


def status(path: Path, fingerprint: str, required: Requirement | None) -> Status:
    try:
        cert = read(path)
    except (OSError, ValueError) as e:
        return _judged(Status("unreadable", path, None, required, False, f"{path.name}: {e}"[:300]))
    if cert is None:
        return _judged(Status("uncalibrated", path, None, required, False, f"no certificate at {path}"))
    if cert.get("fingerprint") != fingerprint:
        return _judged(Status("stale", path, cert, required, False,
                              "the judge changed since it was calibrated (model, rubric, parameters or server); "
                              "run evalrun judge calibrate again"))
    return _judged(Status("calibrated", path, cert, required, True, ""))


def _judged(st: Status) -> Status:
    """Whether the requirement holds (no requirement: the gates always bind)."""
    req = st.required
    if req is None:
        st.binding = True
        return st
    if st.state != "calibrated":
        st.binding = False
        return st
    cert = st.certificate or {}
    k = (cert.get("agreement") or {}).get("kappa") or {}
    value, ci = k.get("kappa"), k.get("ci95")
    n = (cert.get("labels") or {}).get("n") or 0
    problems = []
    if n < req.min_labels:
        problems.append(f"{n} labels < {req.min_labels}")
    if req.kappa is not None and (value is None or value < req.kappa):
        problems.append(f"κ {'undefined' if value is None else f'{value:.2f}'} < required {req.kappa:g}")
    if req.kappa_lower is not None and (ci is None or ci[0] < req.kappa_lower):
        problems.append(f"κ lower bound {'undefined' if ci is None else f'{ci[0]:.2f}'} < required "
                        f"{req.kappa_lower:g}")
    st.binding = not problems
    st.reason = "; ".join(problems)
    return st


def write(path: Path, certificate: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"format": FORMAT, **certificate}, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)
