"""What a reviewer's browser does, scripted: HTTP/1.1 with keep-alive and cookies, the queue socket.

The HTTP client is a few lines over asyncio streams rather than a full client library: on a
2-core machine the load generator shares the CPU with the server it measures, so it must cost
as little per request as it can. It speaks just enough HTTP/1.1 for the desk (Content-Length
or chunked bodies, keep-alive, Set-Cookie).
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlencode, urlsplit

from websockets.asyncio.client import ClientConnection, connect

CSRF_INPUT = re.compile(rb'name="csrfmiddlewaretoken" value="([^"]+)"')
# A pushed queue row of a pending item (the partial the page renders): its id and its question.
PUSHED_ROW = re.compile(r'<article id="item-(\d+)".*?bench:([^:<\s]+):(\d+)<', re.S)
ITEM_ID = re.compile(rb'<article id="item-(\d+)"')


class HttpError(Exception):
    """An answer the scripted browser did not expect."""


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


@dataclass
class Browser:
    """One person's browser: a keep-alive connection to the desk and its cookies."""

    base: str  # http://127.0.0.1:PORT
    cookies: dict[str, str] = field(default_factory=dict)
    _reader: asyncio.StreamReader | None = None
    _writer: asyncio.StreamWriter | None = None

    @property
    def host(self) -> str:
        return urlsplit(self.base).netloc

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._reader = self._writer = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
    ) -> Response:
        """One request on the kept-alive connection (reopened once if the server closed it)."""
        for attempt in (1, 2):
            if self._writer is None:
                split = urlsplit(self.base)
                self._reader, self._writer = await asyncio.open_connection(
                    split.hostname, split.port
                )
            try:
                return await self._exchange(method, path, body, headers or {})
            except (ConnectionError, asyncio.IncompleteReadError):
                await self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _exchange(
        self, method: str, path: str, body: bytes, headers: dict[str, str]
    ) -> Response:
        assert self._reader is not None and self._writer is not None
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}"]
        if self.cookies:
            lines.append("Cookie: " + "; ".join(f"{k}={v}" for k, v in self.cookies.items()))
        if body or method == "POST":
            lines.append(f"Content-Length: {len(body)}")
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        reader = self._reader
        status_line = await reader.readuntil(b"\r\n")
        status = int(status_line.split()[1])
        got: dict[str, str] = {}
        while True:
            line = await reader.readuntil(b"\r\n")
            if line == b"\r\n":
                break
            name, _, value = line.decode("latin-1").partition(":")
            name, value = name.strip().lower(), value.strip()
            if name == "set-cookie":
                for morsel in SimpleCookie(value).values():
                    self.cookies[morsel.key] = morsel.value
            got[name] = value
        if "content-length" in got:
            data = await reader.readexactly(int(got["content-length"]))
        elif got.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                parts.append(await reader.readexactly(size + 2))
                if size == 0:
                    break
            data = b"".join(p[:-2] for p in parts)
        else:
            data = await reader.read()
            await self.close()
        if got.get("connection", "").lower() == "close":
            await self.close()
        return Response(status, got, data)

    async def get(self, path: str, headers: dict[str, str] | None = None) -> Response:
        return await self.request("GET", path, headers=headers)

    async def post_form(
        self, path: str, data: dict[str, Any], headers: dict[str, str] | None = None
    ) -> Response:
        """A form POST as a browser sends it: urlencoded, with its Origin and the CSRF token."""
        return await self.request(
            "POST",
            path,
            body=urlencode(data).encode(),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Origin": self.base,
                **(headers or {}),
            },
        )

    async def login(self, username: str, password: str) -> None:
        page = await self.get("/accounts/login/")
        token = csrf_token(page)
        answer = await self.post_form(
            "/accounts/login/",
            {"csrfmiddlewaretoken": token, "username": username, "password": password},
        )
        if answer.status != 302 or "sessionid" not in self.cookies:
            raise HttpError(f"login as {username} failed: HTTP {answer.status}")

    async def answer(self, item_id: int, text: str) -> tuple[float, float]:
        """Open the item page, then send its answer form as htmx does.

        Returns when the POST started (perf_counter) and how many seconds it took.
        """
        page = await self.get(f"/items/{item_id}/")
        if page.status != 200:
            raise HttpError(f"item {item_id}: HTTP {page.status}")
        token = csrf_token(page)
        start = time.perf_counter()
        sent = await self.post_form(
            f"/items/{item_id}/answer/",
            {"csrfmiddlewaretoken": token, "mode": "text", "answer": text},
            headers={
                "HX-Request": "true",
                "HX-Target": "answer-panel",
                "HX-Current-URL": f"{self.base}/items/{item_id}/",
            },
        )
        elapsed = time.perf_counter() - start
        if sent.status != 200:
            raise HttpError(f"answering item {item_id}: HTTP {sent.status}\n{sent.text()[:500]}")
        return start, elapsed

    async def queue_fragment(self) -> set[int]:
        """What a page fetches on every (re)connect: the queue's list, as item ids."""
        got = await self.get(
            "/",
            headers={"HX-Request": "true", "HX-Target": "queue-items", "HX-Trigger": "queue-items"},
        )
        if got.status != 200:
            raise HttpError(f"queue fragment: HTTP {got.status}")
        return {int(m) for m in ITEM_ID.findall(got.body)}

    async def socket(self, path: str = "/ws/queue/", *, timeout: float = 10.0) -> ClientConnection:
        """The page's WebSocket: same origin, the session cookie; raises if refused."""
        url = "ws://" + self.host + path
        cookie = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        return await connect(
            url,
            origin=self.base,  # type: ignore[arg-type]
            additional_headers={"Cookie": cookie},
            open_timeout=timeout,
            ping_interval=None,
            compression=None,
            max_queue=None,
        )


def csrf_token(page: Response) -> str:
    found = CSRF_INPUT.search(page.body)
    if found is None:
        raise HttpError(f"no CSRF token on the page (HTTP {page.status})")
    return found.group(1).decode()


class QueueWatcher:
    """Reads one queue socket and notes when each thread's n-th question arrived."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._arrived: dict[tuple[str, int], tuple[int, float]] = {}
        self._waiters: dict[tuple[str, int], asyncio.Future[tuple[int, float]]] = {}
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self.ws:
            now = time.perf_counter()
            text = message if isinstance(message, str) else message.decode()
            for item_id, tag, n in PUSHED_ROW.findall(text):
                key = (tag, int(n))
                self._arrived[key] = (int(item_id), now)
                waiter = self._waiters.pop(key, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result((int(item_id), now))

    async def wait(self, tag: str, n: int, timeout: float = 30.0) -> tuple[int, float]:
        """(item id, perf_counter time it arrived) of the thread's n-th question."""
        key = (tag, n)
        if key in self._arrived:
            return self._arrived.pop(key)
        waiter = self._waiters.setdefault(key, asyncio.get_running_loop().create_future())
        try:
            return await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except TimeoutError:
            raise TimeoutError(f"question {n} of thread {tag!r} never arrived") from None
        finally:
            self._arrived.pop(key, None)

    async def close(self) -> None:
        self._task.cancel()
        await self.ws.close()
