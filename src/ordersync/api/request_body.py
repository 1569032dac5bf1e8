"""A request body read whole ahead of the app, and given to it again as if the client were
sending it.

The body limit, the console's form guard and the lean order route each read the whole body
before deciding; what comes after them must still be able to `receive()` it.
"""

from __future__ import annotations

from starlette.types import Message, Receive


class BodyTooLarge(Exception):
    """The body grew past the size the reader was given."""


async def read_body(receive: Receive, max_bytes: int | None = None) -> tuple[bytes, Message | None]:
    """The body as received so far, and the message that ended it early (the client went
    away), or None when it came whole. Raises `BodyTooLarge` once it passes `max_bytes`."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), message
        chunk = message.get("body", b"")
        size += len(chunk)
        if max_bytes is not None and size > max_bytes:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), None


def replaying(body: bytes, receive: Receive, first: Message | None = None) -> Receive:
    """A receive callable that answers once with `first` (by default the whole `body` as one
    `http.request` message), then with the client's own messages (a later disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            if first is not None:
                return first
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
