"""Stock documents: receipts, write-offs, inventory counts and transfers, on the ledger."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ordersync.db.unit_of_work import Database
from ordersync.domain import events
from ordersync.domain.commands import (
    LineInput,
    PlaceOrder,
    ProductRef,
    StockDocument,
    StockLine,
    Transfer,
)
from ordersync.domain.errors import InsufficientStock, InvalidRequest, UnknownProduct
from ordersync.domain.orders import Order
from ordersync.domain.types import Channel, Fulfillment, OrderStatus
from ordersync.services import stock
from ordersync.services.context import Context
from ordersync.services.orders import change_status, place_order
from tests import support
from tests.integration import dbstate

D = Decimal


def doc_lines(*items: tuple[str, int | str]) -> tuple[StockLine, ...]:
    return tuple(StockLine(ProductRef(sku=sku), D(q)) for sku, q in items)


def doc(store: str, document_id: str, *items: tuple[str, int | str]) -> StockDocument:
    return StockDocument(store, document_id, doc_lines(*items))


def transfer(src: str, dst: str, document_id: str, *items: tuple[str, int | str]) -> Transfer:
    return Transfer(src, dst, document_id, doc_lines(*items))


async def hold(db: Database, store: str, sku: str, qty: int) -> Order:
    """An online pickup order holding `qty` at `store`."""
    cmd = PlaceOrder(
        Channel.ONLINE,
        Fulfillment.PICKUP,
        (LineInput(ProductRef(sku=sku), D(qty)),),
        store_code=store,
    )
    order = await place_order(db.placement_uow, cmd, support.context())
    assert isinstance(order, Order)
    return order


async def hold_delivery(db: Database, sku: str, qty: int | str) -> Order:
    cmd = PlaceOrder(
        Channel.ONLINE, Fulfillment.DELIVERY, (LineInput(ProductRef(sku=sku), D(qty)),)
    )
    order = await place_order(db.placement_uow, cmd, support.context())
    assert isinstance(order, Order)
    return order


# receipts


async def test_a_receipt_creates_the_stock_level_a_movement_and_an_event(db: Database) -> None:
    net = await support.seed_network(db)

    result = await stock.receive(db.uow, doc("WH1", "RCPT-1", ("TEA", 7)), Context(), None)

    assert isinstance(result, dict) and result["document_type"] == "receipt"
    assert await dbstate.level(db, net, "TEA", "WH1") == (D(7), D(0))
    received = await dbstate.movements(db, net)
    assert [
        (m.product_id, m.store_id, m.quantity, m.reason, m.document_type, m.document_id)
        for m in received
    ] == [(net.products["TEA"], net.stores["WH1"], D(7), "receipt", "receipt", "RCPT-1")]
    changed = await dbstate.events(db, events.STOCK_CHANGED)
    assert [(e.aggregate_id, e.payload) for e in changed] == [
        (
            f"{net.products['TEA']}:{net.stores['WH1']}",
            {
                "product_id": net.products["TEA"],
                "store_id": net.stores["WH1"],
                "on_hand": "7",
                "reserved": "0",
                "available": "7",
                "reason": "receipt",
                "document_type": "receipt",
                "document_id": "RCPT-1",
            },
        )
    ]


async def test_a_second_receipt_adds_to_what_is_on_hand(db: Database) -> None:
    net = await support.seed_network(db, {"WH1": {"TEA": 3}})

    await stock.receive(db.uow, doc("WH1", "RCPT-2", ("TEA", 4), ("TEA", 1)), Context(), None)

    assert await dbstate.level(db, net, "TEA", "WH1") == (D(8), D(0))
    received = await dbstate.movements(db, net, reason="receipt")
    assert [(m.quantity, m.document_id) for m in received] == [
        (D(3), "SEED-WH1"),
        (D(5), "RCPT-2"),
    ]
    assert await dbstate.drift(db) == (1, [])


async def test_a_receipt_with_an_unknown_product_writes_nothing(db: Database) -> None:
    await support.seed_network(db, {"WH1": {"TEA": 3}})
    before = await dbstate.snapshot(db)

    with pytest.raises(UnknownProduct):
        await stock.receive(db.uow, doc("WH1", "RCPT-3", ("TEA", 1), ("NOPE", 1)), Context(), None)

    assert await dbstate.snapshot(db) == before


# write-offs


async def test_a_write_off_takes_free_units_off_hand(db: Database) -> None:
    net = await support.seed_network(db, {"S01": {"TEA": 5}})

    await stock.write_off(db.uow, doc("S01", "WO-1", ("TEA", 2)), Context(), None)

    assert await dbstate.level(db, net, "TEA", "S01") == (D(3), D(0))
    written_off = await dbstate.movements(db, net, reason="write_off")
    assert [(m.quantity, m.document_type, m.document_id) for m in written_off] == [
        (D(-2), "write_off", "WO-1")
    ]


async def test_a_write_off_cannot_take_held_units(db: Database) -> None:
    net = await support.seed_network(db, {"S01": {"TEA": 5}})
    await hold(db, "S01", "TEA", 3)
    before = await dbstate.snapshot(db)

    with pytest.raises(InsufficientStock):
        await stock.write_off(db.uow, doc("S01", "WO-1", ("TEA", 3)), Context(), None)

    assert await dbstate.snapshot(db) == before
    assert await dbstate.level(db, net, "TEA", "S01") == (D(5), D(3))
    assert await dbstate.movements(db, net, reason="write_off") == []

    # The two free units can go (safety stock protects only from remote orders).
    await stock.write_off(db.uow, doc("S01", "WO-2", ("TEA", 2)), Context(), None)
    assert await dbstate.level(db, net, "TEA", "S01") == (D(3), D(3))


async def test_a_write_off_beyond_what_is_on_hand_is_insufficient_stock(db: Database) -> None:
    await support.seed_network(db, {"S01": {"TEA": 1}})
    before = await dbstate.snapshot(db)

    with pytest.raises(InsufficientStock):
        await stock.write_off(db.uow, doc("S01", "WO-1", ("TEA", 2)), Context(), None)

    assert await dbstate.snapshot(db) == before


async def test_a_write_off_with_one_short_line_writes_none_of_its_lines(db: Database) -> None:
    net = await support.seed_network(db, {"S01": {"TEA": 5, "MUG": 2}})
    await hold(db, "S01", "MUG", 1)
    before = await dbstate.snapshot(db)

    with pytest.raises(InsufficientStock):
        await stock.write_off(db.uow, doc("S01", "WO-1", ("TEA", 1), ("MUG", 2)), Context(), None)

    assert await dbstate.snapshot(db) == before
    assert await dbstate.level(db, net, "TEA", "S01") == (D(5), D(0))


async def test_a_write_off_of_a_product_never_stocked_is_insufficient_stock(
    db: Database,
) -> None:
    await support.seed_network(db, {"S01": {"TEA": 5}})
    before = await dbstate.snapshot(db)

    with pytest.raises(InsufficientStock):
        await stock.write_off(db.uow, doc("S01", "WO-1", ("MUG", 1)), Context(), None)

    assert await dbstate.snapshot(db) == before


# counts


async def test_a_count_sets_on_hand_and_records_the_difference(db: Database) -> None:
    net = await support.seed_network(db, {"S01": {"TEA": 5, "COFFEE": 2}})

    result = await stock.count(
        db.uow, doc("S01", "INV-1", ("TEA", 3), ("COFFEE", 6)), Context(), None
    )

    assert await dbstate.level(db, net, "TEA", "S01") == (D(3), D(0))
    assert await dbstate.level(db, net, "COFFEE", "S01") == (D(6), D(0))
    counted = await dbstate.movements(db, net, reason="count")
    assert sorted((m.product_id, m.quantity, m.document_type, m.document_id) for m in counted) == (
        sorted(
            [
                (net.products["TEA"], D(-2), "count", "INV-1"),
                (net.products["COFFEE"], D(4), "count", "INV-1"),
            ]
        )
    )
    assert isinstance(result, dict)
    assert {x["product_id"]: x["difference"] for x in result["levels"]} == {
        net.products["TEA"]: "-2",
        net.products["COFFEE"]: "4",
    }
    assert await dbstate.drift(db) == (2, [])


async def test_a_count_of_a_product_never_stocked_creates_its_level(db: Database) -> None:
    net = await support.seed_network(db)

    await stock.count(db.uow, doc("S02", "INV-1", ("MUG", 4)), Context(), None)

    assert await dbstate.level(db, net, "MUG", "S02") == (D(4), D(0))
    assert [m.quantity for m in await dbstate.movements(db, net, reason="count")] == [D(4)]
    assert await dbstate.drift(db) == (1, [])


async def test_a_count_that_matches_the_books_records_no_movement(db: Database) -> None:
    net = await support.seed_network(db, {"S01": {"TEA": 5}})

    await stock.count(db.uow, doc("S01", "INV-1", ("TEA", 5)), Context(), None)

    assert await dbstate.level(db, net, "TEA", "S01") == (D(5), D(0))
    assert await dbstate.movements(db, net, reason="count") == []


async def test_a_count_to_zero_empties_the_shelf(db: Database) -> None:
    net = await support.seed_network(db, {"S01": {"TEA": 5}})

    await stock.count(db.uow, doc("S01", "INV-1", ("TEA", 0)), Context(), None)

    assert await dbstate.level(db, net, "TEA", "S01") == (D(0), D(0))
    assert [m.quantity for m in await dbstate.movements(db, net, reason="count")] == [D(-5)]


async def test_a_count_keeps_what_is_held(db: Database) -> None:
    net = await support.seed_network(db, {"S01": {"TEA": 5}})
    await hold(db, "S01", "TEA", 2)

    await stock.count(db.uow, doc("S01", "INV-1", ("TEA", 4)), Context(), None)

    assert await dbstate.level(db, net, "TEA", "S01") == (D(4), D(2))
    assert await dbstate.drift(db) == (1, [])


async def test_a_negative_count_is_refused(db: Database) -> None:
    await support.seed_network(db, {"S01": {"TEA": 5}})
    before = await dbstate.snapshot(db)

    with pytest.raises(InvalidRequest):
        await stock.count(db.uow, doc("S01", "INV-1", ("TEA", -1)), Context(), None)

    assert await dbstate.snapshot(db) == before


# transfers


async def test_a_transfer_moves_free_units_between_stores(db: Database) -> None:
    net = await support.seed_network(db, {"WH1": {"TEA": 10}})

    await stock.transfer(db.uow, transfer("WH1", "S02", "TR-1", ("TEA", 4)), Context(), None)

    assert await dbstate.level(db, net, "TEA", "WH1") == (D(6), D(0))
    assert await dbstate.level(db, net, "TEA", "S02") == (D(4), D(0))
    moved = [m for m in await dbstate.movements(db, net) if m.reason.startswith("transfer")]
    assert sorted((m.store_id, m.quantity, m.reason) for m in moved) == sorted(
        [
            (net.stores["WH1"], D(-4), "transfer_out"),
            (net.stores["S02"], D(4), "transfer_in"),
        ]
    )
    assert {(m.document_type, m.document_id) for m in moved} == {("transfer", "TR-1")}
    assert await dbstate.drift(db) == (2, [])


async def test_a_transfer_cannot_move_held_units(db: Database) -> None:
    net = await support.seed_network(db, {"WH1": {"TEA": 5}})
    await hold_delivery(db, "TEA", 4)
    before = await dbstate.snapshot(db)

    with pytest.raises(InsufficientStock):
        await stock.transfer(db.uow, transfer("WH1", "S02", "TR-1", ("TEA", 2)), Context(), None)

    assert await dbstate.snapshot(db) == before
    assert await dbstate.level(db, net, "TEA", "WH1") == (D(5), D(4))
    assert await dbstate.level(db, net, "TEA", "S02") == (D(0), D(0))


async def test_a_transfer_of_more_than_is_on_hand_writes_nothing(db: Database) -> None:
    await support.seed_network(db, {"WH1": {"TEA": 1}})
    before = await dbstate.snapshot(db)

    with pytest.raises(InsufficientStock):
        await stock.transfer(db.uow, transfer("WH1", "S02", "TR-1", ("TEA", 2)), Context(), None)

    assert await dbstate.snapshot(db) == before


async def test_a_transfer_to_the_same_store_is_refused(db: Database) -> None:
    await support.seed_network(db, {"WH1": {"TEA": 5}})
    before = await dbstate.snapshot(db)

    with pytest.raises(InvalidRequest):
        await stock.transfer(db.uow, transfer("WH1", "WH1", "TR-1", ("TEA", 1)), Context(), None)

    assert await dbstate.snapshot(db) == before


async def test_transferred_units_can_be_held_at_their_new_store(db: Database) -> None:
    net = await support.seed_network(db, {"WH1": {"TEA": 10}})
    await stock.transfer(db.uow, transfer("WH1", "S02", "TR-1", ("TEA", 3)), Context(), None)

    order = await hold(db, "S02", "TEA", 3)

    assert await dbstate.level(db, net, "TEA", "S02") == (D(3), D(3))
    await change_status(db.uow, order.id, OrderStatus.SHIPPED, support.context())
    assert await dbstate.level(db, net, "TEA", "S02") == (D(0), D(0))
    assert await dbstate.drift(db) == (2, [])


# fractional quantities


async def test_fractional_kilograms_work_through_every_document(db: Database) -> None:
    net = await support.seed_network(db)

    await stock.receive(db.uow, doc("WH1", "R-1", ("SUGAR", "12.5")), Context(), None)
    await stock.write_off(db.uow, doc("WH1", "WO-1", ("SUGAR", "0.125")), Context(), None)
    await stock.transfer(
        db.uow, transfer("WH1", "S01", "TR-1", ("SUGAR", "2.375")), Context(), None
    )
    await stock.count(db.uow, doc("S01", "INV-1", ("SUGAR", "2.001")), Context(), None)
    order = await hold_delivery(db, "SUGAR", "10.75")

    assert await dbstate.level(db, net, "SUGAR", "WH1") == (D("10"), D("10"))
    assert await dbstate.level(db, net, "SUGAR", "S01") == (D("2.001"), D("0.75"))
    counted = await dbstate.movements(db, net, reason="count")
    assert [m.quantity for m in counted] == [D("-0.374")]
    held = await dbstate.holds_of(db, order.id)
    assert sorted(h.quantity for h in held) == [D("0.75"), D("10")]
    last = (await dbstate.events(db, events.STOCK_CHANGED))[-1].payload
    assert (last["on_hand"], last["reserved"], last["available"]) in {
        ("2.001", "0.75", "1.251"),
        ("10", "10", "0"),
    }
    assert await dbstate.drift(db) == (2, [])


@pytest.mark.parametrize("qty", ["1.5", "0.001"])
async def test_fractional_pieces_are_refused_by_every_document(db: Database, qty: str) -> None:
    await support.seed_network(db, {"WH1": {"TEA": 5}})
    before = await dbstate.snapshot(db)

    with pytest.raises(InvalidRequest):
        await stock.receive(db.uow, doc("WH1", "R-1", ("TEA", qty)), Context(), None)
    with pytest.raises(InvalidRequest):
        await stock.write_off(db.uow, doc("WH1", "WO-1", ("TEA", qty)), Context(), None)
    with pytest.raises(InvalidRequest):
        await stock.count(db.uow, doc("WH1", "INV-1", ("TEA", qty)), Context(), None)
    with pytest.raises(InvalidRequest):
        await stock.transfer(db.uow, transfer("WH1", "S01", "TR-1", ("TEA", qty)), Context(), None)
    with pytest.raises(InvalidRequest):
        await hold_delivery(db, "TEA", qty)

    assert await dbstate.snapshot(db) == before


async def test_more_than_three_decimals_of_a_kilogram_are_refused(db: Database) -> None:
    await support.seed_network(db, {"WH1": {"SUGAR": 5}})
    before = await dbstate.snapshot(db)

    with pytest.raises(InvalidRequest):
        await stock.receive(db.uow, doc("WH1", "R-1", ("SUGAR", "0.0005")), Context(), None)
    with pytest.raises(InvalidRequest):
        await hold_delivery(db, "SUGAR", "1.0001")

    assert await dbstate.snapshot(db) == before
