"""A no-op Celery task, timed for the Celery round trip (the bench's worker imports it).

It answers on a Redis list the bench blocks on: enqueue → the worker runs it → the bench hears
back, the same Redis hops a resume task makes, without the graph.
"""

from __future__ import annotations

import functools
from typing import Any

from celery import shared_task


@functools.cache
def _redis() -> Any:
    import redis
    from django.conf import settings

    return redis.Redis.from_url(settings.REDIS_URL)


@shared_task(name="reviewdesk.bench.echo")
def echo(key: str) -> None:
    _redis().rpush(key, b"1")
