"""The ``tool_calls`` scorer: the calls a pipeline made against the item's ``expected_tool_calls``.

The actual calls come from the record's trajectory: the calls the target reported (a chat
target's tool loop, ``Output(tool_calls=...)``, ``tool_calls_path``) or, with ``source:
spans``, the tool spans captured from the pipeline. See :mod:`evalrun.scoring.trajectory_match`
for the modes. Besides matching, a scorer may forbid tools (``forbidden_tools``: one such call
fails the item, whatever the mode) and set budgets per item (steps, tool calls, tool errors,
tokens, cost).

Fail closed: a record without a trajectory (the target reports no calls) or whose trajectory
ended early (the step limit, an aborted loop, missing spans) is a scorer error with the reason,
never a pass. An item without ``expected_tool_calls`` is judged on the forbidden tools and
budgets only (no score when the scorer has neither).
"""

from __future__ import annotations

import fnmatch
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from evalrun import _json
from evalrun.records import Record, Score
from evalrun.scoring import trajectory_match as tm
from evalrun.scoring.base import Scorer, ScorerConfig, ScorerContext
from evalrun.toolcalls import from_spans
from evalrun.trajectory import ToolCall, Trajectory

MatcherType = Literal["equals", "numeric", "regex", "contains", "subset", "any", "similar"]


class ArgMatcher(BaseModel):
    """How one argument's value is compared with the expected value."""

    model_config = ConfigDict(extra="forbid")

    type: MatcherType = "equals"
    #: numeric: the allowed difference (a fraction of the expected value with ``relative``)
    tolerance: float = Field(0.0, ge=0, allow_inf_nan=False)
    relative: bool = False
    #: regex: the pattern (without one, the expected value is the pattern)
    pattern: str | None = None
    #: regex, contains: compare case-insensitively
    ignore_case: bool = False
    #: similar: cosine of the two texts' embeddings (the bundled model) at least this
    threshold: float = Field(0.8, ge=-1, le=1)


class Budgets(BaseModel):
    """Per-item limits; a record over any of them fails."""

    model_config = ConfigDict(extra="forbid")

    steps: int | None = Field(None, ge=0)  # model turns of the tool loop
    tool_calls: int | None = Field(None, ge=0)
    tool_errors: int | None = Field(None, ge=0)
    tokens: int | None = Field(None, ge=0)
    cost_usd: float | None = Field(None, ge=0, allow_inf_nan=False)


class StepCheck(BaseModel):
    """A property of the pipeline's captured steps: some step of this kind (and name) has an
    attribute containing a text, e.g. "the retrieval step returned doc X"."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["tool", "retrieval", "llm", "span", "any"] = "any"
    #: the step's name (a glob pattern)
    name: str = "*"
    #: the attribute to look in (``output.value``, ``langfuse.observation.output``...)
    attribute: str
    #: the text it must contain
    contains: str | None = None
    #: or the item's value at this dotted path (``metadata.doc_id``)
    contains_item: str | None = None

    @field_validator("contains_item")
    @classmethod
    def _item_path(cls, v: str | None) -> str | None:
        if v is not None and v.split(".", 1)[0] not in ("metadata", "input", "expected_output"):
            raise ValueError("contains_item reads the item: metadata.KEY, input.KEY or expected_output")
        return v


class ToolCallsConfig(ScorerConfig):
    #: how the list of calls compares: exact | in_order | unordered | superset | subset | f1
    mode: Literal["exact", "in_order", "unordered", "superset", "subset", "f1"] = "exact"
    #: how a call's arguments compare with an expected call's: superset (every expected argument
    #: present and matching, others allowed) | exact | subset (no argument beyond the expected) | ignore
    args: Literal["superset", "exact", "subset", "ignore"] = "superset"
    #: per-argument matchers by ``tool.argument`` (``*.argument`` for any tool): a type name
    #: (``numeric``) or a mapping ({type: numeric, tolerance: 0.5})
    matchers: dict[str, ArgMatcher] = Field(default_factory=dict)
    #: tool names (glob patterns) that must never be called
    forbidden_tools: list[str] = Field(default_factory=list)
    budgets: Budgets = Field(default_factory=lambda: Budgets.model_validate({}))
    #: properties of the captured steps (spans) every record must have
    steps: list[StepCheck] = Field(default_factory=list)
    #: where the actual calls come from: the calls the target reported, the tool spans
    #: captured from the pipeline, or auto (the reported calls, else the spans)
    source: Literal["auto", "calls", "spans"] = "auto"

    @field_validator("matchers", mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            return v
        out = {}
        for key, spec in v.items():
            tool, dot, arg = str(key).partition(".")
            if not dot or not tool or not arg:
                raise ValueError(f"matcher key {key!r} must read tool.argument (or *.argument)")
            out[key] = {"type": spec} if isinstance(spec, str) else spec
        return out


class ToolCalls(Scorer):
    type = "tool_calls"
    Config = ToolCallsConfig
    config: ToolCallsConfig
    batch_size = 512

    def __init__(self, config: ToolCallsConfig, ctx: ScorerContext) -> None:
        super().__init__(config, ctx)
        self.embedder: Any = None
        self._vectors: dict[str, Any] = {}
        self.forbidden_calls = 0
        self.truncated = 0

    async def setup(self) -> None:
        import re

        checks: dict[tuple[str, str], tm.ValueCheck] = {}
        for key, m in self.config.matchers.items():
            tool, _, arg = key.partition(".")
            if m.type == "regex" and m.pattern is not None:
                try:
                    re.compile(m.pattern)
                except re.error as e:
                    raise self.ctx.error(f"matcher {key}: bad regex {m.pattern!r}: {e}", "matchers", key) from None
            checks[(tool, arg)] = self._check(m)
        self.matcher = tm.CallMatcher(self.config.args, checks)
        if any(m.type == "similar" for m in self.config.matchers.values()):
            from evalrun.scoring.embedding import EmbeddingConfig, EmbeddingSimilarity

            self.embedder = EmbeddingSimilarity(EmbeddingConfig.model_validate({"type": "embedding_similarity"}),
                                                self.ctx)
            await self.embedder.setup()

    def _check(self, m: ArgMatcher) -> tm.ValueCheck:
        if m.type == "numeric":
            return tm.numeric(m.tolerance, m.relative)
        if m.type == "regex":
            return tm.regex(m.pattern, m.ignore_case)
        if m.type == "contains":
            return tm.contains(m.ignore_case)
        if m.type == "subset":
            return tm.subset()
        if m.type == "any":
            return tm.anything()
        if m.type == "similar":
            return tm.similar(m.threshold, self._cosine)
        return tm.equals()

    def _cosine(self, a: str, b: str) -> float | None:
        va, vb = self._vectors.get(a), self._vectors.get(b)
        return None if va is None or vb is None else float(va @ vb)

    # --- reading a record ---------------------------------------------------------------

    def _actual(self, traj: Trajectory) -> list[ToolCall]:
        if self.config.source == "calls":
            return traj.tool_calls
        if self.config.source == "spans":
            return from_spans(traj.spans)
        return traj.tool_calls or from_spans(traj.spans)

    @staticmethod
    def _expected(record: Record) -> list[ToolCall] | None:
        if record.expected_tool_calls is None:
            return None
        return [ToolCall.from_dict(c, f"expected_tool_calls[{i}]") for i, c in enumerate(record.expected_tool_calls)]

    async def score_batch(self, records: list[Record]) -> list[Score]:
        if self.embedder is not None:
            texts = self._similar_texts(records)
            if texts:
                self._vectors = await self.embedder.embed(texts)
        try:
            return [self.score_one(r) for r in records]
        finally:
            self._vectors = {}

    def _similar_texts(self, records: list[Record]) -> list[str]:
        """Every text a ``similar`` matcher may compare in this batch (embedded at once)."""
        keys = {tuple(k.split(".", 1)) for k, m in self.config.matchers.items() if m.type == "similar"}
        texts: list[str] = []
        for r in records:
            try:
                expected = self._expected(r) or []
                traj = Trajectory.from_dict(r.trajectory) if r.trajectory is not None else None
            except ValueError:
                continue
            actual = self._actual(traj) if traj is not None else []
            for e in expected:
                for a in actual:
                    if a.name != e.name or a.arguments is None:
                        continue
                    for arg, v in (e.arguments or {}).items():
                        if ((e.name, arg) in keys or ("*", arg) in keys) and arg in a.arguments:
                            texts += [_json.as_text(v).strip(), _json.as_text(a.arguments[arg]).strip()]
        return texts

    def score_one(self, record: Record) -> Score:
        if record.trajectory is None:
            return Score.failed("no tool calls recorded: the target reports none (a chat target with tools, "
                                "Output(tool_calls=...), tool_calls_path, or captured spans)")
        try:
            traj = Trajectory.from_dict(record.trajectory)
            expected = self._expected(record)
        except ValueError as e:
            return Score.failed(str(e))
        if traj.truncated:
            self.truncated += 1
            return Score.failed(f"the trajectory ended early: {traj.truncated}")
        actual = self._actual(traj)
        if self.config.source == "spans" and not traj.captured:
            return Score.failed("no spans were captured for this call (capture off, or the pipeline emits none)")
        problems = self._checks(record, traj, actual) + self._step_checks(record, traj)
        hits = [i for i, c in enumerate(actual) if any(fnmatch.fnmatchcase(c.name, p) for p in self.config.forbidden_tools)]
        forbidden = [actual[i].name for i in hits]
        first_forbidden = hits[0] if hits else None
        extra: dict[str, Any] = {"actual": [c.brief() for c in actual[:50]]}
        if first_forbidden is not None:
            extra["divergence"] = first_forbidden
        if forbidden:
            self.forbidden_calls += 1
            extra["forbidden"] = forbidden
            problems.insert(0, "called forbidden tool " + ", ".join(dict.fromkeys(forbidden)))
        if expected is None:
            if not self.config.forbidden_tools and not problems and not self._has_budgets() \
                    and not self.config.steps:
                return Score(None, None, "no expected_tool_calls for this item")
            return Score(0.0 if problems else 1.0, not problems, "; ".join(problems) or None, extra=extra)
        result = tm.match(expected, actual, self.config.mode, self.matcher,
                          self.config.threshold if self.config.threshold is not None else 1.0)
        extra["expected"] = [c.brief() for c in expected[:50]]
        # the first step off the expected path: where the match diverged, or the first
        # forbidden call when that comes earlier (or the match alone would pass)
        at = [i for i in (result.divergence, first_forbidden) if i is not None]
        if at:
            extra["divergence"] = min(at)
        if self.config.mode == "f1" or not result.passed:
            extra["f1"] = round(result.f1, 6)
        # a forbidden call or a budget overrun fails the item whatever the match says
        passed = result.passed and not problems
        value = result.value if not problems else 0.0
        if result.reason:
            problems.append(result.reason)
        return Score(value, passed, "; ".join(problems) or None, extra=extra)

    def _step_checks(self, record: Record, traj: Trajectory) -> list[str]:
        from evalrun.targets import dig

        out = []
        for c in self.config.steps:
            want = c.contains
            if c.contains_item is not None:
                head, _, rest = c.contains_item.partition(".")
                source = {"metadata": record.metadata, "input": record.input,
                          "expected_output": record.expected_output}[head]
                try:
                    want = _json.as_text(dig(source, rest))
                except KeyError:
                    out.append(f"the item has no {c.contains_item} for the step check")
                    continue
            steps = [s for s in traj.spans if (c.kind == "any" or s.kind == c.kind)
                     and fnmatch.fnmatchcase(s.name, c.name)]
            what = f"{c.kind if c.kind != 'any' else ''} step{'' if c.name == '*' else ' ' + c.name}".strip()
            if not steps:
                out.append(f"no {what} was captured")
            elif want is not None and not any(want in _json.as_text(s.attributes.get(c.attribute, ""))
                                              for s in steps):
                out.append(f"no {what}'s {c.attribute} contains {want!r}")
        return out

    def _has_budgets(self) -> bool:
        return any(v is not None for v in self.config.budgets.model_dump().values())

    def _checks(self, record: Record, traj: Trajectory, actual: list[ToolCall]) -> list[str]:
        b = self.config.budgets
        out = []
        if b.steps is not None and traj.steps is not None and traj.steps > b.steps:
            out.append(f"{traj.steps} steps, over the budget of {b.steps}")
        if b.tool_calls is not None and len(actual) > b.tool_calls:
            out.append(f"{len(actual)} tool calls, over the budget of {b.tool_calls}")
        errors = sum(1 for c in actual if c.error is not None)
        if b.tool_errors is not None and errors > b.tool_errors:
            out.append(f"{errors} tool errors, over the budget of {b.tool_errors}")
        usage = record.usage or {}
        if b.tokens is not None:
            tokens = total_tokens(usage)
            if tokens is None:
                out.append("the tokens budget cannot be checked: the target reported no token usage")
            elif tokens > b.tokens:
                out.append(f"{tokens} tokens, over the budget of {b.tokens}")
        if b.cost_usd is not None:
            cost = usage.get("cost_usd")
            if not isinstance(cost, int | float):
                out.append("the cost budget cannot be checked: the target reported no cost")
            elif cost > b.cost_usd:
                out.append(f"cost ${cost:.4g}, over the budget of ${b.cost_usd:g}")
        return out

    def summary_extra(self) -> dict[str, Any]:
        return {"mode": self.config.mode, "forbidden_calls": self.forbidden_calls, "truncated": self.truncated}


def total_tokens(usage: dict[str, Any]) -> int | None:
    """Tokens a call used, from the usage shapes targets report (OpenAI, Anthropic, total)."""
    if isinstance(usage.get("total_tokens"), int):
        return int(usage["total_tokens"])
    parts = [usage.get(k) for k in ("prompt_tokens", "completion_tokens", "input_tokens", "output_tokens")]
    nums = [int(p) for p in parts if isinstance(p, int) and not isinstance(p, bool)]
    return sum(nums) if nums else None
