"""The run directory (manifest, results.jsonl, summary) and the content cache.

A run lives in ``<home>/runs/<run-id>/``:

- ``manifest.json``: config and dataset fingerprints, git state, evalrun version, times, status
- ``results.jsonl``: one Record per line, appended as records finish (crash-safe)
- ``summary.json``: per-scorer statistics, error count and status
- ``pending.jsonl``: every finished target call, unscored, written as it returns (one write
  for the calls that finish in the same event-loop tick), so
  a crash never loses a paid call while scorers are still busy; resume scores these
  without calling the target again. Removed when the run finishes.
- ``lock``: held (an OS file lock) by the one process writing the run

``<home>`` is ``.evalrun`` in the working directory unless ``--output-dir`` or
``EVALRUN_HOME`` says otherwise.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import hashlib
import os
import secrets
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from evalrun import _json
from evalrun._text import one_line
from evalrun.errors import UsageError
from evalrun.records import Record, scrub_text
from evalrun.runs import Manifest, Summary

MANIFEST = "manifest.json"
RESULTS = "results.jsonl"
SUMMARY = "summary.json"
# the eval's run history as this run knew it (evalrun.history writes and merges it)
HISTORY = "history.jsonl"
PENDING = "pending.jsonl"
LOCK = "lock"
# O_NOFOLLOW: a symlink planted in a run directory must not redirect evalrun's writes
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def default_home() -> Path:
    return Path(os.environ.get("EVALRUN_HOME") or ".evalrun")


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def write_json_atomic(path: Path, data: Any) -> None:
    """``data`` as JSON at ``path``, the way :func:`write_text_atomic` writes."""
    write_text_atomic(path, _json.json_pretty(data))


def write_text_atomic(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a reader never sees half a file. The
    temporary file is created new (O_EXCL, O_NOFOLLOW): a symlink or file planted under its
    name is never followed or overwritten, and the rename replaces a symlink at ``path``
    itself, never the file it points to."""
    text, _ = scrub_text(text)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}-{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o644)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def open_append(path: Path) -> int:
    """An append-only descriptor that refuses to follow a symlink at ``path``."""
    try:
        return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW, 0o644)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise UsageError("is a symlink; evalrun does not write through links in a run directory",
                             str(path)) from None
        raise


class RunLock:
    """One run, one writer: an exclusive OS lock (``flock``) on ``<run>/lock``, held for the
    whole run. The holder's pid is written into the file so a second process can name it.
    The kernel drops the lock when the holder dies, however it dies."""

    def __init__(self) -> None:
        self.path: Path | None = None
        self.fd: int | None = None

    def acquire(self, run_path: Path) -> None:
        import fcntl

        self.path = Path(run_path) / LOCK
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | _NOFOLLOW, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise UsageError(f"run is in use by another evalrun process (pid {holder}); wait for it or stop it",
                             str(self.path.parent)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = None


class RunDir:
    """One run's folder."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def results_path(self) -> Path:
        return self.path / RESULTS

    def exists(self) -> bool:
        return (self.path / MANIFEST).is_file()

    def read_manifest(self) -> Manifest:
        return cast(Manifest, self._read_json(MANIFEST))

    def write_manifest(self, manifest: Manifest) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.path / MANIFEST, manifest)

    def read_summary(self) -> Summary | None:
        if not (self.path / SUMMARY).is_file():
            return None
        return cast(Summary, self._read_json(SUMMARY))

    def write_summary(self, summary: Summary) -> None:
        write_json_atomic(self.path / SUMMARY, summary)

    def _read_json(self, name: str) -> dict[str, Any]:
        p = self.path / name
        try:
            data = _json.loads(p.read_bytes())
        except FileNotFoundError:
            raise UsageError(f"not a run directory (no {name})", str(self.path)) from None
        except ValueError as e:
            raise UsageError(f"corrupt {name}: {e}", str(p)) from None
        except OSError as e:
            raise UsageError(f"cannot read {name}: {e.strerror}", str(p)) from None
        if not isinstance(data, dict):
            raise UsageError(f"corrupt {name}: not a JSON object", str(p))
        return data

    def iter_records(self) -> Iterator[Record]:
        """Records in file order. A torn last line (a crash mid-write) is skipped; a record
        that appears twice (never written so, but be safe) keeps its last version."""
        yield from iter_results_file(self.results_path)

    def records(self) -> list[Record]:
        return _latest(self.results_path, strict=True)

    @property
    def pending_path(self) -> Path:
        return self.path / PENDING

    def pending(self) -> list[Record]:
        """Finished-but-unscored target calls from the journal (own file: bad lines skipped)."""
        return _latest(self.pending_path, strict=False)


def _latest(path: Path, *, strict: bool) -> list[Record]:
    """The records of a results file, the last version of each (item, trial)."""
    latest: dict[tuple[str, int], Record] = {}
    with gc_paused():
        for r in iter_results_file(path, strict=strict):
            latest[r.key] = r
    return list(latest.values())


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while many records load: they hold no cycles, and each
    collection would rescan every record loaded so far (half the load time of 100,000 records)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def iter_results_file(path: Path, strict: bool = True) -> Iterator[Record]:
    """Records of a results file in order. A torn final line (a crash mid-write) is skipped;
    a complete final record that only lacks its newline is kept. Any other line that is not
    a record evalrun wrote is a UsageError naming file:line (``strict``) or skipped."""
    if strict and path.is_symlink():
        raise UsageError("is a symlink; evalrun does not read or write through links in a run directory", str(path))
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return
    with f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                d = _json.loads(line)
            except ValueError:
                if not line.endswith(b"\n"):
                    return  # torn final line after a crash: that record will run again
                if not strict:
                    continue
                raise UsageError("corrupt record (not JSON); remove or fix the line", str(path), lineno) from None
            try:
                yield Record.from_dict(d)
            except ValueError as e:
                if strict:
                    raise UsageError(f"not an evalrun record: {e}; remove or fix the line", str(path), lineno) from None


class ResultsWriter:
    """Appends records to results.jsonl (or the pending journal), one line each, written to
    the OS at once so a killed process loses nothing already written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if path.is_symlink():
            raise UsageError("is a symlink; evalrun does not write through links in a run directory", str(path))
        self._repair_torn_tail()
        self._fd = open_append(path)

    def _repair_torn_tail(self) -> None:
        # A SIGKILL can leave half a line at the end; cut it so the next append starts clean.
        # A last line that is a whole record without its newline is kept and terminated.
        try:
            with open(self.path, "rb+") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                if size == 0:
                    return
                f.seek(max(0, size - 1))
                if f.read(1) == b"\n":
                    return
                chunk = 1 << 16
                pos = size
                cut = 0
                while pos > 0:
                    start = max(0, pos - chunk)
                    f.seek(start)
                    data = f.read(pos - start)
                    idx = data.rfind(b"\n")
                    if idx >= 0:
                        cut = start + idx + 1
                        break
                    pos = start
                f.seek(cut)
                tail = f.read()
                try:
                    Record.from_dict(_json.loads(tail))
                except ValueError:
                    f.truncate(cut)
                else:
                    f.seek(0, os.SEEK_END)
                    f.write(b"\n")
        except FileNotFoundError:
            pass

    def write(self, records: list[Record]) -> None:
        data = b"".join(encode_record(r) for r in records)
        view = memoryview(data)
        start = os.lseek(self._fd, 0, os.SEEK_END)
        try:
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
        except OSError:
            # disk full mid-line: take the half line back so the file stays whole lines
            try:
                os.ftruncate(self._fd, start)
            except OSError:
                pass  # the torn tail is cut on the next open instead
            raise

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def encode_record(rec: Record) -> bytes:
    """One JSON line for ``rec``; text UTF-8 cannot hold is repaired (and noted in the record)
    rather than failing the write."""
    try:
        return _json.dumps_line(rec.to_dict())
    except (UnicodeEncodeError, TypeError, ValueError):
        rec.scrub()
        return _json.dumps_line(rec.to_dict())


def resolve_run(ref: str, home: Path | None = None) -> RunDir:
    """A RUN argument: a run directory path, a run id, or ``latest``."""
    home = home or default_home()
    p = Path(ref)
    if (p / MANIFEST).is_file():
        return RunDir(p)
    if ref == "latest":
        runs = list_runs(home)
        if not runs:
            raise UsageError(f"no runs in {home / 'runs'}")
        return runs[-1]
    cand = home / "runs" / ref
    if (cand / MANIFEST).is_file():
        return RunDir(cand)
    # a unique prefix of a run id is enough
    matches = [r for r in list_runs(home) if r.id.startswith(ref)] if (home / "runs").is_dir() else []
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise UsageError(f"run id prefix {ref!r} is ambiguous: " + ", ".join(m.id for m in matches[:5]))
    raise UsageError(f"no run {ref!r} (looked for a run directory and in {home / 'runs'})")


def list_runs(home: Path | None = None) -> list[RunDir]:
    """Runs oldest first. Run ids start with their UTC start second; runs started within the
    same second are ordered by the exact start time their manifests hold."""
    root = (home or default_home()) / "runs"
    if not root.is_dir():
        return []

    runs: list[tuple[tuple[str, float], RunDir]] = []
    for p in root.iterdir():
        if not (p / MANIFEST).is_file():
            continue
        r = RunDir(p)
        try:
            ts = r.read_manifest().get("started_ts")
            runs.append(((r.id[:15], float(ts) if isinstance(ts, int | float) else 0.0), r))
        except UsageError as e:
            # one damaged old run must not stop every listing, `latest` and comparison
            warn_damaged(r, e)
    runs.sort(key=lambda x: x[0])
    return [r for _k, r in runs]


_WARNED: set[str] = set()


def forget_warnings() -> None:
    """A new command starts: its damaged runs are warned about again."""
    _WARNED.clear()


def warn_damaged(run: RunDir, error: UsageError) -> None:
    """Say once (per command) on stderr that ``run`` is skipped, and why."""
    if str(run.path) in _WARNED:
        return
    _WARNED.add(str(run.path))
    print(one_line(f"evalrun: warning: skipping run {run.id}: {error}"), file=sys.stderr)


def file_fingerprint(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def content_key(*parts: Any) -> str:
    """The cache key of whatever ``parts`` determine (canonical JSON, sha256)."""
    return hashlib.sha256(_json.canonical(list(parts)).encode()).hexdigest()


class Cache:
    """A content-addressed cache on disk (SQLite), shared by runs and processes.

    Entries live in namespaces (``target``, ``judge``, ``embedding:<model-fp>``...). Values
    are bytes; :meth:`get_json`/:meth:`put_json` wrap JSON. Each entry stores a checksum of
    its value, and an entry whose checksum does not match is treated as missing (and
    deleted), so a corrupted cache is recomputed, never used.
    """

    def __init__(self, path: Path) -> None:
        import sqlite3  # a run that caches nothing never opens the cache

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30,
                                   isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS entries (ns TEXT NOT NULL, key TEXT NOT NULL, "
            "value BLOB NOT NULL, checksum TEXT NOT NULL, created REAL NOT NULL, "
            "PRIMARY KEY (ns, key))"
        )
        self.hits = 0
        self.misses = 0

    @staticmethod
    def _checksum(value: bytes) -> str:
        return hashlib.blake2b(value, digest_size=16).hexdigest()

    def get_many(self, ns: str, keys: list[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        bad: list[str] = []
        with self._lock:
            for i in range(0, len(keys), 500):
                chunk = keys[i:i + 500]
                q = f"SELECT key, value, checksum FROM entries WHERE ns=? AND key IN ({','.join('?' * len(chunk))})"
                for key, value, checksum in self._db.execute(q, [ns, *chunk]):
                    value = bytes(value)
                    if self._checksum(value) == checksum:
                        found[key] = value
                    else:
                        bad.append(key)
            if bad:
                self._db.executemany("DELETE FROM entries WHERE ns=? AND key=?", [(ns, k) for k in bad])
        self.hits += len(found)
        self.misses += len(keys) - len(found)
        return found

    def put_many(self, ns: str, entries: dict[str, bytes]) -> None:
        if not entries:
            return
        now = time.time()
        rows = [(ns, k, v, self._checksum(v), now) for k, v in entries.items()]
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO entries VALUES (?,?,?,?,?)", rows)
            self._db.execute("COMMIT")

    def get(self, ns: str, key: str) -> bytes | None:
        return self.get_many(ns, [key]).get(key)

    def put(self, ns: str, key: str, value: bytes) -> None:
        self.put_many(ns, {key: value})

    def get_json(self, ns: str, key: str) -> Any | None:
        raw = self.get(ns, key)
        return None if raw is None else _json.loads(raw)

    def put_json(self, ns: str, key: str, value: Any) -> None:
        self.put(ns, key, _json.canonical(value).encode())

    def close(self) -> None:
        with self._lock:
            self._db.close()


def open_cache(home: Path | None = None) -> Cache:
    return Cache((home or default_home()) / "cache" / "cache.sqlite")


def read_history_file(path: Path) -> list[dict[str, Any]]:
    """Entries of a history.jsonl; a torn or foreign line is skipped (history is a convenience,
    never a reason to fail a run)."""
    import json

    out = []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    for line in text.splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if valid_history_entry(e):
            out.append(e)
    return out


def valid_history_entry(e: Any) -> bool:
    """A history row evalrun can show: a run id and per scorer numbers (a row from a foreign
    or hand-edited file, with text where a number belongs, is skipped like a torn line)."""
    return (isinstance(e, dict) and isinstance(e.get("run_id"), str) and isinstance(e.get("scorers"), dict)
            and all(_valid_scorer_numbers(s) for s in e["scorers"].values()))


def _valid_scorer_numbers(s: Any) -> bool:
    def number(x: Any) -> bool:
        return x is None or (isinstance(x, int | float) and not isinstance(x, bool))

    def pair(x: Any) -> bool:
        return x is None or (isinstance(x, list) and len(x) == 2 and all(map(number, x)))

    return (isinstance(s, dict) and all(number(s.get(k)) for k in ("n", "mean", "pass_rate"))
            and pair(s.get("ci95")) and pair(s.get("pass_ci95")))
