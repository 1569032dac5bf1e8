"""Every change leaves an outbox event in its own transaction, and the stored stock figures
always equal the sums of their history (movements for on_hand, active holds for reserved)."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from sqlalchemy import text

from ordersync.db.tables import orders
from ordersync.db.unit_of_work import Database
from ordersync.domain import events
from ordersync.domain.commands import (
    LineInput,
    PlaceOrder,
    ProductRef,
    RecordPosReturn,
    RecordPosSale,
    StockDocument,
    StockLine,
    Transfer,
)
from ordersync.domain.orders import Order
from ordersync.domain.types import Channel, Fulfillment, OrderStatus
from ordersync.services import stock
from ordersync.services.orders import (
    change_status,
    expire_unpaid_holds,
    pay_order,
    place_order,
)
from ordersync.services.pos import record_pos_return, record_pos_sale
from tests import support
from tests.integration import dbstate

D = Decimal


def figures(payload: dict[str, Any]) -> tuple[str, str, str]:
    return payload["on_hand"], payload["reserved"], payload["available"]


async def place(db: Database, *items: tuple[str, int | str], **kw: Any) -> Order:
    cmd = PlaceOrder(
        kw.pop("channel", Channel.ONLINE),
        kw.pop("fulfillment", Fulfillment.DELIVERY),
        tuple(LineInput(ProductRef(sku=s), D(q)) for s, q in items),
        **kw,
    )
    order = await place_order(db.placement_uow, cmd, support.context())
    assert isinstance(order, Order)
    return order


def doc(store: str, document_id: str, *items: tuple[str, int | str]) -> StockDocument:
    return StockDocument(
        store, document_id, tuple(StockLine(ProductRef(sku=s), D(q)) for s, q in items)
    )


async def mixed_workload(db: Database, clock: support.Clock) -> None:
    """Receipts, orders in every state, POS sales and a return, a write-off, a count and a
    transfer, with kilograms among the pieces."""
    ctx = support.context(clock)
    await stock.receive(db.uow, doc("S01", "R-2", ("TEA", 3), ("SUGAR", "4.5")), ctx, None)
    shipped = await place(db, ("TEA", 6), ("SUGAR", "1.25"))
    await pay_order(db.uow, shipped.id, ctx)
    await change_status(db.uow, shipped.id, OrderStatus.SHIPPED, ctx)
    cancelled = await place(db, ("COFFEE", 2))
    await change_status(db.uow, cancelled.id, OrderStatus.CANCELLED, ctx)
    completed = await place(db, ("MUG", 1), fulfillment=Fulfillment.PICKUP, store_code="S01")
    await change_status(db.uow, completed.id, OrderStatus.COMPLETED, ctx)
    await place(db, ("TEA", 2), ("COFFEE", 1))  # stays placed, holding
    expiring = await place(db, ("SUGAR", "0.5"))
    clock.advance(minutes=31)
    await expire_unpaid_holds(db.uow, support.context(clock))
    until = (LineInput(ProductRef(sku="TEA"), D(1)), LineInput(ProductRef(sku="SUGAR"), D("0.3")))
    await record_pos_sale(db.uow, RecordPosSale("S01", "till-1", "T1", until, clock()), ctx)
    await record_pos_sale(db.uow, RecordPosSale("S02", "till-2", "T1", until[:1], clock()), ctx)
    await record_pos_return(
        db.uow,
        RecordPosReturn("S01", "till-1", "R1", "T1", until[1:], clock()),
        ctx,
    )
    await stock.write_off(db.uow, doc("WH1", "WO-1", ("COFFEE", 1)), ctx, None)
    await stock.count(db.uow, doc("S02", "INV-1", ("TEA", 7), ("MUG", 2)), ctx, None)
    await stock.transfer(
        db.uow,
        Transfer("WH1", "S02", "TR-1", (StockLine(ProductRef(sku="SUGAR"), D("0.75")),)),
        ctx,
        None,
    )
    assert (await dbstate.order_row(db, expiring.id)).status == "expired"


SEED = {
    "WH1": {"TEA": 5, "COFFEE": 5, "SUGAR": "2.5"},
    "S01": {"TEA": 4, "MUG": 3},
    "S02": {"TEA": 4},
}


# outbox


async def test_placing_an_order_writes_order_created_and_the_new_stock_figures(
    db: Database,
) -> None:
    net = await support.seed_network(db, {"WH1": {"TEA": 2}, "S01": {"TEA": 5}})
    seeded = len(await dbstate.events(db))

    order = await place(db, ("TEA", 4))

    new = (await dbstate.events(db))[seeded:]
    assert sorted(e.type for e in new) == sorted(
        [events.ORDER_CREATED, events.STOCK_CHANGED, events.STOCK_CHANGED]
    )
    created = next(e for e in new if e.type == events.ORDER_CREATED)
    assert (created.aggregate_type, created.aggregate_id) == ("order", order.id)
    assert created.payload["status"] == "placed" and created.payload["total"] == "400"
    assert [(x["product_id"], x["quantity"]) for x in created.payload["lines"]] == [
        (net.products["TEA"], "4")
    ]
    stock_events = {e.aggregate_id: e.payload for e in new if e.type == events.STOCK_CHANGED}
    tea = net.products["TEA"]
    assert stock_events == {
        f"{tea}:{net.stores['WH1']}": {
            "product_id": tea,
            "store_id": net.stores["WH1"],
            "on_hand": "2",
            "reserved": "2",
            "available": "0",
            "reason": "hold",
            "document_type": "order",
            "document_id": order.id,
        },
        f"{tea}:{net.stores['S01']}": {
            "product_id": tea,
            "store_id": net.stores["S01"],
            "on_hand": "5",
            "reserved": "2",
            "available": "3",
            "reason": "hold",
            "document_type": "order",
            "document_id": order.id,
        },
    }


async def test_cancelling_writes_the_status_change_and_the_released_figures(
    db: Database,
) -> None:
    net = await support.seed_network(db, {"WH1": {"TEA": 5}})
    order = await place(db, ("TEA", 3))
    seeded = len(await dbstate.events(db))

    await change_status(db.uow, order.id, OrderStatus.CANCELLED, support.context())

    new = (await dbstate.events(db))[seeded:]
    assert [e.type for e in new] == [events.STOCK_CHANGED, events.ORDER_STATUS_CHANGED]
    assert new[0].aggregate_id == f"{net.products['TEA']}:{net.stores['WH1']}"
    assert figures(new[0].payload) == ("5", "0", "5")
    assert (new[0].payload["reason"], new[0].payload["document_id"]) == ("release", order.id)
    assert new[1].payload == {
        "order_id": order.id,
        "from": "placed",
        "to": "cancelled",
        "reason": "api",
    }


async def test_shipping_writes_the_status_change_and_the_shipped_figures(db: Database) -> None:
    await support.seed_network(db, {"WH1": {"TEA": 5}})
    order = await place(db, ("TEA", 3))
    seeded = len(await dbstate.events(db))

    await change_status(db.uow, order.id, OrderStatus.SHIPPED, support.context())

    new = (await dbstate.events(db))[seeded:]
    assert [e.type for e in new] == [events.STOCK_CHANGED, events.ORDER_STATUS_CHANGED]
    assert figures(new[0].payload) == ("2", "0", "2")
    assert new[0].payload["reason"] == "shipment"
    assert (new[1].payload["from"], new[1].payload["to"]) == ("placed", "shipped")


async def test_every_stock_document_writes_one_stock_changed_event_per_row(
    db: Database, clock: support.Clock
) -> None:
    net = await support.seed_network(db, {"WH1": {"TEA": 5}, "S01": {"TEA": 5}})
    ctx = support.context(clock)
    expected: list[tuple[str, str, tuple[str, str, str]]] = []

    async def check(*rows: tuple[str, str, tuple[str, str, str]]) -> None:
        expected.extend(rows)
        got = [
            (e.payload["reason"], e.payload["store_id"], figures(e.payload))
            for e in await dbstate.events(db, events.STOCK_CHANGED)
        ][2:]  # after the two seed receipts
        assert got == [(r, net.stores[s], n) for r, s, n in expected]

    await stock.receive(db.uow, doc("WH1", "R-1", ("TEA", 2)), ctx, None)
    await check(("receipt", "WH1", ("7", "0", "7")))
    await stock.write_off(db.uow, doc("WH1", "WO-1", ("TEA", 1)), ctx, None)
    await check(("write_off", "WH1", ("6", "0", "6")))
    await stock.count(db.uow, doc("S01", "INV-1", ("TEA", 4)), ctx, None)
    await check(("count", "S01", ("4", "0", "4")))
    tea = (StockLine(ProductRef(sku="TEA"), D(2)),)
    await stock.transfer(db.uow, Transfer("WH1", "S01", "TR-1", tea), ctx, None)
    await check(("transfer_out", "WH1", ("4", "0", "4")), ("transfer_in", "S01", ("6", "0", "6")))
    line = (LineInput(ProductRef(sku="TEA"), D(1)),)
    await record_pos_sale(db.uow, RecordPosSale("S01", "till-1", "T1", line, clock()), ctx)
    await check(("pos_sale", "S01", ("5", "0", "5")))
    await record_pos_return(
        db.uow, RecordPosReturn("S01", "till-1", "R1", "T1", line, clock()), ctx
    )
    await check(("pos_return", "S01", ("6", "0", "6")))


async def test_a_till_sale_in_order_mode_writes_order_created_for_the_offline_order(
    db: Database, clock: support.Clock
) -> None:
    await support.seed_network(db, {"S01": {"TEA": 5}})
    line = (LineInput(ProductRef(sku="TEA"), D(2)),)

    result = await record_pos_sale(
        db.uow, RecordPosSale("S01", "till-1", "T1", line, clock()), support.context(clock)
    )

    (created,) = await dbstate.events(db, events.ORDER_CREATED)
    assert created.aggregate_id == result["order_id"]
    assert (created.payload["status"], created.payload["payment_status"]) == (
        "completed",
        "paid",
    )
    assert (created.payload["source"], created.payload["pos_transaction_id"]) == (
        "offline",
        "T1",
    )


async def test_the_latest_event_of_every_stock_row_shows_its_stored_figures(
    db: Database, clock: support.Clock
) -> None:
    net = await support.seed_network(db, SEED)
    await mixed_workload(db, clock)

    latest: dict[str, dict[str, Any]] = {}
    per_row: dict[str, int] = defaultdict(int)
    for e in await dbstate.events(db, events.STOCK_CHANGED):
        assert e.aggregate_type == "stock"
        assert e.aggregate_id == f"{e.payload['product_id']}:{e.payload['store_id']}"
        latest[e.aggregate_id] = e.payload
        per_row[e.aggregate_id] += 1
    levels = await dbstate.stock(db, net)
    assert len(latest) == len(levels)
    for (sku, store), (on_hand, reserved) in levels.items():
        payload = latest[f"{net.products[sku]}:{net.stores[store]}"]
        assert (D(payload["on_hand"]), D(payload["reserved"])) == (on_hand, reserved)
        assert D(payload["available"]) == on_hand - reserved


async def test_every_order_has_one_created_event_and_one_per_status_change(
    db: Database, clock: support.Clock
) -> None:
    await support.seed_network(db, SEED)
    await mixed_workload(db, clock)

    created = [e.aggregate_id for e in await dbstate.events(db, events.ORDER_CREATED)]
    order_rows = await dbstate.rows(db, orders, order_by=orders.c.id)
    assert sorted(created) == sorted(r.id for r in order_rows)
    changes: dict[str, list[str]] = defaultdict(list)
    for e in await dbstate.events(db, events.ORDER_STATUS_CHANGED):
        changes[e.aggregate_id].append(e.payload["to"])
    for row in order_rows:
        path = changes.get(row.id, [])
        initial = "completed" if row.source == "offline" else "placed"
        assert (path[-1] if path else initial) == row.status


# ledger


async def test_the_ledger_reports_no_drift_after_a_mixed_workload(
    db: Database, clock: support.Clock
) -> None:
    net = await support.seed_network(db, SEED)
    await mixed_workload(db, clock)

    checked, found = await dbstate.drift(db)

    assert found == []
    assert checked == len(await dbstate.stock(db, net))
    assert checked >= 8


async def test_the_ledger_reports_a_level_whose_product_or_store_does_not_exist(
    db: Database,
) -> None:
    """Stock levels carry no foreign keys (a 1C import writes a million of them), so the check
    is where a level of a missing product or store shows."""
    net = await support.seed_network(db, SEED)
    await _tamper(
        db,
        "INSERT INTO stock_levels (product_id, store_id, on_hand, reserved, updated_at) "
        "VALUES (:p, :s, 0, 0, CURRENT_TIMESTAMP), (:missing, :s, 0, 0, CURRENT_TIMESTAMP)",
        p=net.products["TEA"],
        s=999_999,
        missing=888_888,
    )

    _, found = await dbstate.drift(db)

    assert sorted((d.sku, d.store) for d in found) == [
        ("(missing product #888888)", "(missing store #999999)"),
        ("TEA", "(missing store #999999)"),
    ]


async def _tamper(db: Database, sql: str, **params: Any) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(text(sql), params)


async def test_the_ledger_reports_a_stock_level_changed_behind_its_back(
    db: Database, clock: support.Clock
) -> None:
    net = await support.seed_network(db, SEED)
    await mixed_workload(db, clock)
    on_hand, _ = await dbstate.level(db, net, "TEA", "WH1")

    await _tamper(
        db,
        "UPDATE stock_levels SET on_hand = on_hand + 1000 WHERE product_id = :p AND store_id = :s",
        p=net.products["TEA"],
        s=net.stores["WH1"],
    )

    checked, found = await dbstate.drift(db)
    assert checked >= 8
    assert [(x.sku, x.store) for x in found] == [("TEA", "WH1")]
    assert found[0].on_hand == on_hand + 1
    assert found[0].movements == on_hand
    assert (found[0].on_hand_drift, found[0].reserved_drift) == (D(1), D(0))


async def test_the_ledger_reports_a_reserved_figure_that_no_hold_explains(
    db: Database,
) -> None:
    net = await support.seed_network(db, {"WH1": {"SUGAR": "2.5"}})
    await place(db, ("SUGAR", "1.25"))

    await _tamper(
        db,
        "UPDATE stock_levels SET reserved = reserved + 250 WHERE product_id = :p",
        p=net.products["SUGAR"],
    )

    _, found = await dbstate.drift(db)
    assert [(x.sku, x.store, x.reserved, x.active_holds) for x in found] == [
        ("SUGAR", "WH1", D("1.5"), D("1.25"))
    ]
    assert found[0].reserved_drift == D("0.25") and found[0].on_hand_drift == 0


async def test_the_ledger_reports_movements_whose_stock_level_is_gone(db: Database) -> None:
    net = await support.seed_network(db, {"WH1": {"TEA": 3}, "S01": {"TEA": 4}})

    await _tamper(
        db,
        "DELETE FROM stock_levels WHERE product_id = :p AND store_id = :s",
        p=net.products["TEA"],
        s=net.stores["S01"],
    )

    checked, found = await dbstate.drift(db)
    assert checked == 1
    assert [(x.sku, x.store, x.on_hand, x.movements) for x in found] == [("TEA", "S01", D(0), D(4))]
