"""Order placement in one write (PostgreSQL, db/pg_place_at_store.py): the common order, held
whole at the first candidate store, is written by one statement exactly as the full path
(planning read, then write) writes it; whatever that statement cannot vouch for is left to
the full path, which answers as before."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import update

from ordersync.db import pg_place_at_store
from ordersync.db.tables import order_lines, order_timeline, orders, products
from ordersync.db.unit_of_work import Database
from ordersync.domain import events
from ordersync.domain.commands import LineInput, PlaceOrder, ProductRef
from ordersync.domain.errors import InsufficientStock, InvalidRequest, UnknownProduct
from ordersync.domain.orders import Order
from ordersync.domain.types import Channel, Fulfillment
from ordersync.services import orders as use_cases
from tests import support
from tests.integration import dbstate

D = Decimal
STOCK = {"WH1": {"TEA": 10, "SUGAR": "5"}, "S01": {"TEA": 6, "MUG": 3}}
# The one-write placement is PostgreSQL's: its tests run there only (parametrized, not skipped).
POSTGRES_ONLY = pytest.mark.parametrize("backend", ["postgres"])


@pytest.fixture
def one_writes(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Per call of the one-write statement: whether it placed the order."""
    calls: list[bool] = []
    real = pg_place_at_store.place_at_store

    async def spy(*args: Any) -> Any:
        result = await real(*args)
        calls.append(result is not None)
        return result

    monkeypatch.setattr(pg_place_at_store, "place_at_store", spy)
    return calls


def ref(name: str) -> ProductRef:
    if name.startswith("#"):
        return ProductRef(product_id=int(name[1:]))
    if name.startswith("1c-"):
        return ProductRef(xml_id=name)
    return ProductRef(sku=name)


def cmd(*items: tuple[str, Any] | tuple[str, Any, Any], **kw: Any) -> PlaceOrder:
    lines = tuple(
        LineInput(ref(x[0]), D(str(x[1])), None if len(x) < 3 else D(str(x[2]))) for x in items
    )
    kw.setdefault("channel", Channel.ONLINE)
    kw.setdefault("fulfillment", Fulfillment.DELIVERY)
    return PlaceOrder(lines=lines, **kw)


async def place(db: Database, command: PlaceOrder) -> Order:
    order = await use_cases.place_order(db.placement_uow, command, support.context())
    assert isinstance(order, Order)
    return order


async def written(db: Database, order_id: str) -> dict[str, Any]:
    """What the database holds of the order, without what differs between two orders."""
    row = await dbstate.order_row(db, order_id)
    lines = await dbstate.rows(db, order_lines, order_lines.c.order_id == order_id)
    holds = await dbstate.holds_of(db, order_id)
    created = [
        e for e in await dbstate.events(db, events.ORDER_CREATED) if e.aggregate_id == order_id
    ]
    timeline = await dbstate.rows(db, order_timeline, order_timeline.c.order_id == order_id)
    assert len(created) == 1 and [t.event_id for t in timeline] == [created[0].id]
    payload = dict(created[0].payload)
    assert timeline[0].payload == payload
    payload.pop("order_id"), payload.pop("number"), payload.pop("external_id")
    order = {k: v for k, v in row._mapping.items() if k not in ("id", "number", "external_id")}
    order.pop("created_at"), order.pop("updated_at"), order.pop("hold_expires_at")
    return {
        "order": order,
        "lines": sorted((x.line_no, x.product_id, x.quantity, x.price) for x in lines),
        "holds": sorted((h.line_no, h.product_id, h.store_id, h.quantity, h.state) for h in holds),
        "event": payload,
    }


CASES = [
    cmd(("TEA", 2)),
    cmd(("TEA", 1), ("SUGAR", "0.347", "199.99"), ("TEA", 3), customer={"name": "Ivan"}),
    cmd(("#1", 1), ("1c-sugar", "1.5"), comment="ring", external_id="x"),
    cmd(("TEA", 2, "0"), ("SUGAR", "2.125")),
    cmd(("MUG", 1), fulfillment=Fulfillment.PICKUP, store_code="S01"),
    cmd(("TEA", 1), channel=Channel.OPERATOR, customer={"phone": "+7 900 000-00-01"}),
]


@POSTGRES_ONLY
@pytest.mark.parametrize("command", CASES)
async def test_one_write_places_the_order_the_full_path_places(
    db: Database,
    backend: str,
    command: PlaceOrder,
    one_writes: list[bool],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    net = await support.seed_network(db, STOCK)
    seeded = await dbstate.stock(db, net)
    fast = await place(db, command)
    assert one_writes == [True]
    after_fast = await dbstate.stock(db, net)
    # The order.created event is what events.order_summary makes of the order returned.
    [event] = await dbstate.events(db, events.ORDER_CREATED)
    assert event.payload == events.order_summary(fast)

    async def full_path_only(*args: Any) -> None:
        return None

    monkeypatch.setattr(use_cases, "_place_at_first_store", full_path_only)
    if command.external_id is not None:
        command = replace(command, external_id="y")
    full = await place(db, command)
    assert await written(db, fast.id) == await written(db, full.id)
    assert [(x.product_id, x.sku, x.price, x.quantity, x.holds) for x in fast.lines] == [
        (x.product_id, x.sku, x.price, x.quantity, x.holds) for x in full.lines
    ]
    assert fast.total == full.total and full.number == fast.number + 1
    # Each took the same stock, with a stock.changed event per row it changed.
    after_full = await dbstate.stock(db, net)
    for key, (on_hand, reserved) in after_full.items():
        assert on_hand == seeded[key][0]
        assert reserved - after_fast[key][1] == after_fast[key][1] - seeded[key][1]
    rows = {(h[1], h[2]) for h in (await written(db, fast.id))["holds"]}
    changed = [e.payload for e in await dbstate.events(db, events.STOCK_CHANGED)]
    mine = [p for p in changed if p["document_id"] in (fast.id, full.id)]
    assert len(mine) == 2 * len(rows)
    assert (await dbstate.drift(db))[1] == []


@POSTGRES_ONLY
async def test_what_one_write_cannot_vouch_for_is_decided_by_the_full_path(
    db: Database, backend: str, one_writes: list[bool]
) -> None:
    net = await support.seed_network(db, STOCK)
    # WH1 has 10 TEA: 12 is split with S01 by the plan (the one write wrote nothing)
    split = await place(db, cmd(("TEA", 12)))
    assert [(h.store_id, h.quantity) for h in split.lines[0].holds] == [
        (net.stores["WH1"], D(10)),
        (net.stores["S01"], D(2)),
    ]
    assert one_writes == [False]
    with pytest.raises(UnknownProduct):
        await place(db, cmd(("TEA", 1), ("NOPE", 1)))
    with pytest.raises(InvalidRequest, match="whole number"):
        await place(db, cmd(("MUG", "1.5")))
    async with db.uow() as uow:
        await uow.conn.execute(update(products).where(products.c.sku == "MUG").values(price=None))
        await uow.commit()
    with pytest.raises(InvalidRequest, match="no price"):
        await place(db, cmd(("MUG", 1)))
    async with db.uow() as uow:
        await uow.conn.execute(update(products).where(products.c.sku == "TEA").values(active=False))
        await uow.commit()
    with pytest.raises(UnknownProduct):
        await place(db, cmd(("TEA", 1)))
    with pytest.raises(InsufficientStock):
        await place(db, cmd(("SUGAR", "5.001")))
    # A total past what a bigint holds: the full path's own refusal, not the database's.
    with pytest.raises(InvalidRequest, match="total"):
        await place(db, cmd(("SUGAR", "1000000000", "100000000")))
    assert one_writes == [False] * 7
    # Nothing the refused attempts wrote is left: one order, its holds, its events.
    assert await dbstate.count(db, orders) == 1
    assert len(await dbstate.events(db, events.ORDER_CREATED)) == 1
    assert len(await dbstate.events(db, events.STOCK_CHANGED)) == 2 + 4  # split + seeding
    # The number of an order the one write refused is skipped, as after any rollback.
    first = await place(db, cmd(("SUGAR", 1), external_id="e1"))
    again = await place(db, cmd(("SUGAR", 1), external_id="e1"))
    assert again.id == first.id and one_writes[-2:] == [True, False]
    assert await dbstate.level(db, net, "SUGAR", "WH1") == (D(5), D(1))


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_sqlite_never_tries_the_one_write(
    db: Database, backend: str, one_writes: list[bool]
) -> None:
    await support.seed_network(db, STOCK)
    order = await place(db, cmd(("TEA", 2)))
    assert order.number and one_writes == []


@POSTGRES_ONLY
async def test_concurrent_one_writes_take_exactly_the_units_there_are(
    db: Database, backend: str, one_writes: list[bool]
) -> None:
    net = await support.seed_network(db, {"WH1": {"MUG": 7}, "S01": {"MUG": 4}})

    async def attempt(n: int) -> Order | None:
        try:
            return await place(db, cmd(("MUG", 1), ("#4", 1) if n % 3 == 0 else ("MUG", 1)))
        except InsufficientStock:
            return None

    placed = [o for o in await asyncio.gather(*(attempt(n) for n in range(12))) if o]
    # S01 keeps 1 unit of safety stock back from online orders: 7 + 3 units, 2 per order.
    assert len(placed) == 5
    assert await dbstate.level(db, net, "MUG", "WH1") == (D(7), D(7))
    assert await dbstate.level(db, net, "MUG", "S01") == (D(4), D(3))
    held = sum(h.quantity for o in placed for x in o.lines for h in x.holds)
    assert held == 10
    assert (await dbstate.drift(db))[1] == []
    assert True in one_writes and False in one_writes


@POSTGRES_ONLY
async def test_placement_connections_reach_an_order_by_its_key_even_when_orders_was_empty(
    db: Database, backend: str
) -> None:
    """Placement connections keep generic plans for the session, and so do PostgreSQL's
    foreign-key checks of the rows placement inserts. Planned while `orders` is empty and
    freshly vacuumed (a new installation, a table just pruned), the check of an order line
    against its order would scan the whole table for as long as the plan lives, however
    large the table grew."""
    await support.seed_network(db, STOCK)
    apg = await db.acquire_pg()
    try:
        await apg.execute("VACUUM ANALYZE orders")
        # The query PostgreSQL's RI trigger runs for order_lines.order_id (ri_triggers.c).
        await apg.execute(
            'PREPARE ri_check (text) AS SELECT 1 FROM ONLY "public"."orders" x '
            'WHERE "id" OPERATOR(pg_catalog.=) $1 FOR KEY SHARE OF x'
        )
        plan = await apg.fetchval("EXPLAIN (FORMAT JSON) EXECUTE ri_check('x')")
        await apg.execute("DEALLOCATE ri_check")
    finally:
        await (await db.pg_pool()).release(apg)
    scans = {node["Node Type"] for node in _plan_nodes(json.loads(plan)[0]["Plan"])}
    assert "Seq Scan" not in scans and scans & {"Index Scan", "Index Only Scan"}


def _plan_nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [node, *(n for child in node.get("Plans", []) for n in _plan_nodes(child))]
