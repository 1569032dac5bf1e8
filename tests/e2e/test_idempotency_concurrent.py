"""One Idempotency-Key sent several times at once, on every write: one request does the work,
the others wait for it and answer its response byte for byte, with Idempotent-Replay: true.
On PostgreSQL the requests really run at the same time (asyncio.gather through the ASGI app)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest

from ordersync.db.unit_of_work import Database
from tests import support
from tests.e2e.helpers import bearer, delivery, expect, level, line, movements, placed, stock_doc

STOCK = {"WH1": {"TEA": 20, "COFFEE": 10}, "S01": {"TEA": 10}}
AT_ONCE = 4

# (name, role, method, path, body); a path may name "{order}", an order placed beforehand.
Write = tuple[str, str, str, str, dict[str, Any] | None]

WRITES: list[Write] = [
    ("create a store", "admin", "POST", "/stores", {"code": "S09", "name": "New", "kind": "shop"}),
    ("change a store", "admin", "PATCH", "/stores/S02", {"safety_stock": "2"}),
    ("create a product", "admin", "POST", "/products", {"sku": "NEW", "name": "New"}),
    ("change a product", "admin", "PATCH", "/products/{tea}", {"price": "120.00"}),
    ("place an order", "online", "POST", "/orders", delivery(line("TEA", 2))),
    ("pay an order", "online", "POST", "/orders/{order}/pay", None),
    ("cancel an order", "online", "POST", "/orders/{order}/cancel", None),
    ("ship an order", "operator", "POST", "/orders/{order}/ship", None),
    ("complete an order", "operator", "POST", "/orders/{order}/complete", None),
    (
        "record a till sale",
        "pos",
        "POST",
        "/pos/sales",
        {"store": "S01", "pos_id": "T1", "transaction_id": "s-1", "lines": [line("TEA", 1)]},
    ),
    (
        "record a till return",
        "pos",
        "POST",
        "/pos/returns",
        {
            "store": "S01",
            "pos_id": "T1",
            "transaction_id": "r-1",
            "original_transaction_id": "s-0",
            "lines": [line("TEA", 1)],
        },
    ),
    ("receive stock", "admin", "POST", "/stock/receipts", stock_doc("WH1", "R-1", line("TEA", 5))),
    (
        "write stock off",
        "admin",
        "POST",
        "/stock/write-offs",
        stock_doc("WH1", "W-1", line("TEA", 1)),
    ),
    ("count stock", "admin", "POST", "/stock/counts", stock_doc("WH1", "C-1", line("TEA", 7))),
    (
        "transfer stock",
        "admin",
        "POST",
        "/stock/transfers",
        {"from_store": "WH1", "to_store": "S02", "document_id": "T-1", "lines": [line("TEA", 3)]},
    ),
]


@pytest.fixture
async def net(db: Database) -> support.Network:
    return await support.seed_network(db, STOCK)


async def _prepare(client: httpx.AsyncClient, net: support.Network, write: Write) -> str:
    """The path to send, after placing the order or the sale the write needs."""
    _, _, _, path, _ = write
    if "{order}" in path:
        order = await placed(client, net.tokens["online"], delivery(line("COFFEE", 1)))
        path = path.replace("{order}", order["id"])
    if write[3] == "/pos/returns":
        sale = {"store": "S01", "pos_id": "T1", "transaction_id": "s-0", "lines": [line("TEA", 2)]}
        pos = bearer(net.tokens["pos"])
        expect(await client.post("/pos/sales", json=sale, headers=pos), 201)
    return path.replace("{tea}", str(net.products["TEA"]))


async def _at_once(
    count: int, send: Callable[[], Awaitable[httpx.Response]]
) -> list[httpx.Response]:
    return list(await asyncio.gather(*(send() for _ in range(count))))


@pytest.mark.parametrize("write", WRITES, ids=[w[0] for w in WRITES])
async def test_concurrent_requests_with_one_key_get_the_first_response_byte_for_byte(
    client: httpx.AsyncClient, net: support.Network, write: Write
) -> None:
    name, role, method, _, body = write
    path = await _prepare(client, net, write)
    headers = bearer(net.tokens[role], **{"Idempotency-Key": f"key-{name}"})

    async def send() -> httpx.Response:
        return await client.request(method, path, json=body, headers=headers)

    responses = await _at_once(AT_ONCE, send)
    statuses = [r.status_code for r in responses]
    assert statuses[0] in (200, 201) and len(set(statuses)) == 1, [r.text for r in responses]
    assert len({r.content for r in responses}) == 1, [r.text for r in responses]
    replays = sorted(r.headers.get("idempotent-replay", "") for r in responses)
    assert replays == [""] + ["true"] * (AT_ONCE - 1)
    later = await send()
    assert (later.status_code, later.content) == (statuses[0], responses[0].content)
    assert later.headers.get("idempotent-replay") == "true"


async def test_a_receipt_sent_at_once_under_one_key_adds_its_stock_once(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    admin = net.tokens["admin"]
    headers = bearer(admin, **{"Idempotency-Key": "receipt-once"})
    body = stock_doc("WH1", "R-9", line("COFFEE", 4))
    responses = await _at_once(
        AT_ONCE, lambda: client.post("/stock/receipts", json=body, headers=headers)
    )
    assert {r.status_code for r in responses} == {201}
    assert await level(client, admin, "COFFEE", "WH1") == (Decimal(14), Decimal(0), Decimal(14))
    assert [m["document_id"] for m in await movements(client, admin, "COFFEE")].count("R-9") == 1


async def test_one_key_sent_at_once_with_two_bodies_answers_the_second_422(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    headers = bearer(net.tokens["admin"], **{"Idempotency-Key": "store-twice"})
    first, second = await asyncio.gather(
        client.post("/stores", json={"code": "A1", "name": "A", "kind": "shop"}, headers=headers),
        client.post("/stores", json={"code": "B1", "name": "B", "kind": "shop"}, headers=headers),
    )
    statuses = sorted([first.status_code, second.status_code])
    assert statuses == [201, 422], (first.text, second.text)
    refused = first if first.status_code == 422 else second
    assert refused.json()["error"] == "idempotency_key_reused"
