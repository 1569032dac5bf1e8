"""Refuses request bodies over the configured size with 413, however they are sent.

The body is read here, up to the limit, before the application sees it: a declared
Content-Length over the limit is refused at once, and a chunked body is counted as it comes.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Receive, Scope, Send

from .request_body import BodyTooLarge, read_body, replaying


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int, exempt: tuple[str, ...] = ()) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.exempt = frozenset(exempt)  # paths that stream and limit their own bodies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.exempt:
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._refuse(send)
                return
        try:
            # A client that went away mid-body: the app gets what came, then the disconnect.
            body, _ = await read_body(receive, self.max_bytes)
        except BodyTooLarge:
            await self._refuse(send)
            return
        await self.app(scope, replaying(body, receive), send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(
            {
                "error": "payload_too_large",
                "detail": {"message": f"the body is larger than {self.max_bytes} bytes"},
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
