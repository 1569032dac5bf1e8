"""An independent check of the site's orders coming in: a fake site of its own (not
tests/bitrix_sim.py) that answers with the response bodies of the official Bitrix REST
documentation (tests/unit/bitrix_doc_examples.py, copied verbatim from bitrix24/b24restdocs:
sale-order-get.md, sale-order-list.md, on-sale-order-saved.md), and events posted to
POST /bitrix/events in the documented form. It checks the hub against the documentation,
not against our simulator."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from ordersync.api.app import context_from, create_app
from ordersync.config import BitrixSettings, Settings
from ordersync.db import catalog
from ordersync.db.unit_of_work import Database
from ordersync.domain.types import Channel, Fulfillment, OrderStatus, PaymentStatus
from ordersync.entrypoints.site_task import SiteTask
from tests import support
from tests.unit.bitrix_doc_examples import (
    DOC_TOKEN,
    ON_SALE_BEFORE_ORDER_DELETE,
    ON_SALE_ORDER_SAVED,
    SALE_ORDER_GET,
    SALE_ORDER_LIST,
)

D = Decimal
WEBHOOK = "https://some-domain.bitrix24.com/rest/1/doc0secret/"
DOC_PRODUCT = "1000000386"  # basketItems[0].productXmlId of the documented order


class DocumentedSite:
    """Answers sale.order.get, sale.order.list, batch and catalog.store.list with the
    documented bodies; orders are the documented order with another id where asked."""

    def __init__(self) -> None:
        documented = json.loads(SALE_ORDER_GET)["result"]["order"]
        self.orders: dict[int, dict[str, Any]] = {236: documented}
        self.rows: list[dict[str, Any]] = json.loads(SALE_ORDER_LIST)["result"]["orders"]
        listed = copy.deepcopy(documented)
        listed.update({k: v for k, v in self.rows[0].items() if k in ("id", "version", "xmlId")})
        listed["dateUpdate"] = self.rows[0]["dateUpdate"]
        self.orders[9] = listed  # the documented list row, readable with sale.order.get
        self.calls: list[str] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        match = re.fullmatch(r"/rest/1/doc0secret/([a-z.]+)\.json", request.url.path)
        assert match, request.url.path
        method, params = match.group(1), json.loads(request.content or b"{}")
        self.calls.append(method)
        if method == "batch":
            results, errors = {}, {}
            for key, command in params["cmd"].items():
                name, _, query = command.partition("?")
                status, body = self.answer(name, {"id": int(query.split("=", 1)[1])})
                if status == 200:
                    results[key] = body["result"]
                else:
                    errors[key] = body
            batch = {"result": results, "result_error": errors or [], "result_total": [],
                     "result_next": [], "result_time": {}}  # fmt: skip
            return httpx.Response(200, json={"result": batch, "time": {}})
        status, body = self.answer(method, params)
        return httpx.Response(status, json=body)

    def answer(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if method == "sale.order.get":
            order = self.orders.get(int(params["id"]))
            if order is None:  # sale-order-get.md, "Error Handling"
                return 400, {"error": 200540400001, "error_description": "order does not exist"}
            return 200, {"result": {"order": order}, "time": {}}
        if method == "sale.order.list":
            since = params.get("filter", {}).get(">=dateUpdate")
            rows = [
                r
                for r in self.rows
                if since is None
                or datetime.fromisoformat(r["dateUpdate"]) >= datetime.fromisoformat(since)
            ]
            if params.get("start", 0):
                rows = []
            return 200, {"result": {"orders": rows}, "total": len(rows), "time": {}}
        if method == "catalog.store.list":
            return 200, {"result": {"stores": []}, "total": 0, "time": {}}
        return 400, {"error": "ERROR_METHOD_NOT_FOUND", "error_description": "Method not found"}


@pytest.fixture
async def hub(
    settings: Settings, db: Database
) -> AsyncIterator[tuple[httpx.AsyncClient, SiteTask, DocumentedSite]]:
    now = datetime.now(UTC)
    await support.seed_network(db, {"WH1": {"TEA": 1}})
    async with db.uow() as uow:
        await catalog.insert_product(
            uow.conn,
            {"sku": "TSHIRT", "xml_id": DOC_PRODUCT, "name": "Men's Fire T-Shirt",
             "unit": "pcs", "price": D(980), "barcode": None, "active": True},
            now,
        )  # fmt: skip
        await uow.commit()
    await support.receive(db, "WH1", "R-DOC", TSHIRT=5)
    site = DocumentedSite()
    bitrix = BitrixSettings(url=WEBHOOK, application_token=DOC_TOKEN, overlap_seconds=0)
    configured = settings.model_copy(update={"bitrix": bitrix})
    app = create_app(configured, db=db, sweeper=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.MockTransport(site.handler)) as rest,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub") as http,
    ):
        task = SiteTask(db, bitrix, context_from(configured), client=rest)
        yield http, task, site
        await task.close()


async def post_event(http: httpx.AsyncClient, form: dict[str, str], **fields: str) -> None:
    response = await http.post("/bitrix/events", data={**form, **fields})
    assert response.status_code == 200, response.text


async def test_the_documented_order_arrives_through_the_documented_event(
    hub: tuple[httpx.AsyncClient, SiteTask, DocumentedSite], db: Database
) -> None:
    http, task, site = hub
    await post_event(http, ON_SALE_ORDER_SAVED, **{"data[FIELDS][ID]": "236"})
    await task.apply_due()

    async with db.uow_read() as uow:
        order = await uow.find_order_by_external_id(Channel.ONLINE, "236")
    assert order is not None
    assert (order.fulfillment, order.status, order.payment_status, order.currency) == (
        Fulfillment.DELIVERY,  # deliveryId 1 is not configured as pickup
        OrderStatus.PLACED,
        PaymentStatus.UNPAID,
        "USD",
    )
    assert order.customer == {
        "name": "John Smith",
        "email": "email@mail.com",
        "phone": "14151234567",
        "address": "test",
    }
    [line] = order.lines
    assert (line.sku, line.quantity, line.price) == ("TSHIRT", D(1), D(980))
    assert sum(h.quantity for h in line.holds) == D(1)
    assert order.comment is not None and "392" in order.comment  # the account number
    assert site.calls == ["sale.order.get", "catalog.store.list"]


async def test_a_documented_delete_event_cancels_by_its_id(
    hub: tuple[httpx.AsyncClient, SiteTask, DocumentedSite], db: Database
) -> None:
    http, task, site = hub
    await post_event(http, ON_SALE_ORDER_SAVED, **{"data[FIELDS][ID]": "236"})
    await task.apply_due()
    del site.orders[236]
    await post_event(http, ON_SALE_BEFORE_ORDER_DELETE, **{"data[FIELDS][ID]": "236"})
    await task.apply_due()

    async with db.uow_read() as uow:
        order = await uow.find_order_by_external_id(Channel.ONLINE, "236")
    assert order is not None and order.status is OrderStatus.CANCELLED


async def test_the_documented_list_row_is_caught_up_by_the_poll_once(
    hub: tuple[httpx.AsyncClient, SiteTask, DocumentedSite], db: Database
) -> None:
    _, task, site = hub
    assert await task.poll() == 1
    assert await task.poll() == 0  # the watermark is the row's dateUpdate; its version applied

    async with db.uow_read() as uow:
        order = await uow.find_order_by_external_id(Channel.ONLINE, "9")
    assert order is not None and order.status is OrderStatus.PLACED
    assert site.calls.count("sale.order.list") == 2
    assert site.calls.count("batch") == 1


async def test_the_documented_event_with_another_token_records_nothing(
    hub: tuple[httpx.AsyncClient, SiteTask, DocumentedSite],
) -> None:
    http, task, site = hub
    form = {**ON_SALE_ORDER_SAVED, "auth[application_token]": "0" * 32}
    response = await http.post("/bitrix/events", data=form)
    assert response.status_code == 401
    assert await task.apply_due() == 0
    assert site.calls == []
