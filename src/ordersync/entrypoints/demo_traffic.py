"""`ordersync demo traffic` (and `serve --demo-traffic`): a few orders a second from the three
channels against a running hub, so the dashboard shows the one order stream at work.

Each channel is a pluggable source that speaks to the hub over HTTP as that channel does:
phone orders through the API (an operator token), site orders and till sales through the
API too for now. The site's intake (POST /bitrix/events, issue 10) and the Evotor intake
(/evotor, issue 9) replace SiteOrders and TillSales by sources that post the documents those
systems send; nothing else changes. A source that finds a store short of stock restocks it
(an admin receipt), and a share of the traffic moves placed orders on (paid, shipped,
handed over, cancelled), as a day in a shop does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

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
    """A customer orders on the site. Today through the API with an online token and the
    site's order number as external id; issue 10's intake (POST /bitrix/events) takes over."""

    name: str = "site"
    weight: float = 0.4

    async def send(self, http: httpx.AsyncClient, rng: random.Random, net: Network) -> str:
        net.counter += 1
        body: dict[str, Any] = {
            "fulfillment": "delivery",
            "lines": lines(rng, net),
            "customer": {**customer(rng), "email": f"buyer{rng.randint(1, 9999)}@example.ru"},
            "external_id": f"demo-site-{rng.randint(0, 10**9)}-{net.counter}",
        }
        if net.pickup_stores and rng.random() < 0.3:
            body = {**body, "fulfillment": "pickup", "store": rng.choice(net.pickup_stores)}
        return await _place(http, net, "online", body)


@dataclass
class TillSales:
    """A sale at a shop's till (POST /pos/sales). Issue 9's Evotor intake takes over."""

    name: str = "till"
    weight: float = 0.2

    async def send(self, http: httpx.AsyncClient, rng: random.Random, net: Network) -> str:
        if not net.till_stores:
            return "no till"
        net.counter += 1
        store = rng.choice(net.till_stores)
        sold = lines(rng, net, most=2)
        body = {
            "store": store,
            "pos_id": "DEMO-1",
            "transaction_id": f"demo-{rng.randint(0, 10**9)}-{net.counter}",
            "lines": sold,
        }
        answer = await http.post("/pos/sales", json=body, headers=net.headers("pos"))
        if answer.status_code == 409:
            await _restock(http, net, store, [x["sku"] for x in sold])
        return f"till sale at {store}: {answer.status_code}"


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


def default_sources() -> list[Source]:
    return [SiteOrders(), PhoneOrders(), TillSales(), OrderLife()]


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
    )


@dataclass
class Traffic:
    base_url: str
    tokens: dict[str, str]
    rate: float = 3.0  # documents a second
    sources: list[Source] = field(default_factory=default_sources)
    seed: int | None = None
    sent: int = 0

    async def run(self, stop: asyncio.Event, limit: int | None = None) -> int:
        rng = random.Random(self.seed)
        async with httpx.AsyncClient(base_url=self.base_url, timeout=10) as http:
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
