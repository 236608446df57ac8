"""Production: the shipped process definitions parse and name real things; workers by queue."""

from __future__ import annotations

import configparser
import importlib
import json
import shlex
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from reviewdesk.devrun import BASE_DIR, python_m
from reviewdesk.models import Run, Thread
from reviewdesk.services import threads as thread_services
from tests import procs
from tests.support import wait_for

DEPLOY = BASE_DIR / "deploy" / "systemd"


def procfile() -> dict[str, str]:
    entries = {}
    for line in (BASE_DIR / "Procfile").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, sep, command = line.partition(":")
        assert sep and name.strip().replace("_", "").isalnum(), line
        entries[name.strip()] = command.strip()
    return entries


def check_command(argv: list[str]) -> None:
    """The program is one this venv installs, and what it loads exists."""
    program = Path(argv[0]).name
    assert program in {"gunicorn", "daphne", "celery", "python"}, argv
    if program in ("gunicorn", "daphne"):
        target = next(a for a in argv[1:] if ":" in a and not a.startswith("-"))
        module, attribute = target.split(":")
        assert getattr(importlib.import_module(module), attribute) is not None
    if program == "celery":
        assert argv[1:3] == ["-A", "reviewdesk"]
        assert argv[3] in ("worker", "beat")
        if argv[3] == "worker":
            assert "-Q" in argv, "each worker names the queues it consumes"


def test_procfile_defines_web_ws_workers_and_one_beat() -> None:
    entries = procfile()
    assert {"web", "ws", "worker", "beat"} <= set(entries)
    assert sum(1 for cmd in entries.values() if " beat" in cmd) == 1
    for name, command in entries.items():
        if name == "release":
            continue
        check_command(shlex.split(command))
    queues = {
        shlex.split(cmd)[shlex.split(cmd).index("-Q") + 1]
        for cmd in entries.values()
        if " worker " in cmd
    }
    assert queues == {"celery", "agents"}  # two workers on different queues


def test_systemd_units_parse() -> None:
    units = sorted(DEPLOY.glob("*.service"))
    assert {u.name for u in units} == {
        "reviewdesk-web.service", "reviewdesk-ws.service", "reviewdesk-worker@.service",
        "reviewdesk-beat.service",
    }  # fmt: skip
    for unit in units:
        parser = configparser.ConfigParser(interpolation=None, strict=True)
        parser.optionxform = str  # systemd keys are case-sensitive
        parser.read(unit)
        assert set(parser.sections()) == {"Unit", "Service", "Install"}, unit
        service = parser["Service"]
        assert service["Restart"] == "always"
        assert service["EnvironmentFile"] == "/etc/reviewdesk/env"  # secrets from there only
        argv = shlex.split(service["ExecStart"].replace("%i", "celery").replace("%H", "host"))
        check_command(argv)
    target = configparser.ConfigParser(interpolation=None)
    target.read(DEPLOY / "reviewdesk.target")
    assert "reviewdesk-beat.service" in target["Unit"]["Wants"]


def test_gunicorn_from_the_procfile_serves_http(
    desk_env: dict[str, str], tmp_path: Path, transactional_db: None
) -> None:
    """The Procfile's web command, as written, serves the desk (several processes)."""
    port = procs.free_port()
    argv = shlex.split(procfile()["web"].replace("${WEB_CONCURRENCY:-4}", "2"))
    argv = [a.replace("127.0.0.1:8001", f"127.0.0.1:{port}") for a in argv]
    web = procs.Proc.start(
        "gunicorn", python_m("gunicorn", *argv[1:]), env=procs.process_env(desk_env),
        log_path=tmp_path / "gunicorn.log",
    )  # fmt: skip
    try:
        web.wait_until(lambda: procs._accepts(port), timeout=60, what="listening")
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: len(web.children()) == 2, what="two gunicorn workers")
        with urllib.request.urlopen(f"{base}/healthz", timeout=10) as response:
            assert response.read() == b"ok\n"
        with urllib.request.urlopen(f"{base}/accounts/login/", timeout=10) as response:
            assert response.status == 200
            assert b"csrfmiddlewaretoken" in response.read()
    finally:
        web.stop()


@pytest.mark.usefixtures("transactional_db")
def test_two_workers_on_one_machine_consume_different_queues(
    desk_env: dict[str, str], tmp_path: Path, staff: Any
) -> None:
    """Threads of a routed graph run only on the worker of its queue; the rest on the default."""
    from reviewdesk.celery import app

    app.control.purge()
    routes = {"chatbot": "agents"}
    env = {**desk_env, "REVIEWDESK_WORKER_QUEUES": json.dumps(routes)}
    default = procs.start_celery_worker(
        env, pool="threads", concurrency=2, log_path=tmp_path / "default.log",
        extra_args=["-Q", "celery", "--hostname=default@%h"],
    )  # fmt: skip
    agents = procs.start_celery_worker(
        env, pool="threads", concurrency=2, log_path=tmp_path / "agents.log",
        extra_args=["-Q", "agents", "--hostname=agents@%h"],
    )  # fmt: skip
    try:
        with override_settings(REVIEWDESK_WORKER_QUEUES=routes):
            started = {
                graph: thread_services.thread_start(graph=graph, input=input, user=staff)
                for graph, input in (("age", {}), ("chatbot", {"messages": [("user", "hi")]}))
            }
        for thread in started.values():
            wait_for(
                lambda t=thread: Thread.objects.get(pk=t.pk).status == "interrupted",
                what=f"{thread.graph} to ask",
            )
        ran_by = {
            graph: {w.rsplit("/", 1)[-1] for w in Run.objects.filter(thread=t).values_list(
                "worker", flat=True)}
            for graph, t in started.items()
        }  # fmt: skip
        assert ran_by == {"age": {str(default.pid)}, "chatbot": {str(agents.pid)}}
    finally:
        default.stop()
        agents.stop()
