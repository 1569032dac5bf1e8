"""Stock: a store's levels (search; negative and low levels first; on hand, reserved,
available), a product's levels across the stores, and its movements."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ...db import catalog, console_stock, ledger, stock_ops
from ...domain.errors import Forbidden, InvalidRequest, NotFound
from .deps import Con, Me, blank, store_by_code, visible_stores

router = APIRouter()


def _after(value: str | None) -> tuple[Decimal, int] | None:
    value = blank(value)
    if value is None:
        return None
    available, _, product_id = value.partition("|")
    try:
        return Decimal(available), int(product_id)
    except (InvalidOperation, ValueError) as exc:
        raise InvalidRequest("bad cursor", field="after") from exc


@router.get("/stock")
async def stock_screen(
    request: Request,
    con: Con,
    me: Me,
    store: str | None = None,
    q: str | None = None,
    after: str | None = None,
) -> Response:
    stores = await visible_stores(con, me)
    if not stores:
        raise Forbidden("no store is yours to see")
    chosen = store_by_code(stores, blank(store)) or stores[0]
    search = (blank(q) or "")[:100] or None
    limit = con.ui.page_size
    async with con.db.connect(autocommit=True) as conn:
        rows = await console_stock.store_levels(conn, chosen.id, search, _after(after), limit)
    next_page = None
    if len(rows) == limit:
        last = rows[-1]
        cursor = f"{last.available}|{last.product.id}"
        next_page = urlencode({"store": chosen.code, "q": search or "", "after": cursor})
    return con.render(
        request,
        me,
        "stock.html",
        stores=stores,
        store=chosen,
        q=search or "",
        rows=rows,
        low=con.ui.low_stock,
        next_page=next_page,
    )


@router.get("/stock/products/{product_id}")
async def product_screen(
    request: Request,
    con: Con,
    me: Me,
    product_id: int,
    store: str | None = None,
    before: int | None = None,
) -> Response:
    stores = await visible_stores(con, me)
    by_id = {s.id: s for s in stores}
    chosen = store_by_code(stores, blank(store))
    async with con.db.connect(autocommit=True) as conn:
        found = await catalog.products_by_refs(conn, ids=[product_id]) if product_id < 2**31 else []
        if not found:
            raise NotFound(f"no product {product_id}", product_id=product_id)
        levels = [x for x in await stock_ops.read_stock(conn, [product_id]) if x.store_id in by_id]
        moves = await ledger.movements(
            conn, product_id, chosen.id if chosen else None, before, con.ui.page_size
        )
    moves = [m for m in moves if m.store_id in by_id]
    next_page = None
    if moves and len(moves) == con.ui.page_size:
        next_page = urlencode({"store": chosen.code if chosen else "", "before": moves[-1].id})
    return con.render(
        request,
        me,
        "product.html",
        product=found[0],
        levels=sorted(levels, key=lambda x: x.store_id),
        stores=by_id,
        store=chosen,
        movements=moves,
        low=con.ui.low_stock,
        next_page=next_page,
    )
