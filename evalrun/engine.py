"""The runner: every (item, trial) through the target under a concurrency limit and a start
rate, with timeouts, retries and repeats; resume and Ctrl-C.

Write before score: each finished target call is appended to the run's pending journal as
it returns (one write for the calls that finished in the same event-loop tick), then scored
in batches and appended to results.jsonl. A crash or Ctrl-C loses at most the calls in
flight; resume scores the journal's calls without calling the target again.

``prepare`` checks everything a user can get wrong (config, dataset, target, scorers) before
any target call or run directory exists; ``Engine.run`` does the work.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, cast

from evalrun._retry import RetryPolicy
from evalrun._secrets import env_values
from evalrun._version import __version__
from evalrun.config import LoadedConfig, config_json, load_config
from evalrun.datasets import Dataset, load_dataset, parse_filters, select_items
from evalrun.errors import ExitCode, RetryableError, RunFailed, RunStatus, UsageError
from evalrun.progress import Progress
from evalrun.records import Item, Record, Score, capped_output
from evalrun.runs import Manifest, Summary
from evalrun.scoring.base import Scorer, ScorerContext, scorer_class
from evalrun.store import (
    Cache,
    ResultsWriter,
    RunDir,
    RunLock,
    content_key,
    default_home,
    new_run_id,
    open_cache,
    resolve_run,
)
from evalrun.summary import SummaryBuilder
from evalrun.targets import (
    CANCEL_GRACE_SECONDS,
    ExecTarget,
    HttpTarget,
    PythonTarget,
    Target,
    TargetError,
    check_header,
    check_url,
    enter_record,
    target_secrets,
)

# how many scoring batches may be in flight at once: lets a slow scorer (an LLM judge)
# overlap batches instead of serialising them behind each other
SCORING_PARALLELISM = 4
# scored records should reach results.jsonl every second or two, whatever the scorers cost:
# batches start small and grow (up to the scorers' batch size) only while they finish quickly
FIRST_BATCH = 32
BATCH_SECONDS = (1.0, 3.0)  # grow below the first, shrink above the second


@dataclass
class RunOptions:
    """What the command line says; ``None`` means 'as the eval file says'."""

    config_path: str | None = None
    concurrency: int | None = None
    repeat: int | None = None
    limit: int | None = None
    filters: list[str] = field(default_factory=list)
    sample: int | None = None
    seed: int | None = None
    shard: str | None = None
    home: Path | None = None
    resume: str | None = None  # run id / dir / "latest"
    progress: str = "lines"  # bar | lines | off
    baseline_outputs: dict[tuple[str, int], Any] | None = None
    #: the ``--baseline`` the run was started with (a path where it named one), kept in the
    #: manifest's options so that ``--resume`` compares with the same baseline
    baseline: str | None = None
    #: ``--set`` overrides of eval-file keys (dotted key -> value)
    overrides: dict[str, Any] = field(default_factory=dict)
    #: the eval file, loaded once by the caller (the API, the CLI, a variant group); None: read
    #: config_path here
    loaded: LoadedConfig | None = None
    #: the dataset, read once by the caller (a variant group's runs share one); None: read here
    dataset: Dataset | None = None
    # set when runs are grouped (variants): the limits shared with the other runs, the run's id
    # chosen up front, manifest additions
    shared: SharedLimits | None = None
    run_id: str | None = None
    manifest_extra: dict[str, Any] = field(default_factory=dict)
    #: called once the run directory and its manifest exist, before any target call: what a
    #: caller adds to the run's target (the API and the CLI install the Langfuse trace context,
    #: ``target.trace``, here; the engine itself knows nothing of Langfuse)
    on_start: Callable[[Target, RunDir, Manifest], None] | None = None

    def to_manifest(self) -> dict[str, Any]:
        return {"concurrency": self.concurrency, "repeat": self.repeat, "limit": self.limit,
                "filters": self.filters, "sample": self.sample, "seed": self.seed, "shard": self.shard,
                "baseline": self.baseline}


@dataclass
class Plan:
    loaded: LoadedConfig
    dataset: Dataset
    items: list[Item]
    repeat: int
    concurrency: int
    target: Target
    scorers: list[Scorer]
    ctx: ScorerContext
    cache: Cache | None
    home: Path

    @property
    def total(self) -> int:
        return len(self.items) * self.repeat


@dataclass
class RunOutcome:
    run_dir: RunDir
    summary: Summary
    status: RunStatus
    #: the items this process ran (None for a run read back from disk): their ``source``
    #: file:line places a report's findings without reading the dataset again
    #: (left out of the repr: asyncio.run formats the finished task's result when it puts the
    #: SIGINT handler back, and 100,000 items took 0.1-0.4 s to format)
    items: list[Item] | None = field(default=None, repr=False)

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.of_run(self.status)


def build_target(loaded: Any, concurrency: int) -> Target:
    """The configured target; anything that would fail every call (an unimportable module, a
    missing program, a URL that is not http(s), an endless timeout) is a UsageError here."""
    t = loaded.config.target
    if not math.isfinite(t.timeout):
        raise loaded.error("timeout must be a finite number of seconds", "target", "timeout", "__value__")
    if t.python is not None:
        def error(msg: str) -> UsageError:
            return loaded.error(msg, "target", "python", "__value__")

        if t.capture_spans:
            import importlib.util

            if importlib.util.find_spec("opentelemetry") is None:
                raise loaded.error("capture_spans needs opentelemetry-sdk: pip install 'evalrun[agents]'",
                                   "target", "capture_spans")
        return PythonTarget(t.python, loaded.base_dir, concurrency, error)
    if t.chat is not None:
        from evalrun.chat import ChatTarget

        chat = ChatTarget(loaded, concurrency)
        chat.secrets = target_secrets(loaded)
        return chat
    target: Target
    if t.exec is not None:
        def exec_error(msg: str) -> UsageError:
            return loaded.error(msg, "target", "exec", "__value__")

        if (t.tool_calls_path or t.trajectory_path) and not t.output_path:
            raise loaded.error("tool_calls_path / trajectory_path read stdout as JSON: set output_path too",
                               "target", "tool_calls_path" if t.tool_calls_path else "trajectory_path")
        target = ExecTarget(t.exec, loaded.base_dir, t.env, t.output_path, t.usage_path, exec_error,
                            t.tool_calls_path, t.trajectory_path)
    else:
        problem = check_url(t.http.url)
        if problem:
            raise loaded.error(problem, "target", "http", "url", "__value__")
        for name, value in t.http.headers.items():
            why = check_header(name, value)
            if why:
                raise loaded.error(why, "target", "http", "headers", name)
        target = HttpTarget(t.http, t.timeout, concurrency)
    target.secrets = target_secrets(loaded)
    return target


def parse_shard(spec: str | None) -> tuple[int, int] | None:
    if spec is None:
        return None
    try:
        i, n = (int(x) for x in spec.split("/"))
    except ValueError:
        raise UsageError(f"--shard takes i/n, like 1/4 (got {spec!r})") from None
    if not (n >= 1 and 1 <= i <= n):
        raise UsageError(f"--shard {spec}: need 1 <= i <= n")
    return i, n


def shard_of(item_id: str, n: int) -> int:
    """1-based shard of an item: by a hash of its id, so adding an item moves no other."""
    return int(content_key("shard", item_id)[:12], 16) % n + 1


def build_scorers(loaded: LoadedConfig, ctx_base: ScorerContext) -> list[Scorer]:
    data = loaded.located.data
    raw = data.get("scorers") if isinstance(data, dict) else None
    scorers = []
    for i, sc in enumerate(loaded.config.scorers):
        section = raw[i] if isinstance(raw, list) and i < len(raw) else None

        def locate(message: str, *fld: str | int, i: int = i) -> UsageError:
            return loaded.error(message, "scorers", i, *fld)

        ctx = ScorerContext(base_dir=ctx_base.base_dir, cache=ctx_base.cache, usage=ctx_base.usage,
                            baseline_outputs=ctx_base.baseline_outputs, locate=locate,
                            secrets=env_values(section))
        scorers.append(scorer_class(sc.type)(sc, ctx))
    return scorers


def check_scorer_items(scorers: list[Scorer], items: list[Item]) -> None:
    """What the items carry for the scorers (their ``assert:`` checks), checked before any call;
    checks no scorer would run are an error, not silently skipped."""
    for s in scorers:
        s.check_items(items)
    runners = [s for s in scorers if s.type == "assert"]
    if len(runners) > 1:
        raise runners[1].ctx.error("only one scorer may be of type assert (it runs every item's checks)")
    if not runners:
        first = next((it for it in items if it.asserts), None)
        if first is not None:
            file, _, line = (first.assert_sources[0] if first.assert_sources else first.source or "").rpartition(":")
            raise UsageError(f"item '{first.id}' has assert: checks, but no scorer runs them; "
                             "add '- assert' to the eval file's scorers", file or None,
                             int(line) if line.isdigit() else None)


async def prepare(opts: RunOptions) -> Plan:
    # the API and the CLI load the eval file once and pass it (``opts.loaded``); a direct
    # caller of run_eval may give just the path
    loaded = opts.loaded or load_config(opts.config_path, opts.overrides)
    cfg = loaded.config
    home = opts.home or default_home()
    check_home(home)
    dataset = opts.dataset or load_dataset(cfg.dataset, loaded.base_dir)
    items = select_items(dataset.items, parse_filters(opts.filters), opts.limit, opts.sample, opts.seed)
    if not items:
        raise UsageError("no items left to run after --filter/--limit/--sample")
    shard = parse_shard(opts.shard)
    if shard:
        # a shard may hash to no item (few items, many shards): an empty run, not an error,
        # so a matrix job still produces its part for `evalrun merge`
        items = [it for it in items if shard_of(it.id, shard[1]) == shard[0]]
    concurrency = opts.concurrency or cfg.concurrency
    repeat = opts.repeat or cfg.repeat
    if concurrency < 1 or repeat < 1:
        raise UsageError("--concurrency and --repeat must be at least 1")
    needs_cache = cfg.target.cache or any(scorer_class(sc.type).needs_cache(sc) for sc in cfg.scorers)
    cache = open_cache(home) if needs_cache else None
    ctx = ScorerContext(base_dir=loaded.base_dir, cache=cache, baseline_outputs=opts.baseline_outputs)
    scorers = build_scorers(loaded, ctx)
    target = build_target(loaded, concurrency)
    target.check(items)  # a template an item cannot fill fails now, before any call
    check_scorer_items(scorers, dataset.items)
    for s in scorers:
        await s.setup()
    return Plan(loaded, dataset, items, repeat, concurrency, target, scorers, ctx, cache, home)


def _git(*args: str) -> str | None:
    try:
        r = subprocess.run(["git", *args], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout.strip() if r.returncode == 0 else None


def git_state() -> dict[str, Any] | None:
    heads = _git("rev-parse", "HEAD", "--abbrev-ref", "HEAD")  # one process for both: it adds up on short runs
    if heads is None:
        return None
    commit, _, branch = heads.partition("\n")
    return {"commit": commit, "branch": branch or None,
            "dirty": bool(_git("status", "--porcelain", "--untracked-files=no"))}


def on_interrupt(stop: Callable[[], None], saving: str) -> Callable[[], None]:
    """Ctrl-C (SIGINT) and SIGTERM on the running loop: the first calls ``stop`` (the run saves
    ``saving``), a second exits at once. Returns the function that puts the handlers found back
    (asyncio alone would leave SIGINT at its default)."""
    loop = asyncio.get_running_loop()
    presses = 0

    def on_signal() -> None:
        nonlocal presses
        presses += 1
        if presses > 1:
            print("\nevalrun: interrupted again, exiting now", file=sys.stderr, flush=True)
            os._exit(ExitCode.INTERRUPTED)
        print(f"\nevalrun: interrupted; saving {saving} (Ctrl-C again to exit at once)", file=sys.stderr, flush=True)
        stop()

    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous = signal.getsignal(sig)
            loop.add_signal_handler(sig, on_signal)
            installed.append((sig, previous))
        except (NotImplementedError, RuntimeError, ValueError):
            pass

    def restore() -> None:
        for sig, previous in installed:
            loop.remove_signal_handler(sig)
            if previous is not None:  # None: set outside Python, nothing to put back
                signal.signal(sig, previous)

    return restore


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def classify(exc: BaseException, timeout: float, mask: Any = None) -> tuple[dict[str, str], bool]:
    """(error dict, retryable) for an exception raised by a target call. Secrets are masked
    (``mask``) before the message is cut to size."""
    text = mask(str(exc)) if mask is not None else str(exc)
    if isinstance(exc, TimeoutError):
        return {"type": "Timeout", "message": f"no answer within {timeout:g}s"}, True
    if isinstance(exc, RetryableError):
        return {"type": "RetryableError", "message": text[:2000]}, True
    if isinstance(exc, ConnectionError):
        return {"type": type(exc).__name__, "message": text[:2000]}, True
    if isinstance(exc, TargetError):
        return {"type": "TargetError", "message": text[:2000]}, False
    return {"type": type(exc).__name__, "message": text[:2000]}, False


class RateLimiter:
    """At most ``rate`` call starts per second, spaced evenly."""

    def __init__(self, rate: float | None) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self.next_at = 0.0
        self.lock = asyncio.Lock()

    async def acquire(self) -> None:
        if not self.interval:
            return
        async with self.lock:
            now = time.monotonic()
            wait = self.next_at - now
            self.next_at = max(now, self.next_at) + self.interval
        if wait > 0:
            await asyncio.sleep(wait)


class SharedLimits:
    """One concurrency limit and one start rate for several runs in one event loop (the variants
    of an eval): a run's workers take a slot per (item, trial), waiters served first come first
    served, so no run starves another. The owner handles Ctrl-C for all of them (``engines``)."""

    def __init__(self, concurrency: int, rate: float | None) -> None:
        self.slots = asyncio.Semaphore(concurrency)
        self.rate = RateLimiter(rate)
        self.engines: list[Engine] = []


class Engine:
    def __init__(self, plan: Plan, run_dir: RunDir, done: set[tuple[str, int]], summary: SummaryBuilder,
                 progress: Progress, shared: SharedLimits | None = None) -> None:
        self.plan = plan
        self.run_dir = run_dir
        self.done = done
        self.summary = summary
        self.progress = progress
        cfg = plan.loaded.config
        self.timeout = cfg.target.timeout
        self.retry = RetryPolicy(attempts=cfg.target.retries + 1, base=cfg.target.backoff)
        self.shared = shared
        self.limiter = shared.rate if shared is not None else RateLimiter(cfg.rate)
        self.slots: contextlib.AbstractAsyncContextManager[Any] = (
            shared.slots if shared is not None else contextlib.nullcontext())
        self._main: asyncio.Task[Any] | None = None
        # everything in the target section can change an output (url, paths, headers, env...)
        self.cache_ns: str | None = "target:" + content_key(cfg.target.model_dump(mode="json")) if cfg.target.cache else None
        self.target_key = plan.target.cache_key
        # the scoring loop's adaptive batch size (set again when it starts)
        self.max_batch = self.batch_cap = FIRST_BATCH
        self.batches_scored = 0
        self.interrupted = False
        self._unjournaled: list[Record] = []  # finished calls waiting for this tick's journal write
        self.scoped = any(s.scoped for s in plan.scorers)
        self._flush_due = False  # a _flush_journal callback is scheduled
        self._journal_closed = False

    def _work(self) -> Iterator[tuple[Item, int]]:
        # trial-major order: with repeats every item gets its first trial before any second one
        for trial in range(self.plan.repeat):
            for item in self.plan.items:
                if (item.id, trial) not in self.done:
                    yield item, trial

    async def _call(self, item: Item, trial: int) -> Record:
        rec = Record(item_id=item.id, trial=trial, input=item.input, expected_output=item.expected_output,
                     metadata=item.metadata, expected_tool_calls=item.expected_tool_calls)
        ns = self.cache_ns or ""
        cache = self.plan.cache if ns else None
        key = content_key(self.target_key(item), trial) if cache else ""
        if cache is not None:
            # SQLite may wait on another process's lock: never on the event loop
            hit = await asyncio.to_thread(cache.get_json, ns, key)
            if hit is not None:
                # no call was made: no latency to count, and the usage is marked as not spent again
                # (a priced call costs 0 this time, so a cost gate sees a known, free re-run)
                usage = {**(hit.get("usage") or {}), "cached": True} if hit.get("usage") else None
                if usage and "cost_usd" in usage:
                    usage["cost_usd"] = 0.0
                rec.output, rec.usage, rec.latency_ms, rec.attempts = hit["output"], usage, None, 0
                rec.target_metadata = hit.get("metadata")
                rec.trajectory = hit.get("trajectory")
                return rec
        capture = self.plan.target.capture
        if self.plan.target.trace is not None or capture is not None:
            enter_record(item.id, trial, item.metadata)
        attempt = 0
        while True:
            attempt += 1
            await self.limiter.acquire()
            rec.started_at = time.time()
            t0 = time.perf_counter()
            if capture is not None:
                capture.begin(rec.key)
            try:
                # (a timeout scope, not wait_for: no extra task per call, a third of a fast call's cost)
                async with asyncio.timeout(self.timeout):
                    call = await self.plan.target.call_item(item)
            except asyncio.CancelledError:
                if capture is not None:
                    capture.discard(rec.key)
                raise
            except Exception as exc:  # the target's failure is this record's, never the run's
                rec.latency_ms = round((time.perf_counter() - t0) * 1000, 3)
                if capture is not None:
                    capture.discard(rec.key)
                err, retryable = classify(exc, self.timeout, self.plan.target.mask)
                if retryable and self.retry.retries_left(attempt):
                    # the server's Retry-After wins (bounded so one answer cannot stall the run)
                    await asyncio.sleep(self.retry.delay(attempt, getattr(exc, "retry_after", None)))
                    continue
                rec.error, rec.attempts = err, attempt
                return rec
            rec.latency_ms = round((time.perf_counter() - t0) * 1000, 3)
            # a server may echo a credential into its answer: never saved, as in an error
            secrets = self.plan.target.secrets
            rec.output, rec.target_metadata = capped_output(secrets.mask_value(call.output),
                                                            secrets.mask_value(call.metadata))
            rec.usage, rec.attempts = call.usage, attempt
            trajectory = call.trajectory
            if capture is not None:
                from evalrun.agents.capture import trajectory_of_spans

                trajectory = trajectory_of_spans(capture.take(rec.key), trajectory)
            rec.trajectory = secrets.mask_value(trajectory)
            if cache is not None:
                entry = {"output": rec.output, "usage": call.usage}
                if rec.target_metadata:
                    entry["metadata"] = rec.target_metadata
                if rec.trajectory is not None:
                    entry["trajectory"] = rec.trajectory
                await asyncio.to_thread(cache.put_json, ns, key, entry)
            return rec

    async def _worker(self, work: Iterator[tuple[Item, int]], queue: asyncio.Queue[Record | None]) -> None:
        for item, trial in work:  # a shared iterator: workers take the next pair as they free up
            async with self.slots:
                rec = await self._call(item, trial)
            self._journal_soon(rec)
            await queue.put(rec)
            # a target that answers without waiting never yields: let the other workers, the
            # journal and the scorers run between two of its calls
            await asyncio.sleep(0)

    def _journal_soon(self, rec: Record) -> None:
        # durable before it waits for any scorer: the calls that finish in one event-loop tick
        # are written together at the start of the next one (one write, not one per call), and
        # _score writes whatever is still unwritten before it scores anything
        self._unjournaled.append(rec)
        if not self._flush_due:
            self._flush_due = True
            asyncio.get_running_loop().call_soon(self._flush_journal, False)

    def _flush_journal(self, strict: bool = True) -> None:
        if not strict:
            self._flush_due = False  # (this is the scheduled callback)
            if self._journal_closed:
                return
        batch, self._unjournaled = self._unjournaled, []
        if not batch:
            return
        try:
            self.journal.write(batch)
        except Exception:
            self._unjournaled[:0] = batch  # (write() took back any half line)
            if strict:
                raise  # in _score: the run fails with the cause
            # in the loop's callback: tried again shortly (and by _score before it scores), so
            # later calls are not left waiting for a scoring slot to be written
            if not self._flush_due:
                self._flush_due = True
                asyncio.get_running_loop().call_later(0.1, self._flush_journal, False)

    async def _replay(self, pending: list[Record], queue: asyncio.Queue[Record | None]) -> None:
        """Calls a crashed run finished but did not score: score them, call nothing again."""
        for rec in pending:
            rec.scores = {}
            await queue.put(rec)

    async def _score(self, batch: list[Record]) -> None:
        self._flush_journal()
        ok = [r for r in batch if r.error is None]
        if self.scoped and len(ok) < len(batch):
            # a failed call counts as failed only under the checks its item has
            for r in batch:
                if r.error is not None:
                    r.not_applicable = tuple(n for s in self.plan.scorers for n in s.not_applicable(r))
        t0 = time.monotonic()
        if ok:
            await asyncio.gather(*(self._score_with(s, ok) for s in self.plan.scorers))
        if self.interrupted:
            # Ctrl-C came while this batch was being scored: scorers stopped early, so their
            # scores say "cancelled", not what the outputs deserve. The calls are already in the
            # pending journal: --resume scores them again (judge answers come from the cache).
            return
        took = time.monotonic() - t0
        self.batches_scored += 1
        if took < BATCH_SECONDS[0] and len(batch) >= self.batch_cap:
            self.batch_cap = min(self.batch_cap * 2, self.max_batch)
        elif took > BATCH_SECONDS[1] and self.batches_scored > SCORING_PARALLELISM:
            # (the first batches carry model loading and warm-up: they say nothing of the pace)
            self.batch_cap = max(self.batch_cap // 2, min(FIRST_BATCH, self.max_batch))
        self.writer.write(batch)
        for r in batch:
            self.summary.add(r)
        self.progress.advance(len(batch), sum(1 for r in batch if r.error))

    async def _score_with(self, scorer: Scorer, records: list[Record]) -> None:
        # the scorer's scope (``when:``, an assert scorer's items): the others get no score from it
        if scorer.scoped:
            records = [r for r in records if scorer.applies(r)]
        size = max(1, scorer.batch_size)
        for i in range(0, len(records), size):
            chunk = records[i:i + size]
            try:
                scores = await self._score_chunk(scorer, chunk)
                if len(scores) != len(chunk):
                    raise RuntimeError(f"scorer returned {len(scores)} scores for {len(chunk)} records")
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # evalrun's own stop (Ctrl-C, a failed write)
                scores = [Score.failed("scorer raised CancelledError") for _ in chunk]
            except BaseException as exc:  # a scorer failure marks these records, never ends the run
                msg = f"{type(exc).__name__}: {exc}"[:2000]
                scores = [Score.failed(msg) for _ in chunk]
            info = scorer.config.informational
            for r, s in zip(chunk, scores, strict=True):
                if info and not s.informational:
                    s = replace(s, informational=True)  # (a copy: scorers may share a Score)
                r.scores[scorer.name] = s
                if s.children:  # one score per item assertion, each under its own name
                    r.scores.update(s.children)
                    s.children = None

    @staticmethod
    async def _score_chunk(scorer: Scorer, chunk: list[Record]) -> list[Score]:
        """``score_batch`` on what the scorer sees of each record (``output:`` / ``expected:``)."""
        if scorer.config.output is None and scorer.config.expected is None:
            return await scorer.score_batch(chunk)
        views = [scorer.view(r) for r in chunk]
        todo = [v for v in views if isinstance(v, Record)]
        scored = iter(await scorer.score_batch(todo) if todo else [])
        return [next(scored) if isinstance(v, Record) else v for v in views]

    async def _scoring_loop(self, queue: asyncio.Queue[Record | None]) -> None:
        self.max_batch = max([s.batch_size for s in self.plan.scorers] or [256])
        self.batch_cap = min(FIRST_BATCH, self.max_batch)
        self.batches_scored = 0
        sem = asyncio.Semaphore(SCORING_PARALLELISM)
        tasks: set[asyncio.Task[None]] = set()

        def done(t: asyncio.Task[None]) -> None:
            sem.release()
            # a failed batch stays in the set so the gather below raises its error
            if t.cancelled() or t.exception() is None:
                tasks.discard(t)

        finished = False
        try:
            while not finished:
                rec = await queue.get()
                if rec is None:
                    break
                batch = [rec]
                while len(batch) < self.batch_cap:
                    try:
                        nxt = queue.get_nowait()
                    except asyncio.QueueEmpty:
                        break
                    if nxt is None:
                        finished = True
                        break
                    batch.append(nxt)
                await sem.acquire()
                failed = [t for t in tasks if t.done()]
                if failed:
                    await failed[0]  # raises: records could not be scored or saved
                t = asyncio.create_task(self._score(batch))
                tasks.add(t)
                t.add_done_callback(done)
            if tasks:
                await asyncio.gather(*tasks)
        finally:
            # on Ctrl-C or a failure, no batch may go on using the writer after it closes
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def run(self, pending: list[Record] | None = None) -> RunStatus:
        plan = self.plan
        self.writer = ResultsWriter(self.run_dir.results_path)
        self.journal = ResultsWriter(self.run_dir.pending_path)
        queue: asyncio.Queue[Record | None] = asyncio.Queue(maxsize=plan.concurrency * 4 + 1024)
        work = self._work()
        self._main = asyncio.current_task()
        if self.shared is not None:
            self.shared.engines.append(self)  # the group handles Ctrl-C for all its runs
            restore_signals = lambda: None  # noqa: E731
        else:
            restore_signals = on_interrupt(self.stop, "partial results")
        await plan.target.start()
        if plan.loaded.config.target.capture_spans:
            from evalrun.agents.capture import install

            plan.target.capture = install()
        try:
            scoring = asyncio.create_task(self._scoring_loop(queue))
            workers = [asyncio.create_task(self._worker(work, queue)) for _ in range(plan.concurrency)]
            if pending:
                workers.append(asyncio.create_task(self._replay(pending, queue)))

            def scoring_done(t: asyncio.Task[None]) -> None:
                # scoring died (records could not be saved): stop the workers, or they would
                # block forever on a full queue
                if not t.cancelled() and t.exception() is not None:
                    for w in workers:
                        w.cancel()

            scoring.add_done_callback(scoring_done)
            try:
                await asyncio.gather(*workers)
                # the end marker must not wait on a full queue nobody drains any more
                end = asyncio.ensure_future(queue.put(None))
                await asyncio.wait({end, scoring}, return_when=asyncio.FIRST_COMPLETED)
                if not end.done():
                    end.cancel()
                await scoring
            except asyncio.CancelledError:
                for t in [*workers, scoring]:
                    t.cancel()
                await asyncio.gather(*workers, scoring, return_exceptions=True)
                if scoring.done() and not scoring.cancelled() and scoring.exception() is not None:
                    exc = scoring.exception()
                    raise RunFailed(f"records could not be scored or saved: {type(exc).__name__}: {exc}") from exc
                if not self.interrupted:
                    raise
            except Exception as exc:
                for t in [*workers, scoring]:
                    t.cancel()
                await asyncio.gather(*workers, scoring, return_exceptions=True)
                raise RunFailed(f"records could not be saved: {type(exc).__name__}: {exc}") from exc
        finally:
            restore_signals()
            self.writer.close()
            with contextlib.suppress(Exception):  # calls finished in the last tick: kept for --resume
                self._flush_journal()
            self._journal_closed = True  # a retry still scheduled finds nothing to do
            self.journal.close()
            if plan.target.capture is not None:
                plan.target.capture.close()
            await plan.target.close()
            for s in plan.scorers:
                try:
                    await s.close()
                except Exception:  # closing must not hide the run's own outcome
                    pass
        return "interrupted" if self.interrupted else "finished"

    def stop(self) -> None:
        """Ctrl-C: stop the run; records already scored stay saved."""
        self.interrupted = True
        for s in self.plan.scorers:  # each scorer has its own context; all must see the stop
            s.ctx.cancelled = True
        if self._main is not None:
            self._main.cancel()


def _scorer_extras(plan: Plan) -> dict[str, Any]:
    return {s.name: s.summary_extra() for s in plan.scorers}


def write_summary(run_dir: RunDir, plan: Plan, builder: SummaryBuilder, status: RunStatus, manifest: Manifest,
                  failure: str | None = None) -> Summary:
    summary = builder.build(run_id=run_dir.id, eval=plan.loaded.config.name, status=status,
                            planned=plan.total, started_at=manifest.get("started_at"), finished_at=now_iso())
    if failure is not None:
        summary["failure"] = failure
    for name, extra in _scorer_extras(plan).items():
        if extra and name in summary["scorers"]:
            summary["scorers"][name].update(extra)
    if plan.ctx.usage:
        summary["scorer_usage"] = plan.ctx.usage
    if manifest.get("prompt"):
        summary["prompt"] = manifest["prompt"]
    run_dir.write_summary(summary)
    manifest["status"] = status
    manifest["finished_at"] = summary["finished_at"]
    run_dir.write_manifest(manifest)
    return summary


async def run_eval(opts: RunOptions) -> RunOutcome:
    """Prepare, create or reopen the run directory (holding its lock), run, write the summary."""
    lock = RunLock()
    try:
        return await _run_locked(opts, lock)
    finally:
        lock.release()


async def _run_locked(opts: RunOptions, lock: RunLock) -> RunOutcome:
    manifest: Manifest
    if opts.resume:
        run_dir = resolve_run(opts.resume, opts.home)
        # one run, one writer: a second resume of a live run stops here, before any call
        lock.acquire(run_dir.path)
        manifest = run_dir.read_manifest()
        if manifest.get("status") == "finished":
            raise UsageError(f"run {run_dir.id} already finished; nothing to resume")
        saved = manifest.get("options") or {}
        opts.config_path = manifest["config_path"]
        opts.overrides = manifest.get("overrides") or {}
        for k in ("concurrency", "repeat", "limit", "sample", "seed", "shard"):
            if getattr(opts, k) is None:
                setattr(opts, k, saved.get(k))
        opts.filters = opts.filters or saved.get("filters") or []
        plan = await prepare(opts)
        if plan.loaded.fingerprint != manifest.get("config_fingerprint"):
            raise UsageError(f"{plan.loaded.path} changed since run {run_dir.id} started; start a new run")
        if plan.dataset.fingerprint and plan.dataset.fingerprint != manifest["dataset"].get("fingerprint"):
            raise UsageError(f"dataset {plan.dataset.source} changed since run {run_dir.id} started; start a new run")
        if plan.target.info().get("prompt") != manifest.get("prompt"):
            raise UsageError(f"the prompt changed since run {run_dir.id} started (now "
                             f"{(plan.target.info().get('prompt') or {}).get('label')}); start a new run")
    else:
        plan = await prepare(opts)
        run_dir = RunDir(plan.home / "runs" / (opts.run_id or new_run_id()))
        lock.acquire(run_dir.path)
        # typed keys, and what the target (a resolved prompt) and a variant group add
        manifest = cast(Manifest, {
            "run_id": run_dir.id,
            "eval": plan.loaded.config.name,
            "description": plan.loaded.config.description,
            "config_path": str(plan.loaded.path.resolve()),
            "config_fingerprint": plan.loaded.fingerprint,
            "config": config_json(plan.loaded),
            "dataset": {"source": plan.dataset.source, "name": plan.dataset.name,
                        "fingerprint": plan.dataset.fingerprint, "items": len(plan.dataset.items)},
            "options": opts.to_manifest(),
            "planned": {"items": len(plan.items), "repeat": plan.repeat, "records": plan.total},
            "scorers": [n for s in plan.scorers for n in s.stat_names()],
            **({"informational": info} if (info := [n for s in plan.scorers for n in s.informational_names()]) else {}),
            "target": plan.loaded.config.target.kind,
            **({"overrides": plan.loaded.overrides} if plan.loaded.overrides else {}),
            **plan.target.info(),
            "git": git_state(),
            "evalrun_version": __version__,
            "python": ".".join(map(str, sys.version_info[:3])),
            "started_at": now_iso(),
            "started_ts": time.time(),
            "status": "running",
            **opts.manifest_extra,
        })
        run_dir.write_manifest(manifest)

    cfg = plan.loaded.config
    builder = SummaryBuilder([n for s in plan.scorers for n in s.stat_names()], cluster=cfg.cluster,
                             exclude_errors=cfg.exclude_errors, budget=cfg.error_budget,
                             scorer_budgets={n: s.config.error_budget for s in plan.scorers for n in s.stat_names()})
    done: set[tuple[str, int]] = set()
    planned = {(it.id, t) for it in plan.items for t in range(plan.repeat)} if opts.resume else None
    for rec in run_dir.records():
        if planned is not None and rec.key not in planned:
            continue
        done.add(rec.key)
        builder.add(rec)
    pending: list[Record] = []
    if opts.resume:
        # calls the crashed process finished but never scored: scored now, not called again
        pending = [r for r in run_dir.pending() if r.key not in done and planned is not None and r.key in planned]
        manifest["status"] = "running"
        manifest.setdefault("resumed_at", []).append(now_iso())
        run_dir.write_manifest(manifest)

    if opts.on_start is not None:
        opts.on_start(plan.target, run_dir, manifest)
    label = plan.loaded.config.name + (f"/{plan.loaded.variant}" if plan.loaded.variant else "")
    progress = Progress(opts.progress, label)
    progress.start(plan.total, len(done))
    progress.errors = builder.errors
    engine = Engine(plan, run_dir, done | {r.key for r in pending}, builder, progress, opts.shared)
    failure: RunFailed | None = None
    status: RunStatus
    try:
        status = await engine.run(pending)
    except RunFailed as e:
        status, failure = "failed", e
    finally:
        progress.stop()
        if plan.cache is not None:
            plan.cache.close()
    if status == "finished":
        # every call is scored and in results.jsonl: the journal has nothing left to give
        run_dir.pending_path.unlink(missing_ok=True)
    why = builder.failure() if status == "finished" else None
    if why is not None:
        status = "failed"
    elif failure is not None:
        why = str(failure)
    summary = write_summary(run_dir, plan, builder, status, manifest, why)
    if failure is not None:
        # what was saved stays saved and counted; the run can be resumed once the cause is fixed
        raise failure
    return RunOutcome(run_dir, summary, status, plan.items)


T = TypeVar("T")


def run_in_loop(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)``, except at the end: tasks left in the loop (a target's own tasks,
    which may ignore their cancellation) get ``CANCEL_GRACE_SECONDS`` to end after they are
    cancelled, and are dropped then instead of holding the process forever."""
    runner = asyncio.Runner()
    try:
        return runner.run(main)
    finally:
        loop = runner.get_loop()
        left = asyncio.all_tasks(loop)
        for t in left:
            t.cancel()
        if left:
            loop.run_until_complete(asyncio.wait(left, timeout=CANCEL_GRACE_SECONDS))
        stuck = [t for t in left if not t.done()]
        for t in left:
            if t.done() and not t.cancelled():
                t.exception()  # seen: the target's task, not the run's ("never retrieved" noise)
        if not stuck:
            runner.close()
        else:
            for t in stuck:  # left behind on purpose: no "destroyed but it is pending" noise
                with contextlib.suppress(AttributeError):
                    t._log_destroy_pending = False  # type: ignore[attr-defined]  # asyncio's own flag
            with contextlib.suppress(Exception):
                loop.run_until_complete(asyncio.wait_for(loop.shutdown_asyncgens(), CANCEL_GRACE_SECONDS))
                loop.run_until_complete(
                    asyncio.wait_for(loop.shutdown_default_executor(), CANCEL_GRACE_SECONDS))
            asyncio.set_event_loop(None)
            loop.close()


def check_home(home: Path) -> None:
    """The output directory must be (or become) a writable directory: checked before any call."""
    for p in (home, home / "runs"):
        if p.exists() and not p.is_dir():
            raise UsageError("output directory is not a directory", str(p))
    try:
        (home / "runs").mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create the output directory: {e.strerror}", str(home)) from None
    if not os.access(home / "runs", os.W_OK | os.X_OK):
        raise UsageError("output directory is not writable", str(home / "runs"))
