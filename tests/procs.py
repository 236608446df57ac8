"""Real processes for integration tests: a private Redis, Celery workers and Daphne.

Plain functions, no fixtures and no Django, so conftest picks the scopes and crash tests can kill
things mid-task. Every child runs in its own session (a kill takes its prefork pool with it),
logs to a file, and every wait has a timeout whose error quotes that log.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path

from reviewdesk.devrun import (
    BASE_DIR,
    DevrunError,
    Proc,
    ProcError,
    python_m,
    redis_ping,
    start_redis,
    unix_url,
    worker_argv,
)

__all__ = [
    "DevrunError",
    "Proc",
    "ProcError",
    "free_port",
    "process_env",
    "redis_ping",
    "start_celery_beat",
    "start_celery_worker",
    "start_daphne",
    "start_redis",
    "unix_url",
]

# Flags that make a test worker start fast and stay quiet: there is only ever one per broker.
TEST_WORKER_FLAGS = ("--without-heartbeat", "--without-gossip", "--without-mingle")


def process_env(env: Mapping[str, str]) -> dict[str, str]:
    """`env` over our own environment, unbuffered, with Django's settings module named."""
    merged = {**os.environ, "PYTHONUNBUFFERED": "1"}
    merged.setdefault("DJANGO_SETTINGS_MODULE", "reviewdesk.settings")
    merged.update(env)
    return merged


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _accepts(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def start_celery_worker(
    env: Mapping[str, str],
    *,
    pool: str = "prefork",
    concurrency: int = 2,
    log_path: Path,
    timeout: float = 60.0,
    extra_args: Sequence[str] = (),
) -> Proc:
    """A Celery worker for `reviewdesk` (`pool`: "prefork" or "threads"), once it logs "ready.".

    `env` is laid over os.environ: pass at least REDIS_URL and the test DATABASE_URL. The pool
    is up when "ready." is logged, so `kill_pool_child()` works straight away. The pool goes
    through the settings' environment: Celery cannot tell `--pool=prefork` from its default,
    and lets a configured `worker_pool` override it.
    """
    argv = worker_argv(concurrency, extra=(*TEST_WORKER_FLAGS, *extra_args))
    env = {
        **env,
        "REVIEWDESK_WORKER_POOL": pool,
        "REVIEWDESK_WORKER_CONCURRENCY": str(concurrency),
    }
    proc = Proc.start(
        f"celery worker ({pool})", argv, env=process_env(env), log_path=Path(log_path)
    )
    try:
        proc.wait_for_log(" ready.", timeout=timeout)
    except ProcError:
        proc.kill()
        raise
    return proc


def start_celery_beat(
    env: Mapping[str, str],
    *,
    log_path: Path,
    schedule_path: Path | None = None,
    timeout: float = 60.0,
) -> Proc:
    """Celery beat for `reviewdesk` (the reconciler's clock), returned once it has started.

    Its schedule file defaults to one beside `log_path`, never VAR_DIR's, which `make run` uses.
    """
    log_path = Path(log_path)
    schedule = schedule_path or log_path.with_name(log_path.stem + "-schedule")
    argv = python_m(
        "celery", "-A", "reviewdesk", "beat", "--loglevel=INFO", "--schedule", str(schedule)
    )
    proc = Proc.start("celery beat", argv, env=process_env(env), log_path=log_path)
    try:
        proc.wait_for_log("beat: Starting...", timeout=timeout)
    except ProcError:
        proc.kill()
        raise
    return proc


def start_daphne(
    env: Mapping[str, str],
    *,
    port: int | None = None,
    log_path: Path,
    timeout: float = 30.0,
) -> Proc:
    """Daphne serving reviewdesk on 127.0.0.1, returned once the port accepts connections.

    Daphne loads the application before it listens, so an accepting port means Django is set up.
    `proc.url` is "http://127.0.0.1:PORT" (no trailing slash), `proc.port` the port.
    """
    port = free_port() if port is None else port
    if _accepts(port):
        # Waiting for the port would otherwise be satisfied by whatever already holds it.
        raise ProcError(f"port {port} on 127.0.0.1 is already in use")
    argv = python_m("daphne", "-b", "127.0.0.1", "-p", str(port), "reviewdesk.asgi:application")
    proc = Proc.start("daphne", argv, env=process_env(env), log_path=Path(log_path), cwd=BASE_DIR)
    try:
        proc.wait_until(lambda: _accepts(port), timeout=timeout, what=f"listening on port {port}")
    except ProcError:
        proc.kill()
        raise
    proc.port = port
    proc.url = f"http://127.0.0.1:{port}"
    return proc
