"""The connection to Langfuse: keys from the environment only, the SDK's generated REST client
for the JSON API, plain httpx for OTLP, and one retry policy for both.

The SDK's own background queues log and drop what they cannot deliver; here every call is made
in the caller's thread and either returns what Langfuse answered, raises :class:`Refused`
(Langfuse said no: retrying the same request will not help), or raises :class:`Unreachable`
(down, slow, 429/5xx past the retry budget: try again later).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from evalrun._retry import RetryPolicy, retry_after
from evalrun.errors import UsageError

ENV_PUBLIC_KEY = "LANGFUSE_PUBLIC_KEY"
ENV_SECRET_KEY = "LANGFUSE_SECRET_KEY"
ENV_BASE_URL = "LANGFUSE_BASE_URL"
DEFAULT_BASE_URL = "https://cloud.langfuse.com"
HEADER_INGESTION_VERSION = "x-langfuse-ingestion-version"
INGESTION_VERSION = "4"
#: the longest Retry-After we honour; a server asking for more is treated as unavailable

T = TypeVar("T")


@dataclass(frozen=True)
class Credentials:
    base_url: str
    public_key: str
    secret_key: str = field(repr=False)


def credentials() -> Credentials:
    """Keys and URL from the environment; they are never read from or written to a file."""
    pk = os.environ.get(ENV_PUBLIC_KEY, "").strip()
    sk = os.environ.get(ENV_SECRET_KEY, "").strip()
    missing = [n for n, v in ((ENV_PUBLIC_KEY, pk), (ENV_SECRET_KEY, sk)) if not v]
    if missing:
        raise UsageError(f"Langfuse needs {' and '.join(missing)} in the environment "
                         f"(and {ENV_BASE_URL} unless you use {DEFAULT_BASE_URL})")
    base = (os.environ.get(ENV_BASE_URL) or os.environ.get("LANGFUSE_HOST") or DEFAULT_BASE_URL).strip().rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise UsageError(f"{ENV_BASE_URL} must start with http:// or https:// (got {base!r})")
    return Credentials(base, pk, sk)


def name_filter(run_name: str) -> dict[str, Any]:
    """An experiments-API filter matching exactly ``run_name``, commas and all (``name=`` is split
    on commas; a stringOptions filter is not: packages/shared/src/interfaces/filters.ts)."""
    return {"type": "stringOptions", "column": "name", "operator": "any of", "value": [run_name]}


class Unreachable(Exception):
    """Langfuse did not take the request in time (down, slow, rate-limited, 5xx); try later."""


class Refused(Exception):
    """Langfuse answered with a client error: the same request would be refused again."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


def _body_message(body: Any) -> str:
    if isinstance(body, dict):
        for k in ("message", "error", "detail"):
            if body.get(k):
                return str(body[k])[:500]
    return str(body)[:500]


class Client:
    """One Langfuse project. ``budget`` bounds the wall time of everything this client does."""

    def __init__(self, creds: Credentials, *, budget: float | None = None, request_timeout: float = 20.0,
                 attempts: int = 5, connect_attempts: int | None = None, backoff: float = 0.5,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        import httpx

        try:
            from langfuse.api import LangfuseAPI
        except ModuleNotFoundError:
            from evalrun._version import DISTRIBUTION

            raise UsageError(f'Langfuse support is not installed: pip install "{DISTRIBUTION}[langfuse]"') from None

        self.creds = creds
        self.request_timeout = request_timeout
        self.connect_attempts = connect_attempts or attempts
        self.retry = RetryPolicy(attempts=attempts, base=backoff)
        self._sleep = sleep
        self.waited = 0.0  # seconds spent honouring Retry-After and backing off, for reports
        self.http = httpx.Client(timeout=request_timeout)
        from evalrun.langfuse import wire

        #: what the SDK identifies itself with on every request (name, version, public key)
        self.sdk_headers = wire.sdk_headers(creds.public_key)
        self.api = LangfuseAPI(base_url=creds.base_url, username=creds.public_key, password=creds.secret_key,
                               x_langfuse_sdk_name=wire.SDK_NAME,
                               x_langfuse_sdk_version=self.sdk_headers[wire.HEADER_SDK_VERSION],
                               x_langfuse_public_key=creds.public_key, httpx_client=self.http,
                               timeout=request_timeout)
        # the budget is for the network: it starts once the client is built (the SDK's first
        # import of its generated client is not Langfuse's time)
        self.deadline = time.monotonic() + budget if budget is not None else None

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Time spent inside does not count against the budget (local work between calls)."""
        t0 = time.monotonic()
        try:
            yield
        finally:
            if self.deadline is not None:
                self.deadline += time.monotonic() - t0

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def call(self, what: str, fn: Callable[[dict[str, Any]], T]) -> T:
        """``fn(request_options)`` with retries on 429 (after Retry-After), 5xx and transport errors."""
        import httpx
        from langfuse.api.core.api_error import ApiError

        attempt = 0
        connect_failures = 0
        while True:
            attempt += 1
            left = self.remaining()
            if left is not None and left <= 0:
                raise Unreachable(f"{what}: time budget spent")
            timeout = self.request_timeout if left is None else max(0.5, min(self.request_timeout, left))
            wait: float | None = None
            try:
                return fn({"max_retries": 0, "timeout_in_seconds": timeout})
            except ApiError as e:
                status = e.status_code or 0
                if status == 401:
                    raise UsageError(f"Langfuse at {self.creds.base_url} refused the keys (HTTP 401); "
                                     f"check {ENV_PUBLIC_KEY} and {ENV_SECRET_KEY}") from None
                if status == 403:
                    # forbidden is not always the keys: a project whose ingestion is suspended
                    # (usage limits, billing) answers 403 with the reason
                    said = _body_message(e.body) if e.body else ""
                    raise UsageError(f"Langfuse at {self.creds.base_url} refused {what} (HTTP 403"
                                     + (f": {said}" if said else f"; check {ENV_PUBLIC_KEY} and {ENV_SECRET_KEY}")
                                     + ")") from None
                if status and status != 429 and status < 500:
                    raise Refused(status, _body_message(e.body)) from None
                wait = retry_after(e.headers)
                if self.retry.too_long(wait):  # the push can be resent later
                    raise Unreachable(f"{what}: HTTP {status}, Retry-After {wait:g}s") from None
                problem = f"HTTP {status}"
            except httpx.TimeoutException:
                problem = f"no answer within {timeout:g}s"
            except httpx.TransportError as e:
                connect_failures += isinstance(e, httpx.ConnectError)
                problem = f"cannot connect to {self.creds.base_url} ({type(e).__name__})"
                if connect_failures >= self.connect_attempts:
                    raise Unreachable(f"{what}: {problem}") from None
            if not self.retry.retries_left(attempt):
                raise Unreachable(f"{what}: {problem} (gave up after {attempt} attempts)")
            wait = self.retry.delay(attempt, wait)
            left = self.remaining()
            if left is not None and wait >= left:
                raise Unreachable(f"{what}: {problem}; retrying after {wait:.1f}s would pass the time budget")
            self.waited += wait
            self._sleep(wait)

    def post_json(self, path: str, body: Any, options: dict[str, Any]) -> tuple[int, Any]:
        """POST JSON the SDK's way (same auth and headers) without its per-field model
        conversion, which costs more than the request itself for a batch of scores."""
        from evalrun import _json

        resp = self.http.post(
            self.creds.base_url + path, content=_json.dumps_line(body)[:-1],
            auth=(self.creds.public_key, self.creds.secret_key),
            headers={"Content-Type": "application/json", **self.sdk_headers},
            timeout=options.get("timeout_in_seconds") or self.request_timeout)
        return self._answer(resp)

    def get_json(self, path: str, options: dict[str, Any], params: dict[str, Any] | None = None) -> Any:
        """GET a JSON route the SDK's generated client no longer has (Langfuse v3's dataset runs)."""
        resp = self.http.get(
            self.creds.base_url + path, params={k: v for k, v in (params or {}).items() if v is not None},
            auth=(self.creds.public_key, self.creds.secret_key), headers=self.sdk_headers,
            timeout=options.get("timeout_in_seconds") or self.request_timeout)
        return self._answer(resp)[1]

    @staticmethod
    def _answer(resp: Any) -> tuple[int, Any]:
        from langfuse.api.core.api_error import ApiError

        try:
            answer: Any = resp.json() if resp.content else None
        except ValueError:
            answer = resp.text
        if resp.status_code >= 300:
            raise ApiError(status_code=resp.status_code, headers=dict(resp.headers), body=answer)
        return resp.status_code, answer

    def post_otlp(self, body: bytes, options: dict[str, Any]) -> tuple[int, str]:
        """POST an ExportTraceServiceRequest; returns (rejected spans, message) from the OTLP answer."""
        import gzip

        from langfuse.api.core.api_error import ApiError

        resp = self.http.post(
            self.creds.base_url + "/api/public/otel/v1/traces", content=gzip.compress(body, 5),
            auth=(self.creds.public_key, self.creds.secret_key),
            headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip", **self.sdk_headers,
                     # real-time ingestion on Langfuse v4 (older servers ignore the header):
                     # web/src/pages/api/public/otel/v1/traces/index.ts reads it, "4" at most
                     HEADER_INGESTION_VERSION: INGESTION_VERSION},
            timeout=options.get("timeout_in_seconds") or self.request_timeout)
        if resp.status_code >= 300:
            try:
                err_body: Any = resp.json()
            except ValueError:
                err_body = resp.text
            raise ApiError(status_code=resp.status_code, headers=dict(resp.headers), body=err_body)
        if not resp.content or not resp.headers.get("content-type", "").startswith("application/x-protobuf"):
            return 0, ""
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

        answer = ExportTraceServiceResponse()
        answer.ParseFromString(resp.content)
        if answer.HasField("partial_success"):
            return answer.partial_success.rejected_spans, answer.partial_success.error_message
        return 0, ""
