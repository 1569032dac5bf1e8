"""Idempotency-Key handling of the write use cases: the second request with the same key and
body gets the stored response and changes nothing; another body under the key is refused."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from ordersync.api import render
from ordersync.db.tables import idempotency_keys, orders
from ordersync.db.unit_of_work import Database
from ordersync.domain.commands import (
    LineInput,
    PlaceOrder,
    ProductRef,
    StockDocument,
    StockLine,
    Transfer,
)
from ordersync.domain.errors import IdempotencyKeyReused, InsufficientStock
from ordersync.domain.orders import Order
from ordersync.domain.types import Channel, Fulfillment, OrderStatus
from ordersync.services import stock
from ordersync.services.context import Context
from ordersync.services.idempotency import Idempotency
from ordersync.services.orders import change_status, pay_order, place_order
from ordersync.services.ports import StoredResponse
from tests import support
from tests.integration import dbstate

D = Decimal


def order_key(key: str, request_hash: str = "hash-1", principal: str = "shop") -> Idempotency[Any]:
    return Idempotency(
        principal, key, request_hash, lambda o: StoredResponse(201, render.order(o, {}))
    )


def result_key(key: str, request_hash: str = "hash-1", principal: str = "1c") -> Idempotency[Any]:
    return Idempotency(principal, key, request_hash, lambda r: StoredResponse(200, r))


def tea(qty: int | str, **kw: Any) -> PlaceOrder:
    return PlaceOrder(
        Channel.ONLINE, Fulfillment.DELIVERY, (LineInput(ProductRef(sku="TEA"), D(qty)),), **kw
    )


def receipt(document_id: str, qty: int) -> StockDocument:
    return StockDocument("WH1", document_id, (StockLine(ProductRef(sku="TEA"), D(qty)),))


# stock documents


async def test_a_receipt_repeated_under_its_key_returns_the_stored_response_once_applied(
    db: Database,
) -> None:
    net = await support.seed_network(db)
    key = result_key("K-1")

    first = await stock.receive(db.uow, receipt("R-1", 5), Context(), key)
    after_first = await dbstate.snapshot(db)
    again = await stock.receive(db.uow, receipt("R-1", 5), Context(), key)

    assert isinstance(first, dict)
    assert again == StoredResponse(200, first)
    assert await dbstate.snapshot(db) == after_first
    assert await dbstate.level(db, net, "TEA", "WH1") == (D(5), D(0))
    assert len(await dbstate.movements(db, net)) == 1
    (stored,) = await dbstate.rows(db, idempotency_keys)
    assert (stored.principal, stored.key, stored.request_hash) == ("1c", "K-1", "hash-1")
    assert (stored.status_code, stored.response) == (200, first)


async def test_another_request_under_a_used_key_is_refused_and_writes_nothing(
    db: Database,
) -> None:
    net = await support.seed_network(db)
    await stock.receive(db.uow, receipt("R-1", 5), Context(), result_key("K-1"))
    before = await dbstate.snapshot(db)

    with pytest.raises(IdempotencyKeyReused):
        await stock.receive(db.uow, receipt("R-1", 6), Context(), result_key("K-1", "hash-2"))
    with pytest.raises(IdempotencyKeyReused):
        await stock.write_off(db.uow, receipt("WO-1", 1), Context(), result_key("K-1", "hash-3"))

    assert await dbstate.snapshot(db) == before
    assert await dbstate.level(db, net, "TEA", "WH1") == (D(5), D(0))


async def test_keys_belong_to_their_principal(db: Database) -> None:
    net = await support.seed_network(db)

    await stock.receive(db.uow, receipt("R-1", 5), Context(), result_key("K-1", principal="a"))
    await stock.receive(db.uow, receipt("R-2", 5), Context(), result_key("K-1", principal="b"))

    assert await dbstate.level(db, net, "TEA", "WH1") == (D(10), D(0))
    assert await dbstate.count(db, idempotency_keys) == 2


async def test_a_transfer_and_a_count_repeated_under_their_keys_apply_once(
    db: Database,
) -> None:
    net = await support.seed_network(db, {"WH1": {"TEA": 10}})
    move = Transfer("WH1", "S02", "TR-1", (StockLine(ProductRef(sku="TEA"), D(3)),))
    tally = StockDocument("S02", "INV-1", (StockLine(ProductRef(sku="TEA"), D(1)),))

    for _ in range(2):
        await stock.transfer(db.uow, move, Context(), result_key("K-TR"))
    first_count = await stock.count(db.uow, tally, Context(), result_key("K-INV"))
    # another receipt in between: a replayed count must not count again
    await stock.receive(
        db.uow, StockDocument("S02", "R-9", tally.lines), Context(), result_key("K-R")
    )
    again = await stock.count(db.uow, tally, Context(), result_key("K-INV"))

    assert again == StoredResponse(200, first_count)
    assert await dbstate.level(db, net, "TEA", "WH1") == (D(7), D(0))
    assert await dbstate.level(db, net, "TEA", "S02") == (D(2), D(0))
    assert len(await dbstate.movements(db, net, reason="transfer_out")) == 1
    assert len(await dbstate.movements(db, net, reason="count")) == 1


async def test_a_failed_request_does_not_use_up_its_key(db: Database) -> None:
    net = await support.seed_network(db, {"WH1": {"TEA": 1}})
    key = order_key("K-1")

    with pytest.raises(InsufficientStock):
        await place_order(db.placement_uow, tea(3), support.context(), key)
    assert await dbstate.count(db, idempotency_keys) == 0

    await stock.receive(db.uow, receipt("R-1", 5), Context(), None)
    order = await place_order(db.placement_uow, tea(3), support.context(), key)

    assert isinstance(order, Order)
    assert await dbstate.level(db, net, "TEA", "WH1") == (D(6), D(3))
    assert await dbstate.count(db, idempotency_keys) == 1


# orders


async def test_an_order_placed_twice_under_one_key_is_placed_once(db: Database) -> None:
    net = await support.seed_network(db, {"WH1": {"TEA": 10}})
    key = order_key("K-1")

    first = await place_order(db.placement_uow, tea(3), support.context(), key)
    again = await place_order(db.placement_uow, tea(3), support.context(), key)

    assert isinstance(first, Order)
    assert isinstance(again, StoredResponse)
    assert again.status_code == 201
    assert again.body["id"] == first.id
    assert again.body == render.order(first, {})
    assert await dbstate.count(db, orders) == 1
    assert await dbstate.level(db, net, "TEA", "WH1") == (D(10), D(3))
    (stored,) = await dbstate.rows(db, idempotency_keys)
    assert (stored.key, stored.status_code, stored.response["id"]) == ("K-1", 201, first.id)


async def test_another_order_under_a_used_key_is_refused_and_writes_nothing(
    db: Database,
) -> None:
    net = await support.seed_network(db, {"WH1": {"TEA": 10}})
    await place_order(db.placement_uow, tea(3), support.context(), order_key("K-1"))
    before = await dbstate.snapshot(db)

    with pytest.raises(IdempotencyKeyReused):
        await place_order(db.placement_uow, tea(4), support.context(), order_key("K-1", "other"))

    assert await dbstate.snapshot(db) == before
    assert await dbstate.count(db, orders) == 1
    assert await dbstate.level(db, net, "TEA", "WH1") == (D(10), D(3))


async def test_payment_and_status_changes_replay_their_first_response(db: Database) -> None:
    net = await support.seed_network(db, {"WH1": {"TEA": 10}})
    order = await place_order(db.placement_uow, tea(3), support.context())
    assert isinstance(order, Order)

    paid = await pay_order(db.uow, order.id, support.context(), order_key("PAY-1"))
    shipped = await change_status(
        db.uow, order.id, OrderStatus.SHIPPED, support.context(), order_key("SHIP-1")
    )
    assert isinstance(paid, Order) and isinstance(shipped, Order)
    after = await dbstate.snapshot(db)

    # the order has moved on; the replays still answer what the first requests answered
    paid_again = await pay_order(db.uow, order.id, support.context(), order_key("PAY-1"))
    shipped_again = await change_status(
        db.uow, order.id, OrderStatus.SHIPPED, support.context(), order_key("SHIP-1")
    )

    assert isinstance(paid_again, StoredResponse) and isinstance(shipped_again, StoredResponse)
    assert (paid_again.body["status"], paid_again.body["payment_status"]) == ("placed", "paid")
    assert shipped_again.body["status"] == "shipped"
    assert await dbstate.snapshot(db) == after
    assert await dbstate.level(db, net, "TEA", "WH1") == (D(7), D(0))

    with pytest.raises(IdempotencyKeyReused):
        await change_status(
            db.uow, order.id, OrderStatus.CANCELLED, support.context(), order_key("SHIP-1", "x")
        )
    assert await dbstate.snapshot(db) == after


async def test_concurrent_placements_under_one_key_make_one_order(db: Database) -> None:
    net = await support.seed_network(db, {"WH1": {"TEA": 20}})
    key = order_key("K-burst")

    results = await asyncio.gather(
        *(place_order(db.placement_uow, tea(2), support.context(), key) for _ in range(10)),
        return_exceptions=True,
    )

    assert [r for r in results if isinstance(r, BaseException)] == []
    ids = {r.id if isinstance(r, Order) else r.body["id"] for r in results}  # type: ignore[union-attr]
    assert len(ids) == 1
    assert await dbstate.count(db, orders) == 1
    assert await dbstate.level(db, net, "TEA", "WH1") == (D(20), D(2))


async def test_concurrent_placements_under_one_key_with_stock_for_one_all_get_that_order(
    db: Database,
) -> None:
    # Only enough stock for one order: the retries that lose the stock row must still be
    # answered with the stored response, not with "insufficient stock".
    net = await support.seed_network(db, {"WH1": {"TEA": 2}})
    key = order_key("K-last")

    results = await asyncio.gather(
        *(place_order(db.placement_uow, tea(2), support.context(), key) for _ in range(8)),
        return_exceptions=True,
    )

    assert [type(r).__name__ for r in results if isinstance(r, BaseException)] == []
    assert await dbstate.count(db, orders) == 1
    assert await dbstate.level(db, net, "TEA", "WH1") == (D(2), D(2))
