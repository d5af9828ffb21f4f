"""A local stand-in for an OpenAI-compatible judge: a real HTTP server on 127.0.0.1 that
speaks the chat-completions wire format (``POST /v1/chat/completions``) and grades
deterministically.

Grading: the verdict shape comes from ``response_format`` (json_schema) or, without it, from
the format line the judge appends to its prompt. The verdict is taken from markers in the
prompt: ``[[judge:X]]`` (``[[judge:5|3|5]]`` cycles through values when the same prompt is
asked again; in a pairwise prompt the first marker belongs to response A, the second to B
and the higher one wins). Without a marker the verdict is a hash of the prompt.

Failure modes, server-wide (constructor / command-line flags): ``latency``, ``rate_429``
(that fraction of distinct prompts gets one 429 on its first try), ``retry_after``,
``first_429`` (the first N requests all get 429), ``max_concurrent`` (429 for requests
beyond N in flight, as a per-key concurrency limit does), ``first_500``, ``answer_format`` (json |
fenced | prose | garbage), ``reject_schema`` (400 for json_schema, like servers without
structured output), ``require_key``. Per prompt: ``[[malformed]]`` / ``[[malformed:N]]``
(no verdict, always / the first N times), ``[[status:500:N]]``, ``[[429:N]]``, ``[[slow:S]]``,
``[[bias:A]]`` (always answer A: a position-biased judge), ``[[badjson]]`` (a body that is
not JSON). Per model: ``flip-P`` answers another option than the marker's on a share P of
prompts (a judge of known agreement, for calibration).

As a chat model (the ``chat`` target): a prompt with ``[[say:TEXT]]`` and no verdict format is
answered with TEXT (the last such marker, so a user message can override a system one) and
``finish_reason`` "stop", or "length" with ``[[finish:length]]``; one without markers or a
format gets an echo of its last message. ``state.bodies`` keeps every request body.

As a tool-calling model (a request with ``tools``): the system/user messages script the agent.
Each ``[[call:NAME ARGS]]`` marker is one model turn that calls NAME with the argument text ARGS
(sent verbatim, so a marker can carry broken JSON; ``[[call:a {..} && b {..}]]`` is one turn
with parallel calls). Turns already taken are counted from the assistant messages with
``tool_calls`` in the conversation; once all are taken the model answers as above.
``[[skip:NAME]]`` drops NAME's calls and ``[[replace:OLD=NEW]]`` calls NEW instead of OLD (a
prompt that makes the model skip a required tool or call a forbidden one); a tool not in the
request's ``tools``, or any tool under ``tool_choice: "none"``, is never called, as with a real
model. The answer has OpenAI's shape (``message.tool_calls[]`` = ``{id, type: "function",
function: {name, arguments: <JSON text>}}``, ``content`` null, ``finish_reason`` "tool_calls",
per the chat-completions API reference), and a conversation that breaks the protocol is
refused with the 400 errors OpenAI sends: a ``tool`` message that answers no preceding
``tool_calls``, or ``tool_calls`` without a ``tool`` message for each id.

Run in a thread (``with OpenAIServer(...) as srv``) or as a process:
``python -m tests.openai_server --port 0 --latency 0.2 --rate-429 0.1`` prints ``PORT <n>``.
``GET /stats`` returns the counters as JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_MARK = re.compile(r"\[\[judge:([^\]]+)\]\]")
_FORMAT_LINE = re.compile(r'"(score|choice|winner)": <one of ([^>]*)>')
_SAY = re.compile(r"\[\[say:(.*?)\]\]", re.S)
_CALL = re.compile(r"\[\[call:(.*?)\]\]", re.S)
_SKIP = re.compile(r"\[\[skip:([\w.-]+)\]\]")
_REPLACE = re.compile(r"\[\[replace:([\w.-]+)=([\w.-]+)\]\]")


def _h(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:12], 16)


class ServerState:
    def __init__(self, *, latency: float = 0.0, rate_429: float = 0.0, retry_after: float = 1.0,
                 first_429: int = 0, first_500: int = 0, answer_format: str = "json",
                 reject_schema: bool = False, require_key: str | None = None, max_concurrent: int = 0) -> None:
        self.latency = latency
        self.rate_429 = rate_429
        self.retry_after = retry_after
        self.first_429 = first_429
        self.first_500 = first_500
        self.answer_format = answer_format
        self.reject_schema = reject_schema
        self.require_key = require_key
        self.max_concurrent = max_concurrent
        self.lock = threading.Lock()
        self.requests = 0
        self.statuses: Counter[int] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self.seen_prompts: Counter[str] = Counter()
        self.auth_headers: set[str] = set()
        self.response_formats: Counter[str] = Counter()
        self.models: Counter[str] = Counter()
        self.prompts: list[str] = []  # every prompt received, in arrival order
        self.bodies: list[dict[str, Any]] = []  # every chat-completions body, in arrival order

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {"requests": self.requests, "statuses": {str(k): v for k, v in self.statuses.items()},
                    "max_in_flight": self.max_in_flight, "distinct_prompts": len(self.seen_prompts),
                    "response_formats": dict(self.response_formats), "models": dict(self.models)}


def _shape(body: dict[str, Any], prompt: str) -> tuple[str, list[Any]]:
    rf = body.get("response_format") or {}
    if rf.get("type") == "json_schema":
        props = rf["json_schema"]["schema"]["properties"]
        key = next(k for k in props if k != "reasoning")
        return key, list(props[key]["enum"])
    m = _FORMAT_LINE.search(prompt)
    if not m:
        return "score", [1, 2, 3, 4, 5]
    return m.group(1), json.loads("[" + m.group(2) + "]")


def grade(prompt: str, key: str, options: list[Any], nth: int) -> tuple[Any, str]:
    """(verdict, reasoning) for ``prompt``, asked for the ``nth`` time (0-based)."""
    if key == "winner":
        bias = re.search(r"\[\[bias:(\w+)\]\]", prompt)
        if bias:
            return bias.group(1), "I prefer the response in that position."
        marks = _MARK.findall(prompt)
        if len(marks) >= 2:
            a, b = (float(m.split("|")[nth % len(m.split("|"))]) for m in marks[:2])
            winner = "A" if a > b else "B" if b > a else "tie"
            return winner, f"A is worth {a:g}, B is worth {b:g}."
        return options[_h(prompt) % len(options)], "No markers; picked by hash."
    marks = _MARK.findall(prompt)
    if marks:
        values = marks[0].split("|")
        raw = values[nth % len(values)]
        verdict: Any = int(raw) if key == "score" and raw.lstrip("-").isdigit() else raw
        return verdict, f"The marker says {raw}."
    return options[_h(prompt) % len(options)], "No marker; picked by hash."


def _content(state: ServerState, key: str, verdict: Any, reason: str) -> str:
    obj = {"reasoning": reason, key: verdict}
    fmt = state.answer_format
    if fmt == "fenced":
        return "Here is my verdict:\n```json\n" + json.dumps(obj, indent=2) + "\n```\n"
    if fmt == "prose":
        return f"{reason}\n\n{key.capitalize()}: {verdict}"
    if fmt == "garbage":
        return "I would rather not say."
    return json.dumps(obj)


def _noisy(model: str, prompt: str, key: str, options: list[Any], verdict: Any) -> Any:
    """A judge model named ``flip-P`` (``flip-0.1``) answers another option than the marker's
    on a share P of prompts (chosen by a hash of model and prompt, so the same prompt gets the
    same answer): a judge whose agreement with the markers is known."""
    m = re.fullmatch(r"flip-([\d.]+)", model)
    if not m or key == "winner" or verdict not in options or len(options) < 2:
        return verdict
    if _h("flip" + model + prompt) % 100_000 >= float(m.group(1)) * 100_000:
        return verdict
    others = [o for o in options if o != verdict]
    return others[_h("other" + prompt) % len(others)]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # headers and body go out in separate writes; with Nagle on, the body would wait for a
    # delayed ACK (~40 ms) and the fake would be slower than the servers it stands in for
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None, raw: bytes | None = None
              ) -> None:
        data = raw if raw is not None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (a timeout test): nothing to answer
        with self.server.state.lock:
            self.server.state.statuses[status] += 1

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/stats"):
            self._send(200, self.server.state.stats())
        else:
            self._send(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        st = self.server.state
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        with st.lock:
            st.requests += 1
            n = st.requests
            st.in_flight += 1
            st.max_in_flight = max(st.max_in_flight, st.in_flight)
            over_limit = bool(st.max_concurrent) and st.in_flight > st.max_concurrent
            st.auth_headers.add(self.headers.get("Authorization") or "")
        try:
            self._answer(st, n, raw, over_limit)
        finally:
            with st.lock:
                st.in_flight -= 1

    def _answer(self, st: ServerState, n: int, raw: bytes, over_limit: bool = False) -> None:
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send(404, {"error": {"message": f"unknown path {self.path}", "type": "invalid_request_error"}})
            return
        if st.require_key and self.headers.get("Authorization") != f"Bearer {st.require_key}":
            self._send(401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}})
            return
        try:
            body = json.loads(raw)
            messages = body["messages"]
            prompt = "\n".join(str(m.get("content", "")) for m in messages)
        except (ValueError, KeyError, TypeError):
            self._send(400, {"error": {"message": "invalid JSON body", "type": "invalid_request_error"}})
            return
        rf_type = (body.get("response_format") or {}).get("type", "none")
        with st.lock:
            nth = st.seen_prompts[prompt]
            st.seen_prompts[prompt] += 1
            st.response_formats[rf_type] += 1
            st.models[str(body.get("model"))] += 1
            st.prompts.append(prompt)
            st.bodies.append(body)
        if st.reject_schema and rf_type == "json_schema":
            self._send(400, {"error": {"message": "response_format of type json_schema is not supported by this model",
                                       "type": "invalid_request_error", "param": "response_format"}})
            return
        # a rate limiter turns a request away at once, before any model work
        if over_limit or n <= st.first_429 or self._per_prompt(prompt, r"\[\[429:(\d+)\]\]", nth) or (
                nth == 0 and st.rate_429 and (_h("429" + prompt) % 10_000) < st.rate_429 * 10_000):
            self._send(429, {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}},
                       {"Retry-After": f"{st.retry_after:g}"})
            return
        slow = re.search(r"\[\[slow:([\d.]+)\]\]", prompt)
        time.sleep(float(slow.group(1)) if slow else st.latency)
        if (st.first_429 < n <= st.first_429 + st.first_500) or self._per_prompt(prompt, r"\[\[status:500:(\d+)\]\]", nth):
            self._send(500, {"error": {"message": "The server had an error while processing your request.",
                                       "type": "server_error"}})
            return
        if "[[badjson]]" in prompt:
            self._send(200, None, raw=b'{"id": "x", "choices": [')
            return
        if body.get("tools"):
            problem = _tool_protocol_problem(messages)
            if problem:
                self._send(400, {"error": {"message": problem, "type": "invalid_request_error", "param": "messages",
                                           "code": None}})
                return
            if self._tool_turn(n, body):
                return
        if not body.get("response_format") and not _FORMAT_LINE.search(prompt):
            self._reply(n, body, prompt)
            return
        key, options = _shape(body, prompt)
        verdict, reason = grade(prompt, key, options, nth)
        verdict = _noisy(str(body.get("model")), prompt, key, options, verdict)
        malformed = re.search(r"\[\[malformed(?::(\d+))?\]\]", prompt)
        if malformed and (malformed.group(1) is None or nth < int(malformed.group(1))):
            content = "Well, it depends on how you look at it."
        else:
            content = _content(st, key, verdict, reason)
        usage = {"prompt_tokens": len(prompt) // 4 + 1, "completion_tokens": len(content) // 4 + 1}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        self._send(200, {
            "id": f"chatcmpl-{n}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": usage,
        })

    def _reply(self, n: int, body: dict[str, Any], prompt: str) -> None:
        """Answer as a chat model: the last ``[[say:...]]`` marker, else an echo of the last message."""
        said = _SAY.findall(prompt)
        content = said[-1] if said else f"echo: {body['messages'][-1].get('content', '')}"
        finish = "length" if "[[finish:length]]" in prompt else "stop"
        usage = {"prompt_tokens": len(prompt) // 4 + 1, "completion_tokens": len(content) // 4 + 1}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        self._send(200, {
            "id": f"chatcmpl-{n}", "object": "chat.completion", "created": int(time.time()),
            "model": f"{body.get('model')}-2026-01-01",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}],
            "usage": usage,
        })

    def _tool_turn(self, n: int, body: dict[str, Any]) -> bool:
        """Answer with the script's next tool calls, if any are left; False when none are."""
        if body.get("tool_choice") == "none":
            return False
        script = "\n".join(str(m.get("content") or "") for m in body["messages"]
                           if m.get("role") in ("system", "developer", "user"))
        declared = {t.get("function", {}).get("name") for t in body["tools"] if isinstance(t, dict)}
        skip = set(_SKIP.findall(script))
        rename = dict(_REPLACE.findall(script))
        turns = []
        for marker in _CALL.findall(script):
            turn = []
            for part in marker.split("&&"):
                name, _, args = part.strip().partition(" ")
                name = rename.get(name, name)
                if name and name not in skip and name in declared:
                    turn.append((name, args.strip() or "{}"))
            if turn:
                turns.append(turn)
        taken = sum(1 for m in body["messages"] if m.get("role") == "assistant" and m.get("tool_calls"))
        if taken >= len(turns):
            return False
        calls = [{"id": f"call_{n}_{i}", "type": "function", "function": {"name": name, "arguments": args}}
                 for i, (name, args) in enumerate(turns[taken])]
        usage = {"prompt_tokens": len(json.dumps(body["messages"])) // 4 + 1, "completion_tokens": 12 * len(calls)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        self._send(200, {
            "id": f"chatcmpl-{n}", "object": "chat.completion", "created": int(time.time()),
            "model": f"{body.get('model')}-2026-01-01",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": None, "tool_calls": calls,
                                                 "refusal": None, "annotations": []},
                         "logprobs": None, "finish_reason": "tool_calls"}],
            "usage": usage,
        })
        return True

    @staticmethod
    def _per_prompt(prompt: str, pattern: str, nth: int) -> bool:
        m = re.search(pattern, prompt)
        return bool(m) and nth < int(m.group(1))


def _tool_protocol_problem(messages: list[dict[str, Any]]) -> str | None:
    """The 400 message OpenAI gives a conversation whose tool messages do not pair with the
    assistant's ``tool_calls`` (the texts OpenAI's API returns for these two cases), or None."""
    pending: list[str] = []
    for m in messages:
        role = m.get("role")
        if role == "tool":
            if m.get("tool_call_id") not in pending:
                return ("Invalid parameter: messages with role 'tool' must be a response to a preceeding message "
                        "with 'tool_calls'.")
            pending.remove(m["tool_call_id"])
            continue
        if pending:
            break
        if role == "assistant" and m.get("tool_calls"):
            pending = [str(c.get("id")) for c in m["tool_calls"]]
    if pending:
        return ("An assistant message with 'tool_calls' must be followed by tool messages responding to each "
                f"'tool_call_id'. The following tool_call_ids did not have response messages: {', '.join(pending)}")
    return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    state: ServerState


class OpenAIServer:
    """The server in a background thread: ``with OpenAIServer(latency=0.1) as srv: srv.url``."""

    def __init__(self, port: int = 0, **options: Any) -> None:
        self.httpd = _Server(("127.0.0.1", port), _Handler)
        self.httpd.state = ServerState(**options)
        # a short poll: shutdown() waits up to one poll interval, at the end of every test using the server
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       name="openai-server", daemon=True)

    @property
    def state(self) -> ServerState:
        return self.httpd.state

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> OpenAIServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--latency", type=float, default=0.0)
    ap.add_argument("--rate-429", type=float, default=0.0)
    ap.add_argument("--retry-after", type=float, default=1.0)
    ap.add_argument("--first-429", type=int, default=0)
    ap.add_argument("--first-500", type=int, default=0)
    ap.add_argument("--max-concurrent", type=int, default=0)
    ap.add_argument("--answer-format", default="json", choices=["json", "fenced", "prose", "garbage"])
    ap.add_argument("--reject-schema", action="store_true")
    ap.add_argument("--require-key-env", help="expect the key held by this environment variable")
    a = ap.parse_args(argv)
    import os

    httpd = _Server(("127.0.0.1", a.port), _Handler)
    httpd.state = ServerState(latency=a.latency, rate_429=a.rate_429, retry_after=a.retry_after,
                              first_429=a.first_429, first_500=a.first_500, answer_format=a.answer_format,
                              max_concurrent=a.max_concurrent,
                              reject_schema=a.reject_schema,
                              require_key=os.environ.get(a.require_key_env) if a.require_key_env else None)
    print(f"PORT {httpd.server_address[1]}", flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
    sys.exit(0)


if __name__ == "__main__":
    main()
