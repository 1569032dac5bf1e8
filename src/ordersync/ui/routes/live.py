"""The live stream of a screen (server-sent events): the orders screen gets its changed rows,
an order's screen a word when the order changed. It ends when the session has been idle
too long (the stream itself does not count as use).

Each message's `id` is the outbox event up to which the stream had read everything; a screen
that reconnects (the browser sends it back as Last-Event-ID) or opens its stream after its
page was read (`since`, written into the page) is first told what changed after that event.
An id that is not a plain number is no id: the screen hears of what happens from now on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from sse_starlette import EventSourceResponse

from ...domain.types import Channel, OrderStatus
from ..live import Watch
from ..sessions import session_alive
from .deps import Con, blank, store_by_code, visible_stores
from .orders import _enum

router = APIRouter()
CHECK_SECONDS = 5.0


@router.get("/live")
async def live(
    request: Request,
    con: Con,
    view: str = "orders",
    id: str | None = None,
    channel: str | None = None,
    status: str | None = None,
    store: str | None = None,
    attention: str | None = None,
    inserts: str = "1",
    since: str | None = None,
) -> EventSourceResponse:
    me = await con.staff(request, touch=False)
    stores = await visible_stores(con, me)
    chosen = store_by_code(stores, blank(store))
    watch = Watch(
        locale=me.locale,
        visible_stores=me.visible_stores,
        order_id=blank(id) if view == "order" else None,
        channel=_enum(Channel, channel, "channel"),
        status=_enum(OrderStatus, status, "status"),
        store_id=chosen.id if chosen else None,
        attention=attention == "1",
        inserts=inserts == "1",
    )
    came_back = _event_id(request.headers.get("last-event-id"))
    watch.since = came_back if came_back is not None else _event_id(since)
    broadcaster = con.broadcaster
    assert broadcaster is not None

    async def stream() -> AsyncIterator[dict[str, str]]:
        try:
            await broadcaster.subscribe(watch)
            yield {"event": "ready", "data": "{}"}
            while True:
                if not session_alive(request, con.idle_seconds):
                    yield {"event": "expired", "data": "{}"}
                    return
                try:
                    event, data, read_up_to = await asyncio.wait_for(
                        watch.queue.get(), CHECK_SECONDS
                    )
                except TimeoutError:
                    continue
                yield {"event": event, "data": data, "id": str(read_up_to)}
        finally:
            broadcaster.unsubscribe(watch)

    return EventSourceResponse(
        stream(), ping=15, send_timeout=10, headers={"Cache-Control": "no-store"}
    )


def _event_id(text: str | None) -> int | None:
    """An event id a page or the browser gave back; anything else is no id at all (the screen
    then hears of what happens from now on)."""
    if text is None or not text.isascii() or not text.isdigit() or len(text) > 18:
        return None
    return int(text)
