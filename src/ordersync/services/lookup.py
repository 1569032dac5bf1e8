"""Resolving what callers name (store codes, product SKUs or 1C Ид) to catalog rows."""

from __future__ import annotations

from collections.abc import Sequence

from ..domain.commands import ProductRef
from ..domain.errors import NotFound, UnknownProduct, UnknownStore
from ..domain.orders import Order
from .ports import Product, StockLevel, Store, UnitOfWork


async def store_by_code(uow: UnitOfWork, code: str) -> Store:
    for store in await uow.stores():
        if store.code == code and store.active:
            return store
    raise UnknownStore([code])


def _split(refs: Sequence[ProductRef]) -> tuple[list[int], list[str], list[str]]:
    return (
        [r.product_id for r in refs if r.product_id is not None],
        [r.sku for r in refs if r.sku is not None],
        [r.xml_id for r in refs if r.xml_id is not None],
    )


async def resolve_products(
    uow: UnitOfWork, refs: Sequence[ProductRef], inactive: bool = False
) -> list[Product]:
    """The product for each ref, in order; UnknownProduct names every ref that matched none.
    Inactive products (1C marked them deleted) count only with `inactive`: they are still
    counted and sold off the shelf, but no new order may take them."""
    return _match(refs, await uow.products_by_refs(*_split(refs)), inactive)


async def resolve_products_with_stock(
    uow: UnitOfWork, refs: Sequence[ProductRef], store_ids: Sequence[int]
) -> tuple[list[Product], list[StockLevel]]:
    """The products, and their stock levels at these stores, in one read."""
    found, stock = await uow.products_with_stock(*_split(refs), store_ids)
    return _match(refs, found), stock


def _match(
    refs: Sequence[ProductRef], found: list[Product], inactive: bool = False
) -> list[Product]:
    by_id = {p.id: p for p in found}
    by_sku = {p.sku: p for p in found}
    by_xml = {p.xml_id: p for p in found}
    result: list[Product] = []
    missing: list[str] = []
    for ref in refs:
        if ref.product_id is not None:
            product = by_id.get(ref.product_id)
        elif ref.sku is not None:
            product = by_sku.get(ref.sku)
        else:
            product = by_xml.get(ref.xml_id or "")
        if product is None or not (product.active or inactive):
            missing.append(ref.label)
        else:
            result.append(product)
    if missing:
        raise UnknownProduct(missing)
    return result


async def locked_order(uow: UnitOfWork, order_id: str) -> Order:
    """The order with its row locked (before any stock row: orders, then stock levels, is the
    fixed lock order), or NotFound."""
    order = await uow.get_order(order_id, lock=True)
    if order is None:
        raise NotFound(f"order {order_id} not found", order_id=order_id)
    return order
