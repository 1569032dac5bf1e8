"""Helpers for the end-to-end tests: headers, request bodies, and reads of the state over HTTP."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx

SKUS = ("TEA", "COFFEE", "SUGAR", "MUG")


def bearer(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


def line(sku: str, quantity: Any, **extra: Any) -> dict[str, Any]:
    return {"sku": sku, "quantity": quantity, **extra}


def delivery(*lines: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"fulfillment": "delivery", "lines": list(lines), **extra}


def pickup(store: str, *lines: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"fulfillment": "pickup", "store": store, "lines": list(lines), **extra}


def stock_doc(store: str, document_id: str, *lines: dict[str, Any]) -> dict[str, Any]:
    return {"store": store, "document_id": document_id, "lines": list(lines)}


def sale(
    store: str, transaction_id: str, *lines: dict[str, Any], pos_id: str = "T1"
) -> dict[str, Any]:
    return {
        "store": store,
        "pos_id": pos_id,
        "transaction_id": transaction_id,
        "lines": list(lines),
    }


def expect(response: httpx.Response, status: int, error: str | None = None) -> dict[str, Any]:
    """The JSON body, after checking the status (and the error code, for a refusal)."""
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    body: dict[str, Any] = response.json()
    if error is not None:
        assert body.get("error") == error, body
    return body


async def place(
    client: httpx.AsyncClient, token: str, body: dict[str, Any], **headers: str
) -> httpx.Response:
    return await client.post("/orders", json=body, headers=bearer(token, **headers))


async def placed(client: httpx.AsyncClient, token: str, body: dict[str, Any]) -> dict[str, Any]:
    return expect(await place(client, token, body), 201)


async def levels(
    client: httpx.AsyncClient, token: str, sku: str
) -> dict[str, tuple[Decimal, Decimal, Decimal]]:
    """(on_hand, reserved, available) by store code, as GET /stock shows them."""
    body = expect(await client.get("/stock", params={"sku": sku}, headers=bearer(token)), 200)
    return {
        x["store"]: (Decimal(x["on_hand"]), Decimal(x["reserved"]), Decimal(x["available"]))
        for x in body["levels"]
    }


async def level(
    client: httpx.AsyncClient, token: str, sku: str, store: str
) -> tuple[Decimal, Decimal, Decimal]:
    return (await levels(client, token, sku)).get(store, (Decimal(0), Decimal(0), Decimal(0)))


async def movements(
    client: httpx.AsyncClient, token: str, sku: str, **params: Any
) -> list[dict[str, Any]]:
    response = await client.get(
        "/stock/movements", params={"sku": sku, **params}, headers=bearer(token)
    )
    result: list[dict[str, Any]] = expect(response, 200)["movements"]
    return result


async def orders(client: httpx.AsyncClient, token: str, **params: Any) -> list[dict[str, Any]]:
    response = await client.get("/orders", params={"limit": 500, **params}, headers=bearer(token))
    result: list[dict[str, Any]] = expect(response, 200)["orders"]
    return result


async def snapshot(client: httpx.AsyncClient, token: str) -> dict[str, Any]:
    """Everything a refused request must leave alone: stock levels, movements, orders."""
    state: dict[str, Any] = {}
    for sku in SKUS:
        state[f"stock {sku}"] = await levels(client, token, sku)
        state[f"movements {sku}"] = [m["id"] for m in await movements(client, token, sku)]
    state["orders"] = [
        (o["id"], o["status"], o["payment_status"]) for o in await orders(client, token)
    ]
    return state
