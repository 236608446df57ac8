"""`python -m reviewdesk.devrun run` keeps the desk up: a crashed child restarts, the rest serve.

The end-to-end test runs the real supervisor, as `make run` does, in a VAR_DIR of its own (its
own SQLite database and private Redis), kills its children with SIGKILL and watches the desk come
back; only the pure helpers are tested on their own.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from reviewdesk import devrun
from tests.procs import Proc, free_port, redis_ping, unix_url
from tests.support import wait_for

# Generous: the machine is shared, and the first start migrates a fresh database.
STARTUP_TIMEOUT = 180
TIMEOUT = 90


def test_restart_delay_doubles_from_one_second_up_to_thirty() -> None:
    delays = [devrun.restart_delay(failures) for failures in range(8)]
    assert delays == [1, 2, 4, 8, 16, 30, 30, 30]
    assert devrun.restart_delay(1000) == 30


def test_describe_exit_names_the_signal_or_the_status() -> None:
    assert devrun.describe_exit(-signal.SIGKILL) == "was killed by SIGKILL"
    assert devrun.describe_exit(3) == "exited with status 3"


def test_desk_argvs_leave_the_pool_to_the_settings(tmp_path: Path) -> None:
    one = devrun.desk_argvs(port=8123, workers=1, var=tmp_path)
    assert list(one) == ["web", "worker", "beat"]
    three = devrun.desk_argvs(port=8123, workers=3, var=tmp_path)
    assert list(three) == ["web", "worker1", "worker2", "worker3", "beat"]
    for name in ("worker1", "worker2", "worker3"):
        argv = three[name]
        assert not [arg for arg in argv if arg.startswith(("--pool", "--concurrency", "-P"))]
        assert f"--hostname={name}@%h" in argv
    # Tests still ask for an explicit pool.
    assert devrun.worker_argv(2, pool="prefork")[-3:-1] == ["--pool=prefork", "--concurrency=2"]


def test_workers_wanted_must_be_a_positive_number(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REVIEWDESK_WORKERS", raising=False)
    assert devrun.workers_wanted() == 1
    monkeypatch.setenv("REVIEWDESK_WORKERS", "3")
    assert devrun.workers_wanted() == 3
    for bad in ("0", "-1", "two"):
        monkeypatch.setenv("REVIEWDESK_WORKERS", bad)
        with pytest.raises(devrun.DevrunError, match="REVIEWDESK_WORKERS"):
            devrun.workers_wanted()


# --- the real supervisor -----------------------------------------------------------------------


def ours(var: Path) -> list[psutil.Process]:
    """Every live process started for this VAR_DIR (they all inherit it in their environment)."""
    found = []
    for proc in psutil.process_iter(["environ", "status"]):
        environ = proc.info["environ"] or {}
        if environ.get("REVIEWDESK_VAR_DIR") == str(var) and proc.info["status"] != "zombie":
            found.append(proc)
    return found


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[tuple[Proc, dict[str, str]]]:
    """`devrun run` in a fresh VAR_DIR on a free port, with the example graphs only."""
    var = tmp_path / "var"
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("REDIS_URL", "DATABASE_URL", "REVIEWDESK_GRAPHS", "REVIEWDESK_CHAT_MODEL")
    }
    env.update(REVIEWDESK_VAR_DIR=str(var), PORT=str(free_port()), PYTHONUNBUFFERED="1")
    env.pop("REVIEWDESK_WORKERS", None)
    argv = devrun.python_m("reviewdesk.devrun", "run")
    supervisor = Proc.start("devrun run", argv, env=env, log_path=tmp_path / "devrun.log")
    try:
        yield supervisor, env
    finally:
        supervisor.stop(timeout=30)
        for leftover in ours(var):  # only after a failure: the test checks there are none
            leftover.kill()


def started(supervisor: Proc) -> dict[str, int]:
    """The latest pid the supervisor reported for each child."""
    pattern = r"devrun: (?:re)?started (\S+) \(pid (\d+)\)"
    return {name: int(pid) for name, pid in re.findall(pattern, supervisor.log_text())}


def restarted(supervisor: Proc, name: str, old_pid: int) -> int | None:
    pid = started(supervisor).get(name)
    return pid if pid is not None and pid != old_pid else None


def serves_login(port: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/", timeout=5) as page:
            return page.status == 200 and b"password" in page.read()
    except (urllib.error.URLError, OSError):
        return False


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(devrun.BASE_DIR / "manage.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=True,
    )
    return done.stdout


def assert_worker_processes_a_thread(env: dict[str, str]) -> None:
    """A new thread of `age` reaches its question: some worker took the task and ran it."""
    thread_id = manage(env, "startrun", "age").strip().splitlines()[-1]

    def status() -> str:
        return json.loads(manage(env, "threadstatus", thread_id))["status"]

    wait_for(lambda: status() == "interrupted", timeout=TIMEOUT, what=f"thread {thread_id}")


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_run_restarts_crashed_children_and_stops_on_sigterm(
    desk: tuple[Proc, dict[str, str]],
) -> None:
    supervisor, env = desk
    port = env["PORT"]
    var = Path(env["REVIEWDESK_VAR_DIR"])
    supervisor.wait_until(
        lambda: serves_login(port), timeout=STARTUP_TIMEOUT, what="serving the login page"
    )
    supervisor.wait_until(
        lambda: {"web", "worker", "beat"} <= started(supervisor).keys(),
        timeout=TIMEOUT,
        what="reporting its children",
    )
    first = started(supervisor)
    [redis] = [p for p in psutil.Process(supervisor.pid).children() if "redis" in p.name()]
    every_pid = {*first.values(), redis.pid}

    # A worker crash: the whole process group at once, as the OOM killer or `kill -9 -PGID` would.
    os.killpg(first["worker"], signal.SIGKILL)
    worker = wait_for(
        lambda: restarted(supervisor, "worker", first["worker"]),
        timeout=TIMEOUT,
        what="the supervisor to restart the worker",
    )
    assert f"worker (pid {first['worker']}) was killed by SIGKILL" in supervisor.log_text()
    assert_worker_processes_a_thread(env)
    every_pid.add(worker)

    # A Daphne crash: the port is served again by a new Daphne.
    os.killpg(first["web"], signal.SIGKILL)
    web = wait_for(
        lambda: restarted(supervisor, "web", first["web"]),
        timeout=TIMEOUT,
        what="the supervisor to restart web",
    )
    every_pid.add(web)
    wait_for(lambda: serves_login(port), timeout=TIMEOUT, what="the login page after a restart")
    assert started(supervisor) == {**first, "worker": worker, "web": web}
    for pid in (worker, web, first["beat"], redis.pid):
        assert alive(pid), f"pid {pid} should have kept running"

    # The private Redis: back on the same socket, and the worker finds it again.
    redis.kill()
    wait_for(
        lambda: restarted(supervisor, "redis", redis.pid),
        timeout=TIMEOUT,
        what="the supervisor to restart Redis",
    )
    every_pid.add(started(supervisor)["redis"])
    assert redis_ping(unix_url(var / "redis.sock"))
    assert_worker_processes_a_thread(env)

    # One SIGTERM stops everything, children first, then Redis, and exits 0.
    every_pid |= set(started(supervisor).values())
    supervisor.popen.send_signal(signal.SIGTERM)
    assert supervisor.popen.wait(timeout=TIMEOUT) == 0, supervisor.log_tail()
    log = supervisor.log_text()
    assert log.index("devrun: stopping web, worker, beat") < log.index("devrun: stopping redis")
    assert "devrun: stopped (SIGTERM)" in log
    assert not [pid for pid in every_pid if alive(pid)]
    assert not ours(var)
    assert not redis_ping(unix_url(var / "redis.sock"))
