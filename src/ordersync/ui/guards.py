"""What every console request passes before the CSRF check and the routes:

- a POST must be a form (application/x-www-form-urlencoded) of at most MAX_FORM_BYTES in
  UTF-8: anything else is refused with 415, 413 or 400 before asgi-csrf reads it (it would
  fail on other shapes with a 500);
- every answer says how long the server took (Server-Timing: app;dur=<ms>, which the bench
  reads) and carries the security headers of a page that loads nothing from another host.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..api.request_body import BodyTooLarge, read_body, replaying

MAX_FORM_BYTES = 256 * 1024
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FORM = b"application/x-www-form-urlencoded"

Refuse = Callable[[Scope, Send, int, str], Awaitable[None]]

SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        b"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]


class FormGuard:
    def __init__(self, app: ASGIApp, refuse: Refuse) -> None:
        self.app = app
        self.refuse = refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        content_type = headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower()
        if content_type != FORM:
            await self.refuse(scope, send, 415, "send the form as the page does")
            return
        try:
            body, gone = await read_body(receive, MAX_FORM_BYTES)
        except BodyTooLarge:
            await self.refuse(scope, send, 413, "the form is too large")
            return
        if gone is not None:
            return  # the client went away
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            await self.refuse(scope, send, 400, "the form is not UTF-8")
            return
        await self.app(scope, replaying(body, receive), send)


class Timed:
    """Server-Timing and the security headers on every answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed(message: Message) -> None:
            if message["type"] == "http.response.start":
                took = (time.perf_counter() - started) * 1000
                headers = list(message.get("headers") or [])
                headers.append((b"server-timing", f"app;dur={took:.2f}".encode()))
                headers.extend(SECURITY_HEADERS)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, timed)
