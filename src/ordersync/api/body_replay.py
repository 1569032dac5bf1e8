"""A request body read ahead of the app, given to it again as if the client were sending it.

The body limit, the console's form guard and the lean order route each read the whole body
before deciding; what comes after them must still be able to `receive()` it.
"""

from __future__ import annotations

from starlette.types import Message, Receive


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
