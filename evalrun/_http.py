"""Reading an HTTP answer with a size limit: the http target, the chat target and the LLM
judge read every answer through :func:`send_capped`, so no server (a 200 MB body, a 1 MB gzip
that inflates to 1 GB) can make evalrun hold more than ``MAX_RESPONSE_BYTES`` of one answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

#: the largest answer read, counted after decompression (the body as the client sees it)
MAX_RESPONSE_BYTES = 32 * 1024 * 1024


class ResponseTooLarge(Exception):
    """An answer past ``MAX_RESPONSE_BYTES``: the call fails with this, the rest is not read."""

    def __init__(self, limit: int, declared: int | None = None) -> None:
        size = f" (it declares {declared:,} bytes)" if declared is not None else ""
        super().__init__(f"the response is larger than {limit / (1024 * 1024):g} MiB, the limit for one "
                         f"answer{size}; the rest was not read")


@dataclass(frozen=True, slots=True)
class Answer:
    """A whole answer, read within the limit: what the callers used of ``httpx.Response``."""

    status_code: int
    headers: httpx.Headers
    content: bytes
    encoding: str | None

    @property
    def text(self) -> str:
        return self.content.decode(self.encoding or "utf-8", errors="replace")

    def json(self) -> Any:
        import json  # (as httpx reads it: NaN, escaped lone surrogates...)

        return json.loads(self.content)


async def send_capped(client: httpx.AsyncClient, method: str, url: str, *, limit: int | None = None,
                      **kwargs: Any) -> Answer:
    """``client.request(method, url, **kwargs)``, its body read (decompressed) up to ``limit``
    (default ``MAX_RESPONSE_BYTES``) bytes; ResponseTooLarge past it. httpx's own errors
    (timeouts, dropped connections, a body that does not decompress) pass."""
    limit = MAX_RESPONSE_BYTES if limit is None else limit
    request = client.build_request(method, url, **kwargs)
    resp = await client.send(request, stream=True)
    try:
        declared = resp.headers.get("content-length", "")
        # (a compressed body's declared length says nothing of its size once inflated)
        if declared.isdigit() and int(declared) > limit and not resp.headers.get("content-encoding"):
            raise ResponseTooLarge(limit, int(declared))
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.aiter_bytes():
            size += len(chunk)
            if size > limit:
                raise ResponseTooLarge(limit)
            chunks.append(chunk)
        return Answer(resp.status_code, resp.headers, b"".join(chunks), resp.charset_encoding)
    finally:
        await resp.aclose()
