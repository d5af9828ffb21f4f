"""Calls to an OpenAI-compatible chat-completions endpoint, robust under rate limits; shared
by the LLM judge (one client per judge scorer) and the ``chat`` target.

A :class:`ChatClient` bounds calls in flight with an adaptive limit
(AIMD: halve it when most recent answers are 429s, add one back per window of successes),
retries 429/5xx/timeouts/dropped connections honouring ``Retry-After`` with jittered
exponential backoff otherwise, falls back from ``json_schema`` structured output when a
server rejects it, and gives up early on errors every call would repeat (bad key, unknown
model, unreachable server). The API key lives only in the request headers.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

import httpx

from evalrun._http import Answer, ResponseTooLarge, send_capped
from evalrun._retry import RetryPolicy
from evalrun._retry import retry_after as shared_retry_after
from evalrun._secrets import Secrets, url_values

# After this many transport failures in a row with no HTTP answer in between, the server is
# taken as unreachable and the remaining calls fail at once instead of each backing off.
UNREACHABLE_AFTER = 12


class ChatCallError(Exception):
    """A call that failed for good (after retries, or with an error retrying cannot fix).

    ``retryable`` says whether another try later might succeed (429, 5xx, timeout, dropped
    connection) and ``retry_after`` what the server asked to wait; a caller that owns its own
    retries (the chat target: the engine retries) builds a client with ``retries=0`` and reads them.
    """

    def __init__(self, message: str, retryable: bool = False, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


class MalformedResponse(ValueError):
    """A 200 answer that holds no usable message (not JSON, no choices, a refusal)."""


@dataclass(frozen=True)
class Completion:
    """One answer: the first choice's text, token usage, why it stopped, and which model answered."""

    content: str
    usage: dict[str, int]
    finish_reason: str | None = None
    model: str | None = None
    #: the whole message (its ``tool_calls`` among the rest), for the chat target's tool loop
    message: dict[str, Any] | None = field(default=None, compare=False, repr=False)


@dataclass
class CallStats:
    """Counters of one client's HTTP traffic, reported in summary.json."""

    calls: int = 0  # HTTP requests sent
    retries: int = 0
    rate_limited: int = 0  # 429 answers
    server_errors: int = 0  # 5xx / 408 answers
    timeouts: int = 0
    connection_errors: int = 0
    malformed: int = 0  # answers holding no valid verdict
    format_fallbacks: int = 0  # server rejected json_schema; asked again with a simpler format
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def to_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class AdaptiveLimiter:
    """A semaphore whose size moves between 1 and ``maximum``: cut in half when at least half
    of the recent answers were 429s (at most once per ``cooldown`` seconds, so one burst
    counts once), grown by one per ``limit`` successes while 429s are rare again (under an
    eighth of the recent answers). A background of isolated 429s, which any busy endpoint
    sends, neither cuts it nor stops it from growing back."""

    def __init__(self, maximum: int, cooldown: float = 1.0) -> None:
        self.maximum = maximum
        self.limit = maximum
        self.lowest = maximum
        self.in_flight = 0
        self.cooldown = cooldown
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._recent: deque[bool] = deque(maxlen=max(8, min(64, 2 * maximum)))
        self._successes = 0  # since the limit last changed
        self._last_cut = float("-inf")

    async def acquire(self) -> None:
        if self.in_flight < self.limit and not self._waiters:
            self.in_flight += 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # the slot was handed to us just before the cancel
            elif fut in self._waiters:
                self._waiters.remove(fut)
            raise

    def release(self) -> None:
        self.in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        # hand free slots to waiters first come, first served; the slot is counted for them here
        while self.in_flight < self.limit and self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                self.in_flight += 1
                fut.set_result(None)

    def on_success(self) -> None:
        self._recent.append(False)
        self._successes += 1
        if self._successes >= self.limit and self.limit < self.maximum and 8 * sum(self._recent) < len(self._recent):
            self.limit += 1
            self._successes = 0
            self._wake()

    def on_rate_limited(self) -> None:
        self._recent.append(True)
        now = time.monotonic()
        hits = sum(self._recent)
        if len(self._recent) >= 8 and 2 * hits >= len(self._recent) and now - self._last_cut >= self.cooldown:
            self.limit = max(1, self.limit // 2)
            self.lowest = min(self.lowest, self.limit)
            self._last_cut = now
            self._successes = 0
            self._recent.clear()  # judge the new limit by its own answers


def retry_after(resp: Answer) -> float | None:
    """Seconds the server asks us to wait, or None."""
    return shared_retry_after(resp.headers)


def _error_text(resp: Answer, mask: Callable[[str], str]) -> str:
    """What an error answer says, secrets masked before it is cut."""
    try:
        data = resp.json()
    except ValueError:
        return mask(resp.text.strip())[:200]
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict):
        return mask(str(err.get("message") or err))[:300]
    if err:
        return mask(str(err))[:300]
    return mask(str(data))[:200]


def message_content(data: Any) -> Completion:
    """The first choice's text, token usage, finish reason and model of a chat-completions response."""
    try:
        choice = data["choices"][0]
        message = choice["message"]
    except (KeyError, IndexError, TypeError):
        raise MalformedResponse("response has no choices[0].message") from None
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, list):  # content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if not content and isinstance(message, dict) and message.get("refusal"):
        raise MalformedResponse(f"the model refused: {message['refusal']}")  # the client masks, then cuts
    usage = data.get("usage") or {}
    prompt = usage.get("prompt_tokens", usage.get("input_tokens", 0)) or 0
    completion = usage.get("completion_tokens", usage.get("output_tokens", 0)) or 0
    reason = choice.get("finish_reason") if isinstance(choice, dict) else None
    model = data.get("model")
    return Completion(str(content or ""), {"prompt_tokens": int(prompt), "completion_tokens": int(completion)},
                      str(reason) if reason is not None else None, str(model) if model is not None else None,
                      message if isinstance(message, dict) else None)


_DOWNGRADE = {"json_schema": "json_object", "json_object": "none"}


#: ``response_format`` for a mode ("json_schema", "json_object", "none"), or None to send none
FormatFor = Callable[[str], dict[str, Any] | None]


class ChatClient:
    """``label`` names the endpoint in error messages ("judge endpoint answered HTTP 401 ...");
    ``secrets`` are more values to mask in them (what the ``${VAR}``s of its config section
    expand to), besides the API key and the credentials in ``base_url``."""

    def __init__(self, base_url: str, api_key: str | None, *, timeout: float, retries: int, concurrency: int,
                 response_format: str = "none", stats: CallStats | None = None, label: str = "judge",
                 secrets: list[str] | tuple[str, ...] = ()) -> None:
        self.label = label
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retry = RetryPolicy(attempts=retries + 1)
        self.format_mode = response_format
        self.stats = stats if stats is not None else CallStats()
        self.limiter = AdaptiveLimiter(concurrency)
        self._secret = api_key or None
        self._secrets = Secrets([*url_values(self.base_url), *secrets])
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=headers, timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency))
        self._fatal: str | None = None
        self._transport_failures = 0

    def scrub(self, text: str) -> str:
        """``text`` with the API key and other secrets masked (a server may echo them back in
        an error, and ``base_url`` may carry some); mask before cutting any text."""
        if self._secret:
            text = text.replace(self._secret, "***")
        return self._secrets.mask(text)

    async def close(self) -> None:
        await self._http.aclose()

    async def chat(self, payload: dict[str, Any], format_for: FormatFor | None = None) -> Completion:
        """Send one chat completion (asking for ``format_for(mode)`` as ``response_format``)."""
        await self.limiter.acquire()
        try:
            return await self._chat(payload, format_for)
        finally:
            self.limiter.release()

    async def _chat(self, payload: dict[str, Any], format_for: FormatFor | None) -> Completion:
        attempt = 0
        while True:
            if self._fatal:
                raise ChatCallError(self._fatal)
            body = dict(payload)
            rf = format_for(self.format_mode) if format_for is not None else None
            if rf is not None:
                body["response_format"] = rf
            self.stats.calls += 1
            wait: float | None = None
            try:
                async with asyncio.timeout(self.timeout):
                    resp = await send_capped(self._http, "POST", "/chat/completions", json=body)
            except (ResponseTooLarge, httpx.DecodingError) as e:
                raise ChatCallError(f"{self.label} endpoint: {self.scrub(str(e))[:300]}") from None
            except (TimeoutError, httpx.TimeoutException):
                self.stats.timeouts += 1
                problem = f"no answer within {self.timeout:g}s"
            except httpx.TransportError as e:
                self.stats.connection_errors += 1
                self._transport_failures += 1
                problem = self.scrub(f"cannot reach {self.base_url}: {type(e).__name__}: {e}")[:400]
                if self._transport_failures >= UNREACHABLE_AFTER:
                    self._fatal = problem
            else:
                self._transport_failures = 0
                status = resp.status_code
                if status == 200:
                    try:
                        data = resp.json()
                    except ValueError:
                        raise MalformedResponse(f"response is not JSON: {self.scrub(resp.text)[:120]!r}") from None
                    self.limiter.on_success()
                    try:
                        done = message_content(data)
                    except MalformedResponse as e:
                        raise MalformedResponse(self.scrub(str(e))[:300]) from None
                    self.stats.prompt_tokens += done.usage["prompt_tokens"]
                    self.stats.completion_tokens += done.usage["completion_tokens"]
                    return done
                detail = _error_text(resp, self.scrub)
                problem = f"HTTP {status}: {detail}"
                if status == 429:
                    self.stats.rate_limited += 1
                    self.limiter.on_rate_limited()
                    wait = retry_after(resp)
                elif status >= 500 or status == 408:
                    self.stats.server_errors += 1
                    wait = retry_after(resp)
                elif status in (400, 422) and rf is not None and _about_format(detail):
                    # an older or local server without structured output: ask the same
                    # question with a simpler format, for this and every later call
                    if self.format_mode == body["response_format"]["type"]:
                        self.format_mode = _DOWNGRADE[self.format_mode]
                        self.stats.format_fallbacks += 1
                    continue
                elif status in (401, 403, 404):
                    hint = {401: "check the API key variable", 403: "check the API key's access",
                            404: "check base_url and model"}[status]
                    self._fatal = f"{self.label} endpoint answered {problem} ({hint})"
                    raise ChatCallError(self._fatal)
                else:
                    raise ChatCallError(f"{self.label} endpoint answered {problem}")
            attempt += 1
            if not self.retry.retries_left(attempt) or self._fatal:
                if self._fatal:
                    raise ChatCallError(self._fatal)
                raise ChatCallError(f"{problem} (gave up after {attempt} attempts)", retryable=True,
                                    retry_after=wait)
            self.stats.retries += 1
            await asyncio.sleep(self.retry.delay(attempt, wait))


def _about_format(detail: str) -> bool:
    d = detail.lower()
    return "response_format" in d or "json_schema" in d or "structured" in d or "json mode" in d
