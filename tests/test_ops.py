"""Ops figures and /metrics equal seeded states exactly; health checks; metrics auth; alerts."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core import mail
from django.test import override_settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from reviewdesk import tally
from reviewdesk.models import (
    Alert,
    AuditEvent,
    QueueAlerting,
    ReviewItem,
    Run,
    StuckThread,
    Thread,
)
from reviewdesk.queries import ops as ops_queries
from reviewdesk.services import ops as ops_services
from tests.factories import ReviewItemFactory, ThreadFactory, UserFactory


@pytest.fixture
def clean_tally(db: None) -> None:
    """Recount the tally from the (empty) tables: a flush of another test may leave deltas."""
    tally.rebuild()


def metrics_of(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def seed(queue: Any, reviewer: Any, now: Any) -> dict[str, Any]:
    """Items of every status at known ages, decisions of known kinds and durations, runs."""
    pending_ages = [30, 130, 610, 2 * 3600 + 5, 30 * 3600, 8 * 86400]
    items = {}
    for age in pending_ages:
        item = ReviewItemFactory(queue=queue, thread__queue=queue)
        ReviewItem.objects.filter(pk=item.pk).update(created_at=now - timedelta(seconds=age))
        items[age] = item
    # A HITL batch (approve + reject) decided 90 s after it was asked, still waiting to apply.
    batch = ReviewItemFactory(queue=queue, thread__queue=queue)
    ReviewItem.objects.filter(pk=batch.pk).update(created_at=now - timedelta(seconds=200))
    ReviewItem.objects.filter(pk=batch.pk).update(
        status="answered",
        answer={"decisions": [{"type": "approve"}, {"type": "reject", "message": "no"}]},
        answered_by=reviewer,
        answered_at=now - timedelta(seconds=110),
    )
    # A plain answer decided 590 s after it was asked, then applied.
    plain = ReviewItemFactory(queue=queue, thread__queue=queue, thread__status="completed")
    ReviewItem.objects.filter(pk=plain.pk).update(created_at=now - timedelta(seconds=1000))
    ReviewItem.objects.filter(pk=plain.pk).update(
        status="answered",
        answer="42",
        answered_by=reviewer,
        answered_at=now - timedelta(seconds=410),
    )
    ReviewItem.objects.filter(pk=plain.pk).update(status="applied", applied_at=now)
    # A breakpoint continued 20 s after it paused.
    pause = ReviewItemFactory(queue=queue, thread__queue=queue, kind="breakpoint")
    ReviewItem.objects.filter(pk=pause.pk).update(created_at=now - timedelta(seconds=50))
    ReviewItem.objects.filter(pk=pause.pk).update(
        status="answered",
        answer={"action": "continue"},
        answered_by=reviewer,
        answered_at=now - timedelta(seconds=30),
    )
    superseded = ReviewItemFactory(queue=queue, thread__queue=queue, thread__status="failed")
    superseded.status = "superseded"
    superseded.save()
    # Runs: one of 0.3 s and one of 7 s on graph "age"; a lost run is no step duration.
    thread = plain.thread
    started = now - timedelta(seconds=60)
    for seconds in (0.3, 7.0):
        run = Run.objects.create(thread=thread, kind="start", started_at=started)
        Run.objects.filter(pk=run.pk).update(
            finished_at=started + timedelta(seconds=seconds), outcome="completed"
        )
    lost = Run.objects.create(thread=thread, kind="recover", started_at=started)
    Run.objects.filter(pk=lost.pk).update(finished_at=now, outcome="lost")
    # The resume of `plain` started 3 s after its answer.
    Run.objects.create(
        thread=thread,
        kind="resume",
        items=str(plain.pk),
        started_at=now - timedelta(seconds=407),
    )
    # A first claim 40 s after the item was asked (a second claim of it does not count).
    claimed = items[30]
    ReviewItem.objects.filter(pk=claimed.pk).update(
        created_at=timezone.now() - timedelta(seconds=40)
    )
    AuditEvent.objects.create(action="item_claimed", item=claimed, thread=claimed.thread)
    AuditEvent.objects.create(action="item_claimed", item=claimed, thread=claimed.thread)
    return {"items": items, "batch": batch, "plain": plain, "pause": pause}


def test_figures_and_metrics_equal_seeded_states(
    client: Any, clean_tally: None, queue: Any, reviewer: Any, staff: Any
) -> None:
    now = timezone.now()
    seed(queue, reviewer, now)

    [fig] = ops_queries.queue_figures(now=now)
    # Every count equals the rows, whatever path wrote them (save(), update(), bulk SQL).
    for status in ("pending", "answered", "applied", "superseded"):
        assert fig.items.get(status, 0) == ReviewItem.objects.filter(status=status).count()
    assert fig.pending == 6
    assert fig.items["answered"] == 2
    assert fig.oldest_pending_age_s == pytest.approx(8 * 86400, abs=1)
    # The 30 s item was re-dated to 40 s ago for its claim: both are within a minute.
    assert fig.age_cumulative == [
        (60.0, 1), (300.0, 2), (900.0, 3), (3600.0, 3), (14400.0, 4), (86400.0, 4),
        (604800.0, 5), (float("inf"), 6),
    ]  # fmt: skip
    assert [n for _label, n in fig.age_histogram] == [1, 1, 1, 0, 1, 0, 1, 1]
    assert fig.overdue == 3  # older than the default hour
    assert fig.decided_last_hour == 3
    assert fig.decision_p50_s == pytest.approx(90, abs=0.01)
    assert fig.decision_p90_s == pytest.approx(590, abs=0.01)
    assert fig.reviewers == [("rita", 3)]
    since = datetime.fromtimestamp(fig.hours[0] * 3600, tz=UTC)
    assert sum(fig.created_per_hour) == ReviewItem.objects.filter(created_at__gte=since).count()
    assert sum(fig.decided_per_hour) == 3

    client.force_login(staff)
    text = client.get("/metrics").content.decode()
    m = metrics_of(text)
    q = ("queue", "default")
    for status, n in (("pending", 6), ("answered", 2), ("applied", 1), ("superseded", 1)):
        assert m[("reviewdesk_review_items", (q, ("status", status)))] == n
    assert m[("reviewdesk_oldest_pending_age_seconds", (q,))] == pytest.approx(8 * 86400, abs=5)
    assert m[("reviewdesk_overdue_items", (q,))] == 3
    assert m[("reviewdesk_pending_age_seconds_bucket", (("le", "3600"), q))] == 3
    assert m[("reviewdesk_pending_age_seconds_bucket", (("le", "+Inf"), q))] == 6
    threads = Thread.objects.values_list("status", flat=True)
    for status in ("interrupted", "completed", "failed", "running"):
        expected = sum(1 for s in threads if s == status)
        assert m[("reviewdesk_threads", (("status", status),))] == expected

    def bucket(name: str, le: str, label: tuple[str, str] = q) -> float:
        return m[(f"{name}_bucket", tuple(sorted((("le", le), label))))]

    decision = "reviewdesk_time_to_decision_seconds"
    assert m[(f"{decision}_count", (q,))] == 3
    assert m[(f"{decision}_sum", (q,))] == pytest.approx(90 + 590 + 20, abs=0.01)
    assert bucket(decision, "15") == 0
    assert bucket(decision, "30") == 1  # the breakpoint (20 s)
    assert bucket(decision, "120") == 2  # + the batch (90 s)
    assert bucket(decision, "600") == 3
    outcome = "reviewdesk_decisions_total"
    for kind, n in (("approve", 1), ("reject", 1), ("answer", 1), ("continue", 1)):
        assert m[(outcome, (("outcome", kind), q))] == n
    step = "reviewdesk_graph_step_duration_seconds"
    graph = ("graph", "age")
    assert m[(f"{step}_count", (graph,))] == 2
    assert m[(f"{step}_sum", (graph,))] == pytest.approx(7.3, abs=0.01)
    assert bucket(step, "0.25", graph) == 0
    assert bucket(step, "0.5", graph) == 1
    assert bucket(step, "10", graph) == 2
    resume = "reviewdesk_resume_latency_seconds"
    assert m[(f"{resume}_count", (q,))] == 1
    assert bucket(resume, "2.5") == 0
    assert bucket(resume, "5") == 1
    claim = "reviewdesk_time_to_first_claim_seconds"
    assert m[(f"{claim}_count", (q,))] == 1
    assert bucket(claim, "30") == 0
    assert bucket(claim, "60") == 1
    for kind in ("interrupted_no_item", "item_no_interrupt", "running_no_worker"):
        assert m[("reviewdesk_stuck_threads", (("kind", kind),))] == 0


def test_tally_survives_compaction_deletes_and_a_rebuild(
    clean_tally: None, queue: Any, reviewer: Any
) -> None:
    now = timezone.now()
    seed(queue, reviewer, now)
    before = ops_queries.queue_figures(now=now)[0]
    metrics_before = {
        name: ops_queries.histograms(name, bounds)
        for name, bounds in (("decision_s", tally.DECISION_BUCKETS), ("step_s", tally.STEP_BUCKETS))
    }
    assert tally.tally_compact() < 60  # folded into one row per key
    after = ops_queries.queue_figures(now=now)[0]
    assert (after.items, after.age_cumulative, after.overdue) == (
        before.items, before.age_cumulative, before.overdue,
    )  # fmt: skip
    # Deleting a thread deletes its items: the counts follow.
    doomed = ReviewItem.objects.filter(status="pending").first().thread
    doomed.delete()
    assert ops_queries.queue_figures(now=now)[0].pending == 5
    assert (
        ops_queries.thread_counts()["interrupted"]
        == Thread.objects.filter(status="interrupted").count()
    )
    # A rebuild recounts the same figures from the rows.
    live = ops_queries.queue_figures(now=now)[0]
    tally.rebuild()
    rebuilt = ops_queries.queue_figures(now=now)[0]
    assert (rebuilt.items, rebuilt.age_cumulative) == (live.items, live.age_cumulative)
    assert {
        name: ops_queries.histograms(name, bounds)
        for name, bounds in (("decision_s", tally.DECISION_BUCKETS), ("step_s", tally.STEP_BUCKETS))
    } == metrics_before


# --- /metrics access --------------------------------------------------------------------------


def test_metrics_refused_without_token_or_staff(
    client: Any, clean_tally: None, reviewer: Any, staff: Any
) -> None:
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer guess").status_code == 401
    client.force_login(reviewer)
    assert client.get("/metrics").status_code == 403
    client.force_login(staff)
    assert client.get("/metrics").status_code == 200


@override_settings(REVIEWDESK_METRICS_TOKEN="s3cret-token")
def test_metrics_with_the_bearer_token(client: Any, clean_tally: None, queue: Any) -> None:
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert b"reviewdesk_review_items" in response.content
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-tokeN").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Basic s3cret-token").status_code == 401


# --- health -----------------------------------------------------------------------------------


def test_healthz_needs_no_login_no_database_and_any_host(
    client: Any, db: None, django_assert_num_queries: Any
) -> None:
    with django_assert_num_queries(0):
        response = client.get("/healthz", HTTP_HOST="10.1.2.3:8000")
    assert response.status_code == 200
    assert response.content == b"ok\n"


@pytest.mark.django_db(transaction=True)
def test_readyz_turns_503_when_redis_stops_and_200_when_it_returns(client: Any) -> None:
    from tests import procs

    sock = Path(settings.VAR_DIR) / f"readyz-{threading.get_ident() % 10000}.sock"
    redis = procs.start_redis(sock, log_path=sock.with_suffix(".log"))
    try:
        with override_settings(REDIS_URL=procs.unix_url(sock)):
            ok = client.get("/readyz")
            assert ok.status_code == 200, ok.content
            assert ok.json()["checks"] == {
                "database": "ok", "redis": "ok", "checkpointer": "ok"
            }  # fmt: skip
            redis.stop()
            down = client.get("/readyz")
            assert down.status_code == 503
            assert down.json()["failed"] == ["redis"]
            assert str(sock) not in down.content.decode()  # no connection details leak
            redis = procs.start_redis(sock, log_path=sock.with_suffix(".log"))
            back = client.get("/readyz")
            assert back.status_code == 200, back.content
    finally:
        redis.stop()


# --- the ops page -----------------------------------------------------------------------------


def test_ops_page_for_staff_and_the_ops_group_only(
    client: Any, clean_tally: None, reviewer: Any, staff: Any
) -> None:
    from django.contrib.auth.models import Group

    client.force_login(reviewer)
    assert client.get("/ops/").status_code == 403
    reviewer.groups.add(Group.objects.get_or_create(name="ops")[0])
    assert client.get("/ops/").status_code == 200
    client.force_login(staff)
    page = client.get("/ops/")
    assert page.status_code == 200
    assert b"Backlog per queue" in page.content
    assert b'ws-connect="/ws/ops/"' in page.content
    fragment = client.get("/ops/", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="ops-sync")
    assert b'id="ops-queues" hx-swap-oob="true"' in fragment.content
    assert b"<html" not in fragment.content


def test_ops_retry_needs_a_reason_and_records_it(
    client: Any, clean_tally: None, reviewer: Any
) -> None:
    """An ops person (not staff) retries a failed thread from the ops page, saying why."""
    from django.contrib.auth.models import Group

    reviewer.groups.add(Group.objects.get_or_create(name="ops")[0])
    client.force_login(reviewer)
    failed = ThreadFactory(status=Thread.Status.FAILED, error="boom")
    assert b'name="reason" required' in client.get("/ops/").content

    page = client.post(f"/ops/threads/{failed.pk}/retry/", {"reason": ""}, follow=True)
    assert b"A reason is required" in page.content
    failed.refresh_from_db()
    assert (failed.status, failed.retry_requested) == (Thread.Status.FAILED, False)

    page = client.post(f"/ops/threads/{failed.pk}/retry/", {"reason": "model back up"}, follow=True)
    assert b"queued for a retry" in page.content
    failed.refresh_from_db()
    assert (failed.status, failed.retry_requested) == (Thread.Status.QUEUED, True)
    retried = AuditEvent.objects.get(thread=failed, action="thread_retried")
    assert (retried.actor, retried.data["reason"]) == (reviewer, "model back up")


# --- alerts -----------------------------------------------------------------------------------


class Receiver(http.server.BaseHTTPRequestHandler):
    """A real local webhook receiver: records what it got; fails while told to."""

    got: list[tuple[dict[str, str], bytes]] = []
    failures_left = 0

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if Receiver.failures_left:
            Receiver.failures_left -= 1
            self.send_response(500)
            self.end_headers()
            return
        Receiver.got.append((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    Receiver.got, Receiver.failures_left = [], 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


@override_settings(
    EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
    REVIEWDESK_WEBHOOK_SECRET="hook-secret",
)
def test_alerts_fire_and_resolve_by_mail_and_signed_webhook_with_a_cooldown(
    clean_tally: None, queue: Any, receiver: str
) -> None:
    QueueAlerting.objects.create(
        queue=queue, max_pending=1, emails="ops@example.com", webhook_url=receiver, cooldown=600
    )
    now = timezone.now()
    assert ops_services.alerts_check(now=now) == []  # nothing pending: quiet, nothing "resolved"
    first = ReviewItemFactory(queue=queue, thread__queue=queue)
    ReviewItemFactory(queue=queue, thread__queue=queue)

    [firing] = ops_services.alerts_check(now=now)
    assert (firing.state, firing.value, firing.threshold) == ("firing", 2.0, 1.0)
    Receiver.failures_left = 1  # the receiver fails once: the task retries
    with pytest.raises(ops_services.WebhookFailed):
        ops_services.notice_deliver(notice_id=firing.pk, attempt=1)
    delivered = ops_services.notice_deliver(notice_id=firing.pk, attempt=2)
    assert delivered.webhook_status == "delivered (204)"
    assert delivered.webhook_attempts == 2
    assert len(mail.outbox) == 1  # e-mail went out once, not once per attempt
    assert "FIRING" in mail.outbox[0].subject
    assert mail.outbox[0].to == ["ops@example.com"]
    [(headers, body)] = Receiver.got
    stamp = headers["X-Reviewdesk-Timestamp"]
    expected = hmac.new(b"hook-secret", stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert headers["X-Reviewdesk-Signature"] == f"sha256={expected}"
    assert json.loads(body)["state"] == "firing"
    assert json.loads(body)["queue"] == "default"

    # Still firing: nothing more. Resolved inside the cool-down: held back until it has passed.
    assert ops_services.alerts_check(now=now + timedelta(seconds=60)) == []
    first.thread.delete()
    assert ops_services.alerts_check(now=now + timedelta(seconds=120)) == []
    assert Alert.objects.get(kind="pending").firing is False
    [resolved] = ops_services.alerts_check(now=now + timedelta(seconds=601))
    assert resolved.state == "resolved"
    ops_services.notice_deliver(notice_id=resolved.pk)
    assert json.loads(Receiver.got[-1][1])["state"] == "resolved"
    assert "RESOLVED" in mail.outbox[-1].subject
    assert AuditEvent.objects.filter(action__in=["alert_firing", "alert_resolved"]).count() == 2


def test_claimed_counts_whatever_claim_fields_exist(clean_tally: None, queue: Any) -> None:
    """Without claim fields nothing is claimed; the figure says 0 instead of guessing."""
    UserFactory(username="someone")
    ReviewItemFactory(queue=queue, thread__queue=queue)
    [fig] = ops_queries.queue_figures()
    names = {f.name for f in ReviewItem._meta.get_fields()}
    if "claimed_by" not in names:
        assert ops_queries.claim_q(timezone.now()) is None
        assert fig.claimed == 0


def test_backlog_command_prints_the_contract_keys(
    clean_tally: None, queue: Any, reviewer: Any
) -> None:
    from io import StringIO

    from django.core.management import call_command

    now = timezone.now()
    seed(queue, reviewer, now)
    out = StringIO()
    call_command("backlog", "--json", stdout=out)
    report = json.loads(out.getvalue())
    assert set(report) == {"queues", "threads", "stuck", "workers"}
    [row] = report["queues"]
    assert set(row) == {
        "queue", "pending", "claimed", "overdue", "oldest_pending_age_s", "decided_last_hour"
    }  # fmt: skip
    assert (row["queue"], row["pending"], row["claimed"], row["overdue"]) == ("default", 6, 0, 3)
    assert row["oldest_pending_age_s"] == pytest.approx(8 * 86400, abs=5)
    assert row["decided_last_hour"] == 3
    assert report["threads"]["interrupted"] == Thread.objects.filter(status="interrupted").count()
    assert report["stuck"] == {
        "interrupted_no_item": 0, "item_no_interrupt": 0, "running_no_worker": 0,
        "answered_not_applied": 0,
    }  # fmt: skip
    text = StringIO()
    call_command("backlog", stdout=text)
    assert "default" in text.getvalue() and "threads:" in text.getvalue()


def test_busy_days_estimate_percentiles_from_the_hourly_histogram(
    clean_tally: None, queue: Any, reviewer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past EXACT_LIMIT decisions a day, percentiles come from the tally (bucket-interpolated)."""
    now = timezone.now()
    seed(queue, reviewer, now)
    monkeypatch.setattr(ops_queries, "EXACT_LIMIT", 0)
    [fig] = ops_queries.queue_figures(now=now)
    # 20 s, 90 s and 590 s fall in the buckets (15, 30], (60, 120] and (300, 600].
    assert fig.decision_p50_s == pytest.approx(90.0)  # 60 + 60 × (1.5 − 1) / 1
    assert fig.decision_p90_s == pytest.approx(510.0)  # 300 + 300 × (2.7 − 2) / 1
    assert fig.reviewers == [("rita", 3)]
    tally.tally_compact(now_hour=ops_queries.epoch_hour(now) + 1000)  # every hour folded away
    m = ops_queries.histograms("decision_s", tally.DECISION_BUCKETS)
    assert m[(queue.pk, "")].buckets[-1] == ("+Inf", 3)  # the all-time histogram keeps them


def test_incremental_sweeps_look_at_recent_changes_the_full_one_at_all(
    clean_tally: None, queue: Any
) -> None:
    from reviewdesk.engine import stuck

    quiet = ThreadFactory(queue=queue, status="interrupted")  # waits, with no item at all
    now = timezone.now()
    Thread.objects.filter(pk=quiet.pk).update(updated_at=now - timedelta(hours=2))
    assert stuck.stuck_sweep(now=now, since=now - timedelta(minutes=5))["interrupted_no_item"] == 0
    assert stuck.stuck_sweep(now=now)["interrupted_no_item"] == 1  # the full sweep finds it
    # Once found, incremental sweeps keep checking it (and drop it when it is fixed).
    assert stuck.stuck_sweep(now=now, since=now - timedelta(minutes=5))["interrupted_no_item"] == 1
    Thread.objects.filter(pk=quiet.pk).update(status="completed")
    assert stuck.stuck_sweep(now=now, since=now - timedelta(minutes=5))["interrupted_no_item"] == 0
    assert not StuckThread.objects.exists()
