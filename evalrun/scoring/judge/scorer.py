"""The ``llm_judge`` scorer: renders a rubric per record, asks an OpenAI-compatible model for
a verdict (``samples`` times, or twice with swapped positions in pairwise mode), aggregates,
and caches every answer by what determined it."""

from __future__ import annotations

import asyncio
import contextvars
import os
from pathlib import Path
from statistics import mean, pstdev
from typing import Any, Literal
from urllib.parse import urlparse

from pydantic import Field

from evalrun.config import EnvName, HttpUrlStr
from evalrun.openai_client import CallStats, ChatCallError, ChatClient, MalformedResponse
from evalrun.prices import Price, cost_usd, price_for
from evalrun.records import Record, Score
from evalrun.scoring.base import Scorer, ScorerConfig
from evalrun.scoring.judge import certificate as certs
from evalrun.scoring.judge.rubric import Rubric, load_rubric
from evalrun.scoring.judge.verdict import Aggregate, MalformedVerdict, Shape, majority, parse_verdict
from evalrun.store import content_key

CACHE_NS = "judge"
#: value of each pairwise outcome for the candidate (the run's output)
OUTCOME_VALUE = {"win": 1.0, "tie": 0.5, "loss": 0.0}
#: the judge usage of the record being scored in this task (saved as the score's ``usage``)
_RECORD_USAGE: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("judge_usage", default=None)


class JudgeParams(ScorerConfig):
    """How a judge is called: the fields an ``llm_judge`` has, and a ``judge_panel`` sets for
    all its members."""

    rubric: str
    base_url: HttpUrlStr = "https://api.openai.com/v1"
    #: the environment variable holding the API key (never the key itself)
    api_key_env: EnvName = "OPENAI_API_KEY"
    samples: int = Field(1, ge=1, le=25)
    concurrency: int = Field(8, ge=1, le=512)
    timeout: float = Field(60.0, gt=0)
    retries: int = Field(4, ge=0, le=20)
    #: default 0 for one sample, 0.7 for several (identical samples would agree trivially)
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1)
    mode: Literal["pointwise", "pairwise"] = "pointwise"
    response_format: Literal["json_schema", "json_object", "none"] = "json_schema"
    #: USD per million tokens, added to / overriding the built-in table
    prices: dict[str, Price] = Field(default_factory=dict)


#: the call fields a panel member may set for itself (``judge_panel``)
CALL_FIELDS = ("base_url", "api_key_env", "samples", "concurrency", "timeout", "retries", "temperature",
               "max_tokens", "mode", "response_format", "prices")


class JudgeConfig(JudgeParams):
    model: str = Field(min_length=1)
    #: the calibration certificate (``evalrun judge calibrate``); default calibration/<name>.json
    certificate: str | None = Field(None, min_length=1)
    #: what the certificate must show for this judge's gates to bind
    require: certs.Requirement | None = None


class LLMJudge(Scorer):
    """Grades each output with a judge model following a rubric."""

    type = "llm_judge"
    langfuse_data_type = "NUMERIC"
    uses_cache = True  # verdicts by what determines them
    Config = JudgeConfig
    batch_size = 64

    config: JudgeConfig

    #: whether setup reads the calibration certificate (off in ``evalrun judge calibrate``,
    #: which makes one, and for the members of a judge panel)
    certify = True
    #: added to the sample index of the cache key: repetition r of a self-consistency check
    #: asks again instead of reading repetition 0's answers
    sample_offset = 0

    async def setup(self) -> None:
        cfg = self.config
        self.rubric: Rubric = load_rubric(cfg.rubric, self.ctx.base_dir,
                                          locate=lambda msg: self.ctx.error(msg, "rubric", "__value__"))
        api_key = os.environ.get(cfg.api_key_env) or None
        if api_key is None and urlparse(cfg.base_url).hostname == "api.openai.com":
            raise self.ctx.error(f"environment variable {cfg.api_key_env} is not set; the judge at "
                                 f"{cfg.base_url} needs an API key (or set base_url to a local server)")
        if cfg.mode == "pairwise" and self.ctx.baseline_outputs is None:
            raise self.ctx.error("mode: pairwise compares with a baseline run's outputs; run with --baseline RUN",
                                 "mode", "__value__")
        self.shape = Shape.pairwise() if cfg.mode == "pairwise" else Shape.pointwise(self.rubric)
        if cfg.mode == "pairwise":
            self.threshold = cfg.threshold if cfg.threshold is not None else 0.5
        else:
            self.threshold = cfg.threshold if cfg.threshold is not None else self.rubric.threshold
        self.temperature = cfg.temperature if cfg.temperature is not None else (0.0 if cfg.samples == 1 else 0.7)
        self.price = price_for(cfg.model, cfg.prices)
        self.stats = CallStats()
        self.cost = 0.0
        self.agreements: list[float] = []
        self.outcomes = {"win": 0, "tie": 0, "loss": 0}
        self.order_checks = [0, 0]  # [consistent, total] pairs of swapped-order answers
        self._api_key = api_key
        self._client: ChatClient | None = None
        self._used_client: ChatClient | None = None  # kept after close, for the summary
        self.calibration: certs.Status | None = None
        if self.certify:
            self.calibration = certs.status(self.certificate_path(), self.fingerprint(), cfg.require)
            if cfg.require is not None and cfg.require.on_fail == "refuse" and not self.calibration.binding:
                raise self.ctx.error(f"{self.calibration.line(self.name)}: {self.calibration.reason} "
                                     "(require: on_fail: refuse)", "require", "__value__")

    def certificate_path(self) -> Path:
        cfg = self.config
        if cfg.certificate:
            return (self.ctx.base_dir / Path(cfg.certificate).expanduser()).resolve()
        return certs.default_path(self.ctx.base_dir, self.name)

    def fingerprint(self) -> str:
        """What determines this judge's verdicts, as the calibration certificate binds it: the
        server, the model, the rubric file's text, the instructions evalrun adds, the call
        parameters, samples and mode (the judge cache key's fields, rubric for messages)."""
        cfg = self.config
        return content_key("judge-certificate/v1", cfg.base_url, cfg.model, self.rubric.fingerprint,
                           self.shape.instructions(), self._params(), cfg.samples, cfg.mode, self.threshold)

    @property
    def client(self) -> ChatClient:
        if self._client is None:  # made on first use, inside the loop that will use it
            cfg = self.config
            self._client = ChatClient(cfg.base_url, self._api_key, timeout=cfg.timeout, retries=cfg.retries,
                                       concurrency=cfg.concurrency, response_format=cfg.response_format,
                                       stats=self.stats, secrets=self.ctx.secrets)
            self._used_client = self._client
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    # --- scoring -----------------------------------------------------------------------

    async def score_batch(self, records: list[Record]) -> list[Score]:
        return list(await asyncio.gather(*(self._score(r) for r in records)))

    def _vars(self, r: Record) -> dict[str, Any]:
        return {"input": r.input, "output": r.output, "expected_output": r.expected_output,
                "metadata": r.metadata or {}, "item_id": r.item_id, "trial": r.trial,
                "criteria": self.rubric.criteria}

    async def _score(self, r: Record) -> Score:
        usage: dict[str, Any] = {"model": self.config.model, "calls": 0, "prompt_tokens": 0, "completion_tokens": 0}
        _RECORD_USAGE.set(usage)
        score = await self._score_record(r)
        if usage["calls"]:
            score.usage = usage
        return score

    async def _score_record(self, r: Record) -> Score:
        variables = self._vars(r)
        missing = self.rubric.missing_field(variables)
        if missing:
            return Score(None, None, f"skipped: rubric {self.rubric.name} needs {missing}, which this item lacks")
        try:
            if self.config.mode == "pairwise":
                return await self._pairwise(r, variables)
            return await self._pointwise(variables)
        except ChatCallError as e:
            return Score.failed(f"judge: {self._scrub(str(e))}")
        except _TemplateFailure as e:
            return Score.failed(str(e))
        except Exception as e:  # anything else stays on this record; the batch goes on
            return Score.failed(self._scrub(f"judge: {type(e).__name__}: {e}")[:2000])

    def _render(self, template: Any, variables: dict[str, Any]) -> list[dict[str, str]]:
        from jinja2 import TemplateError

        try:
            text = template.render(**variables)
        except TemplateError as e:
            raise _TemplateFailure(f"rubric {self.rubric.name}: template error: {e}") from None
        messages = []
        if self.rubric.system:
            messages.append({"role": "system", "content": self.rubric.system.strip()})
        messages.append({"role": "user", "content": text.strip() + "\n\n" + self.shape.instructions()})
        return messages

    async def _samples(self, messages: list[dict[str, str]]) -> tuple[list[tuple[Any, str | None]], list[str]]:
        results = await asyncio.gather(*(self._verdict(messages, i) for i in range(self.config.samples)),
                                       return_exceptions=True)
        ok: list[tuple[Any, str | None]] = []
        errors: list[str] = []
        for res in results:
            if isinstance(res, ChatCallError):
                errors.append(str(res))
            elif isinstance(res, BaseException):
                raise res
            else:
                ok.append(res)
        if not ok:
            raise ChatCallError(errors[0])
        return ok, errors

    async def _pointwise(self, variables: dict[str, Any]) -> Score:
        messages = self._render(self.rubric.prompt, variables)
        ok, errors = await self._samples(messages)
        verdicts = [v for v, _ in ok]
        if self.rubric.scale:
            values = [self.rubric.normalise(v) for v in verdicts]
            value = mean(values)
            agg = majority(verdicts, {v: v for v in verdicts})
            extra: dict[str, Any] = {"verdict": verdicts[0] if len(verdicts) == 1 else round(mean(verdicts), 4)}
            if len(verdicts) > 1:
                extra["samples"] = verdicts
                extra["stdev"] = round(pstdev(values), 4)
            reason_from = agg.verdict
        else:
            worth = self.rubric.choices or {}
            agg = majority(verdicts, worth)
            value = worth[agg.verdict]
            extra = {"verdict": agg.verdict}
            if len(verdicts) > 1:
                extra["votes"] = agg.votes
            reason_from = agg.verdict
        return self._finish(value, ok, errors, agg, reason_from, extra)

    async def _pairwise(self, r: Record, variables: dict[str, Any]) -> Score:
        baselines = self.ctx.baseline_outputs or {}
        if r.key in baselines:
            baseline = baselines[r.key]
        elif (r.item_id, 0) in baselines:  # the baseline ran fewer trials: compare with its first
            baseline = baselines[(r.item_id, 0)]
        else:
            return Score(None, None, "skipped: the baseline run has no output for this item")
        v = {**variables, "baseline_output": baseline}
        first = self._render(self.rubric.pairwise_prompt, {**v, "output_a": r.output, "output_b": baseline})
        swapped = self._render(self.rubric.pairwise_prompt, {**v, "output_a": baseline, "output_b": r.output})
        (ok1, err1), (ok2, err2) = await asyncio.gather(self._samples(first), self._samples(swapped))
        outcomes: list[str] = []
        orders: list[list[str]] = []
        pairs: list[tuple[str, str | None]] = []
        for (w1, why1), (w2, why2) in zip(ok1, ok2, strict=False):
            # in the first order the run's output is A, in the swapped order it is B
            cand1 = {"A": "win", "B": "loss", "tie": "tie"}[w1]
            cand2 = {"A": "loss", "B": "win", "tie": "tie"}[w2]
            outcome = cand1 if cand1 == cand2 else "tie"
            self.order_checks[0] += cand1 == cand2
            self.order_checks[1] += 1
            outcomes.append(outcome)
            orders.append([w1, w2])
            pairs.append((outcome, why1 or why2))
        if not outcomes:
            raise ChatCallError((err1 or err2)[0])
        agg = majority(outcomes, OUTCOME_VALUE)
        self.outcomes[agg.verdict] += 1
        # orders: the judge's answers with this run's output as A, then as B
        extra: dict[str, Any] = {"verdict": agg.verdict, "orders": orders[0] if len(orders) == 1 else orders}
        if len(outcomes) > 1:
            extra["votes"] = agg.votes
        return self._finish(OUTCOME_VALUE[agg.verdict], pairs, err1 + err2, agg, agg.verdict, extra)

    def _finish(self, value: float, ok: list[tuple[Any, str | None]], errors: list[str], agg: Aggregate,
                reason_from: Any, extra: dict[str, Any]) -> Score:
        if len(ok) > 1:
            extra["agreement"] = round(agg.agreement, 4)
            self.agreements.append(agg.agreement)
        if errors:
            extra["sample_errors"] = len(errors)
        reason = next((why for v, why in ok if v == reason_from and why), None) or next(
            (why for _, why in ok if why), None)
        return Score(round(value, 6), value >= self.threshold, reason, None, extra)

    # --- one judge answer ----------------------------------------------------------------

    def _params(self) -> dict[str, Any]:
        p: dict[str, Any] = {"temperature": self.temperature, "response_format": self.config.response_format}
        if self.config.max_tokens is not None:
            p["max_tokens"] = self.config.max_tokens
        return p

    async def _verdict(self, messages: list[dict[str, str]], sample: int) -> tuple[Any, str | None]:
        cfg = self.config
        params = self._params()
        # the server is part of what determines the answer: one model name on two servers
        # (OpenAI and a local vLLM, say) must not share cached verdicts
        key = content_key("llm_judge/v2", cfg.base_url, cfg.model, messages, params, sample + self.sample_offset)
        cache = self.ctx.cache
        if cache is not None:
            hit = await asyncio.to_thread(cache.get_json, CACHE_NS, key)  # SQLite may wait on a lock
            if hit is not None:
                try:
                    verdict = parse_verdict(hit["content"], self.shape)
                except (MalformedVerdict, KeyError, TypeError):
                    pass  # an entry from an older rubric shape: ask again
                else:
                    self.stats.cache_hits += 1
                    self._account(cache_hit=True)
                    return verdict
        payload: dict[str, Any] = {"model": cfg.model, "messages": messages, "temperature": self.temperature}
        if cfg.max_tokens is not None:
            payload["max_tokens"] = cfg.max_tokens
        last: MalformedResponse | None = None
        for _ in range(cfg.retries + 1):
            if self.ctx.cancelled:
                raise ChatCallError("cancelled")
            try:
                done = await self.client.chat(payload, self.shape.response_format)
                content, usage = done.content, done.usage
                self._account(usage=usage)
                verdict = parse_verdict(content, self.shape)
            except MalformedResponse as e:
                self.stats.malformed += 1
                last = e
                continue
            if cache is not None:
                await asyncio.to_thread(cache.put_json, CACHE_NS, key, {"content": content, "usage": usage})
            return verdict
        raise ChatCallError(f"no valid verdict after {cfg.retries + 1} answers: {last}")

    def _account(self, usage: dict[str, int] | None = None, cache_hit: bool = False) -> None:
        """Add to this run's judge usage (ctx.usage['judge'], shared by all judge scorers)."""
        tot = self.ctx.usage.setdefault("judge", {"calls": 0, "cache_hits": 0, "prompt_tokens": 0,
                                                  "completion_tokens": 0, "cost_usd": 0.0})
        if cache_hit:
            tot["cache_hits"] += 1
            return
        if usage is None:
            return
        tot["calls"] += 1
        tot["prompt_tokens"] += usage["prompt_tokens"]
        tot["completion_tokens"] += usage["completion_tokens"]
        cost = cost_usd(self.price, usage["prompt_tokens"], usage["completion_tokens"])
        mine = _RECORD_USAGE.get()
        if mine is not None:
            mine["calls"] += 1
            mine["prompt_tokens"] += usage["prompt_tokens"]
            mine["completion_tokens"] += usage["completion_tokens"]
            if cost is not None:
                mine["cost_usd"] = mine.get("cost_usd", 0.0) + cost
        if cost is None:
            tot["unpriced_calls"] = tot.get("unpriced_calls", 0) + 1
        else:
            self.cost += cost
            tot["cost_usd"] = round(tot["cost_usd"] + cost, 8)

    def _scrub(self, text: str) -> str:
        if self._used_client is not None:
            return self._used_client.scrub(text)
        from evalrun._secrets import Secrets

        return Secrets([*([self._api_key] if self._api_key else []), *self.ctx.secrets]).mask(text)

    # --- summary -------------------------------------------------------------------------

    def summary_extra(self) -> dict[str, Any]:
        if not hasattr(self, "stats"):
            return {}
        cfg = self.config
        out: dict[str, Any] = {
            "rubric": self.rubric.name,
            "judge_model": cfg.model,
            "judge_mode": cfg.mode,
            "judge_samples": cfg.samples,
            "judge_calls": {**self.stats.to_dict(),
                            "cost_usd": round(self.cost, 8) if self.price is not None else None},
        }
        client = self._used_client
        if client is not None:
            lim = client.limiter
            out["judge_concurrency"] = {"max": lim.maximum, "lowest": lim.lowest, "final": lim.limit}
            if client.format_mode != cfg.response_format:
                out["judge_calls"]["response_format_used"] = client.format_mode
        if self.agreements:
            out["judge_agreement"] = {
                "mean": round(mean(self.agreements), 4),
                "unanimous": round(sum(a == 1.0 for a in self.agreements) / len(self.agreements), 4),
                "records": len(self.agreements),
            }
        if cfg.mode == "pairwise":
            consistent, total = self.order_checks
            out["pairwise"] = {**self.outcomes,
                               "order_consistency": round(consistent / total, 4) if total else None}
        if self.calibration is not None:
            out["calibration"] = {**self.calibration.to_dict(), "line": self.calibration.line(self.name)}
        return out


class _TemplateFailure(Exception):
    pass
