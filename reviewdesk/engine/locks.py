"""The per-thread run mutex: at most one run of a thread at a time, across processes and machines.

LangGraph does not serialise runs of one thread, so the desk must; and it must do so without a
database transaction held across the run (that held SQLite's whole write lock, or a PostgreSQL
row lock, for as long as a model call takes). The mutex is one the operating system or the
database releases by itself the moment its holder dies, so nothing ever has to guess from
timestamps whether a run is alive:

- PostgreSQL: a session-level advisory lock, taken on one dedicated connection per process
  (with TCP keepalives, so a machine that vanishes loses its locks within a minute). Works for
  every worker on every machine that shares the database.
- SQLite: ``flock`` on one small file per thread, in a directory beside the database file. SQLite
  is single-host, and so is this.

There is no lease to expire: a worker that is alive but stalled (a model call that never returns)
keeps its lock, and the thread shows "running" with the worker's name and start time until the
process is restarted; killing the process releases the lock at once. Within a process, an
in-memory set stops two pool threads from taking the same thread (advisory locks are re-entrant
within one database session).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import threading
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any, Protocol

from reviewdesk.engine import checkpoint

log = logging.getLogger(__name__)


class Mutex(Protocol):
    def try_acquire(self, thread_id: str) -> bool: ...

    def release(self, thread_id: str, *, discard: bool = False) -> None: ...

    def held(self, thread_ids: Collection[str]) -> set[str]: ...


class _InProcess:
    """The ids this process holds; shared by both kinds of mutex."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids: set[str] = set()

    def claim(self, thread_id: str) -> bool:
        with self._lock:
            if thread_id in self._ids:
                return False
            self._ids.add(thread_id)
            return True

    def drop(self, thread_id: str) -> None:
        with self._lock:
            self._ids.discard(thread_id)

    def snapshot(self) -> set[str]:
        with self._lock:
            return set(self._ids)


def advisory_key(thread_id: str) -> int:
    """A signed 64-bit advisory-lock key for a thread (namespaced, so other apps rarely clash)."""
    digest = hashlib.blake2b(f"reviewdesk.thread:{thread_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class PostgresMutex:
    """Session advisory locks on one connection per process."""

    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self._conn: Any = None
        self._conn_lock = threading.Lock()  # one query at a time on the shared session
        self._mine = _InProcess()

    def _connection(self) -> Any:
        import psycopg

        if self._conn is None or self._conn.closed or self._conn.broken:
            if self._conn is not None and self._mine.snapshot():
                # The old session died with the locks it held: another worker may now run
                # those threads. Their outcomes are still recorded safely (the mirror reads
                # the checkpointer), but say so: it means the database connection dropped.
                log.warning("advisory lock session lost while holding %s", self._mine.snapshot())
            self._conn = psycopg.connect(
                self._conninfo,
                autocommit=True,
                keepalives=1,
                keepalives_idle=15,
                keepalives_interval=5,
                keepalives_count=4,
                application_name="reviewdesk-mutex",
            )
        return self._conn

    def _query(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        import psycopg

        with self._conn_lock:
            for attempt in (1, 2):
                try:
                    return self._connection().execute(sql, params).fetchall()
                except psycopg.OperationalError:
                    if attempt == 2:
                        raise
                    self._conn = None  # reconnect once
        raise AssertionError("unreachable")

    def try_acquire(self, thread_id: str) -> bool:
        if not self._mine.claim(thread_id):
            return False
        try:
            [(got,)] = self._query("SELECT pg_try_advisory_lock(%s)", (advisory_key(thread_id),))
        except BaseException:
            self._mine.drop(thread_id)
            raise
        if not got:
            self._mine.drop(thread_id)
        return bool(got)

    def release(self, thread_id: str, *, discard: bool = False) -> None:
        try:
            self._query("SELECT pg_advisory_unlock(%s)", (advisory_key(thread_id),))
        except Exception:  # the session is gone, and its locks with it
            log.warning("could not release the run mutex of %s", thread_id, exc_info=True)
        finally:
            self._mine.drop(thread_id)

    def held(self, thread_ids: Collection[str]) -> set[str]:
        """The ids some live session (any process, any machine) holds right now."""
        if not thread_ids:
            return set()
        rows = self._query(
            "SELECT classid::bigint, objid::bigint FROM pg_locks "
            "WHERE locktype = 'advisory' AND objsubid = 1 AND granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            (),
        )
        keys = {int.from_bytes(((hi << 32) | lo).to_bytes(8, "big"), "big", signed=True)
                for hi, lo in rows}  # fmt: skip
        return {t for t in thread_ids if advisory_key(t) in keys} | (
            self._mine.snapshot() & set(thread_ids)
        )

    def close(self) -> None:
        with self._conn_lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class FileMutex:
    """``flock`` on one file per thread in `directory` (released by the kernel when we die)."""

    def __init__(self, directory: Path) -> None:
        self._dir = directory
        self._dir.mkdir(parents=True, exist_ok=True)
        self._fds: dict[str, int] = {}
        self._mine = _InProcess()

    def _path(self, thread_id: str) -> Path:
        if not thread_id or "/" in thread_id or thread_id.startswith("."):
            raise ValueError(f"not a thread id: {thread_id!r}")
        return self._dir / thread_id

    def try_acquire(self, thread_id: str) -> bool:
        if not self._mine.claim(thread_id):
            return False
        path = self._path(thread_id)
        try:
            while True:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as exc:
                    os.close(fd)
                    if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                        self._mine.drop(thread_id)
                        return False
                    raise
                # A holder may have unlinked the file between our open and our lock: then we
                # locked an orphan, and must lock the file the path names now.
                try:
                    same = os.fstat(fd).st_ino == os.stat(path).st_ino
                except FileNotFoundError:
                    same = False
                if same:
                    self._fds[thread_id] = fd
                    return True
                os.close(fd)
        except BaseException:
            self._mine.drop(thread_id)
            raise

    def release(self, thread_id: str, *, discard: bool = False) -> None:
        fd = self._fds.pop(thread_id, None)
        try:
            if fd is not None:
                if discard:  # a finished thread needs no lock file; unlink while still locked
                    with contextlib.suppress(FileNotFoundError):
                        self._path(thread_id).unlink()
                os.close(fd)  # closing the last descriptor releases the flock
        finally:
            self._mine.drop(thread_id)

    def held(self, thread_ids: Collection[str]) -> set[str]:
        """The ids some live process holds: probe each lock without waiting."""
        busy = self._mine.snapshot() & set(thread_ids)
        for thread_id in set(thread_ids) - busy:
            try:
                fd = os.open(self._path(thread_id), os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise
                busy.add(thread_id)
            finally:
                os.close(fd)  # also drops the probe's own lock
        return busy

    def close(self) -> None:
        for thread_id in list(self._fds):
            self.release(thread_id)


_mutexes: dict[tuple[Any, ...], PostgresMutex | FileMutex] = {}
_mutexes_lock = threading.Lock()


def mutex() -> PostgresMutex | FileMutex:
    """This process's run mutex for the configured database (one per process, after fork)."""
    key = checkpoint.saver_key()
    with _mutexes_lock:
        found = _mutexes.get(key)
        if found is None:
            if checkpoint.is_postgres():
                found = PostgresMutex(checkpoint.postgres_conninfo())
            else:
                found = FileMutex(checkpoint.sqlite_path().with_name(_lock_dir_name()))
            _mutexes[key] = found
        return found


def _lock_dir_name() -> str:
    name = checkpoint.sqlite_path().name.removesuffix(".checkpoints.sqlite3")
    return f"{name}.locks"


@contextlib.contextmanager
def holding(thread_id: str) -> Iterator[HeldMutex | None]:
    """Hold the thread's run mutex for the block, or yield None at once if someone else does."""
    lock = mutex()
    if not lock.try_acquire(thread_id):
        yield None
        return
    held = HeldMutex()
    try:
        yield held
    finally:
        lock.release(thread_id, discard=held.discard)


class HeldMutex:
    """A held mutex; set `discard` when the thread is finished, so its lock file can go."""

    discard: bool = False


def close_all() -> None:
    with _mutexes_lock:
        for found in _mutexes.values():
            found.close()
        _mutexes.clear()
