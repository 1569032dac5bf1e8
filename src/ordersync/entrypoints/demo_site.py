"""A stand-in 1C-Bitrix site for `serve --demo-traffic`, so the demo's site orders come in
the way a real site's do: the customer's order is kept here, the site's outgoing webhook is
POSTed to the hub's `/bitrix/events`, and the hub's site worker reads the order back with
`sale.order.get` (and catches up with `sale.order.list`).

It answers only what the hub's intake calls, in the shapes of bitrix24/b24restdocs
(sale-order-get.md, sale-order-list.md, batch.md, catalog-store-list.md): `sale.order.get`,
`sale.order.list` (filter `>=dateUpdate`, pages of 50 by `start`), `batch`,
`catalog.store.list` (no stores: the demo's site orders are deliveries) and
`sale.order.update` (a status). Anything else is `ERROR_METHOD_NOT_FOUND`. It listens on
127.0.0.1 on a free port, in a thread of the serving process."""

from __future__ import annotations

import json
import secrets
import threading
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

PAGE = 50
MSK = timezone(timedelta(hours=3))
DELIVERY_ID = 2  # a courier service; the site's pickup services are not used by the demo


class DemoSite:
    """Orders placed on the demo site, and the REST server that answers for them."""

    def __init__(self) -> None:
        self.token = secrets.token_urlsafe(24)  # the outgoing webhook's application token
        self._code = secrets.token_hex(8)
        self._orders: dict[int, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._next_id = 1000
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        """The incoming webhook's base URL, as `[bitrix] url` takes it."""
        assert self._server is not None, "start the site first"
        return f"http://127.0.0.1:{self._server.server_port}/rest/1/{self._code}/"

    def start(self) -> DemoSite:
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = min(int(self.headers.get("Content-Length") or 0), 1_000_000)
                status, body = site.answer(self.path, self.rfile.read(length))
                data = json.dumps(body, ensure_ascii=False).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(
            target=self._server.serve_forever, name="ordersync-demo-site", daemon=True
        )
        thread.start()
        return self

    def place(self, lines: list[dict[str, Any]], customer: dict[str, str]) -> int:
        """A customer's order; `lines` as [{"xml_id", "name", "quantity", "price"}]."""
        with self._lock:
            self._next_id += 1
            order_id = self._next_id
            now = datetime.now(MSK).replace(microsecond=0).isoformat()
            total = sum((Decimal(x["price"]) * Decimal(x["quantity"]) for x in lines), Decimal(0))
            properties = {
                "FIO": customer.get("name", ""),
                "PHONE": customer.get("phone", ""),
                "EMAIL": customer.get("email", ""),
                "ADDRESS": customer.get("address", ""),
            }
            self._orders[order_id] = {
                "id": order_id,
                "accountNumber": f"{order_id}",
                "xmlId": "",
                "version": 1,
                "lid": "s1",
                "statusId": "N",
                "payed": "N",
                "canceled": "N",
                "deducted": "N",
                "dateInsert": now,
                "dateUpdate": now,
                "currency": "RUB",
                "price": float(total),
                "personTypeId": 1,
                "userId": 1,
                "comments": "",
                "userDescription": "",
                "basketItems": [
                    {
                        "id": order_id * 10 + n,
                        "productId": 0,
                        "productXmlId": x["xml_id"],
                        "name": x["name"],
                        "quantity": float(Decimal(x["quantity"])),
                        "price": float(Decimal(x["price"])),
                        "currency": "RUB",
                    }
                    for n, x in enumerate(lines, start=1)
                ],
                "payments": [{"id": order_id, "paySystemId": 1, "paid": "N", "sum": float(total)}],
                "shipments": [
                    {
                        "id": order_id,
                        "system": "N",
                        "deliveryId": DELIVERY_ID,
                        "allowDelivery": "N",
                        "deducted": "N",
                    },
                ],
                "propertyValues": [
                    {"code": code, "value": value} for code, value in properties.items() if value
                ],
            }
            return order_id

    def event(self, order_id: int) -> dict[str, str]:
        """The outgoing webhook's form for a saved order (on-sale-order-saved.md)."""
        return {
            "event": "ONSALEORDERSAVED",
            "event_handler_id": "1",
            "data[FIELDS][ID]": str(order_id),
            "ts": str(int(datetime.now(UTC).timestamp())),
            "auth[domain]": "demo-shop.local",
            "auth[client_endpoint]": self.url,
            "auth[member_id]": self._code,
            "auth[application_token]": self.token,
        }

    # --- the REST answers ------------------------------------------------------------------

    def answer(self, path: str, raw: bytes) -> tuple[int, dict[str, Any]]:
        prefix = f"/rest/1/{self._code}/"
        if not path.startswith(prefix) or not path.endswith(".json"):
            return 401, {"error": "INVALID_CREDENTIALS", "error_description": "wrong webhook"}
        try:
            params = json.loads(raw or b"{}")
        except ValueError:
            return 400, {"error": "INVALID_REQUEST", "error_description": "not JSON"}
        method = path[len(prefix) : -len(".json")]
        if method == "batch":
            return 200, {"result": self._batch(params.get("cmd") or {}), "time": {}}
        return self._call(method, params)

    def _call(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            if method == "sale.order.get":
                order = self._orders.get(int(params.get("id") or 0))
                if order is None:
                    return 400, {"error": 200540400001, "error_description": "order not found"}
                return 200, {"result": {"order": order}, "time": {}}
            if method == "sale.order.list":
                return 200, self._list(params)
            if method == "sale.order.update":
                order = self._orders.get(int(params.get("id") or 0))
                if order is None:
                    return 400, {"error": 200540400001, "error_description": "order not found"}
                status = (params.get("fields") or {}).get("statusId")
                if status:
                    order["statusId"] = str(status)
                    order["version"] += 1
                    order["dateUpdate"] = datetime.now(MSK).replace(microsecond=0).isoformat()
                return 200, {"result": {"order": order}, "time": {}}
            if method == "catalog.store.list":
                return 200, {"result": {"stores": []}, "total": 0, "time": {}}
        return 404, {"error": "ERROR_METHOD_NOT_FOUND", "error_description": "Method not found!"}

    def _list(self, params: dict[str, Any]) -> dict[str, Any]:
        since = (params.get("filter") or {}).get(">=dateUpdate")
        rows = sorted(self._orders.values(), key=lambda o: (o["dateUpdate"], o["id"]))
        if since:
            floor = datetime.fromisoformat(str(since))
            if floor.tzinfo is None:  # the site's own time zone, as Bitrix reads it
                floor = floor.replace(tzinfo=MSK)
            rows = [o for o in rows if datetime.fromisoformat(o["dateUpdate"]) >= floor]
        start = int(params.get("start") or 0)
        page = rows[start : start + PAGE]
        body: dict[str, Any] = {
            "result": {
                "orders": [
                    {k: o[k] for k in ("id", "version", "dateUpdate", "xmlId")} for o in page
                ]
            },
            "total": len(rows),
            "time": {},
        }
        if start + PAGE < len(rows):
            body["next"] = start + PAGE
        return body

    def _batch(self, commands: dict[str, str]) -> dict[str, Any]:
        results: dict[str, Any] = {}
        errors: dict[str, Any] = {}
        for key, command in commands.items():
            method, _, query = str(command).partition("?")
            status, body = self._call(method, dict(parse_qsl(query)))
            if status == 200:
                results[key] = body["result"]
            else:
                errors[key] = body
        return {"result": results, "result_error": errors or [], "result_total": [],
                "result_next": [], "result_time": {}}  # fmt: skip
