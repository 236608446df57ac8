"""The outer half of `manage.py chaos`: a private database and environment, then the run itself.

Isolation by construction: the run (`manage.py chaos --inner`) is a separate process whose
settings name only the chaos database (a fresh SQLite file under var/chaos/<run>/, or a fresh
PostgreSQL database `<name>_chaos_<pid>` on the server DATABASE_URL names), its own Redis socket
and var directory. It never sees the user's database or Redis. This half creates the database,
waits for the run, kills whatever the run left behind (every child has the run id on its
command line) and drops the PostgreSQL database.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from reviewdesk.chaos import graphs

RUN_ENV = "REVIEWDESK_CHAOS_RUN"
KEEP_RUNS = 5


def say(message: str) -> None:
    print(f"chaos: {message}", flush=True)


def sweep(run_id: str) -> list[int]:
    """SIGKILL every process of this run still alive, found by the run id on its command line
    (Redis: its socket path under the run's directory; Python children: `-X` or `--run-id`)."""
    import psutil

    killed = []
    for proc in psutil.process_iter(["cmdline"]):
        if proc.pid == os.getpid():
            continue
        cmdline = " ".join(proc.info["cmdline"] or [])
        if f"run-{run_id}/" in cmdline or f"reviewdesk_chaos_run={run_id}" in cmdline:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                proc.kill()
                killed.append(proc.pid)
    return killed


def _prune(root: Path, keep: int) -> None:
    """Keep the newest `keep` run directories (logs, ledger, report); drop older ones."""
    runs = sorted((p for p in root.glob("run-*") if p.is_dir()), key=lambda p: p.stat().st_mtime)
    for old in runs[:-keep] if keep else runs:
        shutil.rmtree(old, ignore_errors=True)


class Database:
    """The run's own database: created fresh, dropped afterwards (PostgreSQL) or left as a file."""

    def __init__(self, settings_dict: dict[str, Any], run_dir: Path) -> None:
        self.source = settings_dict
        self.postgres = settings_dict["ENGINE"] == "django.db.backends.postgresql"
        self.name = f"{settings_dict['NAME']}_chaos_{os.getpid()}" if self.postgres else ""
        self.path = run_dir / "chaos.sqlite3"

    def url(self) -> str:
        if not self.postgres:
            return f"sqlite:///{self.path}"
        db = self.source
        auth = quote(db.get("USER") or "", safe="")
        if db.get("PASSWORD"):
            auth += ":" + quote(db["PASSWORD"], safe="")
        host = db.get("HOST") or "127.0.0.1"
        port = db.get("PORT") or 5432
        return f"postgres://{auth}@{host}:{port}/{self.name}"

    def _admin(self) -> Any:
        import psycopg

        db = self.source
        params = {
            "user": db.get("USER") or None,
            "password": db.get("PASSWORD") or None,
            "host": db.get("HOST") or "127.0.0.1",
            "port": db.get("PORT") or 5432,
        }
        params = {k: v for k, v in params.items() if v is not None}
        # The maintenance database first; the user's own database if that one is refused.
        for dbname in ("postgres", db["NAME"]):
            try:
                return psycopg.connect(dbname=dbname, autocommit=True, **params)
            except psycopg.OperationalError:
                if dbname == db["NAME"]:
                    raise
        raise AssertionError("unreachable")

    def create(self) -> None:
        if not self.postgres:
            return
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{self.name}"')

    def drop(self) -> None:
        if not self.postgres:
            return
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def run(argv: Sequence[str], *, settings_dict: dict[str, Any], var_dir: Path, run_id: str) -> int:
    """Prepare the database and environment, run `manage.py chaos --inner ARGV`, clean up."""
    root = var_dir / "chaos"
    root.mkdir(parents=True, exist_ok=True)
    _prune(root, KEEP_RUNS - 1)
    run_dir = root / f"run-{run_id}"
    run_dir.mkdir()
    database = Database(settings_dict, run_dir)
    say(f"run {run_id}: files, logs and the report in {run_dir}")
    say(f"database: {'PostgreSQL ' + database.name if database.postgres else database.path}")
    database.create()

    extra_graphs = json.loads(os.environ.get("REVIEWDESK_GRAPHS") or "{}")
    env = {
        **os.environ,
        RUN_ENV: run_id,
        "DATABASE_URL": database.url(),
        "REVIEWDESK_VAR_DIR": str(run_dir),
        "REDIS_URL": f"unix://{run_dir / 'redis.sock'}",
        "REVIEWDESK_GRAPHS": json.dumps({**extra_graphs, **graphs.GRAPHS}),
        graphs.LEDGER_ENV: str(run_dir / "ledger.jsonl"),
        "REVIEWDESK_CHAOS_PROBE_DIR": str(run_dir / "probe"),
        "DJANGO_SETTINGS_MODULE": "reviewdesk.settings",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("TEST_REDIS_URL", None)
    manage = str(Path(__file__).resolve().parents[2] / "manage.py")
    marker = f"reviewdesk_chaos_run={run_id}"
    child = subprocess.Popen(
        [sys.executable, "-X", marker, manage, "chaos", "--inner", *argv], env=env
    )

    def forward(signum: int, frame: Any) -> None:
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signum)

    # Ctrl-C reaches the child from the terminal; a SIGTERM sent to us is passed on.
    old_int = signal.signal(signal.SIGINT, lambda signum, frame: None)
    old_term = signal.signal(signal.SIGTERM, forward)
    try:
        returncode = child.wait()
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
        if child.poll() is None:
            child.kill()
            child.wait()
        time.sleep(0.2)
        leftovers = sweep(run_id)
        if leftovers:
            say(f"killed {len(leftovers)} leftover process(es): {leftovers}")
        try:
            database.drop()
        except Exception as exc:  # report, but keep the run's exit status
            say(f"could not drop database {database.name}: {exc}")
        else:
            if database.postgres:
                say(f"dropped database {database.name}")
    return 128 - returncode if returncode < 0 else returncode
