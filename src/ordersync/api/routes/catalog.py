"""/stores and /products: the catalog (writes need an admin token)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse

from ...db import catalog
from ...domain.errors import NotFound
from ...domain.types import Role
from .. import render
from ..deps import Auth, Ctx, Db
from ..schemas import MAX_ID, ProductIn, ProductPatch, StoreIn, StorePatch

router = APIRouter(tags=["catalog"])


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


@router.post("/stores", status_code=201, summary="Create a store")
async def create_store(body: StoreIn, principal: Auth, db: Db, ctx: Ctx) -> JSONResponse:
    principal.require(Role.ADMIN)
    values = _store_values(body)
    values["xml_id"] = values.get("xml_id") or body.code
    async with db.uow() as uow:
        store = await catalog.insert_store(uow.conn, values, ctx.clock())
        await uow.commit()
    db.forget_stores()
    return JSONResponse(render.store(store), status_code=201)


@router.patch("/stores/{code}", summary="Change a store's settings")
async def update_store(
    code: str, body: StorePatch, principal: Auth, db: Db, ctx: Ctx
) -> JSONResponse:
    principal.require(Role.ADMIN)
    async with db.uow() as uow:
        current = await catalog.store_by_code(uow.conn, code)
        if current is None:
            raise NotFound(f"store {code} not found", store=code)
        store = await catalog.update_store(uow.conn, current.id, _store_values(body), ctx.clock())
        await uow.commit()
    db.forget_stores()
    assert store is not None
    return JSONResponse(render.store(store))


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


@router.post("/products", status_code=201, summary="Create a product")
async def create_product(body: ProductIn, principal: Auth, db: Db, ctx: Ctx) -> JSONResponse:
    principal.require(Role.ADMIN)
    values = body.model_dump()
    values["unit"] = body.unit.value
    values["xml_id"] = body.xml_id or body.sku
    async with db.uow() as uow:
        product = await catalog.insert_product(uow.conn, values, ctx.clock())
        await uow.commit()
    return JSONResponse(render.product(product), status_code=201)


@router.patch("/products/{product_id}", summary="Change a product")
async def update_product(
    product_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    body: ProductPatch,
    principal: Auth,
    db: Db,
    ctx: Ctx,
) -> JSONResponse:
    principal.require(Role.ADMIN)
    values = body.model_dump(exclude_unset=True)
    if values.get("unit") is not None:
        values["unit"] = values["unit"].value
    async with db.uow() as uow:
        product = await catalog.update_product(uow.conn, product_id, values, ctx.clock())
        if product is None:
            raise NotFound(f"product {product_id} not found", product_id=product_id)
        await uow.commit()
    return JSONResponse(render.product(product))
