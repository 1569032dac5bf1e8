"""A 1C-Bitrix site's REST API at the protocol level, as an httpx.MockTransport handler.

It speaks as the digest in shared/spec/bitrix-rest.md describes: incoming-webhook URLs
`/rest/<user>/<code>/<method>.json`, JSON bodies, the success envelope (`result`, `time`, and
`total` for lists), error envelopes with numeric codes (sale/catalog, HTTP 400) or string codes
(system errors: QUERY_LIMIT_EXCEEDED with 503, ERROR_METHOD_NOT_FOUND with 404), and `batch`
(`halt`, `cmd` of at most 50 `method?query` strings in PHP's nested query form, `$result[...]`
references to earlier commands, always HTTP 200 with `result_error`).

It keeps what the sink changes: per-store physical amounts (`b_catalog_store_product.AMOUNT`),
store documents (added as drafts, applied on conduct) and order statuses. Anything a real site
would not accept as a request shape raises ProtocolError, which fails the test.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

import httpx

BATCH_LIMIT = 50
PAGE = 50
REF = re.compile(r"^\$result\[([^\]]+)\]((?:\[[^\]]*\])*)$")


class ProtocolError(AssertionError):
    """The client sent something a Bitrix site would not understand."""


class SimError(Exception):
    def __init__(self, code: int | str, description: str, status: int = 400) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description
        self.status = status

    def envelope(self) -> dict[str, Any]:
        return {"error": self.code, "error_description": self.description}


def parse_php_query(query: str) -> dict[str, Any]:
    """PHP's parse_str: `a[b][0]=x&a[b][1]=y` -> {"a": {"b": ["x", "y"]}}; every value a string."""
    root: dict[str, Any] = {}
    for raw_key, value in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
        match = re.match(r"^([^\[]+)((?:\[[^\]]*\])*)$", raw_key)
        if not match:
            raise ProtocolError(f"query key PHP would not parse as intended: {raw_key!r}")
        parts = [match.group(1), *re.findall(r"\[([^\]]*)\]", match.group(2))]
        node = root
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ProtocolError(f"query key {raw_key!r} both scalar and nested")
            node = child
        last = parts[-1]
        if last == "":
            last = str(len(node))
        node[last] = value
    parsed: dict[str, Any] = _listify(root)
    return parsed


def _listify(value: Any) -> Any:
    if isinstance(value, dict):
        converted = {k: _listify(v) for k, v in value.items()}
        if converted and all(k.isdigit() for k in converted):
            keys = sorted(converted, key=int)
            if keys == [str(i) for i in range(len(keys))]:
                return [converted[k] for k in keys]
        return converted
    return value


def _num(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def _int(value: Any, what: str) -> int:
    try:
        return int(str(value))
    except ValueError as exc:
        raise SimError(0, f"{what} must be an integer, got {value!r}") from exc


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


@dataclass
class Document:
    id: int
    doc_type: str
    currency: str
    responsible_id: int
    status: str = "N"  # N draft, Y conducted
    elements: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    in_batch: str | None  # the batch key, or None for a direct call


class BitrixSim:
    ORDER_STATUSES = ("N", "P", "F", "DN", "DF")

    def __init__(
        self,
        user: str = "1",
        code: str = "hook0secret",
        iblock_id: int = 14,
        direct_amounts: bool = False,
    ) -> None:
        self.user = user
        self.code = code
        self.iblock_id = iblock_id
        self.direct_amounts = direct_amounts  # publishes catalog.storeproduct.add/update
        self.products: dict[int, str] = {}  # id -> xmlId
        self.stores: dict[int, str] = {}
        self.amounts: dict[tuple[int, int], Decimal] = {}
        self.reserved: dict[tuple[int, int], Decimal] = {}
        self.row_ids: dict[tuple[int, int], int] = {}
        self.documents: dict[int, Document] = {}
        self.orders: dict[int, dict[str, Any]] = {}
        self.calls: list[Call] = []
        self.http_requests = 0
        self.batch_sizes: list[int] = []
        self._limited = 0
        self._failures: list[tuple[str, SimError]] = []
        self._next_id = 1000

    # --- setup and control ----------------------------------------------------------------

    @property
    def webhook_url(self) -> str:
        return f"https://shop.example/rest/{self.user}/{self.code}/"

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handler)

    def add_product(self, product_id: int, xml_id: str) -> None:
        self.products[product_id] = xml_id

    def add_store(self, store_id: int, xml_id: str) -> None:
        self.stores[store_id] = xml_id

    def set_amount(self, product_id: int, store_id: int, amount: Decimal | int) -> None:
        self.amounts[(product_id, store_id)] = Decimal(amount)
        self.row_ids.setdefault((product_id, store_id), self._new_id())

    def amount(self, product_id: int, store_id: int) -> Decimal | None:
        return self.amounts.get((product_id, store_id))

    def add_order(self, order_id: int, status_id: str = "N") -> None:
        self.orders[order_id] = {"id": order_id, "statusId": status_id, "canceled": "N"}

    def rate_limit(self, next_requests: int) -> None:
        """The next N HTTP requests get 503 QUERY_LIMIT_EXCEEDED."""
        self._limited = next_requests

    def fail_next(
        self, method: str, code: int | str, description: str = "", status: int = 400
    ) -> None:
        """The next call of `method` (direct or in a batch) answers this error."""
        self._failures.append((method, SimError(code, description, status)))

    def methods_called(self) -> list[str]:
        return [c.method for c in self.calls]

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    # --- HTTP -----------------------------------------------------------------------------

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.http_requests += 1
        if request.method != "POST":
            raise ProtocolError(f"{request.method} {request.url}: the client posts")
        match = re.fullmatch(r"/rest/([^/]+)/([^/]+)/([a-z0-9_.]+)\.json", request.url.path)
        if not match:
            raise ProtocolError(f"not a webhook method URL: {request.url.path}")
        user, code, method = match.groups()
        if (user, code) != (self.user, self.code):
            return self._error(SimError("INVALID_CREDENTIALS", "Invalid request credentials", 401))
        if "application/json" not in request.headers.get("content-type", ""):
            raise ProtocolError(f"{method}: body is not JSON")
        try:
            params = json.loads(request.content or b"{}")
        except ValueError as exc:
            raise ProtocolError(f"{method}: body does not parse as JSON") from exc
        if not isinstance(params, dict):
            raise ProtocolError(f"{method}: JSON body must be an object")
        if self._limited > 0:
            self._limited -= 1
            return self._error(SimError("QUERY_LIMIT_EXCEEDED", "Too many requests", 503))
        start = time.time()
        try:
            if method == "batch":
                result = self._batch(params)
                return self._ok({"result": result}, start)
            self.calls.append(Call(method, params, None))
            result, total = self._dispatch(method, params)
        except SimError as exc:
            return self._error(exc)
        body: dict[str, Any] = {"result": result}
        if total is not None:
            body["total"] = total
        return self._ok(body, start)

    def _ok(self, body: dict[str, Any], start: float) -> httpx.Response:
        finish = time.time()
        body["time"] = {
            "start": start,
            "finish": finish,
            "duration": finish - start,
            "processing": finish - start,
            "date_start": "2026-01-01T00:00:00+03:00",
            "date_finish": "2026-01-01T00:00:00+03:00",
        }
        return httpx.Response(200, json=body)

    def _error(self, exc: SimError) -> httpx.Response:
        return httpx.Response(exc.status, json=exc.envelope())

    # --- batch ----------------------------------------------------------------------------

    def _batch(self, params: dict[str, Any]) -> dict[str, Any]:
        if "halt" not in params or str(params["halt"]) not in ("0", "1"):
            raise ProtocolError(f"batch without halt 0/1: {params.get('halt')!r}")
        cmd = params.get("cmd")
        if not isinstance(cmd, dict) or not cmd:
            raise ProtocolError("batch without a cmd object")
        self.batch_sizes.append(len(cmd))
        if len(cmd) > BATCH_LIMIT:
            raise SimError("ERROR_BATCH_LENGTH_EXCEEDED", "Max batch length exceeded", 400)
        halt = str(params["halt"]) == "1"
        out: dict[str, Any] = {
            "result": {},
            "result_error": {},
            "result_total": {},
            "result_next": {},
            "result_time": {},
        }
        for key, text in cmd.items():
            if not isinstance(text, str) or not re.fullmatch(r"[a-z0-9_.]+(\?.*)?", text, re.S):
                raise ProtocolError(f"batch command {key!r} is not 'method?query': {text!r}")
            method, _, query = text.partition("?")
            if method == "batch":
                raise ProtocolError("batch inside batch")
            try:
                call = Call(method, parse_php_query(query), key)
                self.calls.append(call)  # recorded even when a reference fails to resolve
                call.params = self._resolve(call.params, out, key)
                result, total = self._dispatch(method, call.params)
            except SimError as exc:
                out["result_error"][key] = exc.envelope()
                if halt:
                    break
                continue
            out["result"][key] = result
            if total is not None:
                out["result_total"][key] = total
        for name in ("result", "result_error", "result_total", "result_next", "result_time"):
            if not out[name]:
                out[name] = []  # PHP's empty array
        return out

    def _resolve(self, value: Any, out: dict[str, Any], key: str) -> Any:
        if isinstance(value, dict):
            return {k: self._resolve(v, out, key) for k, v in value.items()}
        if isinstance(value, list):
            return [self._resolve(v, out, key) for v in value]
        done = out["result"]
        if isinstance(value, str) and value.startswith("$result"):
            match = REF.match(value)
            if not match:
                raise ProtocolError(f"{key}: malformed reference {value!r}")
            ref_key, path = match.group(1), re.findall(r"\[([^\]]*)\]", match.group(2))
            if ref_key in out["result_error"]:
                # Bitrix leaves the reference unresolved: the command fails on it
                raise SimError(0, f"{value} could not be resolved")
            if ref_key not in done:
                raise ProtocolError(f"{key}: {value!r} refers to no earlier successful command")
            node: Any = done[ref_key]
            for part in path:
                if isinstance(node, dict) and part in node:
                    node = node[part]
                elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                    node = node[int(part)]
                else:
                    raise ProtocolError(f"{key}: {value!r}: no {part!r} in {ref_key}'s result")
            return str(node)
        return value

    # --- methods --------------------------------------------------------------------------

    def _dispatch(self, method: str, params: dict[str, Any]) -> tuple[Any, int | None]:
        for index, (name, error) in enumerate(self._failures):
            if name == method:
                del self._failures[index]
                raise error
        handler = {
            "catalog.product.list": self._product_list,
            "catalog.store.list": self._store_list,
            "catalog.storeproduct.list": self._storeproduct_list,
            "catalog.document.add": self._document_add,
            "catalog.document.element.add": self._element_add,
            "catalog.document.conduct": self._conduct,
            "sale.order.update": self._order_update,
        }.get(method)
        if handler is None and self.direct_amounts:
            handler = {
                "catalog.storeproduct.add": self._storeproduct_add,
                "catalog.storeproduct.update": self._storeproduct_update,
            }.get(method)
        if handler is None:
            raise SimError("ERROR_METHOD_NOT_FOUND", "Method not found!", 404)
        return handler(params)

    @staticmethod
    def _filter(params: dict[str, Any]) -> dict[str, Any]:
        flt = params.get("filter", {})
        if not isinstance(flt, dict):
            raise SimError(0, "filter must be an object")
        return flt

    @staticmethod
    def _page(rows: list[dict[str, Any]], params: dict[str, Any]) -> tuple[list[Any], int]:
        start = int(str(params.get("start", 0) or 0))
        return rows[start : start + PAGE], len(rows)

    def _product_list(self, params: dict[str, Any]) -> tuple[Any, int | None]:
        flt = self._filter(params)
        if "iblockId" not in flt:
            raise SimError(0, "Required filter field iblockId is missing")
        select = _as_list(params.get("select", []))
        if "id" not in select or "iblockId" not in select:
            raise SimError(0, "Required select fields: id, iblockId")
        if _int(flt["iblockId"], "iblockId") != self.iblock_id:
            return {"products": []}, 0
        wanted = {str(x) for x in _as_list(flt.get("xmlId", []))} if "xmlId" in flt else None
        rows = [
            {"id": pid, "iblockId": self.iblock_id, "xmlId": xml}
            for pid, xml in sorted(self.products.items())
            if wanted is None or xml in wanted
        ]
        page, total = self._page(rows, params)
        return {"products": page}, total

    def _store_list(self, params: dict[str, Any]) -> tuple[Any, int | None]:
        flt = self._filter(params)
        wanted = {str(x) for x in _as_list(flt["xmlId"])} if "xmlId" in flt else None
        rows = [
            {"id": sid, "xmlId": xml, "title": f"Store {sid}", "active": "Y"}
            for sid, xml in sorted(self.stores.items())
            if wanted is None or xml in wanted
        ]
        page, total = self._page(rows, params)
        return {"stores": page}, total

    def _storeproduct_list(self, params: dict[str, Any]) -> tuple[Any, int | None]:
        flt = self._filter(params)
        for key in flt:
            if key not in ("productId", "storeId", "@productId", "@storeId"):
                raise ProtocolError(f"catalog.storeproduct.list: unexpected filter key {key!r}")
        products = (
            {_int(x, "productId") for x in _as_list(flt["productId"])}
            if ("productId" in flt)
            else None
        )
        if "@productId" in flt:
            if not isinstance(flt["@productId"], list):
                raise ProtocolError("@productId (IN) takes an array")
            products = {_int(x, "productId") for x in flt["@productId"]}
        stores = (
            {_int(x, "storeId") for x in _as_list(flt["storeId"])} if "storeId" in flt else None
        )
        if "@storeId" in flt:
            stores = {_int(x, "storeId") for x in _as_list(flt["@storeId"])}
        rows = [
            {
                "id": self.row_ids[pair],
                "productId": pair[0],
                "storeId": pair[1],
                "amount": _num(amount),
                "quantityReserved": _num(self.reserved.get(pair, Decimal(0))),
            }
            for pair, amount in sorted(self.amounts.items())
            if (products is None or pair[0] in products) and (stores is None or pair[1] in stores)
        ]
        page, total = self._page(rows, params)
        return {"storeProducts": page}, total

    def _fields(self, params: dict[str, Any]) -> dict[str, Any]:
        fields = params.get("fields")
        if not isinstance(fields, dict):
            raise SimError(0, "fields is required")
        return fields

    def _document_add(self, params: dict[str, Any]) -> tuple[Any, int | None]:
        fields = self._fields(params)
        for required in ("docType", "currency", "responsibleId"):
            if not fields.get(required):
                raise SimError(0, f"Required field {required} is missing")
        if fields["docType"] not in ("A", "S", "M", "R", "D"):
            raise SimError(0, "DOC_TYPE isn't available")
        doc = Document(
            self._new_id(),
            str(fields["docType"]),
            str(fields["currency"]),
            _int(fields["responsibleId"], "responsibleId"),
        )
        self.documents[doc.id] = doc
        return {
            "document": {
                "id": doc.id,
                "docType": doc.doc_type,
                "currency": doc.currency,
                "responsibleId": doc.responsible_id,
                "status": doc.status,
                "title": fields.get("title"),
            }
        }, None

    def _element_add(self, params: dict[str, Any]) -> tuple[Any, int | None]:
        fields = self._fields(params)
        doc = self.documents.get(_int(fields.get("docId"), "docId"))
        if doc is None:
            raise SimError(0, "Document not found")
        if doc.status != "N":
            raise SimError(0, "Document already conducted")
        product = _int(fields.get("elementId"), "elementId")
        if product not in self.products:
            raise SimError(0, "Product not found")
        amount = Decimal(str(fields.get("amount", "0")))
        if amount <= 0:
            raise SimError(0, "Amount must be positive")
        needs: dict[str, tuple[str, ...]] = {
            "A": ("storeTo",),
            "S": ("storeTo",),
            "D": ("storeFrom",),
            "R": ("storeTo",),
            "M": ("storeFrom", "storeTo"),
        }
        for name in needs[doc.doc_type]:
            if _int(fields.get(name, 0), name) not in self.stores:
                raise SimError(0, f"{name} is required and must be a store")
        element = {
            "id": self._new_id(),
            "docId": doc.id,
            "elementId": product,
            "amount": amount,
            "storeTo": _int(fields["storeTo"], "storeTo") if "storeTo" in fields else None,
            "storeFrom": _int(fields["storeFrom"], "storeFrom") if "storeFrom" in fields else None,
        }
        doc.elements.append(element)
        shown = {**element, "amount": _num(amount)}
        return {"documentElement": shown}, None

    def _conduct(self, params: dict[str, Any]) -> tuple[Any, int | None]:
        doc = self.documents.get(_int(params.get("id"), "id"))
        if doc is None:
            raise SimError(0, "Document not found")
        if doc.status == "Y":
            raise SimError(0, "Document already conducted")
        if not doc.elements:
            raise SimError(0, "Document has no products")
        changes: dict[tuple[int, int], Decimal] = {}
        for el in doc.elements:
            if el["storeFrom"] is not None and doc.doc_type in ("D", "M"):
                pair = (el["elementId"], el["storeFrom"])
                changes[pair] = changes.get(pair, Decimal(0)) - el["amount"]
            if el["storeTo"] is not None and doc.doc_type in ("A", "S", "M", "R"):
                pair = (el["elementId"], el["storeTo"])
                changes[pair] = changes.get(pair, Decimal(0)) + el["amount"]
        for pair, change in changes.items():
            if self.amounts.get(pair, Decimal(0)) + change < 0:
                raise SimError(0, f"Insufficient quantity of product {pair[0]} in store {pair[1]}")
        for pair, change in changes.items():
            self.set_amount(pair[0], pair[1], self.amounts.get(pair, Decimal(0)) + change)
        doc.status = "Y"
        return True, None

    def _storeproduct_add(self, params: dict[str, Any]) -> tuple[Any, int | None]:
        fields = self._fields(params)
        pair = (_int(fields.get("productId"), "productId"), _int(fields.get("storeId"), "storeId"))
        if pair in self.amounts:
            raise SimError(0, "Store product already exists")
        self.set_amount(pair[0], pair[1], Decimal(str(fields.get("amount", "0"))))
        return {"storeProduct": {"id": self.row_ids[pair]}}, None

    def _storeproduct_update(self, params: dict[str, Any]) -> tuple[Any, int | None]:
        row = _int(params.get("id"), "id")
        fields = self._fields(params)
        for pair, row_id in self.row_ids.items():
            if row_id == row:
                self.amounts[pair] = Decimal(str(fields["amount"]))
                return {"storeProduct": {"id": row}}, None
        raise SimError(0, "Store product not found")

    def _order_update(self, params: dict[str, Any]) -> tuple[Any, int | None]:
        order = self.orders.get(_int(params.get("id"), "id"))
        if order is None:
            raise SimError(0, "order is not exists")
        fields = self._fields(params)
        if "statusId" in fields and fields["statusId"] not in self.ORDER_STATUSES:
            raise SimError(0, f"Unknown status {fields['statusId']!r}")
        for name, value in fields.items():
            if name not in ("statusId", "canceled"):
                raise ProtocolError(f"sale.order.update: unexpected field {name!r}")
            if name == "canceled" and value not in ("Y", "N"):
                raise ProtocolError("canceled is a Y/N flag")
            order[name] = value
        return {"order": dict(order)}, None
