"""A store's pick list: the orders holding stock there and not yet shipped or handed over,
with what to take from the shelf; printable, and usable on a phone."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ...db import pick_list
from ...domain.errors import Forbidden
from ..access import order_actions
from .deps import Con, Me, blank, store_by_code, visible_stores

router = APIRouter()


@router.get("/pick")
async def pick_screen(request: Request, con: Con, me: Me, store: str | None = None) -> Response:
    stores = await visible_stores(con, me)
    if not stores:
        raise Forbidden("no store is yours to see")
    chosen = store_by_code(stores, blank(store)) or stores[0]
    async with con.db.connect(autocommit=True) as conn:
        found = await pick_list.pick_list(conn, chosen.id)
    actions = {
        o.id: [
            a
            for a in order_actions(me, o.status, o.payment_status, o.fulfillment, o.store_id)
            if a in ("hand_over", "ship")
        ]
        for o in found
    }
    return con.render(
        request,
        me,
        "pick.html",
        stores=stores,
        store=chosen,
        orders=found,
        actions=actions,
    )
