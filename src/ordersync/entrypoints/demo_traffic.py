"""`ordersync demo traffic` (and `serve --demo-traffic`): a few orders a second from the three
channels against a running hub, so the dashboard shows the one order stream at work.

Each channel is a pluggable source that speaks to the hub over HTTP as that channel does:
phone orders through the API (an operator token), till sales as an Evotor cloud sends them
(PUT /evotor/.../documents, an evotor token), site orders through the API for now. A source
that finds a store short of stock restocks it (an admin receipt), and a share of the traffic
moves placed orders on (paid, shipped, handed over, cancelled), as a day in a shop does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

import httpx

from .demo_site import DemoSite

log = logging.getLogger("ordersync.demo")

FIRST = ["Анна", "Иван", "Мария", "Сергей", "Ольга", "Дмитрий", "Елена", "Павел", "Наталья",
         "Алексей", "Татьяна", "Михаил", "Юлия", "Андрей", "Ирина"]  # fmt: skip
LAST = ["Иванов", "Петров", "Смирнов", "Кузнецов", "Соколов", "Попов", "Лебедев", "Козлов",
        "Новиков", "Морозов", "Волков", "Павлов"]  # fmt: skip
STREETS = ["ул. Ленина", "пр. Мира", "ул. Гагарина", "ул. Советская", "ул. Садовая"]


@dataclass
class Network:
    """What the traffic learns from the hub at the start: its products and stores."""

    skus: list[str]
    pickup_stores: list[str]
    till_stores: list[str]
    tokens: dict[str, str]
    evotor_stores: dict[str, str] = field(default_factory=dict)  # store code -> Evotor uuid
    prices: dict[str, Decimal] = field(default_factory=dict)
    products: dict[str, tuple[str, str]] = field(default_factory=dict)  # SKU -> 1C Ид, name
    counter: int = 0

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


def customer(rng: random.Random) -> dict[str, str]:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    if first.endswith("а") or first.endswith("я"):
        last += "а"
    phone = f"+7 9{rng.randint(10, 99)} {rng.randint(100, 999)}-{rng.randint(10, 99)}-" + str(
        rng.randint(10, 99)
    )
    return {
        "name": f"{first} {last}",
        "phone": phone,
        "address": f"{rng.choice(STREETS)}, {rng.randint(1, 120)}",
    }


def lines(rng: random.Random, net: Network, most: int = 3) -> list[dict[str, Any]]:
    chosen = rng.sample(net.skus, k=min(len(net.skus), rng.randint(1, most)))
    return [{"sku": sku, "quantity": str(rng.randint(1, 2))} for sku in chosen]


class Source(Protocol):
    """One channel's traffic: sends one document to the hub, returns what it did."""

    name: str
    weight: float

    async def send(self, http: httpx.AsyncClient, rng: random.Random, net: Network) -> str: ...


@dataclass
class PhoneOrders:
    """An operator takes a call: delivery, or pickup at a shop (POST /orders)."""

    name: str = "phone"
    weight: float = 0.3

    async def send(self, http: httpx.AsyncClient, rng: random.Random, net: Network) -> str:
        body: dict[str, Any] = {"fulfillment": "delivery", "lines": lines(rng, net)}
        if net.pickup_stores and rng.random() < 0.5:
            body = {**body, "fulfillment": "pickup", "store": rng.choice(net.pickup_stores)}
        body["customer"] = customer(rng)
        return await _place(http, net, "operator", body)


@dataclass
class SiteOrders:
    """A customer orders on the site. With a demo site (`serve --demo-traffic`) the order is
    placed there and its outgoing webhook posted to POST /bitrix/events: the hub's site worker
    reads it back as from a real site. Without one (`ordersync demo traffic` against another
    hub), through the API with an online token and the site's order number as external id."""

    site: DemoSite | None = None
    name: str = "site"
    weight: float = 0.4

    async def send(self, http: httpx.AsyncClient, rng: random.Random, net: Network) -> str:
        net.counter += 1
        buyer = {**customer(rng), "email": f"buyer{rng.randint(1, 9999)}@example.ru"}
        chosen = lines(rng, net)
        if self.site is not None:
            return await self._through_the_site(http, net, chosen, buyer)
        body: dict[str, Any] = {
            "fulfillment": "delivery",
            "lines": chosen,
            "customer": buyer,
            "external_id": f"demo-site-{rng.randint(0, 10**9)}-{net.counter}",
        }
        if net.pickup_stores and rng.random() < 0.3:
            body = {**body, "fulfillment": "pickup", "store": rng.choice(net.pickup_stores)}
        return await _place(http, net, "online", body)

    async def _through_the_site(
        self,
        http: httpx.AsyncClient,
        net: Network,
        chosen: list[dict[str, Any]],
        buyer: dict[str, str],
    ) -> str:
        assert self.site is not None
        basket = [
            {
                "xml_id": net.products.get(x["sku"], ("", x["sku"]))[0],
                "name": net.products.get(x["sku"], ("", x["sku"]))[1],
                "quantity": x["quantity"],
                "price": str(net.prices.get(x["sku"], Decimal(0))),
            }
            for x in chosen
        ]
        order_id = self.site.place(basket, buyer)
        answer = await http.post("/bitrix/events", data=self.site.event(order_id))
        return f"site order {order_id}: event answered {answer.status_code}"


@dataclass
class TillSales:
    """A sale at a shop's Evotor till, as the Evotor cloud sends it: a SELL document in
    `PUT /evotor/api/v1/inventories/stores/{storeUuid}/documents` (an evotor token). Its lines
    name products by code (the SKU); the hub matches them as it matches a real till's."""

    name: str = "till"
    weight: float = 0.2

    async def send(self, http: httpx.AsyncClient, rng: random.Random, net: Network) -> str:
        if not net.evotor_stores:
            return "no till"
        net.counter += 1
        code, store_uuid = rng.choice(sorted(net.evotor_stores.items()))
        sold = lines(rng, net, most=2)
        document = evotor_sale(
            str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            net.counter,
            [
                (x["sku"], Decimal(x["quantity"]), net.prices.get(x["sku"], Decimal(0)))
                for x in sold
            ],
            datetime.now(UTC),
        )
        answer = await http.put(
            f"/evotor/api/v1/inventories/stores/{store_uuid}/documents",
            json=[document],
            headers=net.headers("evotor"),
        )
        return f"Evotor sale at {code}: {answer.status_code}"


def evotor_sale(
    document_uuid: str, number: int, sold: Sequence[tuple[str, Decimal, Decimal]], at: datetime
) -> dict[str, Any]:
    """A SELL document in the shape of evotor/documentation-api's pos-docs/02-SELL.json:
    DOCUMENT_OPEN, a REGISTER_POSITION per line, PAYMENT, DOCUMENT_CLOSE."""
    moment = at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}+0000"
    total = sum((q * p for _, q, p in sold), Decimal(0))
    tx = {"creationDate": moment, "userUuid": DEMO_CASHIER, "uuid": None}
    positions = [
        {
            **tx,
            "id": str(i + 2),
            "type": "REGISTER_POSITION",
            "commodityUuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"ordersync-demo:{sku}")),
            "commodityCode": sku,
            "commodityName": sku,
            "measureName": "шт",
            "quantity": str(qty),
            "price": str(price),
            "resultPrice": str(price),
            "sum": str(qty * price),
            "resultSum": str(qty * price),
        }
        for i, (sku, qty, price) in enumerate(sold)
    ]
    return {
        "uuid": document_uuid,
        "type": "SELL",
        "number": number,
        "openDate": moment,
        "closeDate": moment,
        "deviceUuid": DEMO_TILL,
        "sessionUUID": DEMO_SESSION,
        "openUserUuid": DEMO_CASHIER,
        "closeUserUuid": DEMO_CASHIER,
        "closeSum": str(total),
        "closeResultSum": str(total),
        "version": "V1",
        "transactions": [
            {**tx, "id": "1", "type": "DOCUMENT_OPEN"},
            *positions,
            {**tx, "id": "98", "type": "PAYMENT", "paymentType": "CARD", "sum": str(total)},
            {**tx, "id": "99", "type": "DOCUMENT_CLOSE", "sum": str(total)},
        ],
    }


DEMO_TILL = "20200101-0000-4000-8000-00000000d001"
DEMO_SESSION = "20200101-0000-4000-8000-00000000d0a1"
DEMO_CASHIER = "20200101-0000-4000-8000-00000000d0c1"


@dataclass
class OrderLife:
    """Orders move on: paid, shipped, handed over, now and then cancelled."""

    name: str = "life"
    weight: float = 0.25

    async def send(self, http: httpx.AsyncClient, rng: random.Random, net: Network) -> str:
        found = await http.get(
            "/orders",
            params={"status": "placed", "order": "newest", "limit": 30},
            headers=net.headers("operator"),
        )
        if found.status_code != 200 or not found.json()["orders"]:
            return "nothing to move on"
        order = rng.choice(found.json()["orders"])
        if order["channel"] == "pos":
            return "till order"
        if order["payment_status"] == "unpaid" and rng.random() < 0.6:
            action = "pay"
        else:
            action = rng.choices(["ship", "complete", "cancel"], weights=[3, 3, 1])[0]
            if order["fulfillment"] == "pickup" and action == "ship":
                action = "complete"
        answer = await http.post(f"/orders/{order['id']}/{action}", headers=net.headers("operator"))
        return f"order {order['number']} {action}: {answer.status_code}"


def default_sources(site: DemoSite | None = None) -> list[Source]:
    return [SiteOrders(site), PhoneOrders(), TillSales(), OrderLife()]


async def _place(http: httpx.AsyncClient, net: Network, role: str, body: dict[str, Any]) -> str:
    answer = await http.post("/orders", json=body, headers=net.headers(role))
    if answer.status_code == 409:
        store = body.get("store")
        targets = [store] if store else ["WH1", *net.pickup_stores]
        for code in dict.fromkeys(t for t in targets if t):
            await _restock(http, net, code, [x["sku"] for x in body["lines"]])
        return f"{role} order refused for stock: restocked"
    if answer.status_code != 201:
        return f"{role} order: {answer.status_code}"
    return f"{role} order {answer.json()['number']}"


async def _restock(http: httpx.AsyncClient, net: Network, store: str, skus: Sequence[str]) -> None:
    net.counter += 1
    body = {
        "store": store,
        "document_id": f"DEMO-RESTOCK-{net.counter}-{random.randint(0, 10**9)}",
        "lines": [{"sku": sku, "quantity": "20"} for sku in skus],
    }
    await http.post("/stock/receipts", json=body, headers=net.headers("admin"))


async def learn(http: httpx.AsyncClient, tokens: dict[str, str]) -> Network:
    headers = {"Authorization": f"Bearer {tokens['admin']}"}
    products = (await http.get("/products", params={"limit": 500}, headers=headers)).json()
    stores = (await http.get("/stores", headers=headers)).json()
    rows = stores["stores"] if isinstance(stores, dict) else stores
    items = products["products"] if isinstance(products, dict) else products
    return Network(
        skus=[p["sku"] for p in items if p.get("active", True) and p.get("price")],
        pickup_stores=[s["code"] for s in rows if s["is_pickup_point"]],
        till_stores=[s["code"] for s in rows if s["kind"] == "shop"][:1],
        tokens=tokens,
        evotor_stores={
            s["code"]: s["evotor_uuid"] for s in rows if s.get("evotor_uuid") and "evotor" in tokens
        },
        prices={p["sku"]: Decimal(p["price"]) for p in items if p.get("price")},
        products={p["sku"]: (p.get("xml_id") or "", p.get("name") or p["sku"]) for p in items},
    )


@dataclass
class Traffic:
    base_url: str
    tokens: dict[str, str]
    rate: float = 3.0  # documents a second
    sources: list[Source] = field(default_factory=default_sources)
    seed: int | None = None
    sent: int = 0
    transport: httpx.AsyncBaseTransport | None = None  # tests: the app in-process

    async def run(self, stop: asyncio.Event, limit: int | None = None) -> int:
        rng = random.Random(self.seed)
        async with httpx.AsyncClient(
            base_url=self.base_url, timeout=10, transport=self.transport
        ) as http:
            net = await learn(http, self.tokens)
            if not net.skus:
                log.warning("demo traffic: the hub has no products with a price")
                return 0
            weights = [s.weight for s in self.sources]
            while not stop.is_set() and (limit is None or self.sent < limit):
                source = rng.choices(self.sources, weights=weights)[0]
                try:
                    log.info("demo traffic: %s", await source.send(http, rng, net))
                except httpx.HTTPError as exc:
                    log.warning("demo traffic: %s: %s", source.name, exc)
                self.sent += 1
                delay = rng.expovariate(self.rate) if self.rate > 0 else 0
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=min(delay, 5.0))
        return self.sent


def in_background(traffic: Traffic) -> threading.Thread:
    """Runs the traffic beside a server in this process, on its own loop, until exit."""

    def work() -> None:
        try:
            asyncio.run(traffic.run(asyncio.Event()))
        except Exception:
            log.exception("demo traffic stopped")

    thread = threading.Thread(target=work, name="ordersync-demo-traffic", daemon=True)
    thread.start()
    return thread
