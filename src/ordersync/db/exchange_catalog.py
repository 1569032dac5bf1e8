"""Staging a 1C file's items, and applying their products and stores.

Staging writes only to the exchange_stage_* tables; on PostgreSQL with COPY, which is what
makes a file of a million store quantities take seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import TextClause, bindparam, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain.quantities import MONEY_SCALE
from .tables import (
    exchange_stage_items,
    exchange_stage_stores,
    stores,
)
from .types import UtcDateTime

# (file_id, seq, xml_id, article, name, unit, barcode, price, active, store numbers,
#  quantities*1000)
ItemRow = tuple[
    int,
    int,
    str,
    str | None,
    str | None,
    str | None,
    str | None,
    Decimal | None,
    bool | None,
    list[int] | None,
    list[int] | None,
]
_ITEM_COLUMNS = [
    "file_id",
    "seq",
    "xml_id",
    "article",
    "name",
    "unit",
    "barcode",
    "price",
    "active",
    "store_numbers",
    "quantities",
]


async def stage(conn: AsyncConnection, items: Sequence[ItemRow]) -> None:
    if not items:
        return
    if conn.dialect.name == "postgresql":
        raw = await conn.get_raw_connection()
        driver: Any = raw.driver_connection
        # COPY's text format, a line per item built by one join: asyncpg's binary records
        # checked each array and each of its numbers against collections.abc, a third of the
        # staging's own time. (A memoryview: asyncpg takes bytes for a file name.)
        await driver.copy_to_table(
            "exchange_stage_items",
            source=memoryview("".join(map(copy_line, items)).encode()),
            columns=_ITEM_COLUMNS,
            format="text",
        )
        return
    await conn.execute(
        insert(exchange_stage_items), [dict(zip(_ITEM_COLUMNS, row, strict=True)) for row in items]
    )


_NULL = "\\N"
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_line(row: ItemRow) -> str:
    """An item as a line of COPY's text format (tab-separated, backslash escapes, \\N)."""
    file_id, seq, xml_id, article, name, unit, barcode, price, active, numbers, quantities = row
    # The reader's prices are quantized to MONEY_SCALE and at most 10**13 (catalog_reader.money),
    # so scaling them is exact in the default context: no checked to_units per row.
    fields = (
        str(file_id),
        str(seq),
        _copy_text(xml_id),
        _copy_text(article),
        _copy_text(name),
        _copy_text(unit),
        _copy_text(barcode),
        _NULL if price is None else str(int(price.scaleb(MONEY_SCALE))),
        _NULL if active is None else "t" if active else "f",
        _NULL if numbers is None else "{" + ",".join(map(str, numbers)) + "}",
        _NULL if quantities is None else "{" + ",".join(map(str, quantities)) + "}",
    )
    return "\t".join(fields) + "\n"


def _copy_text(value: str | None) -> str:
    if value is None:
        return _NULL
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.translate(_ESCAPES)
    return value


async def stage_stores(
    conn: AsyncConnection, file_id: int, numbered: Sequence[tuple[int, str, str]]
) -> None:
    """The file's stores as (number, Ид, name), numbered in the order the file names them."""
    if numbered:
        await conn.execute(
            insert(exchange_stage_stores),
            [
                {"file_id": file_id, "number": n, "xml_id": x[:128], "name": name[:255]}
                for n, x, name in numbered
            ],
        )


async def staged_store_numbers(conn: AsyncConnection, file_id: int) -> dict[str, int]:
    s = exchange_stage_stores.c
    rows = await conn.execute(select(s.xml_id, s.number).where(s.file_id == file_id))
    return {r.xml_id: r.number for r in rows}


async def name_staged_stores(conn: AsyncConnection, file_id: int, names: dict[str, str]) -> None:
    """Names from the file's Склады, which may come after the offers that use the stores."""
    s = exchange_stage_stores.c
    for xml_id, name in names.items():
        await conn.execute(
            update(exchange_stage_stores)
            .where(s.file_id == file_id, s.xml_id == xml_id[:128])
            .values(name=name[:255])
        )


async def new_stores(conn: AsyncConnection, file_id: int) -> list[tuple[str, str]]:
    """Staged stores the hub does not know yet, as (Ид, name)."""
    s = exchange_stage_stores.c
    known = select(stores.c.id).where(stores.c.xml_id == s.xml_id).exists()
    rows = await conn.execute(select(s.xml_id, s.name).where(s.file_id == file_id, ~known))
    return [(r.xml_id, r.name) for r in rows]


async def rename_stores(conn: AsyncConnection, file_id: int, now: datetime) -> None:
    """Names from the file's Склады win; stores only named by Ид keep theirs."""
    await conn.execute(
        _timed(
            """
            UPDATE stores SET name = s.name, updated_at = :now
            FROM exchange_stage_stores s
            WHERE s.file_id = :f AND stores.xml_id = s.xml_id AND s.name <> s.xml_id
              AND stores.name <> s.name
            """
        ),
        {"f": file_id, "now": now},
    )


def _timed(sql: str) -> TextClause:
    return text(sql).bindparams(bindparam("now", type_=UtcDateTime()))


# Products new to the hub: the SKU is the 1C article when it is free, else the 1C Ид.
_INSERT_PRODUCTS = """
    INSERT INTO products (sku, xml_id, name, unit, barcode, price, active, created_at,
                          updated_at)
    SELECT {sku}, i.xml_id, i.name, COALESCE(i.unit, 'pcs'), i.barcode, i.price,
           COALESCE(i.active, {true}),
           :now, :now
    FROM exchange_stage_items i
    WHERE i.file_id = :f AND i.seq >= :lo AND i.seq < :hi AND i.name IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM products p WHERE p.xml_id = i.xml_id)
    ORDER BY i.seq
    ON CONFLICT DO NOTHING
"""

_UPDATE_PRODUCTS = """
    UPDATE products
    SET name = COALESCE(i.name, products.name),
        barcode = COALESCE(i.barcode, products.barcode),
        price = COALESCE(i.price, products.price),
        active = COALESCE(i.active, products.active),
        updated_at = :now
    FROM exchange_stage_items i
    WHERE i.file_id = :f AND i.seq >= :lo AND i.seq < :hi AND products.xml_id = i.xml_id
      AND ((i.name IS NOT NULL AND i.name <> products.name)
        OR (i.barcode IS NOT NULL AND (products.barcode IS NULL OR i.barcode <> products.barcode))
        OR (i.price IS NOT NULL AND (products.price IS NULL OR i.price <> products.price))
        OR (i.active IS NOT NULL AND i.active <> products.active))
"""


async def apply_products(
    conn: AsyncConnection, file_id: int, lo: int, hi: int, now: datetime
) -> tuple[int, int]:
    """Creates and updates the products of items [lo, hi); (created, updated)."""
    true = "true" if conn.dialect.name == "postgresql" else "1"
    params = {"f": file_id, "lo": lo, "hi": hi, "now": now}
    created = 0
    for sku in ("COALESCE(i.article, i.xml_id)", "i.xml_id"):
        result = await conn.execute(_timed(_INSERT_PRODUCTS.format(sku=sku, true=true)), params)
        created += int(result.rowcount or 0)
    updated = await conn.execute(_timed(_UPDATE_PRODUCTS), params)
    return created, int(updated.rowcount or 0)


async def products_changed(
    conn: AsyncConnection, file_id: int, lo: int, hi: int, now: datetime
) -> list[int]:
    """The products of items [lo, hi) that apply_products created or changed just now."""
    sql = """
        SELECT p.id FROM products p JOIN exchange_stage_items i ON p.xml_id = i.xml_id
        WHERE i.file_id = :f AND i.seq >= :lo AND i.seq < :hi AND p.updated_at = :now
        ORDER BY p.id
    """
    rows = await conn.execute(_timed(sql), {"f": file_id, "lo": lo, "hi": hi, "now": now})
    return sorted({int(x) for x in rows.scalars()})


async def unknown_stock_products(conn: AsyncConnection, file_id: int, lo: int, hi: int) -> int:
    """Items [lo, hi) that carry stock for a product the hub does not have."""
    result = await conn.execute(
        text(
            """
            SELECT count(*) FROM exchange_stage_items i
            WHERE i.file_id = :f AND i.seq >= :lo AND i.seq < :hi AND i.quantities IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM products p WHERE p.xml_id = i.xml_id)
            """
        ),
        {"f": file_id, "lo": lo, "hi": hi},
    )
    return int(result.scalar_one())


async def keep_last_of_repeated(conn: AsyncConnection, file_id: int) -> int:
    """An Ид given twice: only its last item stays (as a later element wins in Bitrix), so
    chunks may be applied in any order and by several workers. Returns the items dropped."""
    sql = _REPEATED_PG if conn.dialect.name == "postgresql" else _REPEATED_SQLITE
    result = await conn.execute(text(sql), {"f": file_id})
    return int(result.rowcount or 0)


# PostgreSQL answers the EXISTS with one hash join.
_REPEATED_PG = """
    DELETE FROM exchange_stage_items
    WHERE file_id = :f AND EXISTS (
        SELECT 1 FROM exchange_stage_items later
        WHERE later.file_id = exchange_stage_items.file_id
          AND later.xml_id = exchange_stage_items.xml_id
          AND later.seq > exchange_stage_items.seq
    )
"""
# SQLite would run that EXISTS per item over the whole file (no index on xml_id): quadratic,
# half a minute for 20,000 offers. The last item of each Ид, grouped once, is what stays.
_REPEATED_SQLITE = """
    DELETE FROM exchange_stage_items
    WHERE file_id = :f AND seq NOT IN (
        SELECT MAX(seq) FROM exchange_stage_items WHERE file_id = :f GROUP BY xml_id
    )
"""
