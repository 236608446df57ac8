"""Fixtures: users and queues, the real Redis, and real worker/Daphne processes on the test DB."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings

from tests.factories import GroupFactory, QueueFactory, UserFactory
from tests.graphs_for_tests import GRAPHS


def pytest_configure(config: pytest.Config) -> None:
    # Test-only graphs, for this process and for the workers it starts.
    os.environ["REVIEWDESK_GRAPHS"] = json.dumps(GRAPHS)
    settings.REVIEWDESK_GRAPHS = {**settings.REVIEWDESK_GRAPHS, **GRAPHS}


@pytest.fixture(scope="session", autouse=True)
def _release_test_database(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """Close checkpointer pools and stray sessions so the test database can be dropped."""
    yield
    from django.db import connection

    from reviewdesk.engine import checkpoint, locks, registry

    checkpoint.close_all()
    locks.close_all()
    registry._compiled.cache_clear()
    if connection.vendor == "postgresql":
        with django_db_blocker.unblock(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )


# --- people ------------------------------------------------------------------------------------


@pytest.fixture
def queue(db: None) -> Any:
    """The default queue, reviewed by the "reviewers" group (rows are flushed between tests)."""
    return QueueFactory()


@pytest.fixture
def reviewer(queue: Any) -> Any:
    user = UserFactory(username="rita")
    user.groups.add(GroupFactory())
    return user


@pytest.fixture
def other_reviewer(queue: Any) -> Any:
    user = UserFactory(username="oscar")
    user.groups.add(GroupFactory())
    return user


@pytest.fixture
def outsider(db: None) -> Any:
    """Logged in, but a reviewer of no queue."""
    return UserFactory(username="olga")


@pytest.fixture
def staff(queue: Any) -> Any:
    return UserFactory(username="stella", is_staff=True)


# --- real services -----------------------------------------------------------------------------


@pytest.fixture
def channel_layer() -> Iterator[Any]:
    """The real Redis channel layer, emptied before the test."""
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    async_to_sync(layer.flush)()
    yield layer


@pytest.fixture(scope="session")
def desk_env(django_db_setup: None, django_db_blocker: Any) -> dict[str, str]:
    """Environment for worker/Daphne subprocesses: the test database, the test Redis."""
    from django.db import connections

    db = connections["default"].settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        url = f"sqlite:///{db['NAME']}"
    else:
        auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
        url = f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    return {
        **os.environ,
        "DATABASE_URL": url,
        "REDIS_URL": settings.REDIS_URL,
        "REVIEWDESK_VAR_DIR": str(settings.VAR_DIR),
        "REVIEWDESK_GRAPHS": json.dumps(GRAPHS),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "PYTHONUNBUFFERED": "1",
    }


@pytest.fixture(scope="module")
def celery_worker(
    desk_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """A real Celery worker with the default pool (threads) on the test database and Redis."""
    from reviewdesk.celery import app
    from tests import procs

    app.control.purge()
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    worker = procs.start_celery_worker(desk_env, pool="threads", concurrency=8, log_path=log)
    yield worker
    worker.stop()


@pytest.fixture(scope="module")
def live_server_url(
    desk_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A real Daphne serving the desk (HTTP and WebSockets) on the test database."""
    from tests import procs

    log = tmp_path_factory.mktemp("daphne") / "daphne.log"
    server = procs.start_daphne(desk_env, log_path=log)
    yield server.url
    server.stop()


@pytest.fixture
def chromium_path() -> Path:
    path = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
    assert path.exists(), f"Chromium not found at {path}: `make test` installs it"
    return path
