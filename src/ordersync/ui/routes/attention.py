"""Everything that needs a person: orders with open attention items, levels with more held
or sold than on hand, till lines and returns the till intake could not place (issue 9),
events of the Bitrix site its worker refused, and dead letters."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import RedirectResponse, Response

from ...db import attention_queue, console_stock, relay, till_review
from ...domain.errors import Forbidden, NotFound
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
        site = await attention_queue.site_problems(conn) if me.manages_orders else []
        dead = await relay.dead_letters(conn) if me.is_admin else []
    stores = {s.id: s for s in await con.db.fresh_stores()}
    return con.render(
        request,
        me,
        "attention.html",
        items=items,
        short=short,
        till=till,
        site=site,
        dead=dead,
        stores=stores,
    )


@router.post("/attention/till/{item_id}")
async def resolve_till_item(
    con: Con,
    me: Me,
    item_id: Annotated[int, Path(ge=1, le=2**62)],
    resolution: Annotated[str, Form(min_length=1, max_length=200)],
) -> Response:
    """A manager closes an item of the till review queue (as POST /pos/review/{id}/resolve)."""
    if not me.manages_orders:
        raise Forbidden("only operators and administrators sort out till problems")
    async with con.db.uow() as uow:
        closed = await till_review.resolve(
            uow.conn, item_id, f"user:{me.name}: {resolution.strip()}", con.ctx.clock()
        )
        if closed is None:
            raise NotFound(f"no open till problem {item_id}", item_id=item_id)
        await uow.commit()
    return RedirectResponse("/ui/attention", status_code=303)
