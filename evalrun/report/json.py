"""The JSON report: the verdict and the whole comparison as data."""

from __future__ import annotations

from typing import TYPE_CHECKING

from evalrun._json import json_pretty

if TYPE_CHECKING:
    from evalrun.verdict import Verdict


def render_json(verdict: Verdict) -> str:
    return json_pretty(verdict.to_dict())
