"""Health checks for load balancers: no login, no session, no template.

``/healthz``: this process serves requests (nothing else is touched, not even the database), so
a balancer can tell a hung process from a sick dependency. ``/readyz``: the database, Redis and
the checkpointer all answer, each within a short time; 503 naming what failed otherwise, so a
process whose dependencies are gone is taken out of rotation instead of serving errors.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable

import redis
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache

from reviewdesk.engine import checkpoint

# Seconds each dependency has to answer before it counts as failed.
CHECK_TIMEOUT = 3.0
_pool = concurrent.futures.ThreadPoolExecutor(max_workers=6, thread_name_prefix="readyz")


def check_database() -> None:
    from django.db import connections

    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        connections.close_all()  # a check thread must not keep a connection open


def check_redis() -> None:
    client = redis.Redis.from_url(
        settings.REDIS_URL, socket_timeout=CHECK_TIMEOUT, socket_connect_timeout=CHECK_TIMEOUT
    )
    try:
        client.ping()
    finally:
        client.close()


def check_checkpointer() -> None:
    """Read a checkpoint that does not exist: the store must answer, with nothing."""
    config = {"configurable": {"thread_id": "reviewdesk-readyz", "checkpoint_ns": ""}}
    checkpoint.saver().get_tuple(config)


CHECKS: dict[str, Callable[[], None]] = {
    "database": check_database,
    "redis": check_redis,
    "checkpointer": check_checkpointer,
}


def readiness() -> dict[str, str]:
    """{"database": "ok", "redis": "ConnectionError: ...", ...}, all checks run side by side."""
    futures = {name: _pool.submit(check) for name, check in CHECKS.items()}
    results = {}
    for name, future in futures.items():
        try:
            future.result(timeout=CHECK_TIMEOUT + 1)
            results[name] = "ok"
        except concurrent.futures.TimeoutError:
            results[name] = f"no answer within {CHECK_TIMEOUT:g} s"
        except Exception as exc:
            # The exception's class only: messages name hosts, sockets and users.
            results[name] = f"failed: {type(exc).__name__}"
    return results


@login_not_required
@never_cache
def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok\n", content_type="text/plain")


@login_not_required
@never_cache
def readyz(request: HttpRequest) -> HttpResponse:
    results = readiness()
    failed = sorted(name for name, result in results.items() if result != "ok")
    body = {"ready": not failed, "failed": failed, "checks": results}
    return JsonResponse(body, status=503 if failed else 200)
