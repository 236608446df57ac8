"""LangGraph checkpointer glue: the checkpointer follows Django's database.

SQLite database → SqliteSaver on a sibling file (the Django file's write lock is for the desk's
short transactions; checkpoints are written all through a run). PostgreSQL → PostgresSaver on the
same database. One saver per process, created lazily after fork, as the savers require; graphs
with ``async def`` nodes get the async saver of the same store, bound to the engine loop.

Savers deserialise only what they are allowed to: LangGraph's safe types plus, per graph, the
types its state schema names (see ``registry``), plus ``REVIEWDESK_CHECKPOINT_ALLOWED_TYPES``.
Anything else comes back as plain data with a warning naming the setting to change, instead of
being imported and constructed from whatever the checkpoint store says.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connections
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from reviewdesk.engine import aio

_lock = threading.Lock()
_savers: dict[tuple[Any, ...], BaseCheckpointSaver] = {}
# The pool each process keeps for checkpoint reads and writes; runs hold a connection only for
# the duration of one read or write, so a few serve many concurrent runs.
POOL_SIZE = 8


def _database() -> dict[str, Any]:
    # settings_dict, not settings.DATABASES: under tests it names the test database.
    return connections["default"].settings_dict


def is_postgres() -> bool:
    return _database()["ENGINE"] == "django.db.backends.postgresql"


def sqlite_path() -> Path:
    name = Path(str(_database()["NAME"]))
    return name.with_name(name.stem + ".checkpoints.sqlite3")


def postgres_conninfo() -> str:
    db = _database()
    parts = {
        "dbname": db["NAME"],
        "user": db.get("USER"),
        "password": db.get("PASSWORD"),
        "host": db.get("HOST"),
        "port": db.get("PORT"),
    }
    return " ".join(f"{k}='{v}'" for k, v in parts.items() if v)


def saver_key() -> tuple[Any, ...]:
    """Identifies the saver this process should use right now."""
    target = postgres_conninfo() if is_postgres() else str(sqlite_path())
    return (os.getpid(), target)


def allowed_types() -> set[tuple[str, str]]:
    """``REVIEWDESK_CHECKPOINT_ALLOWED_TYPES`` as (module, class name) pairs."""
    allowed = set()
    for entry in settings.REVIEWDESK_CHECKPOINT_ALLOWED_TYPES:
        module, sep, name = entry.strip().replace(":", ".").rpartition(".")
        if not sep or not module or not name:
            raise ValueError(
                f"REVIEWDESK_CHECKPOINT_ALLOWED_TYPES: {entry!r} is not 'package.module.Class'"
            )
        allowed.add((module, name))
    return allowed


def serializer() -> JsonPlusSerializer:
    """Strict msgpack: LangGraph's safe types plus the configured extras (graphs add theirs)."""
    return JsonPlusSerializer(allowed_msgpack_modules=tuple(allowed_types()) or None)


def saver() -> BaseCheckpointSaver:
    """This process's checkpointer, created on first use."""
    key = saver_key()
    with _lock:
        if key not in _savers:
            _savers[key] = _postgres_saver() if is_postgres() else _sqlite_saver()
        return _savers[key]


def async_saver() -> BaseCheckpointSaver:
    """This process's async checkpointer (same store), living on the engine loop."""
    key = ("async", *saver_key())
    with _lock:
        if key not in _savers:
            factory = _async_postgres_saver if is_postgres() else _async_sqlite_saver
            _savers[key] = aio.run(factory())
        return _savers[key]


def close_all() -> None:
    """Close this process's savers (their pools would keep the database in use)."""
    with _lock:
        for key, saver in _savers.items():
            conn = getattr(saver, "conn", None)
            if key[0] == "async":
                if conn is not None and key[1] == os.getpid():
                    aio.run(conn.close())
            elif hasattr(conn, "close"):
                conn.close()
        _savers.clear()


def setup() -> None:
    """Create the checkpointer's tables (a migration calls this; never at import)."""
    saver().setup()


def _sqlite_saver() -> BaseCheckpointSaver:
    from langgraph.checkpoint.sqlite import SqliteSaver

    path = sqlite_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, check_same_thread=False, timeout=60)
    conn.execute("PRAGMA journal_mode=WAL")
    saver = SqliteSaver(conn, serde=serializer())
    saver.setup()  # cheap and idempotent; the file may be new (e.g. a fresh test database)
    return saver


async def _async_sqlite_saver() -> BaseCheckpointSaver:
    import aiosqlite
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    path = sqlite_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = await aiosqlite.connect(path, timeout=60)
    await conn.execute("PRAGMA journal_mode=WAL")
    saver = AsyncSqliteSaver(conn, serde=serializer())
    await saver.setup()
    return saver


def _postgres_saver() -> BaseCheckpointSaver:
    from langgraph.checkpoint.postgres import PostgresSaver
    from psycopg.rows import dict_row
    from psycopg_pool import ConnectionPool

    pool = ConnectionPool(
        postgres_conninfo(),
        min_size=1,
        max_size=POOL_SIZE,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        open=True,
    )
    return PostgresSaver(pool, serde=serializer())


async def _async_postgres_saver() -> BaseCheckpointSaver:
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from psycopg.rows import dict_row
    from psycopg_pool import AsyncConnectionPool

    pool = AsyncConnectionPool(
        postgres_conninfo(),
        min_size=1,
        max_size=POOL_SIZE,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        open=False,
    )
    await pool.open()
    return AsyncPostgresSaver(pool, serde=serializer())


def thread_delete(thread_id: str) -> None:
    """Delete every checkpoint and pending write of one thread (a staff action)."""
    saver().delete_thread(thread_id)
