"""Till sales and returns: stock moves at once, exactly once per POS transaction."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from ordersync.db.tables import order_lines, orders, pos_returned, pos_transactions
from ordersync.db.unit_of_work import Database
from ordersync.domain import events
from ordersync.domain.commands import (
    LineInput,
    PlaceOrder,
    ProductRef,
    RecordPosReturn,
    RecordPosSale,
)
from ordersync.domain.errors import Conflict, InsufficientStock, InvalidRequest
from ordersync.domain.orders import Order
from ordersync.domain.types import Channel, Fulfillment
from ordersync.services.orders import place_order
from ordersync.services.pos import record_pos_return, record_pos_sale
from tests import support
from tests.integration import dbstate

D = Decimal


def lines(*items: tuple[str, int | str]) -> tuple[LineInput, ...]:
    return tuple(LineInput(ProductRef(sku=sku), D(q)) for sku, q in items)


def sale(
    clock: support.Clock,
    store: str,
    transaction: str,
    *items: tuple[str, int | str],
    pos: str = "till-1",
    completed: bool = True,
) -> RecordPosSale:
    return RecordPosSale(store, pos, transaction, lines(*items), clock(), completed)


def refund(
    clock: support.Clock,
    store: str,
    transaction: str,
    original: str | None,
    *items: tuple[str, int | str],
    pos: str = "till-1",
    completed: bool = True,
) -> RecordPosReturn:
    return RecordPosReturn(store, pos, transaction, original, lines(*items), clock(), completed)


async def sell(db: Database, clock: support.Clock, cmd: RecordPosSale) -> dict[str, Any]:
    return await record_pos_sale(db.uow, cmd, support.context(clock))


async def give_back(db: Database, clock: support.Clock, cmd: RecordPosReturn) -> dict[str, Any]:
    return await record_pos_return(db.uow, cmd, support.context(clock))


# sales


async def test_a_sale_at_an_order_mode_store_becomes_a_completed_paid_offline_order(
    db: Database, clock: support.Clock
) -> None:
    net = await support.seed_network(db, {"S01": {"TEA": 5, "COFFEE": 2}})

    result = await sell(db, clock, sale(clock, "S01", "T1", ("TEA", 2), ("COFFEE", 1)))

    assert result["replayed"] is False and result["order_id"] is not None
    row = await dbstate.order_row(db, result["order_id"])
    assert (row.status, row.payment_status) == ("completed", "paid")
    assert (row.source, row.channel, row.fulfillment) == ("offline", "pos", "in_store")
    assert (row.pos_id, row.pos_transaction_id) == ("till-1", "T1")
    assert row.store_id == net.stores["S01"]
    assert row.total == D("450.50")
    assert row.paid_at is not None and row.completed_at is not None
    stored_lines = await dbstate.rows(
        db, order_lines, order_lines.c.order_id == row.id, order_by=order_lines.c.line_no
    )
    assert [(x.product_id, x.quantity) for x in stored_lines] == [
        (net.products["TEA"], D(2)),
        (net.products["COFFEE"], D(1)),
    ]
    # The goods are gone already: deducted, never held.
    assert await dbstate.level(db, net, "TEA", "S01") == (D(3), D(0))
    assert await dbstate.level(db, net, "COFFEE", "S01") == (D(1), D(0))
    assert await dbstate.holds_of(db, row.id) == []
    sold = await dbstate.movements(db, net, store="S01", reason="pos_sale")
    assert sorted((m.product_id, m.quantity) for m in sold) == sorted(
        [(net.products["TEA"], D(-2)), (net.products["COFFEE"], D(-1))]
    )
    assert {(m.document_type, m.document_id) for m in sold} == {("pos_sale", "till-1:T1")}
    created = await dbstate.events(db, events.ORDER_CREATED)
    assert [(e.aggregate_id, e.payload["source"]) for e in created] == [(row.id, "offline")]
    assert await dbstate.drift(db) == (2, [])


async def test_a_sale_at_a_stock_only_store_moves_stock_and_makes_no_order(
    db: Database, clock: support.Clock
) -> None:
    net = await support.seed_network(db, {"S02": {"TEA": 5}}, pos_stores=("S02",))

    result = await sell(db, clock, sale(clock, "S02", "T1", ("TEA", 2)))

    assert result["order_id"] is None and result["replayed"] is False
    assert await dbstate.count(db, orders) == 0
    assert await dbstate.events(db, events.ORDER_CREATED) == []
    assert await dbstate.level(db, net, "TEA", "S02") == (D(3), D(0))
    sold = await dbstate.movements(db, net, reason="pos_sale")
    assert [(m.store_id, m.quantity, m.document_id) for m in sold] == [
        (net.stores["S02"], D(-2), "till-1:T1")
    ]
    record = await dbstate.rows(db, pos_transactions)
    assert [(r.kind, r.store_id, r.order_id) for r in record] == [("sale", net.stores["S02"], None)]


async def test_a_sale_with_a_product_twice_deducts_its_total_once(
    db: Database, clock: support.Clock
) -> None:
    net = await support.seed_network(db, {"S02": {"TEA": 5}})

    await sell(db, clock, sale(clock, "S02", "T1", ("TEA", 1), ("TEA", 2)))

    sold = await dbstate.movements(db, net, reason="pos_sale")
    assert [m.quantity for m in sold] == [D(-3)]
    assert await dbstate.level(db, net, "TEA", "S02") == (D(2), D(0))


async def test_the_same_pos_transaction_again_returns_the_first_result_and_changes_nothing(
    db: Database, clock: support.Clock
) -> None:
    net = await support.seed_network(db, {"S01": {"TEA": 5}})
    cmd = sale(clock, "S01", "T1", ("TEA", 2))
    first = await sell(db, clock, cmd)
    after_first = await dbstate.snapshot(db)
    events_after_first = await dbstate.events(db)

    clock.advance(minutes=5)
    again = await sell(db, clock, cmd)

    assert again == {**first, "replayed": True}
    assert await dbstate.snapshot(db) == after_first
    assert await dbstate.events(db) == events_after_first
    assert await dbstate.level(db, net, "TEA", "S01") == (D(3), D(0))
    assert await dbstate.count(db, orders) == 1


async def test_the_same_transaction_id_with_other_lines_is_a_conflict(
    db: Database, clock: support.Clock
) -> None:
    net = await support.seed_network(db, {"S01": {"TEA": 5}})
    await sell(db, clock, sale(clock, "S01", "T1", ("TEA", 2)))
    before = await dbstate.snapshot(db)

    with pytest.raises(Conflict):
        await sell(db, clock, sale(clock, "S01", "T1", ("TEA", 3)))

    assert await dbstate.snapshot(db) == before
    assert await dbstate.level(db, net, "TEA", "S01") == (D(3), D(0))


async def test_the_same_transaction_id_from_another_till_is_another_sale(
    db: Database, clock: support.Clock
) -> None:
    net = await support.seed_network(db, {"S01": {"TEA": 5}})

    await sell(db, clock, sale(clock, "S01", "T1", ("TEA", 2), pos="till-1"))
    await sell(db, clock, sale(clock, "S01", "T1", ("TEA", 2), pos="till-2"))

    assert await dbstate.level(db, net, "TEA", "S01") == (D(1), D(0))
    assert await dbstate.count(db, orders) == 2


@pytest.mark.parametrize("store", ["S01", "S02"])
async def test_ten_concurrent_retries_of_one_sale_deduct_once(
    db: Database, clock: support.Clock, store: str
) -> None:
    net = await support.seed_network(db, {store: {"TEA": 5}})
    cmd = sale(clock, store, "T-retry", ("TEA", 2))

    results = await asyncio.gather(*(sell(db, clock, cmd) for _ in range(10)))

    assert [r["replayed"] for r in results].count(False) == 1
    assert len({r["order_id"] for r in results}) == 1
    assert await dbstate.level(db, net, "TEA", store) == (D(3), D(0))
    assert len(await dbstate.movements(db, net, reason="pos_sale")) == 1
    assert await dbstate.count(db, pos_transactions) == 1
    assert await dbstate.count(db, orders) == (1 if store == "S01" else 0)
    assert await dbstate.drift(db) == (1, [])


async def test_a_sale_asking_first_that_needs_units_held_for_an_online_order_is_refused(
    db: Database, clock: support.Clock
) -> None:
    net = await support.seed_network(db, {"S01": {"TEA": 5}})
    online = await place_order(
        db.placement_uow,
        PlaceOrder(Channel.ONLINE, Fulfillment.PICKUP, lines(("TEA", 4)), store_code="S01"),
        support.context(clock),
    )
    assert isinstance(online, Order)
    before = await dbstate.snapshot(db)
    events_before = await dbstate.events(db)

    with pytest.raises(InsufficientStock) as caught:
        await sell(db, clock, sale(clock, "S01", "T1", ("TEA", 2), completed=False))

    assert caught.value.details["lines"] == [
        {
            "product_id": net.products["TEA"],
            "requested": "2",
            "held_by": [{"order_id": online.id, "number": online.number, "quantity": "4"}],
        }
    ]
    assert await dbstate.snapshot(db) == before
    assert await dbstate.events(db) == events_before
    assert await dbstate.count(db, pos_transactions) == 0
    assert await dbstate.count(db, orders) == 1
    assert await dbstate.level(db, net, "TEA", "S01") == (D(5), D(4))

    # The one free unit can still be sold (a till ignores safety stock), and the
    # refused transaction id was not burnt.
    await sell(db, clock, sale(clock, "S01", "T2", ("TEA", 1), completed=False))
    assert await dbstate.level(db, net, "TEA", "S01") == (D(4), D(4))


async def test_a_sale_asking_first_with_one_short_line_writes_none_of_its_lines(
    db: Database, clock: support.Clock
) -> None:
    await support.seed_network(db, {"S01": {"TEA": 5, "COFFEE": 1}})
    before = await dbstate.snapshot(db)

    with pytest.raises(InsufficientStock):
        await sell(db, clock, sale(clock, "S01", "T1", ("TEA", 2), ("COFFEE", 2), completed=False))

    assert await dbstate.snapshot(db) == before


async def test_a_sale_of_a_fractional_piece_is_refused(db: Database, clock: support.Clock) -> None:
    await support.seed_network(db, {"S01": {"TEA": 5, "SUGAR": 5}})
    before = await dbstate.snapshot(db)

    with pytest.raises(InvalidRequest):
        await sell(db, clock, sale(clock, "S01", "T1", ("TEA", "1.5")))

    assert await dbstate.snapshot(db) == before
    await sell(db, clock, sale(clock, "S01", "T2", ("SUGAR", "1.25")))
    assert (await dbstate.snapshot(db))["pos_transactions"] == 1


# returns


async def test_a_return_puts_the_units_back_on_hand(db: Database, clock: support.Clock) -> None:
    net = await support.seed_network(db, {"S01": {"TEA": 5}})
    sold = await sell(db, clock, sale(clock, "S01", "T1", ("TEA", 3)))

    result = await give_back(db, clock, refund(clock, "S01", "R1", "T1", ("TEA", 2)))

    assert result["order_id"] == sold["order_id"] and result["replayed"] is False
    assert await dbstate.level(db, net, "TEA", "S01") == (D(4), D(0))
    returned = await dbstate.movements(db, net, reason="pos_return")
    assert [(m.store_id, m.quantity, m.document_type, m.document_id) for m in returned] == [
        (net.stores["S01"], D(2), "pos_return", "till-1:R1")
    ]
    record = await dbstate.rows(db, pos_transactions, pos_transactions.c.transaction_id == "R1")
    assert [(r.kind, r.original_transaction_id) for r in record] == [("return", "T1")]
    assert await dbstate.drift(db) == (1, [])


async def test_returns_asking_first_cannot_exceed_the_sold_quantity(
    db: Database, clock: support.Clock
) -> None:
    net = await support.seed_network(db, {"S01": {"TEA": 5}})
    await sell(db, clock, sale(clock, "S01", "T1", ("TEA", 3)))
    await give_back(db, clock, refund(clock, "S01", "R1", "T1", ("TEA", 2)))
    before = await dbstate.snapshot(db)

    with pytest.raises(InvalidRequest):
        await give_back(db, clock, refund(clock, "S01", "R2", "T1", ("TEA", 2), completed=False))

    assert await dbstate.snapshot(db) == before
    assert await dbstate.level(db, net, "TEA", "S01") == (D(4), D(0))

    await give_back(db, clock, refund(clock, "S01", "R3", "T1", ("TEA", 1)))
    assert await dbstate.level(db, net, "TEA", "S01") == (D(5), D(0))
    (row,) = await dbstate.rows(db, pos_returned)
    assert (row.sold, row.returned) == (D(3), D(3))

    with pytest.raises(InvalidRequest):
        await give_back(db, clock, refund(clock, "S01", "R4", "T1", ("TEA", 1), completed=False))
    assert await dbstate.level(db, net, "TEA", "S01") == (D(5), D(0))


async def test_a_single_return_asking_first_larger_than_the_sale_is_refused(
    db: Database, clock: support.Clock
) -> None:
    await support.seed_network(db, {"S01": {"TEA": 5}})
    await sell(db, clock, sale(clock, "S01", "T1", ("TEA", 2)))
    before = await dbstate.snapshot(db)

    with pytest.raises(InvalidRequest):
        await give_back(db, clock, refund(clock, "S01", "R1", "T1", ("TEA", 3), completed=False))

    assert await dbstate.snapshot(db) == before


async def test_a_return_asking_first_of_a_product_the_sale_did_not_sell_is_refused(
    db: Database, clock: support.Clock
) -> None:
    await support.seed_network(db, {"S01": {"TEA": 5, "COFFEE": 5}})
    await sell(db, clock, sale(clock, "S01", "T1", ("TEA", 2)))
    before = await dbstate.snapshot(db)

    with pytest.raises(InvalidRequest):
        await give_back(db, clock, refund(clock, "S01", "R1", "T1", ("COFFEE", 1), completed=False))

    assert await dbstate.snapshot(db) == before


async def test_a_return_asking_first_of_an_unknown_sale_is_an_invalid_request(
    db: Database, clock: support.Clock
) -> None:
    await support.seed_network(db, {"S01": {"TEA": 5}})
    await sell(db, clock, sale(clock, "S01", "T1", ("TEA", 2)))
    before = await dbstate.snapshot(db)

    with pytest.raises(InvalidRequest) as caught:
        await give_back(
            db, clock, refund(clock, "S01", "R1", "NO-SUCH-SALE", ("TEA", 1), completed=False)
        )
    assert caught.value.details["field"] == "original_transaction_id"
    # a return is no sale to return against
    await give_back(db, clock, refund(clock, "S01", "R1", "T1", ("TEA", 1)))
    after_return = await dbstate.snapshot(db)
    with pytest.raises(InvalidRequest):
        await give_back(db, clock, refund(clock, "S01", "R2", "R1", ("TEA", 1), completed=False))

    assert await dbstate.snapshot(db) == after_return
    assert after_return["pos_transactions"] == before["pos_transactions"] + 1


async def test_a_return_finds_its_sale_at_another_till_of_the_store(
    db: Database, clock: support.Clock
) -> None:
    net = await support.seed_network(db, {"S01": {"TEA": 5}})
    sold = await sell(db, clock, sale(clock, "S01", "T1", ("TEA", 2), pos="till-1"))

    result = await give_back(
        db, clock, refund(clock, "S01", "R1", "T1", ("TEA", 1), pos="till-9", completed=False)
    )

    assert (result["linked"], result["order_id"]) == (True, sold["order_id"])
    (row,) = await dbstate.rows(db, pos_returned)
    assert (row.pos_id, row.sold, row.returned) == ("till-1", D(2), D(1))
    assert await dbstate.level(db, net, "TEA", "S01") == (D(4), D(0))


async def test_a_return_asking_first_is_linked_only_to_a_sale_of_its_own_store(
    db: Database, clock: support.Clock
) -> None:
    net = await support.seed_network(db, {"S01": {"TEA": 5}, "S02": {"TEA": 5}})
    await sell(db, clock, sale(clock, "S01", "T1", ("TEA", 2)))
    before = await dbstate.snapshot(db)

    with pytest.raises(InvalidRequest):
        await give_back(db, clock, refund(clock, "S02", "R1", "T1", ("TEA", 1), completed=False))

    assert await dbstate.snapshot(db) == before
    assert await dbstate.level(db, net, "TEA", "S02") == (D(5), D(0))


async def test_the_same_return_twice_puts_the_units_back_once(
    db: Database, clock: support.Clock
) -> None:
    net = await support.seed_network(db, {"S01": {"TEA": 5}})
    await sell(db, clock, sale(clock, "S01", "T1", ("TEA", 3)))
    cmd = refund(clock, "S01", "R1", "T1", ("TEA", 1))

    first = await give_back(db, clock, cmd)
    results = await asyncio.gather(*(give_back(db, clock, cmd) for _ in range(5)))

    assert all(r == {**first, "replayed": True} for r in results)
    assert await dbstate.level(db, net, "TEA", "S01") == (D(3), D(0))
    assert len(await dbstate.movements(db, net, reason="pos_return")) == 1


async def test_till_sales_asking_first_and_online_orders_racing_for_one_shelf_never_oversell(
    db: Database, clock: support.Clock
) -> None:
    net = await support.seed_network(db, {"S01": {"TEA": 5}})
    online = PlaceOrder(Channel.ONLINE, Fulfillment.PICKUP, lines(("TEA", 1)), store_code="S01")

    results = await asyncio.gather(
        *(place_order(db.placement_uow, online, support.context(clock)) for _ in range(6)),
        *(
            sell(db, clock, sale(clock, "S01", f"T{i}", ("TEA", 1), completed=False))
            for i in range(6)
        ),
        return_exceptions=True,
    )

    unexpected = [
        r for r in results if isinstance(r, BaseException) and not isinstance(r, InsufficientStock)
    ]
    assert unexpected == []
    held = sum(1 for r in results[:6] if isinstance(r, Order))
    sold = sum(1 for r in results[6:] if isinstance(r, dict))
    on_hand, reserved = await dbstate.level(db, net, "TEA", "S01")
    assert held + sold == 5 and held <= 4  # online never takes the safety unit
    assert (on_hand, reserved) == (D(5 - sold), D(held))
    assert reserved <= on_hand
    assert await dbstate.count(db, pos_transactions) == sold
    assert await dbstate.drift(db) == (1, [])
