"""Stores and products: lookups by id, code, SKU or 1C Ид, and upserts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Row, Table, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain.errors import DuplicateKey
from ..domain.types import PosMode, StoreKind, Unit
from ..services.ports import Product, Store
from .search import product_matches
from .tables import products, stores


def _store(row: Row[Any]) -> Store:
    return Store(
        id=row.id,
        code=row.code,
        xml_id=row.xml_id,
        name=row.name,
        kind=StoreKind(row.kind),
        serves_online=row.serves_online,
        online_priority=row.online_priority,
        is_pickup_point=row.is_pickup_point,
        safety_stock=row.safety_stock,
        pos_mode=PosMode(row.pos_mode),
        active=row.active,
        evotor_uuid=row.evotor_uuid,
    )


def _product(row: Row[Any]) -> Product:
    return Product(
        id=row.id,
        sku=row.sku,
        xml_id=row.xml_id,
        name=row.name,
        unit=Unit(row.unit),
        barcode=row.barcode,
        price=row.price,
        active=row.active,
    )


product_from_row = _product


async def all_stores(conn: AsyncConnection) -> list[Store]:
    rows = (await conn.execute(select(stores).order_by(stores.c.id))).all()
    return [_store(r) for r in rows]


async def store_by_code(conn: AsyncConnection, code: str) -> Store | None:
    row = (await conn.execute(select(stores).where(stores.c.code == code))).first()
    return None if row is None else _store(row)


async def _insert(
    conn: AsyncConnection, table: Table, values: Mapping[str, Any], now: datetime
) -> Row[Any]:
    data = {**values, "created_at": now, "updated_at": now}
    try:
        row: Row[Any] = (await conn.execute(insert(table).values(**data).returning(table))).one()
    except IntegrityError as exc:
        keys = {k: values.get(k) for k in ("code", "sku", "xml_id") if k in table.c}
        raise DuplicateKey(
            f"a row of {table.name} with this {' or '.join(keys)} exists", **keys
        ) from exc
    return row


async def _update(
    conn: AsyncConnection, table: Table, row_id: int, values: Mapping[str, Any], now: datetime
) -> Row[Any] | None:
    try:
        row: Row[Any] | None = (
            await conn.execute(
                update(table)
                .where(table.c.id == row_id)
                .values(**values, updated_at=now)
                .returning(table)
            )
        ).first()
    except IntegrityError as exc:
        keys = {k: values.get(k) for k in ("code", "sku", "xml_id") if k in values}
        raise DuplicateKey(
            f"a row of {table.name} with this {' or '.join(keys)} exists", **keys
        ) from exc
    return row


async def insert_store(conn: AsyncConnection, values: Mapping[str, Any], now: datetime) -> Store:
    return _store(await _insert(conn, stores, values, now))


async def update_store(
    conn: AsyncConnection, store_id: int, values: Mapping[str, Any], now: datetime
) -> Store | None:
    row = await _update(conn, stores, store_id, values, now)
    return None if row is None else _store(row)


async def products_by_refs(
    conn: AsyncConnection,
    ids: Sequence[int] = (),
    skus: Sequence[str] = (),
    xml_ids: Sequence[str] = (),
) -> list[Product]:
    conditions = []
    if ids:
        conditions.append(products.c.id.in_(ids))
    if skus:
        conditions.append(products.c.sku.in_(skus))
    if xml_ids:
        conditions.append(products.c.xml_id.in_(xml_ids))
    if not conditions:
        return []
    rows = (await conn.execute(select(products).where(or_(*conditions)))).all()
    return [_product(r) for r in rows]


async def list_products(
    conn: AsyncConnection, after_id: int, limit: int, query: str | None = None
) -> list[Product]:
    stmt = select(products).where(products.c.id > after_id).order_by(products.c.id).limit(limit)
    if query:
        stmt = stmt.where(product_matches(query))
    return [_product(r) for r in (await conn.execute(stmt)).all()]


async def insert_product(
    conn: AsyncConnection, values: Mapping[str, Any], now: datetime
) -> Product:
    return _product(await _insert(conn, products, values, now))


async def update_product(
    conn: AsyncConnection, product_id: int, values: Mapping[str, Any], now: datetime
) -> Product | None:
    row = await _update(conn, products, product_id, values, now)
    return None if row is None else _product(row)


def store_values(
    code: str,
    name: str,
    kind: StoreKind,
    xml_id: str | None = None,
    serves_online: bool = False,
    online_priority: int = 100,
    is_pickup_point: bool = False,
    safety_stock: Decimal = Decimal(0),
    pos_mode: PosMode = PosMode.ORDER,
    active: bool = True,
) -> dict[str, Any]:
    return {
        "code": code,
        "xml_id": xml_id or code,
        "name": name,
        "kind": kind.value,
        "serves_online": serves_online,
        "online_priority": online_priority,
        "is_pickup_point": is_pickup_point,
        "safety_stock": safety_stock,
        "pos_mode": pos_mode.value,
        "active": active,
    }


async def create_store_from_1c(conn: AsyncConnection, xml_id: str, name: str, now: datetime) -> str:
    """A store that 1C names and the hub did not know: a warehouse that serves nothing online
    until someone configures it. Its code is the 1C Ид (shortened when that is free)."""
    candidates = [f"1C-{xml_id[:8]}", xml_id[:64]]
    for code in candidates:
        if await store_by_code(conn, code) is None:
            break
    values = store_values(code, name[:255] or xml_id, StoreKind.WAREHOUSE, xml_id=xml_id)
    await conn.execute(insert(stores).values(**values, created_at=now, updated_at=now))
    return code


async def product_xml_ids(conn: AsyncConnection) -> frozenset[str]:
    """Every product's 1C Ид: what site orders name their lines by (read once per worker)."""
    return frozenset((await conn.execute(select(products.c.xml_id))).scalars())
