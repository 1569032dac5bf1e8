"""Completed till returns and what 1C is to receive of till sales (master = "hub"): a return
linked to its sale changes the sale's order; one no known sale covers is recorded unlinked,
listed for review, and put on the till shift's order of returns; stock-only sales join their
till shift's order; lines the hub cannot match are kept for review."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ordersync.db.tables import order_lines, orders, pos_returned, pos_transactions, till_review
from ordersync.db.unit_of_work import Database
from ordersync.domain import events
from ordersync.domain.commands import (
    LineInput,
    ProductRef,
    RecordPosReturn,
    RecordPosSale,
    UnmatchedLine,
)
from ordersync.services.context import Context
from ordersync.services.pos import record_pos_return, record_pos_sale
from tests import support
from tests.integration import dbstate

D = Decimal


def lines(*items: tuple[str, int | str]) -> tuple[LineInput, ...]:
    return tuple(LineInput(ProductRef(sku=sku), D(q)) for sku, q in items)


def hub(clock: support.Clock) -> Context:
    """master = "hub": till shifts make orders for 1C."""
    return Context(clock=clock, shift_orders=True)


async def sell(db: Database, ctx: Context, store: str, tx: str, *items: Any, **kw: Any) -> Any:
    cmd = RecordPosSale(store, kw.pop("pos", "till-1"), tx, lines(*items), ctx.clock(), **kw)
    return await record_pos_sale(db.uow, cmd, ctx)


async def give_back(
    db: Database, ctx: Context, store: str, tx: str, original: str | None, *items: Any, **kw: Any
) -> Any:
    pos = kw.pop("pos", "till-1")
    cmd = RecordPosReturn(store, pos, tx, original, lines(*items), ctx.clock(), **kw)
    return await record_pos_return(db.uow, cmd, ctx)


async def order_lines_of(db: Database, order_id: str) -> list[tuple[int, D, D, D]]:
    rows = await dbstate.rows(
        db, order_lines, order_lines.c.order_id == order_id, order_by=order_lines.c.line_no
    )
    return [(r.product_id, r.quantity, r.returned, r.price) for r in rows]


async def test_a_return_of_an_unknown_sale_is_recorded_unlinked_and_listed_for_review(
    db: Database, clock: support.Clock
) -> None:
    net = await support.seed_network(db, {"S01": {"TEA": 1}})

    result = await give_back(db, Context(clock=clock), "S01", "R1", "SOLD-BEFORE-THE-HUB",
                             ("TEA", 2))  # fmt: skip

    assert (result["linked"], result["unlinked"]) == (
        False,
        [{"product_id": net.products["TEA"], "quantity": "2"}],
    )
    assert await dbstate.level(db, net, "TEA", "S01") == (D(3), D(0))
    (item,) = await dbstate.rows(db, till_review)
    assert (item.kind, item.document_id, item.quantity, item.price) == (
        "unlinked_return",
        "till-1:R1",
        D(2),
        D("100.00"),
    )
    assert item.detail == {"product_id": net.products["TEA"], "original": "SOLD-BEFORE-THE-HUB"}
    assert await dbstate.count(db, orders) == 0  # master = "1c": no order for 1C
    assert await dbstate.drift(db) == (1, [])


async def test_a_return_beyond_what_its_sale_sold_links_what_it_can_and_the_rest_is_unlinked(
    db: Database, clock: support.Clock
) -> None:
    net = await support.seed_network(db, {"S01": {"TEA": 5}})
    ctx = Context(clock=clock)
    await sell(db, ctx, "S01", "T1", ("TEA", 2))

    result = await give_back(db, ctx, "S01", "R1", "T1", ("TEA", 3))

    assert result["linked"] is True
    assert result["unlinked"] == [{"product_id": net.products["TEA"], "quantity": "1"}]
    assert await dbstate.level(db, net, "TEA", "S01") == (D(6), D(0))
    assert [r.kind for r in await dbstate.rows(db, till_review)] == ["unlinked_return"]


async def test_a_return_linked_to_an_order_mode_sale_changes_that_order(
    db: Database, clock: support.Clock
) -> None:
    net = await support.seed_network(db, {"S01": {"TEA": 5, "COFFEE": 5}})
    ctx = Context(clock=clock)
    sold = await sell(db, ctx, "S01", "T1", ("TEA", 2), ("COFFEE", 1))
    before = await dbstate.order_row(db, sold["order_id"])
    clock.advance(seconds=1)

    await give_back(db, ctx, "S01", "R1", "T1", ("TEA", 1), pos="till-2")

    assert await order_lines_of(db, sold["order_id"]) == [
        (net.products["TEA"], D(2), D(1), D("100.00")),
        (net.products["COFFEE"], D(1), D(0), D("250.50")),
    ]
    after = await dbstate.order_row(db, sold["order_id"])
    assert (after.version, after.total) == (before.version + 1, D("350.50"))
    assert after.updated_at > before.updated_at  # 1C receives the order again
    (returned,) = await dbstate.events(db, events.ORDER_RETURNED)
    assert returned.payload["lines"] == [
        {"line": 1, "product_id": net.products["TEA"], "quantity": "1"}
    ]


async def test_stock_only_sales_of_a_till_shift_make_one_order_for_1c(
    db: Database, clock: support.Clock
) -> None:
    net = await support.seed_network(db, {"S02": {"TEA": 5, "MUG": 5}}, pos_stores=("S02",))
    ctx = hub(clock)

    first = await sell(db, ctx, "S02", "T1", ("TEA", 1), shift="S-1")
    second = await sell(db, ctx, "S02", "T2", ("TEA", 2), ("MUG", 1), shift="S-1")
    other_till = await sell(db, ctx, "S02", "T3", ("TEA", 1), shift="S-1", pos="till-2")
    next_shift = await sell(db, ctx, "S02", "T4", ("TEA", 1), shift="S-2")

    assert first["order_id"] is None
    assert first["shift_order_id"] == second["shift_order_id"]
    assert len({first["shift_order_id"], other_till["shift_order_id"],
                next_shift["shift_order_id"]}) == 3  # fmt: skip
    shift = await dbstate.order_row(db, first["shift_order_id"])
    assert (shift.channel, shift.source, shift.status, shift.external_id) == (
        "pos",
        "offline",
        "completed",
        f"shift:{net.stores['S02']}:till-1:S-1",
    )
    assert await order_lines_of(db, shift.id) == [
        (net.products["TEA"], D(3), D(0), D("100.00")),
        (net.products["MUG"], D(1), D(0), D("300.00")),
    ]
    assert shift.total == D("600.00")
    # a return of the first sale changes the shift's order
    await give_back(db, ctx, "S02", "R1", "T1", ("TEA", 1), shift="S-3")
    assert (await order_lines_of(db, shift.id))[0] == (net.products["TEA"], D(3), D(1), D("100.00"))


async def test_unlinked_returns_of_a_till_shift_make_an_order_of_returns_for_1c(
    db: Database, clock: support.Clock
) -> None:
    net = await support.seed_network(db, {"S01": {"TEA": 5}})
    ctx = hub(clock)

    await give_back(db, ctx, "S01", "R1", None, ("TEA", 1), shift="S-9")
    await give_back(db, ctx, "S01", "R2", "UNKNOWN", ("TEA", 2), ("MUG", 1), shift="S-9")

    (returns,) = await dbstate.rows(db, orders)
    assert (returns.source, returns.external_id, returns.total) == (
        "return",
        f"returns:{net.stores['S01']}:till-1:S-9",
        D("600.00"),
    )
    assert await order_lines_of(db, returns.id) == [
        (net.products["TEA"], D(3), D(0), D("100.00")),
        (net.products["MUG"], D(1), D(0), D("300.00")),
    ]
    assert await dbstate.count(db, till_review) == 3


async def test_a_sale_keeps_the_lines_it_cannot_match_and_records_the_rest(
    db: Database, clock: support.Clock
) -> None:
    net = await support.seed_network(db, {"S01": {"TEA": 5}})
    unknown = UnmatchedLine(
        2, D(1), "no product with this uuid, 1C Ид, SKU or barcode", "6b1e...", "A-77",
        "4600000000001", "Неизвестный товар", D("12.50"),
    )  # fmt: skip

    result = await sell(db, Context(clock=clock), "S01", "T1", ("TEA", 1), unmatched=(unknown,))

    assert result["unmatched"] == [
        {
            "position": 2,
            "code": "A-77",
            "barcode": "4600000000001",
            "name": "Неизвестный товар",
            "quantity": "1",
            "reason": "no product with this uuid, 1C Ид, SKU or barcode",
        }
    ]
    assert await dbstate.level(db, net, "TEA", "S01") == (D(4), D(0))
    (item,) = await dbstate.rows(db, till_review)
    assert (item.kind, item.position, item.code, item.barcode, item.name, item.price) == (
        "unmatched_line",
        2,
        "A-77",
        "4600000000001",
        "Неизвестный товар",
        D("12.50"),
    )


async def test_a_return_that_reached_the_hub_before_its_sale_is_linked_when_the_sale_comes(
    db: Database, clock: support.Clock
) -> None:
    net = await support.seed_network(db, {"S01": {"TEA": 5}})
    ctx = Context(clock=clock)
    first = await give_back(db, ctx, "S01", "R1", "T1", ("TEA", 1), pos="till-2")
    assert first["linked"] is False

    await sell(db, ctx, "S01", "T1", ("TEA", 2))

    assert await dbstate.level(db, net, "TEA", "S01") == (D(4), D(0))
    (row,) = await dbstate.rows(db, pos_returned)
    assert (row.sold, row.returned) == (D(2), D(1))
    (item,) = await dbstate.rows(db, till_review)
    assert item.resolved_at is not None and "reached the hub after it" in item.resolution
    (record,) = await dbstate.rows(db, pos_transactions, pos_transactions.c.transaction_id == "R1")
    assert (record.result["linked"], record.result["unlinked"]) == (True, [])
    # what is left of the sale can still come back, no more
    again = await give_back(db, ctx, "S01", "R2", "T1", ("TEA", 2))
    assert again["unlinked"] == [{"product_id": net.products["TEA"], "quantity": "1"}]
