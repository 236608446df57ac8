"""The run mutex across real processes: one holder at a time, released when the holder dies.

Runs against whichever database the suite uses: flock files beside SQLite, advisory locks on
PostgreSQL. The holder is a separate Python process, as another worker would be.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from reviewdesk.engine import locks
from tests.support import wait_for

pytestmark = pytest.mark.usefixtures("transactional_db")

HOLDER = textwrap.dedent(
    """
    import sys, time, django
    django.setup()
    from reviewdesk.engine import locks
    assert locks.mutex().try_acquire(sys.argv[1])
    print("held", flush=True)
    time.sleep(600)
    """
)


@pytest.fixture
def holder(desk_env: dict[str, str]) -> Iterator[Any]:
    """Start a process that takes a thread's mutex and keeps it until killed."""
    started: list[subprocess.Popen[str]] = []

    def hold(thread_id: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, thread_id],
            env={**desk_env, "DJANGO_SETTINGS_MODULE": "reviewdesk.settings"},
            stdout=subprocess.PIPE,
            text=True,
        )
        started.append(proc)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "held"
        return proc

    yield hold
    for proc in started:
        proc.kill()
        proc.wait()


def test_a_mutex_held_by_another_process_is_refused_until_it_dies(holder: Any) -> None:
    thread_id = str(uuid.uuid4())
    mutex = locks.mutex()
    proc = holder(thread_id)
    assert not mutex.try_acquire(thread_id)
    assert mutex.held([thread_id, str(uuid.uuid4())]) == {thread_id}

    os.kill(proc.pid, signal.SIGKILL)  # a crash: no cleanup code runs
    proc.wait()
    wait_for(lambda: mutex.try_acquire(thread_id), what="the dead holder's lock to be released")
    assert mutex.held([thread_id]) == {thread_id}  # now ours
    mutex.release(thread_id)
    assert mutex.held([thread_id]) == set()


def test_two_threads_of_one_process_exclude_each_other() -> None:
    thread_id = str(uuid.uuid4())
    mutex = locks.mutex()
    assert mutex.try_acquire(thread_id)
    results: list[bool] = []
    other = threading.Thread(target=lambda: results.append(mutex.try_acquire(thread_id)))
    other.start()
    other.join()
    assert results == [False]
    mutex.release(thread_id)
    assert mutex.try_acquire(thread_id)
    mutex.release(thread_id, discard=True)


def test_holding_yields_none_while_another_holds_it(holder: Any) -> None:
    thread_id = str(uuid.uuid4())
    holder(thread_id)
    with locks.holding(thread_id) as held:
        assert held is None
    other = str(uuid.uuid4())
    with locks.holding(other) as held:
        assert held is not None
        assert locks.mutex().held([other]) == {other}
    assert locks.mutex().held([other]) == set()
