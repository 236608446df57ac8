"""Which handshakes reach a consumer: the desk's own origins only, and routed paths only.

Through the real ASGI app and the real Redis channel layer, with a real session cookie: a page
on another port, scheme or host must not read a logged-in reviewer's pushes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from reviewdesk import consumers
from reviewdesk.asgi import application
from reviewdesk.middleware import websocket_origin_allowed
from tests.test_consumers import login_cookie

pytestmark = pytest.mark.usefixtures("transactional_db", "channel_layer")


def handshake(
    path: str = "/ws/queue/",
    *,
    host: str = "127.0.0.1",
    origin: str | None = None,
    cookie: bytes = b"",
    scheme: str = "ws",
) -> tuple[bool, int | None]:
    """(accepted, close code) of one handshake; the socket is closed afterwards."""
    headers = [(b"host", host.encode())]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    if cookie:
        headers.append((b"cookie", cookie))

    async def scenario() -> tuple[bool, int | None]:
        comm = WebsocketCommunicator(application, path, headers=headers)
        comm.scope["scheme"] = scheme
        result = await comm.connect()
        await comm.disconnect()
        return result

    return async_to_sync(scenario)()


# --- origins ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "origin"),
    [
        ("127.0.0.1", "http://127.0.0.1"),
        ("localhost:8000", "http://localhost:8000"),
        ("127.0.0.1:8123", "http://127.0.0.1:8123"),
    ],
)
def test_the_desks_own_origin_is_accepted(reviewer: Any, host: str, origin: str) -> None:
    assert handshake(host=host, origin=origin, cookie=login_cookie(reviewer))[0]


@pytest.mark.parametrize(
    "origin",
    [
        "http://localhost:9999",  # another port of an allowed host: the red team's page
        "http://localhost",  # the default port is another port too
        "https://localhost:8000",  # another scheme
        "http://127.0.0.1:8000",  # another host, even an allowed one
        "http://evil.example",
        "http://localhost:8000.evil.example",
        "null",  # sandboxed iframes, file:// pages
        "",
    ],
)
def test_other_origins_are_refused_before_accepting(reviewer: Any, origin: str) -> None:
    accepted, _ = handshake(host="localhost:8000", origin=origin, cookie=login_cookie(reviewer))
    assert not accepted


def test_a_handshake_without_an_origin_is_refused(reviewer: Any) -> None:
    assert not handshake(host="127.0.0.1", origin=None, cookie=login_cookie(reviewer))[0]


def test_a_host_outside_allowed_hosts_is_refused_even_from_its_own_origin(reviewer: Any) -> None:
    cookie = login_cookie(reviewer)
    assert not handshake(host="evil.example", origin="http://evil.example", cookie=cookie)[0]


def test_trusted_origins_are_accepted_exactly(reviewer: Any, settings: Any) -> None:
    """Behind a TLS proxy the socket arrives as ws; CSRF_TRUSTED_ORIGINS names the https page."""
    settings.CSRF_TRUSTED_ORIGINS = ["https://desk.example.com"]
    cookie = login_cookie(reviewer)
    assert handshake(origin="https://desk.example.com", cookie=cookie)[0]
    for near_miss in ("http://desk.example.com", "https://desk.example.com:8443"):
        assert not handshake(origin=near_miss, cookie=cookie)[0]


def test_wss_takes_an_https_origin(reviewer: Any) -> None:
    cookie = login_cookie(reviewer)
    assert handshake(host="localhost", origin="https://localhost", cookie=cookie, scheme="wss")[0]
    assert not handshake(host="localhost", origin="http://localhost", cookie=cookie, scheme="wss")[
        0
    ]


def test_a_proxy_ssl_header_makes_the_origin_https(settings: Any) -> None:
    """The same rule as request.is_secure(): only when SECURE_PROXY_SSL_HEADER is set."""

    def scope(*extra: tuple[bytes, bytes]) -> dict[str, Any]:
        headers = [(b"host", b"localhost"), (b"origin", b"https://localhost"), *extra]
        return {"type": "websocket", "headers": headers}

    forwarded = (b"x-forwarded-proto", b"https")
    assert not websocket_origin_allowed(scope(forwarded))
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    assert websocket_origin_allowed(scope(forwarded))
    assert not websocket_origin_allowed(scope((b"x-forwarded-proto", b"http")))


def test_anonymous_same_origin_sockets_still_need_a_login() -> None:
    assert handshake(origin="http://127.0.0.1") == (False, consumers.CLOSE_UNAUTHENTICATED)


# --- paths ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/ws/thread/not-a-uuid/", "/ws/nope/", "/ws/queue/a/b/", "/", "/ws/queue"]
)
def test_unrouted_paths_are_refused_cleanly(
    reviewer: Any, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    """They raised ValueError("No route found") in the router: a handshake 500, a traceback."""
    cookie = login_cookie(reviewer)
    with caplog.at_level(logging.WARNING):
        assert handshake(path, origin="http://127.0.0.1", cookie=cookie) == (
            False,
            consumers.CLOSE_NOT_FOUND,
        )
        assert handshake(path, origin="http://127.0.0.1") == (False, consumers.CLOSE_NOT_FOUND)
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


# --- through a real Daphne ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def daphne(desk_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A Daphne of our own, so its log can be read for tracebacks."""
    from tests import procs

    server = procs.start_daphne(desk_env, log_path=tmp_path_factory.mktemp("daphne") / "log")
    yield server
    server.stop()


def test_daphne_refuses_foreign_origins_and_unrouted_paths_with_a_403(
    daphne: Any, reviewer: Any
) -> None:
    """Refused before accepting: the browser sees a failed handshake, not an open socket."""
    own = f"http://127.0.0.1:{daphne.port}"
    cookie = {"Cookie": login_cookie(reviewer).decode()}

    def status(path: str, origin: str) -> int:
        try:
            with connect(
                f"ws://127.0.0.1:{daphne.port}{path}", origin=origin, additional_headers=cookie
            ):
                return 101
        except InvalidStatus as exc:
            return exc.response.status_code

    assert status("/ws/queue/", own) == 101
    assert status("/ws/queue/", "http://127.0.0.1:9999") == 403
    assert status("/ws/queue/", f"https://127.0.0.1:{daphne.port}") == 403
    assert status("/ws/thread/not-a-uuid/", own) == 403
    assert status("/ws/nope/", own) == 403
    log = daphne.log_path.read_text()
    assert "Traceback" not in log and "No route found" not in log


def test_handshakes_give_their_database_connections_back(reviewer: Any) -> None:
    """Forty handshakes, accepted and refused, leave the process's pool as they found it.

    Each one once kept a pooled PostgreSQL connection (asgiref 3.13): after sixteen, handshakes
    hung waiting for a connection.
    """
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("only PostgreSQL pools connections per process")

    def checked_out() -> int:
        stats = connection.pool.get_stats()
        return stats["pool_size"] - stats["pool_available"]

    cookie = login_cookie(reviewer)
    handshake(origin="http://127.0.0.1", cookie=cookie)
    before = checked_out()  # the test's own, and any an earlier test's thread still holds
    for _ in range(20):
        assert handshake(origin="http://127.0.0.1", cookie=cookie)[0]
        assert not handshake("/ws/nope/", origin="http://127.0.0.1", cookie=cookie)[0]
    assert checked_out() <= before
