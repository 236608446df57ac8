"""Ops writes: machinery heartbeats in Redis, threshold alerts with their notices.

What only a live process knows (a worker's active tasks, beat's last tick, a Daphne's open
sockets) is written by that process to Redis under ``reviewdesk:ops:``, each key expiring on its
own, so a process that dies simply stops renewing its key and shows as offline, then vanishes.
What the database knows (backlog, threads, stuck threads) is never kept here.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import socket
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta
from typing import Any

import redis
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from reviewdesk.models import Alert, AlertNotice, Queue, QueueAlerting
from reviewdesk.services.audit import audit

log = logging.getLogger(__name__)

PREFIX = "reviewdesk:ops:"
WORKER_KEY = PREFIX + "worker:"
SOCKETS_KEY = PREFIX + "sockets:"
BEAT_KEY = PREFIX + "beat"
RAN_KEY = PREFIX + "ran:"
# How long a silent worker stays listed (as offline) before its key expires.
WORKER_KEY_TTL = 3600
HEARTBEAT_EVERY = 5.0
SENT_AT_HEADER = "reviewdesk_sent_at"

_clients: dict[tuple[int, str], redis.Redis] = {}


def redis_client() -> redis.Redis:
    """This process's Redis client for ops keys (short timeouts: ops must never hang a page)."""
    key = (os.getpid(), settings.REDIS_URL)
    client = _clients.get(key)
    if client is None:
        client = _clients[key] = redis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2
        )
    return client


def process_name() -> str:
    return f"{socket.gethostname()}/{os.getpid()}"


def worker_heartbeat(info: dict[str, Any]) -> None:
    """A worker says it is alive, with what it is doing (see ``reviewdesk/celery.py``)."""
    info = {**info, "at": time.time()}
    redis_client().set(WORKER_KEY + info["name"], json.dumps(info), ex=WORKER_KEY_TTL)


def beat_ticked(task: str) -> None:
    """Beat sent a scheduled task: its last run, for the ops page."""
    redis_client().set(BEAT_KEY, json.dumps({"at": time.time(), "task": task}), ex=7 * 86400)


def task_ran(name: str, result: Any) -> None:
    """A periodic task finished: when, and what it returned."""
    value = json.dumps({"at": time.time(), "result": result}, default=str)
    redis_client().set(RAN_KEY + name, value, ex=7 * 86400)


FULL_SWEEP_KEY = PREFIX + "full-sweep"
# Beat's sweeps look at threads changed lately; once an hour, at every thread.
FULL_SWEEP_EVERY = 3600


def sweep_since() -> datetime | None:
    """Where the next stuck sweep starts: None for a full one (hourly), else a few intervals back.

    An incremental sweep reads threads changed in the window (by index), so its cost follows the
    desk's activity; the full one catches damage that changed no thread (a deleted item row).
    """
    client = redis_client()
    if client.set(FULL_SWEEP_KEY, time.time(), ex=FULL_SWEEP_EVERY, nx=True):
        return None
    return timezone.now() - timedelta(seconds=3 * settings.REVIEWDESK_OPS_INTERVAL + 60)


def sockets_publish(name: str, count: int, ttl: int = 120) -> None:
    """A web process's open WebSocket count (it renews the key while it lives)."""
    redis_client().set(SOCKETS_KEY + name, count, ex=ttl)


# --- alerts --------------------------------------------------------------------------------------


def _thresholds(alerting: QueueAlerting) -> dict[str, int | None]:
    return {
        Alert.Kind.OLDEST_AGE: alerting.max_oldest_age,
        Alert.Kind.PENDING: alerting.max_pending,
        Alert.Kind.FAILED: alerting.max_failed,
    }


def alerts_check(*, now: datetime | None = None) -> list[AlertNotice]:
    """Compare each queue's figures with its thresholds; record the notices due (beat).

    A notice goes out when an alert's state differs from the last one sent (firing, or
    resolved), at most once per the queue's cool-down: a threshold flapping inside the
    cool-down sends nothing more until it has passed, then only the state it settled in.
    """
    from reviewdesk.queries import ops as ops_queries

    now = now or timezone.now()
    rules = list(QueueAlerting.objects.select_related("queue"))
    if not rules:
        return []
    figures = {
        f.queue.pk: f
        for f in ops_queries.queue_figures(now=now, queues=[r.queue for r in rules], detail=False)
    }
    failed = ops_queries.thread_counts_by_queue()
    notices = []
    for rule in rules:
        fig = figures[rule.queue.pk]
        values = {
            Alert.Kind.OLDEST_AGE: fig.oldest_pending_age_s or 0.0,
            Alert.Kind.PENDING: float(fig.pending),
            Alert.Kind.FAILED: float(failed.get(rule.queue.pk, {}).get("failed", 0)),
        }
        for kind, threshold in _thresholds(rule).items():
            if threshold is None:
                continue
            notice = _alert_update(rule, kind, values[kind], float(threshold), now)
            if notice is not None:
                notices.append(notice)
    return notices


def _alert_update(
    rule: QueueAlerting, kind: str, value: float, threshold: float, now: datetime
) -> AlertNotice | None:
    from reviewdesk import tasks

    with transaction.atomic():
        alert, _ = Alert.objects.select_for_update().get_or_create(
            queue=rule.queue, kind=kind, defaults={"changed_at": now, "threshold": threshold}
        )
        firing = value > threshold
        if firing != alert.firing:
            alert.firing = firing
            alert.changed_at = now
        alert.value, alert.threshold = value, threshold
        state = "firing" if alert.firing else "resolved"
        due = alert.notified != state and (alert.notified or alert.firing)
        cooled = alert.notified_at is None or now - alert.notified_at >= timedelta(
            seconds=rule.cooldown
        )
        notice = None
        if due and cooled:
            alert.notified, alert.notified_at = state, now
            notice = AlertNotice.objects.create(
                alert=alert, state=state, value=value, threshold=threshold
            )
            audit(
                f"alert_{state}",
                actor_label="ops",
                queue=rule.queue.slug,
                kind=kind,
                value=value,
                threshold=threshold,
            )
            tasks.alert_notice_deliver.delay_on_commit(notice.pk)
        alert.save()
    return notice


def notice_payload(notice: AlertNotice) -> dict[str, Any]:
    alert = notice.alert
    return {
        "alert": alert.kind,
        "state": notice.state,
        "queue": alert.queue.slug,
        "value": notice.value,
        "threshold": notice.threshold,
        "at": notice.created_at.isoformat(),
        "notice": notice.pk,
    }


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 over "<timestamp>.<body>": a receiver recomputes it with the shared secret."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class WebhookFailed(Exception):
    """The receiver did not take the notice (retried by the task with back-off)."""


def notice_deliver(*, notice_id: int, attempt: int = 1) -> AlertNotice:
    """Send a notice by e-mail (once) and webhook; raise WebhookFailed to be retried."""
    notice = AlertNotice.objects.select_related("alert__queue__alerting").get(pk=notice_id)
    alerting: QueueAlerting = notice.alert.queue.alerting
    payload = notice_payload(notice)
    text = (
        f"[reviewdesk] {notice.state.upper()}: queue {payload['queue']} {notice.alert.kind} "
        f"is {notice.value:g} (threshold {notice.threshold:g})"
    )
    recipients = [a.strip() for a in alerting.emails.split(",") if a.strip()]
    recipients += settings.REVIEWDESK_ALERT_EMAILS
    if recipients and not notice.email_status:
        try:
            send_mail(text, json.dumps(payload, indent=2), None, recipients)
            notice.email_status = f"sent to {len(recipients)}"
        except Exception as exc:  # mail is best effort; the webhook and the page still tell
            log.warning("alert mail failed: %s", exc)
            notice.email_status = f"failed: {type(exc).__name__}: {exc}"[:200]
        notice.save(update_fields=["email_status"])
    if not alerting.webhook_url or notice.webhook_status.startswith("delivered"):
        return notice
    body = json.dumps(payload, sort_keys=True).encode()
    stamp = str(int(time.time()))
    headers = {"Content-Type": "application/json", "X-Reviewdesk-Timestamp": stamp}
    if settings.REVIEWDESK_WEBHOOK_SECRET:
        headers["X-Reviewdesk-Signature"] = signature(
            settings.REVIEWDESK_WEBHOOK_SECRET, stamp, body
        )
    request = urllib.request.Request(alerting.webhook_url, data=body, headers=headers)
    notice.webhook_attempts = attempt
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            notice.webhook_status = f"delivered ({response.status})"
    except (urllib.error.URLError, OSError) as exc:
        notice.webhook_status = f"attempt {attempt} failed: {exc}"[:200]
        notice.save(update_fields=["webhook_status", "webhook_attempts"])
        raise WebhookFailed(str(exc)) from exc
    notice.save(update_fields=["webhook_status", "webhook_attempts"])
    return notice


def queue_alerting(queue: Queue) -> QueueAlerting | None:
    return QueueAlerting.objects.filter(queue=queue).first()
