"""Reading a request body whole ahead of the app (api/request_body.py), as the body limit,
the console's form guard and the lean order route do: bodies sent in pieces, too large, or
cut short by a client that went away, and the body given to the app again."""

from __future__ import annotations

import asyncio

import pytest
from starlette.types import Message, Receive

from ordersync.api.request_body import BodyTooLarge, read_body, replaying

GONE: Message = {"type": "http.disconnect"}


def client(*messages: Message) -> Receive:
    """The messages in order, then a disconnect for ever (as uvicorn answers once closed)."""
    queue = list(messages)

    async def receive() -> Message:
        return queue.pop(0) if queue else GONE

    return receive


def piece(body: bytes, more: bool = True) -> Message:
    return {"type": "http.request", "body": body, "more_body": more}


def test_a_body_sent_in_pieces_is_read_whole() -> None:
    receive = client(piece(b'{"lines": '), piece(b""), piece(b"[]}", more=False))
    assert asyncio.run(read_body(receive)) == (b'{"lines": []}', None)


def test_a_body_past_the_limit_is_refused_and_one_at_the_limit_is_not() -> None:
    asyncio.run(read_body(client(piece(b"12345"), piece(b"", more=False)), max_bytes=5))
    with pytest.raises(BodyTooLarge):
        asyncio.run(read_body(client(piece(b"12345"), piece(b"6", more=False)), max_bytes=5))


def test_a_client_that_went_away_mid_body_leaves_what_came_and_its_message() -> None:
    assert asyncio.run(read_body(client(piece(b"abc")))) == (b"abc", GONE)


def test_the_app_receives_the_body_once_then_the_client_itself() -> None:
    async def run() -> list[Message]:
        receive = replaying(b"abc", client())
        return [await receive(), await receive()]

    body, then = asyncio.run(run())
    assert body == {"type": "http.request", "body": b"abc", "more_body": False}
    assert then == GONE


def test_a_message_given_first_is_replayed_instead_of_the_body() -> None:
    async def run() -> Message:
        return await replaying(b"ab", client(), first=GONE)()

    assert asyncio.run(run()) == GONE
