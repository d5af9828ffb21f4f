"""A local stand-in for the two Langfuse public-API routes a harvest reads: a real HTTP server
on 127.0.0.1. Each rule cites the server source it follows (langfuse/langfuse at 6275144614):

- ``GET /api/public/traces``: query ``page`` (default 1), ``limit`` (default 50), ``name``,
  ``userId``, ``sessionId``, ``version``, ``release``, ``environment``, ``tags`` (repeatable; a
  trace must carry every one), ``fromTimestamp`` (inclusive), ``toTimestamp`` (exclusive)
  (GetTracesV1Query in web/src/features/public-api/types/traces.ts); each trace in the
  APIExtendedTrace shape, ``scores`` as score ids only (same file); ``meta`` = ``{page, limit,
  totalItems, totalPages}`` (paginationMetaResponseZod, packages/shared/src/utils/zod.ts);
- ``GET /api/public/v2/scores``: ``page``, ``limit``, ``name``, ``traceId``
  (web/src/pages/api/public/v2/scores/index.ts), the same ``meta``;
- Basic auth with the public key as user and the secret key as password, 401 otherwise
  (createAuthedProjectAPIRoute).
"""

from __future__ import annotations

import base64
import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

PUBLIC, SECRET = "pk-lf-test", "sk-lf-test"


class TracesServer:
    def __init__(self, traces: list[dict[str, Any]], scores: list[dict[str, Any]]) -> None:
        self.traces = sorted(traces, key=lambda t: t["timestamp"], reverse=True)  # newest first, as the API
        self.scores = scores
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def do_GET(self) -> None:
                outer.requests.append(self.path)
                want = "Basic " + base64.b64encode(f"{PUBLIC}:{SECRET}".encode()).decode()
                if self.headers.get("Authorization") != want:
                    return self._send(401, {"message": "Unauthorized"})
                url = urlsplit(self.path)
                q = parse_qs(url.query)
                page = int(q.get("page", ["1"])[0])
                limit = int(q.get("limit", ["50"])[0])
                if url.path == "/api/public/traces":
                    rows = [t for t in outer.traces if _match_trace(t, q)]
                elif url.path == "/api/public/v2/scores":
                    rows = [s for s in outer.scores if all(s.get(k) == q[k][0] for k in ("name", "traceId") if k in q)]
                else:
                    return self._send(404, {"message": "not found"})
                chunk = rows[(page - 1) * limit: page * limit]
                self._send(200, {"data": chunk, "meta": {"page": page, "limit": limit, "totalItems": len(rows),
                                                         "totalPages": math.ceil(len(rows) / limit)}})

            def _send(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> TracesServer:
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def env(self) -> dict[str, str]:
        return {"LANGFUSE_BASE_URL": self.url, "LANGFUSE_PUBLIC_KEY": PUBLIC, "LANGFUSE_SECRET_KEY": SECRET}


def _match_trace(t: dict[str, Any], q: dict[str, list[str]]) -> bool:
    for key in ("name", "userId", "sessionId", "version", "release", "environment"):
        if key in q and t.get(key) != q[key][0]:
            return False
    if "tags" in q and not set(q["tags"]) <= set(t.get("tags") or []):
        return False
    if "fromTimestamp" in q and t["timestamp"] < q["fromTimestamp"][0].replace("+00:00", "Z"):
        return False
    return not ("toTimestamp" in q and t["timestamp"] >= q["toTimestamp"][0].replace("+00:00", "Z"))
