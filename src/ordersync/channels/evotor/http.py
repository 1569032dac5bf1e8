"""The webhooks the Evotor cloud calls, mounted at /evotor: the integrator registers
`https://<hub>/evotor` as the service address in the Evotor developer account, and the token
of an `evotor` hub token (`ordersync token create --role evotor --name cloud`).

Paths as paths.yaml names them under the service address; errors in Evotor's format
(`{"errors": [{"code", "reason", "subject"}]}`), never a 500. Till documents are stored in the
inbox before the answer, then applied within `evotor.apply_budget_seconds` while the cloud
waits (it resends what is not answered `200` within 10 s); what is left is applied in the
background here, and by `ordersync worker` (or `serve` on SQLite) should this process stop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from decimal import Decimal
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from ...api.auth import Principal
from ...config import EvotorSettings
from ...db import tokens
from ...db.availability import is_unavailable
from ...db.unit_of_work import Database
from ...domain.errors import OrdersyncError
from ...domain.types import Role
from ...services import evotor as records
from ...services.context import Context
from ...services.ports import Store
from .account import read_cloud_token, read_user_link, user_linked
from .documents import read_documents
from .entities import read_devices, read_employees, read_stores
from .errors import ErrorCode, EvotorErrorItem, EvotorRequestError, error_body, incorrect
from .intake import Intake, Received
from .products import EvotorProduct, read_products
from .receipts import read_receipts
from .values import normalize_id
from .wire import dumps, loads

log = logging.getLogger("ordersync.evotor")
PREFIX = "/evotor"
MEASURES = {"pcs": "шт", "kg": "кг", "l": "л", "m": "м"}


class Channel:
    """What the webhooks need from the running hub, read at each request (the app's
    lifespan builds the database and the context after the routes are made)."""

    def __init__(self, parent: FastAPI, settings: EvotorSettings) -> None:
        self.parent = parent
        self.settings = settings
        self.background: set[asyncio.Task[Any]] = set()

    @property
    def db(self) -> Database:
        db: Database = self.parent.state.db
        return db

    @property
    def ctx(self) -> Context:
        ctx: Context = self.parent.state.context
        return ctx

    def intake(self) -> Intake:
        return Intake(self.db.uow, self.db.fresh_stores, self.ctx, self.db.sale_batches())

    async def authorize(self, request: Request, store: Store | None = None) -> Any:
        """The cloud's Bearer token: a hub token of role evotor (scoped to stores, or not)."""
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip() or len(token) > 256:
            raise _unauthorized()
        cache = self.parent.state.token_cache
        token_hash = tokens.hash_token(token.strip())
        found = cache.get(token_hash)
        if found is None:
            async with self.db.connect(autocommit=True) as conn:
                row = await tokens.find_token(conn, token.strip())
            if row is None:
                raise _unauthorized()
            found = Principal(row.id, row.name, row.role, row.store_ids)
            cache.put(token_hash, found)
        if found.role is not Role.EVOTOR:
            raise _unauthorized(ErrorCode.CLOUD_TOKEN_INVALID)
        if store is not None and found.store_ids and store.id not in found.store_ids:
            raise _unauthorized()
        return found

    async def store(self, store_uuid: str) -> Store:
        uuid = normalize_id(store_uuid)
        found = records.linked_store(await self.db.fresh_stores(), uuid)
        if found is None:
            raise incorrect("storeUuid", "not a store linked to the hub", store_uuid)
        return found

    async def answer(self, received: Received, budget: float) -> Response:
        """Applies what was stored while the cloud waits (at most `budget` seconds); the
        rest goes on in the background. 200, or 400 naming the documents that failed."""
        errors = list(received.errors)
        if received.pending:
            intake = self.intake()
            task = asyncio.create_task(intake.apply_all(sorted(received.pending), received))
            done, _ = await asyncio.wait({task}, timeout=budget)
            if task in done:
                for inbox_id, why in task.result().items():
                    at = f"[{received.pending[inbox_id]}]"
                    errors.append(EvotorErrorItem(ErrorCode.INCORRECT, f"not applied: {why}", at))
            else:
                self.background.add(task)
                task.add_done_callback(self.background.discard)
        if errors:
            return JSONResponse(error_body(errors), status_code=400)
        return Response(status_code=200)

    async def drain(self) -> None:
        """At shutdown: what is being applied in the background finishes (or stays pending
        for the worker)."""
        if self.background:
            await asyncio.wait(self.background, timeout=10)


def build(parent: FastAPI, settings: EvotorSettings) -> tuple[FastAPI, Channel]:
    channel = Channel(parent, settings)
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.router.route_class = EvotorRoute
    _errors(app)
    _routes(app, channel)
    return app, channel


class EvotorRoute(APIRoute):
    """Whatever a handler raises is answered in Evotor's format: refusals as 4xx, and
    anything else (the database away, a bug) as 503, which the cloud sends again."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except EvotorRequestError as exc:
                return JSONResponse(exc.body(), status_code=exc.status)
            except (OrdersyncError, RequestValidationError, StarletteHTTPException):
                raise  # the app's handlers below
            except Exception as exc:
                if not is_unavailable(exc):
                    log.exception("evotor webhook failed")
                item = EvotorErrorItem(ErrorCode.INCORRECT, "unavailable: send it again later")
                return JSONResponse(
                    error_body([item]), status_code=503, headers={"Retry-After": "5"}
                )

        return answer


def _routes(app: FastAPI, ch: Channel) -> None:
    @app.put("/api/v1/inventories/stores")
    async def stores(request: Request) -> Response:
        await ch.authorize(request)
        found = read_stores(await request.body())
        items = [(s.uuid, s.name, s.uuid, dumps(_plain(s))) for s in found]
        await records.keep_entities(ch.db.uow, "store", items, ch.ctx)
        return Response(status_code=200)

    @app.put("/api/v1/inventories/devices")
    async def devices(request: Request) -> Response:
        await ch.authorize(request)
        found = read_devices(await request.body())
        items = [(d.uuid, d.name, d.store_uuid, dumps(_plain(d))) for d in found]
        await records.keep_entities(ch.db.uow, "device", items, ch.ctx)
        return Response(status_code=200)

    @app.put("/api/v1/inventories/employees")
    async def employees(request: Request) -> Response:
        await ch.authorize(request)
        found = read_employees(await request.body())
        items = [(e.uuid, e.full_name, None, dumps(_plain(e))) for e in found]
        await records.keep_entities(ch.db.uow, "employee", items, ch.ctx)
        return Response(status_code=200)

    @app.put("/api/v1/inventories/stores/{store_uuid}/documents")
    async def documents(store_uuid: str, request: Request) -> Response:
        store = await ch.store(store_uuid)
        await ch.authorize(request, store)
        raws = _array(loads(await request.body()))
        results = read_documents(raws, store_uuid)
        received = await ch.intake().receive_documents(
            store, normalize_id(store_uuid), results, raws, "documents"
        )
        return await ch.answer(received, ch.settings.apply_budget_seconds)

    @app.post("/api/v2/receipts")
    async def receipts(request: Request) -> Response:
        await ch.authorize(request)
        body = loads(await request.body())
        raws = body if isinstance(body, list) else [body]
        received = await ch.intake().receive_receipts(read_receipts(body), raws)
        return await ch.answer(received, ch.settings.apply_budget_seconds)

    @app.post("/api/v1/inventories/stores/{store_uuid}/products")
    async def till_products(store_uuid: str, request: Request) -> Response:
        store = await ch.store(store_uuid)
        await ch.authorize(request, store)
        created = [
            records.TillCreatedProduct(p.uuid, p.name, p.code, p.bar_codes)
            for p in read_products(await request.body())
            if not p.group
        ]
        await records.products_created_on_a_till(ch.db.uow, store, created, ch.ctx)
        return Response(status_code=200)

    @app.get("/api/v1/commodities")
    async def commodities(
        request: Request,
        scan_code: Annotated[str, Query(alias="scanCode", max_length=100)] = "",
        alc_code: Annotated[str, Query(alias="alcCode", max_length=100)] = "",
    ) -> Response:
        """A product by its barcode (`alcCode`, the EGAIS code, is not kept by the hub)."""
        await ch.authorize(request)
        if not scan_code.strip():
            raise incorrect("scanCode", "a barcode is required")
        found = await records.product_by_barcode(ch.db.uow, scan_code.strip(), ch.ctx)
        if found is None:
            return _json([])
        product, uuid = found
        described = EvotorProduct(
            uuid=uuid,
            name=product.name[:100],
            code=product.sku if len(product.sku) <= 10 else None,
            bar_codes=tuple(b for b in [product.barcode] if b and b.isdigit()),
            price=product.price if product.price is not None else Decimal("0.00"),
            measure_name=MEASURES.get(product.unit.value, "шт"),
            tax=ch.settings.tax,
            allow_to_sell=product.active,
            article_number=product.sku if len(product.sku) <= 20 else None,
        )
        return _json([described.as_json()])

    @app.post("/api/v1/user/verify")
    async def verify(request: Request) -> Response:
        await ch.authorize(request)
        link = read_user_link(await request.body())
        if not await _holds_a_hub_token(ch, link.password):
            raise EvotorRequestError(
                [EvotorErrorItem(ErrorCode.WRONG_CREDENTIALS, "wrong credentials", "password")]
            )
        token = await records.link_account(ch.db.uow, link.user_id, ch.ctx)
        return _json(user_linked(link.user_id, token))

    @app.post("/api/v1/user/create")
    async def create(request: Request) -> Response:
        await ch.authorize(request)
        link = read_user_link(await request.body())
        token = await records.link_account(ch.db.uow, link.user_id, ch.ctx)
        return _json(user_linked(link.user_id, token))

    @app.post("/api/v1/user/token")
    async def cloud_token(request: Request) -> Response:
        await ch.authorize(request)
        handed = read_cloud_token(await request.body())
        await records.keep_cloud_token(ch.db.uow, handed.user_id, handed.token, ch.ctx)
        return Response(status_code=200)


async def _holds_a_hub_token(ch: Channel, password: str | None) -> bool:
    """/user/verify: the password is a hub token of role evotor or admin (the hub has no
    accounts of its own to check a login against)."""
    if not password or len(password) > 256:
        return False
    async with ch.db.connect(autocommit=True) as conn:
        row = await tokens.find_token(conn, password)
    return row is not None and row.role in (Role.EVOTOR, Role.ADMIN)


def _array(body: Any) -> list[Any]:
    if isinstance(body, dict):
        return [body]
    if not isinstance(body, list):
        raise incorrect("body", "not an array of documents")
    return body


def _plain(entity: Any) -> dict[str, Any]:
    return {k: v for k, v in ((f, getattr(entity, f)) for f in entity.__slots__) if v is not None}


def _json(body: Any) -> Response:
    return Response(dumps(body), media_type="application/json;charset=UTF-8")


def _unauthorized(code: ErrorCode = ErrorCode.USER_TOKEN_INVALID) -> EvotorRequestError:
    return EvotorRequestError([EvotorErrorItem(code, "unauthorized", "Authorization")])


def _errors(app: FastAPI) -> None:
    """Every refusal in Evotor's format (an unknown path, a method the path does not take,
    a malformed query); nothing is ever a 500 (EvotorRoute)."""

    async def evotor_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, EvotorRequestError)
        return JSONResponse(exc.body(), status_code=exc.status)

    async def hub_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, OrdersyncError)
        item = EvotorErrorItem(ErrorCode.INCORRECT, exc.message[:300])
        return JSONResponse(error_body([item]), status_code=400)

    async def http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        item = EvotorErrorItem(ErrorCode.INCORRECT, str(exc.detail).lower())
        return JSONResponse(error_body([item]), status_code=exc.status_code)

    async def invalid(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        items = [
            EvotorErrorItem(ErrorCode.INCORRECT, str(e.get("msg")), ".".join(map(str, e["loc"])))
            for e in exc.errors()
        ]
        return JSONResponse(error_body(items), status_code=400)

    handlers: list[tuple[type[Exception], Callable[[Request, Exception], Awaitable[Response]]]] = [
        (EvotorRequestError, evotor_error),
        (OrdersyncError, hub_error),
        (StarletteHTTPException, http_error),
        (RequestValidationError, invalid),
    ]
    for exc_type, handler in handlers:
        app.add_exception_handler(exc_type, handler)
