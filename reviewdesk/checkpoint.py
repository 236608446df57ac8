"""LangGraph checkpointer glue: the checkpointer follows Django's database.

SQLite database → SqliteSaver on a sibling file (never the Django file itself: a worker holds the
Django write lock while its graph writes checkpoints). PostgreSQL → PostgresSaver on the same
database. One saver per process, created lazily after fork, as the savers require.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

from django.db import connections
from langgraph.checkpoint.base import BaseCheckpointSaver

_lock = threading.Lock()
_savers: dict[tuple[Any, ...], BaseCheckpointSaver] = {}


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


def saver() -> BaseCheckpointSaver:
    """This process's checkpointer, created on first use."""
    key = saver_key()
    with _lock:
        if key not in _savers:
            _savers[key] = _postgres_saver() if is_postgres() else _sqlite_saver()
        return _savers[key]


def close_all() -> None:
    """Close this process's savers (their pools would keep the database in use)."""
    with _lock:
        for saver in _savers.values():
            conn = getattr(saver, "conn", None)
            if hasattr(conn, "close"):
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
    saver = SqliteSaver(conn)
    saver.setup()  # cheap and idempotent; the file may be new (e.g. a fresh test database)
    return saver


def _postgres_saver() -> BaseCheckpointSaver:
    from langgraph.checkpoint.postgres import PostgresSaver
    from psycopg.rows import dict_row
    from psycopg_pool import ConnectionPool

    pool = ConnectionPool(
        postgres_conninfo(),
        min_size=1,
        max_size=4,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        open=True,
    )
    return PostgresSaver(pool)
