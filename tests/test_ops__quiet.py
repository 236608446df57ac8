"""The reconciler and the ops sweep log nothing while all is well, and say so when they repair."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from reviewdesk.models import Thread
from reviewdesk.queries import ops as ops_queries
from reviewdesk.services import ops as ops_services
from tests import procs
from tests.factories import ThreadFactory
from tests.support import wait_for

pytestmark = pytest.mark.usefixtures("transactional_db")


def runs_of(task: str) -> float | None:
    raw = ops_services.redis_client().get(ops_services.RAN_KEY + task)
    return json.loads(raw)["at"] if raw else None


def test_periodic_tasks_are_quiet_until_they_repair(
    desk_env: dict[str, str], tmp_path: Path, queue: Any
) -> None:
    from reviewdesk.celery import app

    app.control.purge()
    client = ops_services.redis_client()
    for key in client.scan_iter(ops_services.PREFIX + "*"):
        client.delete(key)
    env = {**desk_env, "REVIEWDESK_RECONCILE_INTERVAL": "0.5", "REVIEWDESK_OPS_INTERVAL": "0.5"}
    worker = procs.Proc.start(
        "worker",
        procs.python_m("celery", "-A", "reviewdesk", "worker", "--loglevel=INFO",
                       "--concurrency=2", "--hostname=quiet@%h"),
        env=procs.process_env({**env, "REVIEWDESK_WORKER_POOL": "threads"}),
        log_path=tmp_path / "worker.log",
    )  # fmt: skip
    beat = None
    try:
        worker.wait_for_log(" ready.", timeout=60)
        beat = procs.start_celery_beat(env, log_path=tmp_path / "beat.log")
        task = "reviewdesk.tasks.threads_reconcile"
        first = wait_for(lambda: runs_of(task), what="a reconcile")
        wait_for(lambda: (runs_of(task) or 0) > first, what="a second reconcile")
        wait_for(lambda: runs_of("reviewdesk.tasks.ops_sweep"), what="an ops sweep")
        # After start-up (the worker's banner lists every task it knows).
        for proc, started in ((worker, " ready."), (beat, "beat: Starting...")):
            text = proc.log_text().split(started, 1)[1]
            assert "threads_reconcile" not in text, text[-2000:]
            assert "ops_sweep" not in text, text[-2000:]
        # The machinery the ops page shows: this worker's heartbeat and beat's last tick.
        machinery = ops_queries.machinery()
        [online] = [w for w in machinery["workers"] if w["online"]]
        assert online["name"].startswith("quiet@")
        assert online["queues"] == ["celery"]
        assert machinery["beat"]["age_s"] < 60

        # A thread a dead worker left queued: repaired, and said so, once.
        lost = ThreadFactory(queue=queue, status="queued")
        Thread.objects.filter(pk=lost.pk).update(updated_at=timezone.now() - timedelta(minutes=5))
        wait_for(
            lambda: Thread.objects.get(pk=lost.pk).status == "interrupted",
            what="the reconciler to re-run the lost thread",
        )
        wait_for(lambda: "reconciler re-enqueued 1 thread" in worker.log_text(), what="its log")
        assert worker.log_text().count(str(lost.pk)) >= 1
    finally:
        if beat is not None:
            beat.stop()
        worker.stop()
