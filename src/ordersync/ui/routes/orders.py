"""The orders screen (every channel, newest first, live) and an order's own screen with its
actions, each behind a confirmation step."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from ...db import catalog, console_orders, order_timeline
from ...domain.errors import Forbidden, InvalidRequest, NotFound
from ...domain.orders import Order, OrderLine
from ...domain.types import Channel, OrderStatus
from ...services import attention as attention_cases
from ...services import line_sourcing
from ...services import orders as use_cases
from ..access import ACTIONS, Staff, order_actions, target_status
from ..live import page_mark
from .deps import Con, Me, blank, require, store_by_code, visible_stores

router = APIRouter()


def _enum(kind: type[Channel] | type[OrderStatus], value: str | None, name: str):  # type: ignore[no-untyped-def]
    value = blank(value)
    if value is None:
        return None
    try:
        return kind(value)
    except ValueError as exc:
        raise InvalidRequest(f"unknown {name} {value}", field=name) from exc


def _day(value: str | None, zone: object, name: str) -> datetime | None:
    value = blank(value)
    if value is None:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError as exc:
        raise InvalidRequest(f"{name} is not a date", field=name) from exc
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)  # type: ignore[arg-type]


def _cursor(value: str | None) -> tuple[datetime, str] | None:
    value = blank(value)
    if value is None:
        return None
    at, _, order_id = value.partition("|")
    try:
        parsed = datetime.fromisoformat(at)
    except ValueError as exc:
        raise InvalidRequest("bad cursor", field="before") from exc
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)), order_id


@router.get("/orders")
async def orders_screen(
    request: Request,
    con: Con,
    me: Me,
    channel: str | None = None,
    status: str | None = None,
    store: str | None = None,
    attention: str | None = None,
    date_from: str | None = None,
    date_to: str | None = None,
    q: str | None = None,
    before: str | None = None,
) -> Response:
    stores = await visible_stores(con, me)
    chosen_store = store_by_code(stores, blank(store))
    day_to = _day(date_to, con.zone, "date_to")
    search = blank(q)
    query = console_orders.OrderQuery(
        visible_stores=me.visible_stores,
        channel=_enum(Channel, channel, "channel"),
        status=_enum(OrderStatus, status, "status"),
        store_id=chosen_store.id if chosen_store else None,
        attention=attention == "1",
        created_from=_day(date_from, con.zone, "date_from"),
        created_to=day_to + timedelta(days=1) if day_to else None,
        search=search[:200] if search else None,
        before=_cursor(before),
        limit=con.ui.page_size,
    )
    async with con.db.connect(autocommit=True) as conn:
        since = await page_mark(con.db, conn)  # before the page: the stream goes on from it
        rows = await console_orders.order_page(conn, query)
    filters = {
        "channel": blank(channel),
        "status": blank(status),
        "store": blank(store),
        "attention": "1" if query.attention else None,
        "date_from": blank(date_from),
        "date_to": blank(date_to),
        "q": query.search,
    }
    kept = {k: v for k, v in filters.items() if v}
    next_page = None
    if len(rows) == query.limit:
        last = rows[-1]
        next_page = urlencode({**kept, "before": f"{last.created_at.isoformat()}|{last.id}"})
    live = {k: v for k, v in kept.items() if k in ("channel", "status", "store", "attention")}
    inserts = not (query.before or query.search or query.created_from or query.created_to)
    live["view"] = "orders"
    live["inserts"] = "1" if inserts else "0"
    live["since"] = str(since)
    return con.render(
        request,
        me,
        "orders.html",
        rows=rows,
        codes=con.db.store_codes(),
        stores=stores,
        filters=filters,
        channels=list(Channel),
        statuses=list(OrderStatus),
        next_page=next_page,
        first_page=before is None,
        live_url="/ui/live?" + urlencode(live),
    )


async def _order(con: Con, me: Staff, number: int) -> Order:
    async with con.db.connect(autocommit=True) as conn:
        order_id = await console_orders.order_id_by_number(conn, number)
    if order_id is None:
        raise NotFound(f"no order {number}", number=number)
    order = await use_cases.get_order(con.db.uow_read, order_id)
    stores = {h.store_id for line in order.lines for h in line.holds}
    if order.store_id is not None:
        stores.add(order.store_id)
    if not me.sees_order(stores):
        raise NotFound(f"no order {number}", number=number)  # not even that it exists
    return order


def _actions(me: Staff, order: Order) -> list[str]:
    return order_actions(
        me,
        order.status,
        order.payment_status,
        order.fulfillment,
        order.store_id,
        confirmed=order.confirmed_at is not None,
    )


@router.get("/orders/{number}")
async def order_screen(
    request: Request, con: Con, me: Me, number: int, done: str | None = None
) -> Response:
    async with con.db.connect(autocommit=True) as conn:
        since = await page_mark(con.db, conn)  # before the order: the stream goes on from it
    order = await _order(con, me, number)
    async with con.db.connect(autocommit=True) as conn:
        products = {
            p.id: p
            for p in await catalog.products_by_refs(conn, ids=[x.product_id for x in order.lines])
        }
        timeline = await order_timeline.timeline_of(conn, order.id)
    stores = {s.id: s for s in await con.db.fresh_stores()}
    return con.render(
        request,
        me,
        "order.html",
        order=order,
        products=products,
        stores=stores,
        timeline=timeline,
        actions=_actions(me, order),
        names_line=line_sourcing.names_line,
        done=done,
        live_url="/ui/live?" + urlencode({"view": "order", "id": order.id, "since": since}),
    )


LINE_ACTIONS = ("hold_line", "drop_line")


async def _line_action(
    con: Con, me: Me, number: int, line_no: int, action: str
) -> tuple[Order, OrderLine]:
    require(me, "new")  # operators and admins manage orders
    if action not in LINE_ACTIONS:
        raise NotFound(f"no line action {action}", action=action)
    order = await _order(con, me, number)
    line = next((x for x in order.lines if x.line_no == line_no), None)
    if line is None:
        raise NotFound(f"order {number} has no line {line_no}", line=line_no)
    return order, line


@router.get("/orders/{number}/lines/{line_no}/{action}")
async def confirm_line_screen(
    request: Request,
    con: Con,
    me: Me,
    number: int,
    line_no: int,
    action: str,
    store: str | None = None,
) -> Response:
    order, line = await _line_action(con, me, number, line_no, action)
    target = None
    if action == "hold_line":
        target = store_by_code(await con.db.fresh_stores(), blank(store))
        if target is None:
            raise InvalidRequest("choose a store", field="store")
    return con.render(
        request, me, "line_confirm.html", order=order, line=line, action=action, store=target
    )


@router.post("/orders/{number}/lines/{line_no}/{action}")
async def act_on_line(
    con: Con,
    me: Me,
    number: int,
    line_no: int,
    action: str,
    store: Annotated[str | None, Form(max_length=64)] = None,
) -> Response:
    order, _ = await _line_action(con, me, number, line_no, action)
    if action == "hold_line":
        code = blank(store)
        if code is None:
            raise InvalidRequest("choose a store", field="store")
        await line_sourcing.hold_line_at(con.db.uow, order.id, line_no, code, con.ctx)
    else:
        await line_sourcing.cancel_line(con.db.uow, order.id, line_no, con.ctx)
    return RedirectResponse(f"/ui/orders/{number}?done={action}", status_code=303)


@router.get("/orders/{number}/{action}")
async def confirm_screen(request: Request, con: Con, me: Me, number: int, action: str) -> Response:
    order = await _order(con, me, number)
    if action not in _actions(me, order):
        raise NotFound(f"order {number} has no action {action} now", action=action)
    return con.render(request, me, "confirm.html", order=order, action=action)


@router.post("/orders/{number}/{action}")
async def act(request: Request, con: Con, me: Me, number: int, action: str) -> Response:
    order = await _order(con, me, number)
    allowed = _actions(me, order)
    if action not in allowed:
        if action in ACTIONS and not me.manages_orders and action != "hand_over":
            raise Forbidden("your role does not do this to orders", action=action)
        if action in ACTIONS:
            return con.render(
                request, me, "confirm.html", 409, order=order, action=action, refused=True
            )
        raise NotFound(f"order {number} has no action {action}", action=action)
    target = target_status(action)
    if action == "confirm":
        await use_cases.confirm_order(con.db.uow, order.id, con.ctx, by=f"console:{me.name}")
    elif target is None:
        await use_cases.pay_order(con.db.uow, order.id, con.ctx)
    else:
        await use_cases.change_status(
            con.db.uow, order.id, target, con.ctx, reason=f"console:{me.name}"
        )
    return RedirectResponse(f"/ui/orders/{number}?done={action}", status_code=303)


@router.post("/orders/{number}/attention/{item_id}/resolve")
async def resolve(
    request: Request,
    con: Con,
    me: Me,
    number: int,
    item_id: int,
    resolution: Annotated[str, Form(min_length=1, max_length=200)],
) -> Response:
    require(me, "new")  # operators and admins manage orders
    order = await _order(con, me, number)
    note = f"console:{me.name}: {resolution.strip()}"[:255]
    await attention_cases.resolve(con.db.uow, order.id, item_id, note, con.ctx)
    return RedirectResponse(f"/ui/orders/{number}?done=resolve", status_code=303)
