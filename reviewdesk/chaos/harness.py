"""The inner half of `manage.py chaos`: a whole desk in subprocesses, load, faults, a journal.

Runs with settings that name only the chaos database (see run.py). It starts a private Redis,
Daphne, two Celery workers (one prefork; one with REVIEWDESK_WORKER_POOL/CONCURRENCY) and beat,
drives threads and scripted reviewers over real HTTP, injects faults at seeded random moments,
measures recovery from the database, then stops everything and hands the journal to verdict.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import random
import re
import secrets
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any
from urllib import error as urlerror
from urllib import parse as urlparse
from urllib import request as urlrequest

import psutil
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import connections
from django.db.models import Q

from reviewdesk import devrun
from reviewdesk.chaos import probe
from reviewdesk.chaos.run import RUN_ENV
from reviewdesk.devrun import Proc, ProcError
from reviewdesk.models import ReviewItem, Thread

ADVANCE = "reviewdesk.tasks.thread_advance"
KILLS = ("pool_kill", "worker_kill", "redis_restart")
KINDS = (*KILLS, "duplicate_burst")
# Example graphs and the harness's own, weighted: the ledger counts effects, slow keeps workers
# busy mid-run so kills land inside tasks.
MIX = {
    "chaos_ledger": 3,
    "chaos_slow": 2,
    "chaos_pooled": 2,
    "age": 1,
    "chatbot": 1,
    "parallel_approval": 1,
    "agent": 1,
}
INPUTS: dict[str, Any] = {
    "age": {"name": "Chaos"},
    "chatbot": {"messages": [{"role": "user", "content": "Please ask an expert for me."}]},
    "parallel_approval": {"topic": "the chaos run"},
    "agent": {"messages": [{"role": "user", "content": "Email ops@example.com about the run."}]},
    "chaos_slow": {},
    "chaos_pooled": {},
    "chaos_ledger": {},
}
# Runs of one thread we kill in a row (since it last progressed): the engine may rightly fail a
# thread whose run keeps dying (REVIEWDESK_MAX_ATTEMPTS, 5 by default); that is not damage.
MAX_KILLS_PER_THREAD = 2
# Kills of one kind are at least this far apart, even when several fall due at once.
MIN_GAP = 0.5
# Redis stays down 0.5-2.5 s, up to this long while an answer posted meanwhile is in flight,
# and is up at least REDIS_MIN_UP between two kills (so the workers can reconnect at all).
REDIS_MAX_DOWN = 4.0
REDIS_MIN_UP = 3.0


def python_m(module: str, *args: str) -> list[str]:
    """devrun.python_m, with the run's id on the command line (`-X` options are free-form), so
    whatever outlives the run is found by its command line, like Redis by its socket path."""
    run_id = os.environ.get(RUN_ENV, "")
    return [sys.executable, "-X", f"reviewdesk_chaos_run={run_id}", "-m", module, *args]


def say(message: str) -> None:
    print(f"chaos: {message}", flush=True)


def close_db() -> None:
    """Each harness thread has its own connection; close it when the thread ends."""
    connections.close_all()


@dataclass
class Plan:
    threads: int
    faults: int  # per kind
    duration: float  # seconds of fault injection
    settle: float  # seconds after it for the threads to finish
    seed: int
    reviewers: int
    run_dir: Path
    worker_pool: str
    worker_concurrency: int
    stale_after: float
    reconcile_interval: float
    slow_seconds: float
    recovery_bound: float


# --- the journal: everything the verdict needs ----------------------------------------------------


@dataclass
class Fault:
    kind: str
    t: float
    pids: list[int] = field(default_factory=list)
    detail: str = ""
    owed: dict[str, set[str]] = field(default_factory=dict)  # thread -> obligations at t
    recovered: dict[str, float] = field(default_factory=dict)  # thread -> when it progressed
    # Threads the killed process(es) were running at that instant (their messages are unacked).
    affected: set[str] = field(default_factory=set)
    closed_at: float | None = None

    @property
    def waiting(self) -> list[str]:
        return [t for t in self.owed if t not in self.recovered]

    @property
    def recovery(self) -> float | None:
        """Seconds until every thread owed work at `t` progressed (0 if none was owed).

        Faults come every second or two, so a later fault may delay it: that is counted in.
        """
        if self.closed_at is None:
            return None
        return max((v - self.t for v in self.recovered.values()), default=0.0)

    @property
    def killed_tasks_recovery(self) -> float | None:
        """Seconds until every thread the killed processes were running progressed."""
        if any(t not in self.recovered for t in self.affected):
            return None
        return max((self.recovered[t] - self.t for t in self.affected), default=None)


@dataclass
class Accepted:
    item: int
    thread: str
    graph: str
    interrupt: str
    answer: Any
    reviewer: str
    t: float
    redis_down: bool = False  # the server said 2xx while our Redis was dead


@dataclass
class Journal:
    started: float = field(default_factory=time.time)
    threads: dict[str, str] = field(default_factory=dict)  # id -> graph
    start_errors: list[str] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    accepted: list[Accepted] = field(default_factory=list)
    posts: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # outcome -> count
    double_clicks: int = 0
    races: int = 0
    two_winners: list[str] = field(default_factory=list)
    phantom: list[str] = field(default_factory=list)  # 2xx but the item was not ours
    resume_copies: int = 0
    top_ups: int = 0  # extra slow threads started so pool kills find a running task
    copies_failed: int = 0
    redis_down: list[tuple[float, float]] = field(default_factory=list)
    unexpected_exits: list[str] = field(default_factory=list)
    worker_starts: list[float] = field(default_factory=list)  # seconds from start to ready
    post_seconds: list[float] = field(default_factory=list)  # answer POST latencies
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, name: str, value: Any) -> None:
        with self.lock:
            getattr(self, name).append(value)

    def count(self, outcome: str) -> None:
        with self.lock:
            self.posts[outcome] += 1


# chaos_pooled is the slow graph under another name, routed (REVIEWDESK_WORKER_QUEUES) to a
# Celery queue only the prefork worker consumes: its pool processes always have runs in flight
# to kill. Routing every slow thread there made three processes the bottleneck of the run.
SLOW_QUEUE = "chaos-pooled"
ROUTES = {"chaos_pooled": SLOW_QUEUE}


# --- processes ------------------------------------------------------------------------------------


def _accepts(port: int) -> bool:
    return devrun.port_in_use(port)


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Worker:
    name: str
    pool: str
    concurrency: int
    log: Path
    queues: str = "celery"
    proc: Proc | None = None
    up: bool = False

    def argv(self) -> list[str]:
        return python_m(
            "celery", "-A", "reviewdesk", "worker", f"--queues={self.queues}",
            f"--pool={self.pool}", f"--concurrency={self.concurrency}",
            "--loglevel=INFO", f"--hostname={self.name}@%h",
            f"--include={probe.__name__}",
            "--without-heartbeat", "--without-gossip", "--without-mingle",
        )  # fmt: skip

    def start(self, env: dict[str, str]) -> None:
        # Celery ignores `--pool=prefork` when the settings name a pool (it takes "prefork" for
        # its own default), so the settings' variables say it too.
        env = {
            **env,
            "REVIEWDESK_WORKER_POOL": self.pool,
            "REVIEWDESK_WORKER_CONCURRENCY": str(self.concurrency),
        }
        self.proc = Proc.start(f"worker {self.name}", self.argv(), env=env, log_path=self.log)

    def wait_ready(self, timeout: float = 120) -> None:
        assert self.proc is not None
        self.proc.wait_for_log(" ready.", timeout=timeout)
        banner = re.search(r"concurrency: (\d+) \((\w+)\)", self.proc.log_text())
        wanted = {"prefork": "prefork", "threads": "thread"}.get(self.pool, self.pool)
        if banner and banner.group(2) != wanted:
            raise ProcError(f"worker {self.name} runs a {banner.group(2)} pool, not {self.pool}")
        self.up = True

    def pids(self) -> list[int]:
        """The master and its pool processes."""
        if self.proc is None:
            return []
        return [self.proc.pid, *(child.pid for child in self.proc.children())]


class Desk:
    """Redis, Daphne, two workers and beat on the chaos database; restarts what we kill."""

    def __init__(self, plan: Plan, env: dict[str, str]) -> None:
        self.plan = plan
        self.env = env
        self.logs = plan.run_dir / "logs"
        self.socket = plan.run_dir / "redis.sock"
        self.redis: Proc | None = None
        self.redis_up = False
        self.daphne: Proc | None = None
        self.beat: Proc | None = None
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = [
            # Slow threads are routed to the prefork worker alone (the desk's own per-graph
            # routing), so it always has runs in flight for pool-process kills.
            Worker(
                "prefork", "prefork", 3, self.logs / "worker-prefork.log", f"celery,{SLOW_QUEUE}"
            ),
            Worker(
                "configured",
                plan.worker_pool,
                plan.worker_concurrency,
                self.logs / "worker-configured.log",
            ),
        ]
        self.lock = threading.RLock()

    def start_redis(self) -> None:
        self.redis = devrun.start_redis(self.socket, log_path=self.logs / "redis.log")
        self.redis_up = True

    def start(self) -> None:
        self.start_redis()
        argv = python_m(
            "daphne", "-b", "127.0.0.1", "-p", str(self.port), "reviewdesk.asgi:application"
        )
        self.daphne = Proc.start("daphne", argv, env=self.env, log_path=self.logs / "daphne.log")
        for worker in self.workers:
            worker.start(self.env)
        self.start_beat()
        self.daphne.wait_until(
            lambda: _accepts(self.port), timeout=120, what=f"listening on {self.port}"
        )
        for worker in self.workers:
            worker.wait_ready()
        assert self.beat is not None
        self.beat.wait_for_log("beat: Starting...", timeout=120)

    def start_beat(self) -> None:
        argv = python_m(
            "celery", "-A", "reviewdesk", "beat", "--loglevel=INFO",
            "--schedule", str(self.plan.run_dir / "celerybeat-schedule"),
        )  # fmt: skip
        self.beat = Proc.start("beat", argv, env=self.env, log_path=self.logs / "beat.log")

    def prefork_children(self) -> dict[int, Worker]:
        """Pool processes of the prefork workers that are up."""
        out = {}
        for worker in self.workers:
            if worker.up and worker.pool == "prefork" and worker.proc is not None:
                for child in worker.proc.children():
                    out[child.pid] = worker
        return out

    def stop(self) -> None:
        for proc in [self.beat, *(w.proc for w in self.workers), self.daphne]:
            if proc is not None:
                with contextlib.suppress(Exception):
                    proc.stop(timeout=15)
        if self.redis is not None:
            self.redis.stop()


# --- reviewers over HTTP -------------------------------------------------------------------------

_CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


class _NoRedirect(urlrequest.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Browser:
    """One person's cookie jar over plain HTTP; redirects are returned, not followed."""

    def __init__(self, base: str, username: str) -> None:
        self.base = base
        self.username = username
        self.jar = CookieJar()
        self.opener = urlrequest.build_opener(urlrequest.HTTPCookieProcessor(self.jar), _NoRedirect)

    def call(
        self, method: str, path: str, form: dict[str, str] | None = None, htmx: bool = False
    ) -> tuple[int, dict[str, str], str]:
        data = urlparse.urlencode(form).encode() if form is not None else None
        headers = {"HX-Request": "true"} if htmx else {}
        req = urlrequest.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with self.opener.open(req, timeout=60) as resp:
                return resp.status, dict(resp.headers), resp.read().decode("utf-8", "replace")
        except urlerror.HTTPError as exc:
            return exc.code, dict(exc.headers or {}), exc.read().decode("utf-8", "replace")

    def form_token(self, path: str) -> tuple[str | None, str]:
        status, _, html = self.call("GET", path)
        match = _CSRF.search(html) if status == 200 else None
        return (match.group(1) if match else None), html

    def login(self, password: str) -> None:
        token, _ = self.form_token("/accounts/login/")
        form = {"username": self.username, "password": password, "csrfmiddlewaretoken": token or ""}
        status, headers, _ = self.call("POST", "/accounts/login/", form)
        if status != 302:
            raise RuntimeError(f"login as {self.username} failed with HTTP {status}")


def answer_fields(graph: str, value: Any, rng: random.Random, nonce: str, first: bool) -> dict:
    """What a person types in the item's form to move this graph on (see each graph's docs)."""
    if graph == "agent":
        if rng.random() < 0.7:
            return {"decision_0": "approve"}
        return {"decision_0": "respond", "message_0": f"Not now ({nonce})."}
    if graph == "age":
        if first and rng.random() < 0.3:
            return {"mode": "text", "answer": f"not a number {nonce}"}
        return {"mode": "text", "answer": str(rng.randint(18, 99))}
    if graph == "parallel_approval":  # its declared yes/no form: Approve / Reject buttons
        return {"decision": "approve" if rng.random() < 0.8 else "reject"}
    if graph == "chatbot":  # its declared one-field form (the schema form's root is "f")
        return {"f__data": f"advice {nonce}"}
    return {"mode": "text", "answer": nonce}  # chaos_slow/pooled, chaos_ledger, anything else


# --- the run -----------------------------------------------------------------------------------


class Chaos:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        # One generator per harness thread, so a seed gives the same choices in each.
        self.rng = random.Random(plan.seed)
        self.rng_start = random.Random(f"{plan.seed}-start")
        self.rng_review = random.Random(f"{plan.seed}-review")
        self.rng_fault = random.Random(f"{plan.seed}-fault")
        self.journal = Journal()
        self.env = {**os.environ}
        self.desk = Desk(plan, self.env)
        self.stop_load = threading.Event()
        self.stop_faults = threading.Event()
        self.stop_monitor = threading.Event()
        self.outage_answered = threading.Event()
        self.browsers: list[Browser] = []
        self.staff: Browser | None = None
        self.actions: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue()
        self.inflight: set[int] = set()
        self.not_before: dict[int, float] = {}
        self.asked: set[str] = set()  # threads whose first question was answered
        self.threads: list[threading.Thread] = []
        self.ledger = Path(os.environ["REVIEWDESK_CHAOS_LEDGER"])
        self.probe_dir = Path(os.environ[probe.PROBE_ENV])
        self.celery: Any = None

    # -- setup

    def setup(self) -> None:
        say("migrating the chaos database")
        call_command("migrate", verbosity=0, interactive=False)
        self.ledger.touch()
        (self.probe_dir / "busy").mkdir(parents=True, exist_ok=True)
        users = get_user_model()
        group, _ = Group.objects.get_or_create(name="reviewers")
        password = secrets.token_urlsafe(18)
        staff = users.objects.create_user("chaos-staff", password=password, is_staff=True)
        names = [f"chaos-reviewer-{n}" for n in range(1, self.plan.reviewers + 1)]
        for name in names:
            users.objects.create_user(name, password=password).groups.add(group)
        close_db()
        say(
            f"starting Redis, Daphne, workers (prefork×3, {self.plan.worker_pool}"
            f"×{self.plan.worker_concurrency}) and beat; logs in {self.desk.logs}"
        )
        self.desk.start()
        from reviewdesk.celery import app

        self.celery = app
        self.staff = Browser(self.desk.url, staff.username)
        self.staff.login(password)
        for name in names:
            browser = Browser(self.desk.url, name)
            browser.login(password)
            self.browsers.append(browser)

    def spawn(self, target: Callable[[], None], name: str) -> None:
        def body() -> None:
            try:
                target()
            except Exception as exc:
                import traceback

                self.journal.add("errors", f"{name}: {exc!r}\n{traceback.format_exc()}")
                say(f"harness thread {name} crashed: {exc!r}")
            finally:
                close_db()

        thread = threading.Thread(target=body, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    # -- load: threads started over HTTP by staff

    def start_thread(self, graph: str, top_up: bool = False) -> None:
        assert self.staff is not None
        for _ in range(20):
            token, _ = self.staff.form_token("/threads/new/")
            form = {
                "graph": graph,
                "input": json.dumps(INPUTS[graph]),
                "csrfmiddlewaretoken": token or "",
            }
            status, headers, body = self.staff.call("POST", "/threads/new/", form)
            match = re.search(r"/threads/([0-9a-f-]{36})/", headers.get("Location", ""))
            if status == 302 and match:
                with self.journal.lock:
                    self.journal.threads[match.group(1)] = graph
                    self.journal.top_ups += top_up
                return
            self.journal.add("start_errors", f"{graph}: HTTP {status}")
            time.sleep(0.5)

    def starter(self) -> None:
        plan = self.plan
        graphs = [g for g, weight in MIX.items() for _ in range(weight)]
        picks = [graphs[n % len(graphs)] for n in range(plan.threads)]
        self.rng_start.shuffle(picks)
        upfront = max(1, plan.threads * 2 // 5)
        spread = sorted(self.rng_start.uniform(0, 0.85 * plan.duration) for _ in picks[upfront:])
        t0 = time.time()
        for n, graph in enumerate(picks):
            if n >= upfront:
                delay = t0 + spread[n - upfront] - time.time()
                if self.stop_load.wait(max(0.0, delay)):
                    return
            self.start_thread(graph)

    # -- reviewers

    def dispatcher(self) -> None:
        """Hand every pending item to one reviewer action, with think time, until told to stop."""
        while not self.stop_load.is_set():
            now = time.time()
            rows = ReviewItem.objects.filter(status=ReviewItem.Status.PENDING).values_list(
                "pk", "thread_id", "thread__graph", "interrupt_id", "value"
            )
            for pk, thread_id, graph, interrupt_id, value in rows:
                with self.journal.lock:
                    if pk in self.inflight or self.not_before.get(pk, 0) > now:
                        continue
                    self.inflight.add(pk)
                roll = self.rng_review.random()
                kind = "double_click" if roll < 0.2 else "race" if roll < 0.4 else "single"
                self.actions.put(
                    (
                        kind,
                        {
                            "item": pk,
                            "thread": str(thread_id),
                            "graph": graph,
                            "interrupt": interrupt_id,
                            "value": value,
                            "think": self.rng_review.uniform(0.2, 2.0),
                            "seed": self.rng_review.random(),
                        },
                    )
                )
            self.stop_load.wait(0.3)

    def reviewer(self) -> None:
        while True:
            action = self.actions.get()
            if action is None:
                return
            self.run_action(*action)

    def run_action(self, kind: str, job: dict[str, Any]) -> None:
        accepted = False
        try:
            accepted = self.act(kind, job)
        finally:
            with self.journal.lock:
                self.inflight.discard(job["item"])
                self.not_before[job["item"]] = time.time() + (2.0 if accepted else 1.0)

    def act(self, kind: str, job: dict[str, Any]) -> bool:
        """One reviewer action on an item: a single answer, a double-click, or a race of two."""
        if self.stop_load.wait(job["think"]):
            return False
        rng = random.Random(job["seed"])
        pk, graph = job["item"], job["graph"]
        first = job["thread"] not in self.asked
        people = rng.sample(self.browsers, 2 if kind == "race" else 1)
        path = f"/items/{pk}/"
        posts: list[tuple[Browser, dict[str, str]]] = []
        for n, browser in enumerate(people):
            token, html = browser.form_token(path)
            if token is None or f'action="{path}answer/"' not in html:
                self.journal.count("form not offered")
                return False
            nonce = f"{browser.username}-{pk}-{n}-{rng.randrange(10**6)}"
            fields = answer_fields(graph, job["value"], rng, nonce, first)
            posts.append((browser, {**fields, "csrfmiddlewaretoken": token}))
        if kind == "double_click":
            posts.append(posts[0])
        statuses = self.post_together(pk, posts)
        with self.journal.lock:
            if kind == "double_click":
                self.journal.double_clicks += 1
            elif kind == "race":
                self.journal.races += 1
        # A double-click sends one decision twice: both may get 200 (a re-submit of the same
        # decision is idempotent), but two different decisions accepted for one item is damage.
        accepted_posts = {
            id(post) for post, status in zip(posts, statuses, strict=True) if status == 200
        }
        winners = [
            browser for browser, _ in {id(p): p for p in posts if id(p) in accepted_posts}.values()
        ]
        if len(accepted_posts) > 1:
            self.journal.add("two_winners", f"item {pk} ({kind}): HTTP {statuses}")
        if not winners:
            return False
        redis_down = not self.desk.redis_up
        item = ReviewItem.objects.select_related("answered_by").get(pk=pk)
        mine = item.answered_by is not None and item.answered_by.get_username() in {
            b.username for b in winners
        }
        if not mine or item.status not in (ReviewItem.Status.ANSWERED, ReviewItem.Status.APPLIED):
            self.journal.add("phantom", f"item {pk}: 2xx but item is {item.status}")
            return False
        self.journal.add(
            "accepted",
            Accepted(
                item=pk,
                thread=job["thread"],
                graph=graph,
                interrupt=job["interrupt"],
                answer=item.answer,
                reviewer=item.answered_by.get_username(),
                t=time.time(),
                redis_down=redis_down,
            ),
        )
        if redis_down:
            self.outage_answered.set()
        if graph == "age":
            self.asked.add(job["thread"])
        # Duplicate delivery on purpose: every resume is delivered at least twice.
        for _ in range(rng.randint(3, 6)):
            self.send_copy(job["thread"], "resume_copies")
        return True

    def answer_now(self, limit: int) -> int:
        """Answer up to `limit` pending items at once, without think time."""
        rows = ReviewItem.objects.filter(status=ReviewItem.Status.PENDING).values_list(
            "pk", "thread_id", "thread__graph", "interrupt_id", "value"
        )
        jobs = []
        for pk, thread_id, graph, interrupt_id, value in rows:
            with self.journal.lock:
                if pk in self.inflight:
                    continue
                self.inflight.add(pk)
            job = {"item": pk, "thread": str(thread_id), "graph": graph}
            job.update(interrupt=interrupt_id, value=value, think=0.0, seed=self.rng_fault.random())
            jobs.append(job)
            if len(jobs) == limit:
                break
        for job in jobs:
            self.spawn(lambda job=job: self.run_action("single", job), "answer-now")
        return len(jobs)

    def post_together(self, pk: int, posts: list[tuple[Browser, dict[str, str]]]) -> list[int]:
        """POST every form at the same instant (a double-click, or two reviewers)."""
        barrier = threading.Barrier(len(posts))
        statuses = [0] * len(posts)

        def post(n: int, browser: Browser, form: dict[str, str]) -> None:
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait(5)
            began = time.time()
            try:
                statuses[n], _, _ = browser.call("POST", f"/items/{pk}/answer/", form, htmx=True)
                self.journal.add("post_seconds", time.time() - began)
            except OSError as exc:
                statuses[n] = -1
                self.journal.add("errors", f"POST item {pk}: {exc!r}")

        threads = [
            threading.Thread(target=post, args=(n, b, f), daemon=True)
            for n, (b, f) in enumerate(posts)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for status in statuses:
            self.journal.count(f"HTTP {status}" if status > 0 else "connection error")
        return statuses

    def send_copy(self, thread_id: str, counter: str) -> bool:
        try:
            self.celery.send_task(ADVANCE, args=[thread_id], retry=False)
        except Exception:
            with self.journal.lock:
                self.journal.copies_failed += 1
            return False
        with self.journal.lock:
            setattr(self.journal, counter, getattr(self.journal, counter) + 1)
        return True

    # -- faults

    def owed_now(self) -> dict[str, set[str]]:
        """What each thread is owed right now, read from the database (the source of truth)."""
        owed: dict[str, set[str]] = defaultdict(set)
        for pk in Thread.objects.filter(status__in=Thread.ACTIVE).values_list("pk", flat=True):
            owed[str(pk)].add("run")
        answered = ReviewItem.objects.filter(status=ReviewItem.Status.ANSWERED)
        for pk, thread_id in answered.values_list("pk", "thread_id"):
            owed[str(thread_id)].add(f"item:{pk}")
        return dict(owed)

    def record(
        self, kind: str, pids: list[int], detail: str, *, window: bool, affected: Any = ()
    ) -> None:
        fault = Fault(kind=kind, t=time.time(), pids=pids, detail=detail)
        if window:
            fault.owed = self.owed_now()
            fault.affected = set(affected)
            for thread_id in fault.affected:
                fault.owed.setdefault(thread_id, {"run"})
            if not fault.owed:
                fault.closed_at = fault.t
        self.journal.add("faults", fault)

    def busy(self) -> list[dict[str, Any]]:
        out = []
        for marker in (self.probe_dir / "busy").glob("*"):
            with contextlib.suppress(OSError, ValueError):
                out.append(json.loads(marker.read_text()))
        return out

    def pool_kill(self) -> bool:
        """SIGKILL a prefork pool process while it runs a task (the probe says which)."""
        children = self.desk.prefork_children()
        busy = [b for b in self.busy() if b["pid"] in children and self.killable(b["thread"])]
        if not busy:
            return False
        victim = self.rng_fault.choice(busy)
        try:
            psutil.Process(victim["pid"]).kill()
        except psutil.NoSuchProcess:
            return False
        for marker in (self.probe_dir / "busy").glob(f"{victim['pid']}-*"):
            marker.unlink(missing_ok=True)
        self.record(
            "pool_kill",
            [victim["pid"]],
            f"thread {victim['thread']}",
            window=True,
            affected=[victim["thread"]],
        )
        return True

    def killable(self, thread_id: str) -> bool:
        """Fewer than MAX_KILLS_PER_THREAD kills of its runs since it last made progress."""
        hits = sum(
            thread_id in f.affected and thread_id not in f.recovered for f in self.journal.faults
        )
        return hits < MAX_KILLS_PER_THREAD

    def worker_kill(self) -> bool:
        """SIGKILL a whole worker, master and pool; restart it a moment later."""
        with self.desk.lock:
            up = [w for w in self.desk.workers if w.up]
            if len(up) < len(self.desk.workers):
                # Never the last live worker: kills faster than restarts (≈5 s here) would leave
                # the desk without workers, and no design recovers from that.
                return False
            busy = self.busy()
            busy_pids = {b["pid"] for b in busy}
            capped = {b["pid"] for b in busy if not self.killable(b["thread"])}
            up = [w for w in up if not capped & set(w.pids())]
            if not up:
                return False
            preferred = [w for w in up if busy_pids & set(w.pids())]
            worker = self.rng_fault.choice(preferred or up)
            pids = worker.pids()
            worker.up = False
            assert worker.proc is not None
            worker.proc.kill()
        for pid in pids:
            for marker in (self.probe_dir / "busy").glob(f"{pid}-*"):
                marker.unlink(missing_ok=True)
        running = {b["thread"] for b in busy if b["pid"] in pids}
        self.record(
            "worker_kill",
            pids,
            f"{worker.name}, {len(running)} task(s) running",
            window=True,
            affected=running,
        )
        delay = self.rng_fault.uniform(0.2, 1.5)
        self.spawn(lambda: self.restart_worker(worker, delay), f"restart-{worker.name}")
        return True

    def restart_worker(self, worker: Worker, delay: float) -> None:
        time.sleep(delay)
        while not self.stop_monitor.is_set():
            with self.desk.lock:
                worker.start(self.env)
            started = time.time()
            try:
                worker.wait_ready(timeout=300)
            except ProcError as exc:
                self.journal.add("unexpected_exits", f"worker {worker.name} did not start: {exc}")
                assert worker.proc is not None
                worker.proc.kill()
                continue
            self.journal.add("worker_starts", time.time() - started)
            return

    def redis_restart(self) -> bool:
        """SIGKILL Redis (no persistence: queued tasks are gone), restart it on the same socket."""
        import redis

        assert self.desk.redis is not None
        client = redis.Redis.from_url(self.desk.redis.url or "", socket_timeout=2)
        try:
            queued = int(client.llen("celery"))
            unacked = int(client.hlen("unacked"))
        except redis.RedisError:
            queued = unacked = -1
        finally:
            client.close()
        down = time.time()
        self.outage_answered.clear()
        with self.desk.lock:
            self.desk.redis_up = False
            self.desk.redis.kill()
        # Reviewers keep answering while Redis is down: the desk must accept or recover these.
        # Stay down a little longer while one of those answers is still being posted.
        posting = self.answer_now(2)
        self.stop_faults.wait(self.rng_fault.uniform(0.5, 2.5))
        if posting:
            self.outage_answered.wait(max(0.0, down + REDIS_MAX_DOWN - time.time()))
        with self.desk.lock:
            self.desk.start_redis()
        up = time.time()
        self.journal.add("redis_down", (down, up))
        self.record(
            "redis_restart",
            [],
            f"{queued} queued and {unacked} unacked task(s) lost, down {up - down:.1f} s",
            window=True,
        )
        return True

    def duplicate_burst(self) -> bool:
        """Extra copies of thread_advance at a random moment, for a thread owed work if any.

        Copies for a thread with nothing owed are no-ops in any design; copies landing while a
        run is owed are the ones that race it, so those are the ones worth sending.
        """
        with self.journal.lock:
            ids = list(self.journal.threads)
        owed = sorted(self.owed_now())
        if not ids:
            return False
        thread_id = self.rng_fault.choice(owed or ids)
        copies = self.rng_fault.randint(4, 10)
        sent = sum(self.send_copy(thread_id, "resume_copies") for _ in range(copies))
        if not sent:
            return False
        with self.journal.lock:
            self.journal.resume_copies -= sent  # counted as a burst, not per-answer copies
        self.record("duplicate_burst", [], f"{sent} copies for {thread_id}", window=False)
        return True

    def injector(self) -> None:
        """Inject every kind `faults` times at seeded random moments over `duration`."""
        plan = self.plan
        t0 = time.time()
        schedule = sorted(
            (t0 + self.rng_fault.uniform(0.05, 0.95) * plan.duration, kind)
            for kind in KINDS
            for _ in range(plan.faults)
        )
        actions = {
            "pool_kill": self.pool_kill,
            "worker_kill": self.worker_kill,
            "redis_restart": self.redis_restart,
            "duplicate_burst": self.duplicate_burst,
        }
        # Whole-worker kills wait for the other worker to be up again (a restart takes ≈5-10 s
        # on a busy 2-core box), so they may need longer than `duration`.
        hard_stop = t0 + max(2 * plan.duration, plan.duration + 12 * plan.faults)
        last: dict[str, float] = {}
        starved: dict[str, float] = {}
        while schedule and not self.stop_faults.is_set():
            at, kind = schedule.pop(0)
            if self.stop_faults.wait(max(0.0, at - time.time())):
                return
            gap = REDIS_MIN_UP if kind == "redis_restart" else MIN_GAP
            if kind != "duplicate_burst" and time.time() - last.get(kind, 0) < gap:
                schedule.append((last[kind] + gap, kind))
                schedule.sort()
                continue
            if actions[kind]():
                last[kind] = time.time()
                starved.pop(kind, None)
            else:
                # Nothing to kill for a while (the load ran dry): start one more slow thread.
                since = starved.setdefault(kind, time.time())
                if (
                    kind == "pool_kill"
                    and time.time() - since > 3
                    and self.journal.top_ups < max(2, plan.threads // 10)
                    and not Thread.objects.filter(
                        graph="chaos_pooled", status__in=Thread.ACTIVE
                    ).exists()
                ):
                    starved[kind] = time.time()
                    self.spawn(lambda: self.start_thread("chaos_pooled", top_up=True), "top-up")
                if time.time() > hard_stop:
                    self.journal.add("errors", f"gave up injecting {kind}: no chance in time")
                    continue
                # No busy pool process or no worker up right now: look again very soon (tasks
                # of the example graphs last milliseconds).
                schedule.append((time.time() + self.rng_fault.uniform(0.02, 0.1), kind))
                schedule.sort()

    # -- recovery windows and process health

    def monitor(self) -> None:
        while not self.stop_monitor.wait(0.25):
            self.watch_processes()
            open_faults = [f for f in self.journal.faults if f.owed and f.closed_at is None]
            for fault in open_faults:
                self.progress(fault)

    def progress(self, fault: Fault) -> None:
        """Mark the threads owed work at the fault that have since made progress."""
        now = time.time()
        waiting = fault.waiting
        since = datetime.fromtimestamp(fault.t, tz=UTC)
        active = {
            str(pk)
            for pk in Thread.objects.filter(pk__in=waiting, status__in=Thread.ACTIVE).values_list(
                "pk", flat=True
            )
        }
        answered = {
            f"item:{pk}"
            for pk in ReviewItem.objects.filter(
                thread_id__in=waiting, status=ReviewItem.Status.ANSWERED
            ).values_list("pk", flat=True)
        }
        # A worker touched an item since: created, applied, superseded or reopened it.
        touched = {
            str(pk)
            for pk in ReviewItem.objects.filter(
                Q(thread_id__in=waiting),
                Q(updated_at__gt=since),
                ~Q(status=ReviewItem.Status.ANSWERED),
            ).values_list("thread_id", flat=True)
        }
        for thread_id in waiting:
            owed = fault.owed[thread_id]
            items_done = not any(o in answered for o in owed if o.startswith("item:"))
            run_done = "run" not in owed or thread_id not in active or thread_id in touched
            if items_done and run_done:
                fault.recovered[thread_id] = now
        if not fault.waiting:
            fault.closed_at = now

    def watch_processes(self) -> None:
        """A process we did not kill that died is a finding: note it and start it again."""
        desk = self.desk
        with desk.lock:
            checks: list[tuple[str, Proc | None, Callable[[], None]]] = [
                ("daphne", desk.daphne, lambda: None),
                ("beat", desk.beat, desk.start_beat),
            ]
            if desk.redis_up:
                checks.append(("redis", desk.redis, desk.start_redis))
            for name, proc, restart in checks:
                if proc is not None and not proc.alive():
                    self.journal.add(
                        "unexpected_exits",
                        f"{name} exited ({proc.returncode}):\n{proc.log_tail(15)}",
                    )
                    if name == "daphne":
                        raise RuntimeError("Daphne died; the run cannot go on")
                    restart()
            for worker in desk.workers:
                if worker.up and worker.proc is not None and not worker.proc.alive():
                    worker.up = False
                    self.journal.add(
                        "unexpected_exits",
                        f"worker {worker.name} exited ({worker.proc.returncode}):\n"
                        f"{worker.proc.log_tail(15)}",
                    )
                    self.spawn(lambda w=worker: self.restart_worker(w, 0.0), "restart-unexpected")

    # -- phases

    def settled(self) -> bool:
        """Every started thread finished (completed, failed or cancelled)."""
        with self.journal.lock:
            expected = len(self.journal.threads)
        if expected < self.plan.threads:
            return False
        open_statuses = (*Thread.ACTIVE, Thread.Status.INTERRUPTED)
        return not Thread.objects.filter(status__in=open_statuses).exists()

    def run(self) -> dict[str, Any]:
        from reviewdesk.chaos import verdict

        plan = self.plan
        self.setup()
        say(
            f"load: {plan.threads} threads, {plan.reviewers} reviewers; faults: {plan.faults} of "
            f"each kind ({', '.join(KINDS)}) over {plan.duration:g} s; seed {plan.seed}"
        )
        t_load = time.time()
        self.spawn(self.monitor, "monitor")
        self.spawn(self.starter, "starter")
        self.spawn(self.dispatcher, "dispatcher")
        for n in range(max(4, plan.reviewers)):
            self.spawn(self.reviewer, f"reviewer-{n}")
        injector = threading.Thread(target=self._guarded(self.injector), daemon=True)
        injector.start()
        injector.join()
        t_faults = time.time()
        say(f"faults done after {t_faults - t_load:.0f} s: {self.fault_counts()}")
        deadline = t_faults + plan.settle
        while time.time() < deadline and not self.settled():
            time.sleep(0.5)
        t_settled = time.time()
        settled = self.settled()
        say(
            ("all threads finished" if settled else "deadline reached with threads unfinished")
            + f" {t_settled - t_faults:.0f} s after the last fault"
        )
        self.stop_load.set()
        for _ in self.threads:
            self.actions.put(None)
        # A quiet period: the reconciler may still finish recovery of anything left owing.
        quiet = plan.stale_after + 2 * plan.reconcile_interval + 1
        time.sleep(quiet)
        self.stop_monitor.set()
        time.sleep(0.3)
        say("stopping the desk's processes")
        self.desk.stop()
        report = verdict.judge(self, timings={
            "setup_to_load": t_load - self.journal.started,
            "fault_phase": t_faults - t_load,
            "settle": t_settled - t_faults,
            "quiet": quiet,
            "total": time.time() - self.journal.started,
        })  # fmt: skip
        return report

    def _guarded(self, target: Callable[[], None]) -> Callable[[], None]:
        def body() -> None:
            try:
                target()
            finally:
                close_db()

        return body

    def fault_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(KINDS, 0)
        for fault in self.journal.faults:
            counts[fault.kind] += 1
        return counts

    def shutdown(self) -> None:
        self.stop_load.set()
        self.stop_faults.set()
        self.stop_monitor.set()
        self.desk.stop()


@contextlib.contextmanager
def running(plan: Plan) -> Iterator[Chaos]:
    chaos = Chaos(plan)
    try:
        yield chaos
    finally:
        chaos.shutdown()
