"""Everything that needs a person: orders with open attention items, levels with more held
or sold than on hand, till lines and returns the till intake could not place (issue 9), and
dead letters."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ...db import attention_queue, console_stock, relay
from .deps import Con, Me

router = APIRouter()


@router.get("/attention")
async def attention_screen(request: Request, con: Con, me: Me) -> Response:
    visible = me.visible_stores
    scope = None if visible is None else sorted(visible)
    async with con.db.connect(autocommit=True) as conn:
        items = await attention_queue.open_items(conn, scope)
        short = await console_stock.short_levels(conn, scope)
        till = await attention_queue.till_problems(conn, scope)
        dead = await relay.dead_letters(conn) if me.is_admin else []
    stores = {s.id: s for s in await con.db.fresh_stores()}
    return con.render(
        request,
        me,
        "attention.html",
        items=items,
        short=short,
        till=till,
        dead=dead,
        stores=stores,
    )
