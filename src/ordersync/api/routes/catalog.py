"""/stores and /products: the catalog (writes need an admin token)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse

from ...db import catalog, site_out
from ...db.unit_of_work import Database, SqlUnitOfWork
from ...domain import events
from ...domain.errors import NotFound
from ...domain.types import Role
from ...services.idempotency import claim, remember
from ...services.ports import Store
from .. import render
from ..auth import Principal
from ..decimal_json import DecimalRoute
from ..deps import Auth, Ctx, Db, IdemKey, idempotency, respond
from ..openapi import refusals
from ..schemas import MAX_ID, ProductIn, ProductPatch, StoreIn, StorePatch

router = APIRouter(tags=["catalog"], route_class=DecimalRoute)


def _store_values(body: StoreIn | StorePatch) -> dict[str, Any]:
    values = body.model_dump(exclude_unset=True)
    for key in ("kind", "pos_mode"):
        if values.get(key) is not None:
            values[key] = values[key].value
    return values


@router.get("/stores", summary="All stores with their settings")
async def list_stores(principal: Auth, db: Db) -> JSONResponse:
    db.forget_stores()
    return JSONResponse({"stores": [render.store(s) for s in await db.fresh_stores()]})


async def _write(
    db: Database,
    principal: Principal,
    key: tuple[str, str] | None,
    status: int,
    work: Callable[[SqlUnitOfWork], Awaitable[dict[str, Any]]],
) -> JSONResponse:
    """One admin write in one transaction, honouring an Idempotency-Key."""
    principal.require(Role.ADMIN)
    idem = idempotency(principal, key, status, _same)
    async with db.uow() as uow:
        replayed = await claim(uow, idem)
        if replayed is not None:
            return respond(replayed, replayed.status_code, _same)
        result = await work(uow)
        await remember(uow, idem, result)
        await uow.commit()
    db.forget_stores()
    return JSONResponse(result, status_code=status)


def _same(result: dict[str, Any]) -> dict[str, Any]:
    return result


async def _catalog_changed(uow: SqlUnitOfWork, product_ids: list[int], now: datetime) -> None:
    """Tills that sell these products are told (the Evotor sink republishes them)."""
    payload = events.catalog_changed(product_ids, "api")
    await uow.add_event(events.CATALOG_CHANGED, events.AGGREGATE_CATALOG, "products", payload, now)


async def _linked_to_evotor(
    uow: SqlUnitOfWork, store: Store, before: str | None, now: datetime
) -> None:
    """A store newly linked to Evotor gets the whole catalog published to its tills."""
    if store.evotor_uuid is None or store.evotor_uuid == before:
        return
    payload = {"store_id": store.id, "all": True, "source": "evotor_link"}
    await uow.add_event(events.CATALOG_CHANGED, events.AGGREGATE_CATALOG, "products", payload, now)


@router.post("/stores", status_code=201, summary="Create a store", responses=refusals(403, 409))
async def create_store(
    body: StoreIn, principal: Auth, db: Db, ctx: Ctx, key: IdemKey
) -> JSONResponse:
    values = _store_values(body)
    values["xml_id"] = values.get("xml_id") or body.code

    async def work(uow: SqlUnitOfWork) -> dict[str, Any]:
        store = await catalog.insert_store(uow.conn, values, ctx.clock())
        await _linked_to_evotor(uow, store, None, ctx.clock())
        return render.store(store)

    return await _write(db, principal, key, 201, work)


@router.patch(
    "/stores/{code}", summary="Change a store's settings", responses=refusals(403, 404, 409)
)
async def update_store(
    code: str, body: StorePatch, principal: Auth, db: Db, ctx: Ctx, key: IdemKey
) -> JSONResponse:
    async def work(uow: SqlUnitOfWork) -> dict[str, Any]:
        current = await catalog.store_by_code(uow.conn, code)
        if current is None:
            raise NotFound(f"store {code} not found", store=code)
        store = await catalog.update_store(uow.conn, current.id, _store_values(body), ctx.clock())
        assert store is not None
        await _linked_to_evotor(uow, store, current.evotor_uuid, ctx.clock())
        if store.safety_stock != current.safety_stock:  # what the online store may sell moved
            await site_out.announce_store_levels(uow.conn, store.id, store.code, ctx.clock())
        return render.store(store)

    return await _write(db, principal, key, 200, work)


@router.get("/products", summary="Products, by id, with a keyset cursor and a search")
async def list_products(
    principal: Auth,
    db: Db,
    q: str | None = None,
    after_id: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JSONResponse:
    async with db.connect(autocommit=True) as conn:
        found = await catalog.list_products(conn, after_id, limit, q)
    return JSONResponse(
        {
            "products": [render.product(p) for p in found],
            "next_after_id": found[-1].id if len(found) == limit else None,
        }
    )


@router.post("/products", status_code=201, summary="Create a product", responses=refusals(403, 409))
async def create_product(
    body: ProductIn, principal: Auth, db: Db, ctx: Ctx, key: IdemKey
) -> JSONResponse:
    values = body.model_dump()
    values["unit"] = body.unit.value
    values["xml_id"] = body.xml_id or body.sku

    async def work(uow: SqlUnitOfWork) -> dict[str, Any]:
        product = await catalog.insert_product(uow.conn, values, ctx.clock())
        await _catalog_changed(uow, [product.id], ctx.clock())
        return render.product(product)

    return await _write(db, principal, key, 201, work)


@router.patch(
    "/products/{product_id}", summary="Change a product", responses=refusals(403, 404, 409)
)
async def update_product(
    product_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    body: ProductPatch,
    principal: Auth,
    db: Db,
    ctx: Ctx,
    key: IdemKey,
) -> JSONResponse:
    values = body.model_dump(exclude_unset=True)
    if values.get("unit") is not None:
        values["unit"] = values["unit"].value

    async def work(uow: SqlUnitOfWork) -> dict[str, Any]:
        product = await catalog.update_product(uow.conn, product_id, values, ctx.clock())
        if product is None:
            raise NotFound(f"product {product_id} not found", product_id=product_id)
        await _catalog_changed(uow, [product.id], ctx.clock())
        return render.product(product)

    return await _write(db, principal, key, 200, work)
