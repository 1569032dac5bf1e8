"""Staging a 1C file's items: what the stage tables get back is what the reader gave (on
PostgreSQL through COPY's text format, where tabs, newlines, backslashes and \\N are escapes)."""

from __future__ import annotations

from decimal import Decimal

from ordersync.db import exchange_catalog
from ordersync.db.exchange_catalog import ItemRow
from ordersync.db.tables import exchange_stage_items
from ordersync.db.unit_of_work import Database
from tests.integration import dbstate

FILE_ID = 41

ROWS: list[ItemRow] = [
    (FILE_ID, 0, "a\\b\tc\nd\re", "\\N", 'Имя "x" {y},z', "pcs", "", Decimal("12.34"), False,
     [0, 1], [5000, -3]),
    (FILE_ID, 1, "\\N", None, None, None, None, None, None, None, None),
    (FILE_ID, 2, "NULL", "\\", "\\\\t", "kg", "4600000000017", Decimal("0.00"), True, [], []),
    (FILE_ID, 3, "x" * 128, "a" * 128, "Ё" * 255, "l", "9" * 64, Decimal("9999999999999.99"),
     None, [2], [10**15]),
]  # fmt: skip


async def test_staged_items_read_back_exactly_as_the_reader_gave_them(db: Database) -> None:
    async with db.uow() as uow:
        await exchange_catalog.stage(uow.conn, ROWS)
        await uow.commit()

    found = await dbstate.rows(
        db,
        exchange_stage_items,
        exchange_stage_items.c.file_id == FILE_ID,
        order_by=exchange_stage_items.c.seq,
    )

    assert [tuple(row)[:11] for row in found] == ROWS
    assert [row.stale for row in found] == [None] * len(ROWS)
