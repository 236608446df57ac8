"""The Celery app: workers run graphs until they interrupt, finish or fail."""

from __future__ import annotations

import contextlib
import os
from typing import Any

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "reviewdesk.settings")

app = Celery("reviewdesk")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["reviewdesk"])


# Celery's Django fixup closes every database connection before and after each task unless
# this is set, so each run paid a new connection (a file open and the PRAGMAs on SQLite: 7 % of
# the worker's CPU in `make bench`). It then closes only every 2 × this many tasks; in between,
# `forget_queries` below applies Django's own rule (CONN_MAX_AGE, broken connections), as a
# request's end does. With PostgreSQL's pool (CONN_MAX_AGE 0) that still gives the connection
# back after each task.
app.conf.CELERY_DB_REUSE_MAX = 1_000_000


@signals.task_postrun.connect
def forget_queries(sender: Any = None, **kwargs: object) -> None:
    """After each task: clear Django's query log, close connections that are old or broken.

    With DEBUG on, Django keeps every SQL statement a connection ran (up to 9,000 per
    connection): a worker that runs tasks for days would hold them all. Requests reset it
    themselves; tasks don't. A task run eagerly (``apply()``) runs inside its caller, whose
    connection (and open transaction) is not the task's to close, as Celery's fixup also holds.
    """
    from django.db import close_old_connections, reset_queries

    reset_queries()
    if not getattr(getattr(sender, "request", None), "is_eager", False):
        close_old_connections()


# --- ops: routing, machinery heartbeats, quiet periodic tasks, no query log in workers ----------

THREAD_ADVANCE = "reviewdesk.tasks.thread_advance"
# Periodic tasks that log nothing when they did nothing (the reconciler logs its repairs).
QUIET_TASKS = frozenset({"reviewdesk.tasks.threads_reconcile", "reviewdesk.tasks.ops_sweep"})


def route_task(name, args, kwargs, options, task=None, **kw):  # type: ignore[no-untyped-def]
    """task_routes: a thread's advance goes to its graph's Celery queue (REVIEWDESK_WORKER_QUEUES).

    Every enqueue of ``thread_advance`` passes here (the services, the reconciler, a script
    sending it by name), so a routed graph's threads only ever reach the workers of its queue.
    """
    if name != THREAD_ADVANCE:
        return None
    from django.conf import settings

    if not settings.REVIEWDESK_WORKER_QUEUES:
        return None
    from reviewdesk.services.threads import thread_worker_queue

    thread_id = (args or [None])[0] or (kwargs or {}).get("thread_id")
    queue = thread_worker_queue(str(thread_id)) if thread_id else None
    return {"queue": queue} if queue else None


class _QuietFilter:
    """Drop Celery's received/succeeded/sending lines for periodic tasks that did nothing."""

    def filter(self, record) -> bool:  # type: ignore[no-untyped-def]
        args = record.args
        if isinstance(args, dict) and args.get("name") in QUIET_TASKS:
            if "return_value" in args:
                return bool(args["return_value"]) and args["return_value"] not in ("0", "[]")
            return "runtime" in args  # "received": always quiet
        # beat: "Sending due task <entry> (<task>)"
        return not (isinstance(args, tuple) and len(args) == 2 and args[1] in QUIET_TASKS)


def _install_quiet_filters() -> None:
    import logging

    for name in ("celery.app.trace", "celery.worker.strategy", "celery.beat"):
        logging.getLogger(name).addFilter(_QuietFilter())


_install_quiet_filters()


def _connect_ops_signals() -> None:
    import threading
    import time

    from celery import signals

    state: dict[str, object] = {"beat": False}

    @signals.beat_init.connect(weak=False)
    def _beat_init(**kwargs) -> None:  # type: ignore[no-untyped-def]
        state["beat"] = True

    @signals.before_task_publish.connect(weak=False)
    def _stamp(sender=None, headers=None, **kwargs) -> None:  # type: ignore[no-untyped-def]
        # The broker keeps no enqueue time: stamp one, so the ops page can age the oldest task.
        if headers is not None:
            headers.setdefault("reviewdesk_sent_at", time.time())
        if state["beat"]:
            try:
                from reviewdesk.services import ops

                ops.beat_ticked(str(sender))
            except Exception:  # ops bookkeeping never stops beat
                pass

    @signals.task_postrun.connect(weak=False)
    def _after_task(sender=None, retval=None, **kwargs) -> None:  # type: ignore[no-untyped-def]
        name = getattr(sender, "name", "")
        if name in QUIET_TASKS:
            try:
                from reviewdesk.services import ops

                ops.task_ran(name, retval)
            except Exception:
                pass

    @signals.worker_ready.connect(weak=False)
    def _start_heartbeat(sender=None, **kwargs) -> None:  # type: ignore[no-untyped-def]
        from celery.worker import state as worker_state

        consumer = sender
        stop = threading.Event()
        state["stop"] = stop
        queues = sorted(consumer.app.amqp.queues.consume_from or consumer.app.amqp.queues)
        pool = type(consumer.pool).__module__.rsplit(".", 1)[-1] if consumer.pool else ""

        def beat() -> None:
            from reviewdesk.services import ops

            while True:
                with contextlib.suppress(Exception):
                    ops.worker_heartbeat(
                        {
                            "name": consumer.hostname,
                            "process": ops.process_name(),
                            "pool": pool,
                            "concurrency": consumer.controller.concurrency,
                            "queues": queues,
                            "active": len(worker_state.active_requests),
                            "reserved": len(worker_state.reserved_requests),
                            "online": not stop.is_set(),
                        }
                    )
                if stop.wait(ops.HEARTBEAT_EVERY):
                    break
            with contextlib.suppress(Exception):  # one last word: offline, not only silent
                ops.worker_heartbeat(
                    {"name": consumer.hostname, "process": ops.process_name(), "pool": pool,
                     "concurrency": consumer.controller.concurrency, "queues": queues,
                     "active": 0, "reserved": 0, "online": False}
                )  # fmt: skip

        threading.Thread(target=beat, name="reviewdesk-heartbeat", daemon=True).start()

    @signals.worker_shutting_down.connect(weak=False)
    def _stop_heartbeat(**kwargs) -> None:  # type: ignore[no-untyped-def]
        stop = state.get("stop")
        if isinstance(stop, threading.Event):
            stop.set()


_connect_ops_signals()
