"""The phone call: find products as one types (name, SKU, barcode or 1C Ид, any case,
Cyrillic included), see what each store has now, choose delivery or pickup at a store that
has it, the customer, place; the order number is shown large to read out.

The form carries a one-time token, used as the placement's Idempotency-Key: a double click,
a resubmitted form or a retried request places one order and shows that one again."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from ...db import catalog, stock_ops
from ...domain.commands import LineInput, PlaceOrder, ProductRef
from ...domain.errors import AlreadyRecorded, InvalidRequest, OrdersyncError
from ...domain.orders import Order
from ...domain.types import Channel, Fulfillment
from ...services import orders as use_cases
from ...services.idempotency import Idempotency
from ...services.ports import StoredResponse
from .deps import Con, Me, blank, require

router = APIRouter()
_QUANTITY = re.compile(r"^[0-9]{1,10}([.,][0-9]{1,3})?$")
_TOKEN = re.compile(r"^[0-9a-f]{32}$")
MAX_LINES = 100
CUSTOMER_FIELDS = ("name", "phone", "address")


@router.get("/new")
async def new_order_screen(request: Request, con: Con, me: Me) -> Response:
    require(me, "new")
    return await _form(request, con, me, {"token": uuid.uuid4().hex, "fulfillment": "delivery"})


async def _form(
    request: Request,
    con: Con,
    me: Me,
    values: dict[str, Any],
    status: int = 200,
    error: str | None = None,
) -> Response:
    stores = [s for s in await con.db.fresh_stores() if s.active and s.is_pickup_point]
    return con.render(
        request, me, "new_order.html", status, values=values, pickup_stores=stores, error=error
    )


@router.get("/products")
async def product_search(con: Con, me: Me, q: str = "") -> JSONResponse:
    """Products matching the text, each with what every store can give an operator's order now
    (on hand less reserved less the store's safety stock)."""
    require(me, "new")
    text = q.strip()[:100]
    if not text:
        return JSONResponse({"products": []})
    stores = [s for s in await con.db.fresh_stores() if s.active]
    async with con.db.connect(autocommit=True) as conn:
        found = [p for p in await catalog.list_products(conn, 0, 15, text) if p.active]
        levels = await stock_ops.read_stock(conn, [p.id for p in found]) if found else []
    fmt = con.formats(me.locale)
    by_product: dict[int, dict[int, Decimal]] = {}
    safety = {s.id: s.safety_stock for s in stores}
    for level in levels:
        if level.store_id in safety:
            free = max(level.available - safety[level.store_id], Decimal(0))
            by_product.setdefault(level.product_id, {})[level.store_id] = free
    return JSONResponse(
        {
            "products": [
                {
                    "id": p.id,
                    "sku": p.sku,
                    "name": p.name,
                    "unit": p.unit.value,
                    "price": fmt.money(p.price) if p.price is not None else "",
                    "stores": [
                        {
                            "code": s.code,
                            "name": s.name,
                            "available": str(by_product.get(p.id, {}).get(s.id, Decimal(0))),
                            "shown": fmt.qty(by_product.get(p.id, {}).get(s.id, Decimal(0))),
                            "pickup": s.is_pickup_point,
                            "online": s.serves_online,
                        }
                        for s in stores
                    ],
                }
                for p in found
            ]
        }
    )


def _read_form(form: Any) -> tuple[dict[str, Any], list[tuple[int, Decimal]]]:
    values: dict[str, Any] = {
        key: (form.get(key) or "").strip()[:500]
        for key in ("token", "fulfillment", "store", "comment", *CUSTOMER_FIELDS)
    }
    ids, quantities = form.getlist("product_id"), form.getlist("quantity")
    values["lines"] = list(zip(ids, quantities, strict=False))[:MAX_LINES]
    if not _TOKEN.match(values["token"]):
        raise InvalidRequest("the form has no valid token: reload the page", field="token")
    if values["fulfillment"] not in (Fulfillment.DELIVERY.value, Fulfillment.PICKUP.value):
        raise InvalidRequest("choose delivery or pickup", field="fulfillment")
    if len(ids) != len(quantities) or not ids:
        raise InvalidRequest("add at least one product", field="lines")
    if len(ids) > MAX_LINES:
        raise InvalidRequest(f"at most {MAX_LINES} lines", field="lines")
    lines: list[tuple[int, Decimal]] = []
    for raw_id, raw_qty in values["lines"]:
        if not str(raw_id).isdigit() or not _QUANTITY.match(str(raw_qty).strip()):
            raise InvalidRequest("a quantity is not a number", field="quantity")
        qty = Decimal(str(raw_qty).strip().replace(",", "."))
        if qty <= 0:
            raise InvalidRequest("a quantity must be above zero", field="quantity")
        lines.append((int(raw_id), qty))
    return values, lines


def _request_hash(values: dict[str, Any], lines: list[tuple[int, Decimal]]) -> str:
    body = {k: values[k] for k in ("fulfillment", "store", "comment", *CUSTOMER_FIELDS)}
    body["lines"] = [[pid, str(qty)] for pid, qty in lines]
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


@router.post("/new")
async def place(request: Request, con: Con, me: Me) -> Response:
    require(me, "new")
    form = await request.form()
    values: dict[str, Any] = {"token": "", "fulfillment": "delivery", "lines": []}
    try:
        values, lines = _read_form(form)
        fulfillment = Fulfillment(values["fulfillment"])
        cmd = PlaceOrder(
            channel=Channel.OPERATOR,
            fulfillment=fulfillment,
            lines=tuple(LineInput(ProductRef(product_id=pid), qty) for pid, qty in lines),
            store_code=blank(values["store"]) if fulfillment is Fulfillment.PICKUP else None,
            customer={k: values[k] for k in CUSTOMER_FIELDS if values[k]},
            comment=blank(values["comment"]),
        )

        def stored(order: Order) -> StoredResponse:
            return StoredResponse(201, {"order_id": order.id, "number": order.number})

        idem = Idempotency(me.key, values["token"], _request_hash(values, lines), stored)
        try:
            result = await use_cases.place_order(con.db.placement_uow, cmd, con.ctx, idem)
        except AlreadyRecorded:
            result = await use_cases.place_order(con.db.placement_uow, cmd, con.ctx, idem)
    except OrdersyncError as exc:
        status = 409 if exc.code == "insufficient_stock" else 422
        values["lines"] = await _named_lines(con, values.get("lines", []))
        return await _form(request, con, me, values, status, _explain(exc))
    number = result.body["number"] if isinstance(result, StoredResponse) else result.number
    return RedirectResponse(f"/ui/placed/{number}", status_code=303)


async def _named_lines(con: Con, lines: list[Any]) -> list[dict[str, Any]]:
    """The lines as the form shows them again after a refusal."""
    ids = [int(pid) for pid, _ in lines if str(pid).isdigit()]
    async with con.db.connect(autocommit=True) as conn:
        found = {p.id: p for p in await catalog.products_by_refs(conn, ids=ids)} if ids else {}
    return [
        {"id": int(pid), "quantity": qty, "name": found[int(pid)].name, "sku": found[int(pid)].sku}
        for pid, qty in lines
        if str(pid).isdigit() and int(pid) in found
    ]


def _explain(exc: OrdersyncError) -> str:
    if exc.code == "insufficient_stock":
        short = ", ".join(str(x.get("product", "")) for x in exc.details.get("lines", []))
        return f"insufficient_stock:{short}"
    return exc.message


@router.get("/placed/{number}")
async def placed(request: Request, con: Con, me: Me, number: int) -> Response:
    require(me, "new")
    return con.render(request, me, "placed.html", number=number)
