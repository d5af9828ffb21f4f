"""What is evaluated: a Python callable, a shell command, an HTTP endpoint, or a chat model
(:mod:`evalrun.chat`).

Every target turns an item's input into a :class:`Call` (output and usage) or raises.
Errors that are worth another try (timeouts, 429, 5xx, dropped connections) are raised
as :class:`~evalrun.errors.RetryableError`; the engine owns retries and timeouts.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import shlex
import signal
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalrun import _json
from evalrun._retry import retry_after
from evalrun._user_modules import import_user_module
from evalrun.errors import RetryableError, UsageError
from evalrun.records import Item


@dataclass(slots=True)
class Output:
    """Return this from a Python target to report usage with the output.

    ``usage`` is free-form token counts (``{"input_tokens": 12, "output_tokens": 40}``);
    ``cost_usd`` adds to the run's cost; ``metadata`` (model, finish reason, prompt...) is
    saved with the record as ``target_metadata``.
    """

    value: Any
    usage: dict[str, Any] | None = None
    cost_usd: float | None = None
    metadata: dict[str, Any] | None = None


@dataclass(slots=True)
class Call:
    output: Any
    usage: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None


class TargetError(Exception):
    """A target call failed in a way that is not worth retrying (bad output, exit code...)."""


def _check_json(value: Any) -> None:
    try:
        _json.dumps_strict(value)
    except TypeError as e:
        raise TargetError(f"output is not JSON-serialisable: {e}") from None


def _unwrap(value: Any) -> Call:
    if isinstance(value, Output):
        usage = dict(value.usage or {})
        if value.cost_usd is not None:
            usage["cost_usd"] = value.cost_usd
        _check_json(value.value)
        if value.metadata is not None:
            _check_json(value.metadata)
        return Call(value.value, usage or None, dict(value.metadata) if value.metadata else None)
    _check_json(value)
    return Call(value)


def dig(data: Any, path: str) -> Any:
    """Follow a dotted path (``choices.0.message.content``) into JSON data; KeyError if absent."""
    if not path:
        return data
    cur = data
    for part in path.split("."):
        if isinstance(cur, list):
            try:
                cur = cur[int(part)]
            except (ValueError, IndexError):
                raise KeyError(path) from None
        elif isinstance(cur, dict) and part in cur:
            cur = cur[part]
        else:
            raise KeyError(path)
    return cur


class Target:
    async def start(self) -> None:
        pass

    async def call(self, input: Any) -> Call:
        raise NotImplementedError

    async def call_item(self, item: Item) -> Call:
        """One call for ``item``; targets that see more than the input (chat) override this."""
        return await self.call(item.input)

    def check(self, items: list[Item]) -> None:
        """Raise UsageError if some item cannot be called (before any call is made)."""

    def cache_key(self, item: Item) -> Any:
        """What, besides the target section, determines this item's answer."""
        return item.input

    def info(self) -> dict[str, Any]:
        """What the manifest records about the target beyond its config (a resolved prompt)."""
        return {}

    async def close(self) -> None:
        pass



class PythonTarget(Target):
    def __init__(self, spec: str, base_dir: Path, concurrency: int, error: Any) -> None:
        self.spec = spec
        module_name, _, attr = spec.partition(":")
        try:
            module = import_user_module(module_name, base_dir)
        except ModuleNotFoundError as e:
            raise error(f"target module '{module_name}' not importable: {e}") from None
        except SyntaxError as e:
            raise error(f"target module '{module_name}' has a syntax error: {e.filename}:{e.lineno}: {e.msg}") from None
        except Exception as e:  # the user's module raised while importing
            raise error(f"target module '{module_name}' failed to import: {type(e).__name__}: {e}") from None
        fn: Any = module
        for part in attr.split("."):
            fn = getattr(fn, part, None)
            if fn is None:
                public = [n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n))]
                from evalrun.config import suggest

                raise error(f"target function '{attr}' not found in module '{module_name}'{suggest(attr, public)}")
        if not callable(fn):
            raise error(f"target '{spec}' is not callable")
        self.fn = fn
        self.is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__)
        # sync targets run in threads: one per concurrency slot, so the limit holds for them too
        self._pool = None if self.is_async else ThreadPoolExecutor(max_workers=concurrency,
                                                                   thread_name_prefix="evalrun-target")

    async def call(self, input: Any) -> Call:
        if self.is_async:
            value = await self.fn(input)
        else:
            loop = asyncio.get_running_loop()
            value = await loop.run_in_executor(self._pool, self.fn, input)
            if inspect.isawaitable(value):
                value = await value
        return _unwrap(value)

    async def close(self) -> None:
        if self._pool is not None:
            # don't wait for threads stuck past their timeout: they cannot be killed
            self._pool.shutdown(wait=False, cancel_futures=True)



class ExecTarget(Target):
    """Runs a command per call: the input as JSON on stdin, stdout is the output."""

    def __init__(self, command: str | list[str], base_dir: Path, env: dict[str, str],
                 output_path: str | None, usage_path: str | None) -> None:
        self.argv = shlex.split(command) if isinstance(command, str) else list(command)
        self.command = command
        self.cwd = base_dir
        self.env = {**os.environ, **env} if env else None
        self.output_path = output_path
        self.usage_path = usage_path

    async def call(self, input: Any) -> Call:
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, cwd=self.cwd, env=self.env, start_new_session=True)
        except FileNotFoundError:
            raise TargetError(f"command not found: {self.argv[0]}") from None
        except PermissionError:
            raise TargetError(f"command not executable: {self.argv[0]}") from None
        try:
            out, err = await proc.communicate(_json.canonical(input).encode())
        except asyncio.CancelledError:
            # timeout or Ctrl-C: take the whole process group down, not just the shell
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            await proc.wait()
            raise
        if proc.returncode != 0:
            tail = err.decode(errors="replace").strip().splitlines()[-1:] or [""]
            raise TargetError(f"exit code {proc.returncode}: {tail[0][:500]}")
        text = out.decode(errors="replace")
        if self.output_path is None:
            return Call(text.rstrip("\n"))
        try:
            data = _json.loads(text)
        except ValueError:
            raise TargetError("stdout is not JSON (output_path is set)") from None
        return _from_json(data, self.output_path, self.usage_path)



def _from_json(data: Any, output_path: str, usage_path: str | None) -> Call:
    try:
        output = dig(data, output_path)
    except KeyError:
        raise TargetError(f"response has no '{output_path}'") from None
    usage = None
    if usage_path:
        try:
            usage = dig(data, usage_path)
        except KeyError:
            usage = None
    return Call(output, usage if isinstance(usage, dict) else None)


class HttpTarget(Target):
    def __init__(self, cfg: Any, timeout: float, concurrency: int) -> None:
        self.cfg = cfg
        self.timeout = timeout
        self.concurrency = concurrency
        self.client: Any = None

    async def start(self) -> None:
        import httpx

        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        self.client = httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(self.timeout), headers=self.cfg.headers)

    async def call(self, input: Any) -> Call:
        import httpx

        body = {self.cfg.input_key: input} if self.cfg.input_key else input
        try:
            if self.cfg.method == "GET":
                resp = await self.client.get(self.cfg.url, params=body if isinstance(body, dict) else {"input": body})
            else:
                resp = await self.client.request(self.cfg.method, self.cfg.url, json=body)
        except httpx.TimeoutException:
            raise RetryableError("HTTP timeout") from None
        except httpx.TransportError as e:
            raise RetryableError(f"HTTP connection error: {type(e).__name__}: {e}") from None
        if resp.status_code == 429 or resp.status_code >= 500:
            raise RetryableError(f"HTTP {resp.status_code}", retry_after(resp.headers))
        if resp.status_code >= 400:
            raise TargetError(f"HTTP {resp.status_code}: {self._scrub(resp.text[:200])}")
        try:
            data = resp.json()
        except ValueError:
            raise TargetError("response is not JSON") from None
        return _from_json(data, self.cfg.output_path, self.cfg.usage_path)

    def _scrub(self, text: str) -> str:
        """The error text with header values (tokens from the environment) masked: a server
        that echoes the request must not put a secret into results.jsonl."""
        for value in self.cfg.headers.values():
            for secret in sorted({value, value.split(" ", 1)[-1]}, key=len, reverse=True):
                if len(secret) >= 4:
                    text = text.replace(secret, "***")
        return text

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()



def build_target(loaded: Any, concurrency: int) -> Target:
    """The configured target; an unimportable module or missing function is a UsageError."""
    t = loaded.config.target
    if t.python is not None:
        def error(msg: str) -> UsageError:
            return loaded.error(msg, "target", "python", "__value__")

        return PythonTarget(t.python, loaded.base_dir, concurrency, error)
    if t.chat is not None:
        from evalrun.chat import ChatTarget

        return ChatTarget(loaded, concurrency)
    if t.exec is not None:
        return ExecTarget(t.exec, loaded.base_dir, t.env, t.output_path, t.usage_path)
    return HttpTarget(t.http, t.timeout, concurrency)
