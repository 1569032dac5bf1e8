"""The conditional stock updates of the unit of work (the port the use cases rely on): each
either changes the row and records it, or changes nothing and answers None."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from ordersync.db.unit_of_work import Database
from ordersync.domain.types import HoldReason, MovementReason
from ordersync.services.ports import StockChange
from tests import support
from tests.integration import dbstate

D = Decimal


def change(net: support.Network, sku: str, store: str, qty: str | int, reason: str) -> StockChange:
    now = datetime.now(UTC)
    return StockChange(
        net.products[sku], net.stores[store], D(qty), reason, "test", "DOC-1", now, now
    )


async def test_hold_stock_takes_units_that_are_free_beyond_the_safety_stock(
    db: Database,
) -> None:
    net = await support.seed_network(db, {"S01": {"TEA": 5}})

    async with db.uow() as uow:
        row = await uow.hold_stock(change(net, "TEA", "S01", 4, HoldReason.HOLD), D(1))
        await uow.commit()

    assert row is not None and (row.on_hand, row.reserved) == (D(5), D(4))
    assert await dbstate.level(db, net, "TEA", "S01") == (D(5), D(4))


async def test_hold_stock_refuses_the_safety_stock(db: Database) -> None:
    net = await support.seed_network(db, {"S01": {"TEA": 5}})
    before = await dbstate.snapshot(db)

    async with db.uow() as uow:
        row = await uow.hold_stock(change(net, "TEA", "S01", 5, HoldReason.HOLD), D(1))
        await uow.commit()

    assert row is None
    assert await dbstate.snapshot(db) == before


async def test_hold_stock_refuses_more_than_is_free(db: Database) -> None:
    net = await support.seed_network(db, {"WH1": {"TEA": 5}})
    before = await dbstate.snapshot(db)

    async with db.uow() as uow:
        row = await uow.hold_stock(change(net, "TEA", "WH1", 6, HoldReason.HOLD), D(0))
        await uow.commit()

    assert row is None
    assert await dbstate.snapshot(db) == before


async def test_hold_stock_refuses_fractions_beyond_what_is_free(db: Database) -> None:
    net = await support.seed_network(db, {"WH1": {"SUGAR": "1.5"}})
    before = await dbstate.snapshot(db)

    async with db.uow() as uow:
        row = await uow.hold_stock(change(net, "SUGAR", "WH1", "1.501", HoldReason.HOLD), D(0))
        await uow.commit()

    assert row is None
    assert await dbstate.snapshot(db) == before


async def test_deduct_stock_refuses_units_that_are_held(db: Database) -> None:
    net = await support.seed_network(db, {"WH1": {"TEA": 5}})
    async with db.uow() as uow:
        assert await uow.hold_stock(change(net, "TEA", "WH1", 4, HoldReason.HOLD), D(0))
        await uow.commit()
    before = await dbstate.snapshot(db)

    async with db.uow() as uow:
        row = await uow.deduct_stock(change(net, "TEA", "WH1", 2, MovementReason.WRITE_OFF))
        await uow.commit()

    assert row is None
    assert await dbstate.snapshot(db) == before


async def test_deduct_stock_takes_free_units_and_records_a_movement(db: Database) -> None:
    net = await support.seed_network(db, {"WH1": {"TEA": 5}})

    async with db.uow() as uow:
        row = await uow.deduct_stock(change(net, "TEA", "WH1", 5, MovementReason.WRITE_OFF))
        await uow.commit()

    assert row is not None and (row.on_hand, row.reserved) == (D(0), D(0))
    assert await dbstate.level(db, net, "TEA", "WH1") == (D(0), D(0))
    assert [m.quantity for m in await dbstate.movements(db, net, reason="write_off")] == [D(-5)]


async def test_release_and_consume_refuse_more_than_is_reserved(db: Database) -> None:
    net = await support.seed_network(db, {"WH1": {"TEA": 5}})
    async with db.uow() as uow:
        assert await uow.hold_stock(change(net, "TEA", "WH1", 2, HoldReason.HOLD), D(0))
        await uow.commit()
    before = await dbstate.snapshot(db)

    async with db.uow() as uow:
        released = await uow.release_hold(change(net, "TEA", "WH1", 3, HoldReason.RELEASE))
        consumed = await uow.consume_hold(change(net, "TEA", "WH1", 3, MovementReason.SHIPMENT))
        await uow.commit()

    assert (released, consumed) == (None, None)
    assert await dbstate.snapshot(db) == before
