"""What is evaluated: a Python callable, a shell command, an HTTP endpoint, or a chat model
(:mod:`evalrun.chat`).

Every target turns an item's input into a :class:`Call` (output and usage) or raises.
Errors that are worth another try (timeouts, 429, 5xx, dropped connections) are raised
as :class:`~evalrun.errors.RetryableError`; the engine owns retries and timeouts.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import inspect
import os
import queue
import shlex
import signal
import sys
import threading
import types
from collections.abc import Coroutine, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalrun import _json
from evalrun._retry import retry_after
from evalrun._secrets import Secrets, env_values, url_values
from evalrun._user_modules import import_user_module
from evalrun.errors import RetryableError, UsageError
from evalrun.records import Item, scrub_text


@dataclass(slots=True)
class Output:
    """Return this from a Python target to report usage with the output.

    ``usage`` is free-form token counts (``{"input_tokens": 12, "output_tokens": 40}``);
    ``cost_usd`` adds to the run's cost; ``metadata`` (model, finish reason, prompt...) is
    saved with the record as ``target_metadata``. ``tool_calls`` are the calls the pipeline
    made, in any format :func:`evalrun.toolcalls.normalise` reads (``[{name, arguments}]``, an
    OpenAI / Anthropic response or message list); ``trajectory`` a whole
    :class:`~evalrun.trajectory.Trajectory` (or its dict), for the ``tool_calls`` scorer.
    """

    value: Any
    usage: dict[str, Any] | None = None
    cost_usd: float | None = None
    metadata: dict[str, Any] | None = None
    tool_calls: Any = None
    trajectory: Any = None


@dataclass(slots=True)
class Call:
    output: Any
    usage: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    #: ``Trajectory.to_dict()`` of what the pipeline did, when the target reports it
    trajectory: dict[str, Any] | None = None


class TargetError(Exception):
    """A target call failed in a way that is not worth retrying (bad output, exit code...)."""


def user_raised(exc: BaseException) -> Exception:
    """What a call of user code that raised ``exc`` fails with: the exception itself when it is
    an ordinary one, else (SystemExit, KeyboardInterrupt, GeneratorExit, a bare BaseException;
    StopIteration, which no asyncio future can carry) a TargetError naming it. The one place
    where what user code throws becomes that record's error instead of the run's."""
    if isinstance(exc, Exception) and not isinstance(exc, StopIteration):
        return exc
    text = str(exc)
    return TargetError(f"the target raised {type(exc).__name__}" + (f": {text}" if text else ""))


def _check_json(value: Any) -> None:
    try:
        _json.dumps_strict(value)
    except TypeError as e:
        # text UTF-8 cannot hold (lone surrogates) is repaired and flagged when the record is
        # written; only a value JSON cannot hold at all fails the call
        fixed, changed = scrub_text(value)
        if changed:
            try:
                _json.dumps_strict(fixed)
                return
            except TypeError:
                pass
        raise TargetError(f"output is not JSON-serialisable: {e}") from None


def trajectory_of(tool_calls: Any = None, trajectory: Any = None) -> dict[str, Any] | None:
    """``Trajectory.to_dict()`` of what a target reported (a trajectory, and/or tool calls in
    any format :func:`evalrun.toolcalls.normalise` reads), or None when it reported neither.
    A value that is neither is a TargetError saying why."""
    if tool_calls is None and trajectory is None:
        return None
    from evalrun.toolcalls import normalise
    from evalrun.trajectory import Trajectory

    try:
        traj = trajectory if isinstance(trajectory, Trajectory) else (
            Trajectory.from_dict(trajectory) if trajectory is not None else Trajectory())
        if tool_calls is not None:
            traj.tool_calls = normalise(tool_calls)
    except ValueError as e:
        raise TargetError(f"the target's tool calls cannot be read: {e}") from None
    d = traj.to_dict()
    _check_json(d)
    return d


def _unwrap(value: Any) -> Call:
    if isinstance(value, Output):
        usage = dict(value.usage or {})
        if value.cost_usd is not None:
            usage["cost_usd"] = value.cost_usd
        _check_json(value.value)
        if value.metadata is not None:
            _check_json(value.metadata)
        return Call(value.value, usage or None, dict(value.metadata) if value.metadata else None,
                    trajectory_of(value.tool_calls, value.trajectory))
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


def target_secrets(loaded: Any) -> Secrets:
    """The secrets of ``loaded``'s target, whatever its kind: values of the ``${VAR}`` it
    references, header values, and the credentials in its URL (userinfo, the Basic-auth value
    derived from it, query values). Every target masks with these."""
    raw = (loaded.located.data or {}).get("target") if isinstance(loaded.located.data, dict) else None
    values = env_values(raw)
    t = loaded.config.target
    if t.http is not None:
        values += [*t.http.headers.values(), *url_values(t.http.url)]
    if t.chat is not None:
        values += url_values(t.chat.base_url)
    return Secrets(values)


@types.coroutine
def _suspend(future: Any) -> Generator[Any, Any, Any]:
    """Hand what a coroutine yielded (a future it waits on, or None for a bare yield) to the
    running task, as ``await`` would; resumes with what the task sends back."""
    return (yield future)


#: how long a target may go on after its call was cancelled (its timeout, Ctrl-C) to clean up:
#: one that catches the cancellation and keeps awaiting is abandoned then, so no target can
#: hold a run past its deadline
CANCEL_GRACE_SECONDS = 1.0


async def in_copied_context(coro: Coroutine[Any, Any, Any]) -> Any:
    """``await coro`` with each of its steps run in a copy of the current context: what it sets
    in context variables stays in the copy. Like running it as a task of its own, but in this
    task (its cancellation, timeouts and ``cancelling()`` are this task's).

    Once a cancellation of this task has gone into the coroutine (evalrun's timeout, Ctrl-C: one
    still pending, not one the coroutine's own ``asyncio.timeout`` took back), it gets
    ``CANCEL_GRACE_SECONDS`` to finish; after that it is closed and abandoned and the
    cancellation goes on (the engine's timeout makes the record a Timeout), whatever the
    coroutine does with the cancel."""
    ctx = contextvars.copy_context()
    value: Any = None
    error: BaseException | None = None
    abandon_at: float | None = None  # set once a cancellation went in
    task = asyncio.current_task()
    cancels = task.cancelling() if task is not None else 0
    while True:
        try:
            if error is None:
                yielded = ctx.run(coro.send, value)
            else:
                yielded = ctx.run(coro.throw, error)
        except StopIteration as done:
            return done.value
        value, error = None, None
        if abandon_at is not None and task is not None and task.cancelling() <= cancels:
            # the cancel was the coroutine's own (its asyncio.timeout took it back): no grace runs
            abandon_at = None
        try:
            if abandon_at is None and (yielded is None or type(yielded) is asyncio.Future):
                # a plain future ends at once when cancelled: the task may wait on it
                value = await _suspend(yielded)
                continue
            if getattr(yielded, "_asyncio_future_blocking", False):
                # (a task or a gather, which may ignore a cancel and so never wake this task,
                # or any future once the grace runs)
                if await _settled_by(yielded, abandon_at):
                    continue  # (the coroutine takes the future's result itself)
            elif abandon_at is None or asyncio.get_running_loop().time() < abandon_at:
                value = await _suspend(yielded)  # a bare yield
                continue
        except BaseException as e:
            if abandon_at is None and isinstance(e, asyncio.CancelledError):
                abandon_at = asyncio.get_running_loop().time() + CANCEL_GRACE_SECONDS
            error = e  # a cancellation (evalrun's timeout, Ctrl-C) goes into the coroutine
            continue
        # past its grace: the coroutine is closed and left behind; the cancellation goes on
        if yielded is not None:
            yielded.cancel()
        _abandon(ctx, coro)
        raise asyncio.CancelledError


#: ids of coroutines that ignored even being closed: when Python finalizes one, it would print
#: "Exception ignored in: <coroutine ...>" with a traceback; that is expected of them, and said
_UNCLOSABLE: set[int] = set()


def _abandon(ctx: contextvars.Context, coro: Coroutine[Any, Any, Any]) -> None:
    try:
        ctx.run(coro.close)
        return
    except RuntimeError:  # it ignored the GeneratorExit as it ignored the cancel
        pass
    except BaseException:  # whatever else its cleanup raises: it is being dropped
        return
    _UNCLOSABLE.add(id(coro))
    previous = sys.unraisablehook
    if getattr(previous, "evalrun_abandoned", False):
        return

    def hook(unraisable: Any) -> None:
        if id(unraisable.object) in _UNCLOSABLE and isinstance(unraisable.exc_value, RuntimeError):
            _UNCLOSABLE.discard(id(unraisable.object))
            return
        previous(unraisable)

    hook.evalrun_abandoned = True  # type: ignore[attr-defined]  # (installed once per process)
    sys.unraisablehook = hook


async def _settled_by(fut: Any, deadline: float | None) -> bool:
    """Wait here (not in the task) for a future a coroutine yielded, until ``deadline`` (loop
    time) at most: True once it is done. A plain waiter of our own stands in, so no future the
    coroutine chose (a gather of tasks that ignore their cancels) can keep a cancel from this
    task."""
    fut._asyncio_future_blocking = False  # the task never sees it: it must not be "yielded" twice
    if fut.done():
        return True
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()

    def wake(_: Any = None) -> None:
        if not waiter.done():
            waiter.set_result(None)

    fut.add_done_callback(wake)
    timer = loop.call_at(deadline, wake) if deadline is not None else None
    try:
        await waiter
    except asyncio.CancelledError:
        fut.cancel()  # as a task cancels the future it waits on
        raise
    finally:
        if timer is not None:
            timer.cancel()
        fut.remove_done_callback(wake)
    return bool(fut.done())


#: (item id, trial, item metadata) of the record whose target call runs in this task. The
#: engine sets it before each call of a target that has a ``trace``; the trace context reads
#: it to know whose call it is (the seam lets the engine know nothing of Langfuse).
CURRENT_RECORD: contextvars.ContextVar[tuple[str, int, dict[str, Any]] | None] = contextvars.ContextVar(
    "evalrun_record", default=None)


def enter_record(item_id: str, trial: int, metadata: dict[str, Any] | None) -> None:
    """The record whose target call this task makes next (the worker task's own context)."""
    CURRENT_RECORD.set((item_id, trial, metadata or {}))


def in_record(fn: Any, record: tuple[str, int, dict[str, Any]] | None) -> Any:
    """``fn`` that runs with ``CURRENT_RECORD`` set to ``record`` (a worker thread does not see
    the task's context variables); set and reset around each call, as threads are reused."""
    def call(arg: Any) -> Any:
        token = CURRENT_RECORD.set(record)
        try:
            return fn(arg)
        finally:
            CURRENT_RECORD.reset(token)
    return call


class Target:
    secrets = Secrets([])
    #: the run's trace context (``evalrun.langfuse.tracecontext.TraceContext``), when the run
    #: has one: set by a ``RunOptions.on_start`` hook, read per call through ``CURRENT_RECORD``
    trace: Any = None
    #: the run's span capture (``evalrun.agents.capture.SpanCapture``) when ``capture_spans`` is
    #: on: set by the engine, which takes each call's spans; it needs ``CURRENT_RECORD`` seen
    #: wherever the target's code runs
    capture: Any = None

    def mask(self, text: str) -> str:
        """``text`` with this target's secrets replaced by ``***``."""
        return self.secrets.mask(text)

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



def load_callable(spec: str, base_dir: Path, error: Any, what: str = "target") -> Any:
    """The function ``module:attr`` names (the module imported from ``base_dir`` first); anything
    wrong is ``error(message)``, naming it ``what``."""
    module_name, _, attr = spec.partition(":")
    try:
        module = import_user_module(module_name, base_dir)
    except ModuleNotFoundError as e:
        raise error(f"{what} module '{module_name}' not importable: {e}") from None
    except SyntaxError as e:
        raise error(f"{what} module '{module_name}' has a syntax error: {e.filename}:{e.lineno}: {e.msg}") from None
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # the user's module raised (or called sys.exit) while importing
        raise error(f"{what} module '{module_name}' failed to import: {type(e).__name__}: {e}") from None
    fn: Any = module
    for part in attr.split("."):
        fn = getattr(fn, part, None)
        if fn is None:
            public = [n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n))]
            from evalrun.errors import suggest

            raise error(f"{what} function '{attr}' not found in module '{module_name}'{suggest(attr, public)}")
    if not callable(fn):
        raise error(f"{what} '{spec}' is not callable")
    return fn


class PythonTarget(Target):
    def __init__(self, spec: str, base_dir: Path, concurrency: int, error: Any) -> None:
        self.spec = spec
        fn = load_callable(spec, base_dir, error)
        self.fn = fn
        self.is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__)
        # sync targets run in threads (the engine's concurrency limit bounds the calls); a
        # call stuck past its timeout keeps its thread, so the pool grows instead of starving
        self._pool = None if self.is_async else ElasticThreads("evalrun-target")

    async def call(self, input: Any) -> Call:
        tc = self.trace
        if isinstance(input, dict | list):
            # the function's own copy: editing it in place changes neither the item (its other
            # trials, another variant) nor the input saved with the record
            input = copy.deepcopy(input)
        task = asyncio.current_task()
        cancels = task.cancelling() if task is not None else 0
        try:
            if self.is_async:
                # in a copy of this context (as a task of its own would be, without a task's
                # cost): context variables the target sets (its own state, OpenTelemetry's
                # current span) stay with this call instead of reaching the worker's next item
                coro = tc.arun(self.fn, input) if tc is not None else self.fn(input)
                value = await in_copied_context(coro) if inspect.iscoroutine(coro) else await coro
            else:
                assert self._pool is not None
                fn = tc.bind(self.fn) if tc is not None else self.fn
                if self.capture is not None:
                    fn = in_record(fn, CURRENT_RECORD.get())
                value = await self._pool.run(fn, input)
                if inspect.iscoroutine(value):
                    value = await in_copied_context(value)
                elif inspect.isawaitable(value):
                    value = await value
        except asyncio.CancelledError:
            if task is not None and task.cancelling():
                raise  # evalrun's own timeout or Ctrl-C
            raise TargetError("the target raised CancelledError") from None
        except BaseException as e:  # SystemExit, GeneratorExit... from user code: this record's error
            raise user_raised(e) from None
        if task is not None and task.cancelling() > cancels:
            # evalrun's own cancel (the call's timeout, Ctrl-C) that the target caught and
            # answered anyway: the timeout still applies, and a stopping run still stops
            raise asyncio.CancelledError
        return _unwrap(value)

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()


class ElasticThreads:
    """Daemon worker threads that are reused when idle and added when all are busy. A call
    that hangs forever holds one thread and blocks nothing else; being daemons, hung threads
    never keep the process from exiting either (a ThreadPoolExecutor joins them at exit)."""

    IDLE_SECONDS = 30.0

    def __init__(self, name: str) -> None:
        self.name = name
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._idle = 0
        self._lock = threading.Lock()
        self._count = 0
        self._closed = False

    async def run(self, fn: Any, arg: Any) -> Any:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        with self._lock:
            spawn = self._idle == 0
            if not spawn:
                self._idle -= 1
            else:
                self._count += 1
        self._jobs.put((fn, arg, loop, fut))
        if spawn:
            threading.Thread(target=self._serve, name=f"{self.name}-{self._count}", daemon=True).start()
        return await fut

    def _serve(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=self.IDLE_SECONDS)
            except queue.Empty:
                with self._lock:
                    if self._idle > 0:
                        self._idle -= 1
                        return
                continue
            if job is None:
                return
            fn, arg, loop, fut = job
            try:
                ok, value = True, fn(arg)
            except BaseException as e:  # SystemExit too: it belongs to this call, not the thread
                # (and never crosses into the event loop as is: a future cannot carry a
                # StopIteration, and a GeneratorExit thrown into the waiting task ends the run)
                ok, value = False, user_raised(e)
            # idle (or gone, after shutdown) before the answer is known: a shutdown that follows
            # the last answer then always finds this thread
            with self._lock:
                closed = self._closed
                if not closed:
                    self._idle += 1
            try:
                loop.call_soon_threadsafe(_settle, fut, ok, value)
            except RuntimeError:
                pass  # the loop has closed (run over): nobody waits for this answer
            if closed:
                return

    def shutdown(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, 0
            self._closed = True  # a thread still in a call ends when the call does
        for _ in range(idle):
            self._jobs.put(None)


def _settle(fut: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if fut.done():  # the call timed out or was cancelled meanwhile
        return
    if ok:
        fut.set_result(value)
    else:
        fut.set_exception(value)



class ExecTarget(Target):
    """Runs a command per call: the input as JSON on stdin, stdout is the output."""

    def __init__(self, command: str | list[str], base_dir: Path, env: dict[str, str],
                 output_path: str | None, usage_path: str | None, error: Any = UsageError,
                 tool_calls_path: str | None = None, trajectory_path: str | None = None) -> None:
        try:
            self.argv = shlex.split(command) if isinstance(command, str) else [str(a) for a in command]
        except ValueError as e:  # an unbalanced quote
            raise error(f"exec command cannot be split into arguments: {e}") from None
        if not self.argv or not self.argv[0].strip():
            raise error("exec command is empty")
        if any("\0" in a for a in self.argv) or any("\0" in f"{k}{v}" for k, v in env.items()):
            raise error("exec command or env holds a NUL character, which no program can receive")
        self.command = command
        self.cwd = base_dir
        self.env = {**os.environ, **env} if env else None
        self.output_path = output_path
        self.usage_path = usage_path
        self.tool_calls_path = tool_calls_path
        self.trajectory_path = trajectory_path
        self._check_program(error)

    def _check_program(self, error: Any) -> None:
        """The program must exist and be executable before the first call, not fail every record."""
        import shutil

        prog = self.argv[0]
        path_env = (self.env or os.environ).get("PATH")
        if os.sep in prog or (os.altsep and os.altsep in prog):
            p = Path(prog) if Path(prog).is_absolute() else self.cwd / prog
            if not p.is_file():
                raise error(f"exec program not found: {prog}")
            if not os.access(p, os.X_OK):
                raise error(f"exec program is not executable: {prog}")
        elif shutil.which(prog, path=path_env) is None:
            raise error(f"exec program not found on PATH: {prog}")

    async def call(self, input: Any) -> Call:
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, cwd=self.cwd, start_new_session=True,
                env={**(self.env or os.environ), **self.trace.env()} if self.trace is not None else self.env)
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
            raise TargetError(f"exit code {proc.returncode}: {self.mask(tail[0])[:500]}")
        text = out.decode(errors="replace")
        if self.output_path is None:
            return Call(text.rstrip("\n"))
        try:
            data = _json.loads(text)
        except ValueError:
            raise TargetError("stdout is not JSON (output_path is set)") from None
        return _from_json(data, self.output_path, self.usage_path, self.tool_calls_path, self.trajectory_path)



def _from_json(data: Any, output_path: str, usage_path: str | None, tool_calls_path: str | None = None,
               trajectory_path: str | None = None) -> Call:
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
    # a path that is set but absent is the pipeline reporting no calls ([]), not an error:
    # an endpoint that answers without calling a tool often leaves the key out
    calls = _dig_or(data, tool_calls_path, [])
    traj = _dig_or(data, trajectory_path, None)
    return Call(output, usage if isinstance(usage, dict) else None, None, trajectory_of(calls, traj))


def _dig_or(data: Any, path: str | None, absent: Any) -> Any:
    if not path:
        return None
    try:
        return dig(data, path)
    except KeyError:
        return absent


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

        from evalrun._http import ResponseTooLarge, send_capped

        body = {self.cfg.input_key: input} if self.cfg.input_key else input
        headers = self.trace.carrier() if self.trace is not None else None
        try:
            if self.cfg.method == "GET":
                resp = await send_capped(self.client, "GET", self.cfg.url, headers=headers,
                                         params=body if isinstance(body, dict) else {"input": body})
            else:
                resp = await send_capped(self.client, self.cfg.method, self.cfg.url, json=body, headers=headers)
        except httpx.TimeoutException:
            raise RetryableError("HTTP timeout") from None
        except httpx.TransportError as e:
            raise RetryableError(self.mask(f"HTTP connection error: {type(e).__name__}: {e}")[:500]) from None
        except (ResponseTooLarge, httpx.DecodingError) as e:
            raise TargetError(self.mask(str(e))[:500]) from None
        if resp.status_code == 429 or resp.status_code >= 500:
            raise RetryableError(f"HTTP {resp.status_code}", retry_after(resp.headers))
        if resp.status_code >= 400:
            # masked first, then cut: a cut must not leave the front half of a secret
            raise TargetError(f"HTTP {resp.status_code}: {self.mask(resp.text)[:200]}")
        try:
            data = resp.json()
        except ValueError:
            raise TargetError("response is not JSON") from None
        return _from_json(data, self.cfg.output_path, self.cfg.usage_path, self.cfg.tool_calls_path,
                          self.cfg.trajectory_path)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()



def check_url(url: str) -> str | None:
    """Why ``url`` cannot be an HTTP endpoint, or None when it can."""
    from urllib.parse import urlsplit

    try:
        u = urlsplit(url)
        u.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError as e:
        return f"not a valid URL ({e})"
    if u.scheme not in ("http", "https"):
        return f"URL must start with http:// or https:// (got {url.split(':', 1)[0] + ':' if ':' in url else url!r})"
    if not u.hostname:
        return "URL has no host"
    if any(c.isspace() for c in url):
        return "URL contains whitespace"
    return None


_HEADER_NAME = __import__("re").compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def check_header(name: str, value: str) -> str | None:
    """Why ``name: value`` cannot be sent as an HTTP header (it would fail every call, or
    smuggle another header in), or None when it can."""
    if not _HEADER_NAME.fullmatch(name):
        return f"header name {name!r} is not a valid HTTP header name"
    if any(c in value for c in "\r\n\0"):
        return f"header {name} holds a line break or NUL character"
    return None
