"""/orders: place, read, list, pay, confirm, cancel, ship, complete; attention; a short line
held elsewhere or dropped."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse

from ...db import orders as order_rows
from ...db.unit_of_work import Database
from ...domain.commands import PlaceOrder
from ...domain.errors import AlreadyRecorded, Forbidden, InvalidRequest, UnknownStore
from ...domain.orders import Order
from ...domain.types import Channel, Fulfillment, OrderStatus, Role
from ...services import attention as attention_cases
from ...services import line_sourcing
from ...services import orders as use_cases
from ...services.context import Context
from ...services.idempotency import Idempotency
from .. import render
from ..auth import Principal, with_article
from ..decimal_json import DecimalRoute
from ..deps import Auth, Ctx, Db, IdemKey, as_utc, idempotency, respond
from ..openapi import refusals
from ..schemas import AttentionResolutionIn, LineStoreIn, OrderIn, QueryTime

router = APIRouter(prefix="/orders", tags=["orders"], route_class=DecimalRoute)
TRANSITION = refusals(403, 404, 409)

_CHANNEL_OF_ROLE = {
    Role.ONLINE: Channel.ONLINE,
    Role.OPERATOR: Channel.OPERATOR,
    Role.POS: Channel.POS,
}


def _channel(principal: Principal, body: OrderIn) -> Channel:
    if principal.role is Role.ADMIN:
        return body.channel or Channel.OPERATOR
    if body.channel is not None and body.channel is not _CHANNEL_OF_ROLE[principal.role]:
        raise Forbidden(
            f"{with_article(principal.role.value)} token places {principal.role.value} orders"
        )
    return _CHANNEL_OF_ROLE[principal.role]


@router.post(
    "",
    status_code=201,
    summary="Place an order: all lines are held, or none",
    responses=refusals(403, 409),
)
async def place(body: OrderIn, principal: Auth, db: Db, ctx: Ctx, key: IdemKey) -> JSONResponse:
    return await place_order(body, principal, db, ctx, key)


async def place_order(
    body: OrderIn,
    principal: Principal,
    db: Database,
    ctx: Context,
    key: tuple[str, str] | None,
) -> JSONResponse:
    """POST /orders once the request is authenticated and its body valid: what the route
    above and its lean twin (api/lean_orders.py) both run."""
    principal.require(Role.ONLINE, Role.OPERATOR, Role.POS, Role.ADMIN)
    channel = _channel(principal, body)
    if channel is Channel.POS:
        if body.fulfillment is Fulfillment.DELIVERY:
            raise Forbidden("a POS token places pickup or in-store orders at its own stores")
        store = next((s for s in await db.fresh_stores() if s.code == body.store), None)
        principal.require_store(store.id if store else None, body.store)
    cmd = PlaceOrder(
        channel=channel,
        fulfillment=body.fulfillment,
        lines=tuple(line.line() for line in body.lines),
        store_code=body.store,
        customer=body.customer,
        external_id=body.external_id,
        currency=body.currency,
        comment=body.comment,
    )

    def show(o: Order) -> dict[str, Any]:
        return render.order(o, db.store_codes())

    idem = idempotency(principal, key, 201, show)
    try:
        result = await use_cases.place_order(db.placement_uow, cmd, ctx, idem)
    except AlreadyRecorded:
        result = await use_cases.place_order(db.placement_uow, cmd, ctx, idem)
    return respond(result, 201, show)


@router.get("/{order_id}", summary="One order with its lines", responses=refusals(404))
async def get(order_id: str, principal: Auth, db: Db) -> JSONResponse:
    order = await use_cases.get_order(db.uow_read, order_id)
    await db.fresh_stores()
    return JSONResponse(render.order(order, db.store_codes()))


class Sequence(StrEnum):
    OLDEST = "oldest"
    NEWEST = "newest"


@router.get(
    "",
    summary="Orders from every channel, oldest (or newest) first, with a keyset cursor",
    description="`store`: the orders at that store and those holding stock there (a "
    "warehouse's pick list with `status=placed`). `order=newest` lists the newest first; "
    "`next_cursor` continues in the same order.",
)
async def list_orders(
    principal: Auth,
    db: Db,
    channel: Channel | None = None,
    store: str | None = None,
    status: OrderStatus | None = None,
    created_from: QueryTime | None = None,
    created_to: QueryTime | None = None,
    number: Annotated[int | None, Query(ge=1, le=2**62, description="the order's number")] = None,
    attention: Annotated[
        bool | None, Query(description="true: only orders with open attention items")
    ] = None,
    external_id: Annotated[str | None, Query(max_length=128)] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    order: Sequence = Sequence.OLDEST,
) -> JSONResponse:
    stores = await db.fresh_stores()
    store_id = None
    if store is not None:
        match = next((s for s in stores if s.code == store), None)
        if match is None:
            raise UnknownStore([store])
        store_id = match.id
    after = _decode_cursor(cursor) if cursor else None
    flt = order_rows.OrderFilter(
        channel,
        store_id,
        status,
        as_utc(created_from),
        as_utc(created_to),
        after,
        limit,
        number=number,
        external_id=external_id,
        newest_first=order is Sequence.NEWEST,
        attention=attention,
    )
    async with db.connect(autocommit=True) as conn:
        found = await order_rows.list_orders(conn, flt)
    codes = db.store_codes()
    next_cursor = None
    if len(found) == limit:
        last = found[-1]
        next_cursor = f"{last.created_at.isoformat()}|{last.id}"
    return JSONResponse(
        {"orders": [render.order(o, codes) for o in found], "next_cursor": next_cursor}
    )


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    at, _, oid = cursor.partition("|")
    try:
        parsed = datetime.fromisoformat(at)
    except ValueError as exc:
        raise InvalidRequest("bad cursor", field="cursor") from exc
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)), oid


async def _check_may_touch(principal: Principal, db: Db, order_id: str, action: str) -> None:
    if principal.role in (Role.ADMIN, Role.OPERATOR):
        return
    order = await use_cases.get_order(db.uow_read, order_id)
    if principal.role is Role.ONLINE:
        if order.channel is not Channel.ONLINE or action in ("ship", "complete"):
            raise Forbidden("an online token may pay or cancel online orders only")
        return
    principal.require_store(order.store_id)  # POS: orders at its own stores


async def _transition(
    order_id: str, action: str, principal: Principal, db: Db, ctx: Ctx, key: IdemKey
) -> JSONResponse:
    await _check_may_touch(principal, db, order_id, action)
    await db.fresh_stores()

    def show(o: Order) -> dict[str, Any]:
        return render.order(o, db.store_codes())

    idem = idempotency(principal, key, 200, show)

    async def run() -> Order | Any:
        if action == "pay":
            return await use_cases.pay_order(db.uow, order_id, ctx, idem)
        if action == "confirm":
            by = f"{principal.role.value}:{principal.name}"
            return await use_cases.confirm_order(db.uow, order_id, ctx, idem, by)
        target = {
            "cancel": OrderStatus.CANCELLED,
            "ship": OrderStatus.SHIPPED,
            "complete": OrderStatus.COMPLETED,
        }[action]
        return await use_cases.change_status(
            db.uow, order_id, target, ctx, idem, reason=f"{principal.role.value}:{principal.name}"
        )

    return respond(await run(), 200, show)


@router.post("/{order_id}/pay", summary="Mark paid: the holds stop expiring", responses=TRANSITION)
async def pay(order_id: str, principal: Auth, db: Db, ctx: Ctx, key: IdemKey) -> JSONResponse:
    return await _transition(order_id, "pay", principal, db, ctx, key)


@router.post(
    "/{order_id}/confirm",
    summary="Confirm (by phone, cash on delivery): unpaid, the holds keep the longer limit",
    responses=TRANSITION,
)
async def confirm(order_id: str, principal: Auth, db: Db, ctx: Ctx, key: IdemKey) -> JSONResponse:
    return await _transition(order_id, "confirm", principal, db, ctx, key)


@router.post("/{order_id}/cancel", summary="Cancel: the holds are released", responses=TRANSITION)
async def cancel(order_id: str, principal: Auth, db: Db, ctx: Ctx, key: IdemKey) -> JSONResponse:
    return await _transition(order_id, "cancel", principal, db, ctx, key)


@router.post("/{order_id}/ship", summary="Ship: the holds become deductions", responses=TRANSITION)
async def ship(order_id: str, principal: Auth, db: Db, ctx: Ctx, key: IdemKey) -> JSONResponse:
    return await _transition(order_id, "ship", principal, db, ctx, key)


@router.post(
    "/{order_id}/complete",
    summary="Complete (ships first if it was not shipped)",
    responses=TRANSITION,
)
async def complete(order_id: str, principal: Auth, db: Db, ctx: Ctx, key: IdemKey) -> JSONResponse:
    return await _transition(order_id, "complete", principal, db, ctx, key)


OrderChange = Callable[[Idempotency[Order] | None], Awaitable[Any]]


async def _by_operator(
    principal: Principal, db: Db, key: IdemKey, change: OrderChange
) -> JSONResponse:
    """A change of an order that operators and admins make, answered with the order (200)."""
    principal.require(Role.OPERATOR, Role.ADMIN)
    await db.fresh_stores()

    def show(o: Order) -> dict[str, Any]:
        return render.order(o, db.store_codes())

    return respond(await change(idempotency(principal, key, 200, show)), 200, show)


@router.post(
    "/{order_id}/attention/{attention_id}/resolve",
    summary="Close an open attention item of the order (operators and admins)",
    responses=TRANSITION,
)
async def resolve_attention(
    order_id: str,
    attention_id: Annotated[int, Path(ge=1, le=2**62)],
    body: AttentionResolutionIn,
    principal: Auth,
    db: Db,
    ctx: Ctx,
    key: IdemKey,
) -> JSONResponse:
    resolution = f"{principal.role.value}:{principal.name}: {body.resolution}"
    return await _by_operator(
        principal,
        db,
        key,
        lambda idem: attention_cases.resolve(db.uow, order_id, attention_id, resolution, ctx, idem),
    )


LineNo = Annotated[int, Path(ge=1, le=10_000, description="the line's number")]


@router.post(
    "/{order_id}/lines/{line_no}/hold",
    summary="Hold the whole line at one store (operators and admins): what it holds elsewhere "
    "is released, what it lacks is held there, or 409 insufficient_stock and nothing changes",
    responses=refusals(403, 404, 409, 422),
)
async def hold_line(
    order_id: str,
    line_no: LineNo,
    body: LineStoreIn,
    principal: Auth,
    db: Db,
    ctx: Ctx,
    key: IdemKey,
) -> JSONResponse:
    return await _by_operator(
        principal,
        db,
        key,
        lambda idem: line_sourcing.hold_line_at(db.uow, order_id, line_no, body.store, ctx, idem),
    )


@router.post(
    "/{order_id}/lines/{line_no}/cancel",
    summary="Drop a line from a placed order (operators and admins): its holds are released "
    "and the total follows; the last line cannot be dropped (cancel the order)",
    responses=TRANSITION,
)
async def cancel_line(
    order_id: str, line_no: LineNo, principal: Auth, db: Db, ctx: Ctx, key: IdemKey
) -> JSONResponse:
    return await _by_operator(
        principal,
        db,
        key,
        lambda idem: line_sourcing.cancel_line(db.uow, order_id, line_no, ctx, idem),
    )
