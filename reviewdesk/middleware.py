"""Request policies: a strict CSP, logins that work for htmx, same-origin WebSockets."""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable
from typing import Any

from channels import auth as channels_auth
from channels.auth import AuthMiddleware
from channels.db import database_sync_to_async
from channels.security.websocket import WebsocketDenier
from channels.sessions import CookieMiddleware, SessionMiddleware
from django.conf import settings
from django.db import close_old_connections
from django.http import HttpRequest, HttpResponse
from django.http.request import split_domain_port, validate_host
from django.shortcuts import resolve_url
from django_htmx.http import HttpResponseClientRedirect

POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'; "
    "object-src 'none'"
)


class ContentSecurityPolicyMiddleware:
    """No inline script, no eval: graph-surfaced text can never run as script."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", POLICY)
        return response


class HtmxLoginRedirectMiddleware:
    """Send an htmx request that needs a login to the login page, not into a fragment's slot.

    Without this, htmx follows the 302 and swaps the whole login page into the queue list.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            request.headers.get("HX-Request") == "true"
            and response.status_code == 302
            and response["Location"].startswith(resolve_url(settings.LOGIN_URL))
        ):
            return HttpResponseClientRedirect(response["Location"])
        return response


class WebsocketOriginMiddleware:
    """Accept a WebSocket only from the desk's own pages, as Django's CSRF check does for forms.

    A browser sends the session cookie with a WebSocket handshake from any page, so the Origin
    is what stops another site from reading the desk's pushes as the logged-in reviewer.
    Channels' AllowedHostsOriginValidator compares host names only: a page on another port
    of an allowed host (http://localhost:9999) got in. Here the Origin must equal the
    request's own origin (scheme, host and port) or be one of CSRF_TRUSTED_ORIGINS exactly,
    and the Host must be allowed. Refused handshakes are closed before they are accepted.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "websocket" and not websocket_origin_allowed(scope):
            return await WebsocketDenier.as_asgi()(scope, receive, send)
        return await self.app(scope, receive, send)


def websocket_origin_allowed(scope: dict[str, Any]) -> bool:
    """Whether a handshake comes from one of the desk's own origins (settings read per call)."""
    headers: dict[bytes, bytes] = {}
    for name, value in scope.get("headers", []):
        headers.setdefault(name.lower(), value)  # the first of repeated headers, as Django does
    try:
        origin = headers[b"origin"].decode("ascii")
        host = _websocket_host(headers)
    except (KeyError, UnicodeDecodeError):
        return False
    if host is None:
        return False
    own = f"{'https' if _websocket_is_secure(scope, headers) else 'http'}://{host}"
    return origin == own or origin in settings.CSRF_TRUSTED_ORIGINS


def _websocket_host(headers: dict[bytes, bytes]) -> str | None:
    """The Host (or X-Forwarded-Host when USE_X_FORWARDED_HOST), if ALLOWED_HOSTS allows it."""
    raw = headers.get(b"x-forwarded-host") if settings.USE_X_FORWARDED_HOST else None
    host = (raw or headers[b"host"]).decode("ascii")
    allowed = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed:  # Django's own default for development
        allowed = [".localhost", "127.0.0.1", "[::1]"]
    domain, _port = split_domain_port(host)
    return host if domain and validate_host(domain, allowed) else None


def _websocket_is_secure(scope: dict[str, Any], headers: dict[bytes, bytes]) -> bool:
    """wss, or a proxy saying so through SECURE_PROXY_SSL_HEADER (as request.is_secure())."""
    if settings.SECURE_PROXY_SSL_HEADER:
        meta_name, secure_value = settings.SECURE_PROXY_SSL_HEADER
        header = meta_name.removeprefix("HTTP_").replace("_", "-").lower().encode()
        if header in headers:
            return headers[header].decode("latin-1").split(",", 1)[0].strip() == secure_value
    return scope.get("scheme") == "wss"


def on_any_thread(func: Callable[..., Any]) -> Callable[..., Any]:
    """``database_sync_to_async`` on any free thread, giving back its connection within the call.

    Channels closes stale connections around the call, outside it; with asgiref 3.13 and a
    thread that is not Channels' shared one, that outer close missed the connection the call
    had opened (measured on PostgreSQL: one pooled connection kept per socket handshake until
    the pool ran dry and handshakes hung). Closing inside the call returns it every time.
    """

    @functools.wraps(func)
    def closing(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        finally:
            close_old_connections()

    return database_sync_to_async(closing, thread_sensitive=False)


class DeskAuthMiddleware(AuthMiddleware):
    """Channels' AuthMiddleware, resolving the user off Channels' single shared thread.

    Channels looks the session and user up on the one thread all of a server's socket
    handshakes share; after a restart, hundreds of pages reconnect at once and their
    handshakes time out waiting in that line. Each lookup is independent, so any thread will do.
    """

    async def resolve_scope(self, scope: dict[str, Any]) -> None:
        scope["user"]._wrapped = await on_any_thread(channels_auth.get_user.func)(scope)


def DeskAuthMiddlewareStack(inner: Any) -> Any:  # noqa: N802 - named like Channels' own
    return CookieMiddleware(SessionMiddleware(DeskAuthMiddleware(inner)))


class HealthCheckMiddleware:
    """Answer /healthz and /readyz first, before host checks, sessions or HTTPS redirects.

    Load balancers probe by address (a Host that is not in ALLOWED_HOSTS), over plain HTTP, and
    without cookies; none of that may turn a healthy process into a 400 or a redirect. The
    answers carry no secret: "ok", or which dependency failed.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info in ("/healthz", "/readyz") and request.method in ("GET", "HEAD"):
            from reviewdesk.views import health

            return (health.healthz if request.path_info == "/healthz" else health.readyz)(request)
        return self.get_response(request)


class WebsocketCountMiddleware:
    """Count this process's open WebSockets and publish the figure to Redis for the ops page.

    Each web process renews its own key (``reviewdesk:ops:sockets:<host>/<pid>``) while it
    lives, so the sum over keys is right with any number of processes, and a process that died
    drops out when its key expires. The write happens on a thread of its own: a socket's
    handshake and close never wait for it.
    """

    RENEW_EVERY = 30.0

    def __init__(self, app: Any) -> None:
        self.app = app
        self.open = 0
        self._changed = threading.Event()
        self._writer: threading.Thread | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return await self.app(scope, receive, send)
        accepted = False

        async def counting_send(message: dict[str, Any]) -> None:
            nonlocal accepted
            if message.get("type") == "websocket.accept" and not accepted:
                accepted = True
                self._count(+1)
            await send(message)

        try:
            return await self.app(scope, receive, counting_send)
        finally:
            if accepted:
                self._count(-1)

    def _count(self, delta: int) -> None:
        self.open += delta
        if self._writer is None or not self._writer.is_alive():
            self._writer = threading.Thread(
                target=self._write_forever, name="reviewdesk-socket-count", daemon=True
            )
            self._writer.start()
        self._changed.set()

    def _write_forever(self) -> None:
        from reviewdesk.services import ops

        while True:
            self._changed.wait(self.RENEW_EVERY)
            self._changed.clear()
            with contextlib.suppress(Exception):  # a count is never worth a failed socket
                ops.sockets_publish(ops.process_name(), self.open, ttl=int(self.RENEW_EVERY * 4))
