"""The desk under test: scratch database, Daphne and a Celery worker as `make run` starts them.

Runs inside the bench's child process, whose Django settings already point at a scratch
database, a scratch VAR_DIR and the bench's private Redis (the `bench` command sets them up and
removes them). Daphne and the worker get the same environment and the desk's default settings
(DEBUG as `make run` has it, the worker's pool and concurrency from the settings); the worker
also imports `reviewdesk.bench.echo`, the no-op task the Celery round trip is timed with. Beat
is not started: the reconciler's sweep every 10 s would only add noise to the figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from reviewdesk.bench import client
from reviewdesk.devrun import Proc, ProcError, port_in_use, python_m, worker_argv

log = logging.getLogger(__name__)
T = TypeVar("T")

GRAPH = "bench_loop"
GRAPHS = {GRAPH: "reviewdesk.bench.graph:graph"}
PASSWORD = "bench-reviewer-password"
REVIEWERS = 8  # bench1 … bench8, reviewers of the default queue
PYSPY_VERSION = "0.4.3"

_current: Desk | None = None


def current() -> Desk:
    """The desk this bench run started (measurement modules share it)."""
    if _current is None:
        raise RuntimeError("no bench desk is running: measurements run under `manage.py bench`")
    return _current


def say(message: str) -> None:
    print(f"bench: {message}", flush=True)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Desk:
    backend: str  # "sqlite" | "postgresql"
    quick: bool
    var: Path  # this backend's scratch VAR_DIR
    env: dict[str, str]
    profile_dir: Path | None = None
    web: Proc | None = None
    worker: Proc | None = None
    port: int = 0
    # Figures one measurement leaves for another (the peer compares with the desk's throughput).
    facts: dict[str, Any] = field(default_factory=dict)
    sessions: dict[int, dict[str, str]] = field(default_factory=dict)  # reviewer n's cookies
    _tags: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- processes ----------------------------------------------------------------------------

    def start_web(self) -> None:
        port = self.port or free_port()
        argv = python_m("daphne", "-b", "127.0.0.1", "-p", str(port), "reviewdesk.asgi:application")
        self.web = Proc.start("daphne", argv, env=self.env, log_path=self.var / "daphne.log")
        self.web.wait_until(lambda: port_in_use(port), timeout=60, what=f"listening on port {port}")
        self.port = port

    def stop_web(self) -> None:
        if self.web is not None:
            self.web.stop()
            self.web = None

    def start_worker(self) -> None:
        argv = worker_argv(extra=["--hostname=worker@%h", "--include=reviewdesk.bench.echo"])
        self.worker = Proc.start("worker", argv, env=self.env, log_path=self.var / "worker.log")
        self.worker.wait_for_log(" ready.", timeout=90)

    def stop(self) -> None:
        for proc in (self.web, self.worker):
            if proc is not None:
                proc.stop()
        self.web = self.worker = None

    def worker_rss(self) -> int:
        """Resident bytes of the worker (and its pool processes, if it forks)."""
        import psutil

        assert self.worker is not None
        main = psutil.Process(self.worker.pid)
        return main.memory_info().rss + sum(
            c.memory_info().rss for c in main.children(recursive=True)
        )

    # --- people and threads -------------------------------------------------------------------

    def reviewer(self, n: int) -> str:
        """Username of reviewer n, a member of the default queue's reviewers (created once)."""
        from django.contrib.auth.models import Group, User

        username = f"bench{n}"
        user, created = User.objects.get_or_create(username=username)
        if created:
            user.set_password(PASSWORD)
            user.save()
            user.groups.add(Group.objects.get(name="reviewers"))
        return username

    async def browser(self, n: int = 1) -> client.Browser:
        """Reviewer n's browser, logged in (once per reviewer: later browsers reuse the session).

        A login costs the server a password hash (pbkdf2, ~0.3 s of CPU here); measurements
        must not pay it, nor show it in their profiles.
        """
        if n not in self.sessions:
            username = await sync(self.reviewer)(n)
            browser = client.Browser(self.url)
            await browser.login(username, PASSWORD)
            await browser.close()
            self.sessions[n] = dict(browser.cookies)
        return client.Browser(self.url, cookies=dict(self.sessions[n]))

    async def log_in_all(self, count: int) -> None:
        for n in range(1, count + 1):
            await (await self.browser(n)).close()

    def tag(self, prefix: str) -> str:
        self._tags += 1
        return f"{prefix}{self._tags}"

    def thread_start(self, tag: str, **extra: Any) -> str:
        """Start a bench thread (the service a person's start form calls); its id."""
        from reviewdesk.services import threads

        return str(threads.thread_start(graph=GRAPH, input={"tag": tag, **extra}).pk)

    def pending_item(self, thread_id: str, *, timeout: float = 60.0) -> int:
        """Wait (polling the database) until the thread has a pending item; its id."""
        from reviewdesk.models import ReviewItem, Thread

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = (
                ReviewItem.objects.filter(thread_id=thread_id, status=ReviewItem.Status.PENDING)
                .values_list("pk", flat=True)
                .first()
            )
            if found is not None:
                return found
            status = Thread.objects.filter(pk=thread_id).values_list("status", flat=True).first()
            if status == Thread.Status.FAILED:
                raise RuntimeError(f"bench thread {thread_id} failed: see {self.var}/worker.log")
            time.sleep(0.02)
        raise TimeoutError(f"bench thread {thread_id} asked nothing in {timeout:g} s")

    def settle(self, timeout: float = 120.0) -> None:
        """Wait until no thread is owed a run, then retire every open item and thread.

        Each measurement starts from an empty queue, so one's leftovers neither weigh on the
        next one's pages nor arrive on its sockets.
        """
        from reviewdesk.models import ReviewItem, Thread

        deadline = time.monotonic() + timeout
        while Thread.objects.filter(status__in=Thread.ACTIVE).exists():
            if time.monotonic() > deadline:
                say(f"threads still running after {timeout:g} s; retiring them anyway")
                break
            time.sleep(0.1)
        ReviewItem.objects.filter(status__in=ReviewItem.OPEN).update(
            status=ReviewItem.Status.SUPERSEDED
        )
        Thread.objects.exclude(
            status__in=(Thread.Status.COMPLETED, Thread.Status.FAILED, Thread.Status.CANCELLED)
        ).update(status=Thread.Status.CANCELLED)

    # --- profiling ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def profiled(self, name: str) -> Iterator[None]:
        """With `bench --profile`: py-spy samples Daphne and the worker while the block runs."""
        if self.profile_dir is None:
            yield
            return
        spy = pyspy_path(self.var.parent)
        recorders = []
        for proc in (self.web, self.worker):
            if proc is None or spy is None:
                continue
            out = self.profile_dir / f"{self.backend}-{name}-{proc.name}.txt"
            argv = [
                str(spy), "record", "--pid", str(proc.pid), "--rate", "200", "--nonblocking",
                "--format", "raw", "--output", str(out), "--threads",
            ]  # fmt: skip
            recorders.append(
                (out, subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
            )
        try:
            yield
        finally:
            for out, rec in recorders:
                rec.send_signal(signal.SIGINT)
                try:
                    _, err = rec.communicate(timeout=30)
                except subprocess.TimeoutExpired:
                    rec.kill()
                    err = b"timed out writing"
                if not out.exists():
                    say(f"py-spy wrote nothing for {out.name}: {err.decode()[-300:]}")
                    continue
                from reviewdesk.bench import profile

                out.with_suffix(".top.txt").write_text(profile.summary(out))


def run(coro: Awaitable[T]) -> T:
    """Run a measurement's coroutine from the bench's sync code."""
    return asyncio.run(coro)  # type: ignore[arg-type]


def sync(function: Callable[..., T]) -> Callable[..., Awaitable[T]]:
    """A Django (sync) helper callable from the measurements' async code."""
    from asgiref.sync import sync_to_async

    return sync_to_async(function, thread_sensitive=False)


def pyspy_path(bench_dir: Path) -> Path | None:
    """py-spy in the bench's own tools virtualenv, installed (pinned) on first use."""
    venv = bench_dir / "tools-venv"
    spy = venv / "bin" / "py-spy"
    if spy.exists():
        return spy
    say(f"installing py-spy=={PYSPY_VERSION} into {venv} (for --profile)")
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", f"py-spy=={PYSPY_VERSION}"],
            check=True,
            timeout=300,
        )
    except (subprocess.SubprocessError, OSError) as error:
        say(f"py-spy could not be installed ({error}); running without profiles")
        return None
    return spy if spy.exists() else None


def start(*, backend: str, quick: bool, profile_dir: Path | None) -> Desk:
    """Migrate the scratch database, add the reviewers, start Daphne and the worker."""
    global _current
    from django.conf import settings
    from django.core.management import call_command

    var = Path(settings.VAR_DIR)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "DJANGO_SETTINGS_MODULE": "reviewdesk.settings"}
    desk = Desk(backend=backend, quick=quick, var=var, env=env, profile_dir=profile_dir)
    say(f"{backend}: migrating the scratch database")
    call_command("migrate", "--noinput", verbosity=0)
    call_command("collectstatic", "--noinput", verbosity=0)
    for n in range(1, REVIEWERS + 1):
        desk.reviewer(n)
    if profile_dir is not None:
        profile_dir.mkdir(parents=True, exist_ok=True)
        pyspy_path(var.parent)
    say(f"{backend}: starting Daphne and a Celery worker")
    try:
        desk.start_worker()
        desk.start_web()
        run(desk.log_in_all(REVIEWERS))
    except (ProcError, client.HttpError):
        desk.stop()
        raise
    _current = desk
    return desk


def stop() -> None:
    global _current
    if _current is not None:
        _current.stop()
        _current = None


def scratch_dir(base: Path, backend: str) -> Path:
    """A fresh VAR_DIR for one backend's run (the previous run's files removed first)."""
    path = base / backend
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path
