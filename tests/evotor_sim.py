"""The Evotor cloud at the protocol level, both ways, shaped by evotor/documentation-api (the
current root files; the older evotorCallbacks/ and v1/ folders describe a previous model).

Where each behaviour comes from:
- Till documents (`Till`): definitions.yaml#/document (the required top-level fields: uuid,
  type, deviceUuid, closeDate, openDate, open/closeUserCode, open/closeUserUuid, sessionUUID,
  sessionNumber, number, closeResultSum, closeSum, storeUuid, extras, version) and the
  transactions of pos-docs/02-SELL.json (DOCUMENT_OPEN, REGISTER_POSITION, DISCOUNT_*,
  POSITION_TAX, PAYMENT, DOCUMENT_CLOSE_FPRINT, DOCUMENT_CLOSE), 03-PAYBACK.json (negative
  quantities and sums, baseDocumentUUID/Number in DOCUMENT_OPEN), 01-ACCEPT, 09-WRITE_OFF,
  10-RETURN (REGISTER_POSITION lines), 08-INVENTORY (INVENTORY transactions, balanceQuantity a
  string), 04/05 CASH_INCOME/OUTCOME (REGISTER_BILLS), 06/07 CLOSE/OPEN_SESSION, 12/13 FPRINT
  (X and Z reports), 11-REVALUATION, 16-OPEN_TARE, 14-BUY and 15-BUYBACK (the V2 layout: id,
  storeId, deviceId, deviceImei, body.positions). The free-price commodity uuid
  390067bf-e8d3-4fcc-8c30-fbfd77a0a70d is the one the comments of 08-INVENTORY and 16-OPEN_TARE
  name. Upper-case and date-prefixed ids (`20170222-D58C-40E0-8051-B53ADFF38860`) are the
  examples of definitions.yaml (store, device, employee, openUserUuid).
- Receipt events (`Till.receipt_event`): definitions.yaml#/receipt (id, timestamp, userId,
  type, version, data{id, deviceId, storeId, dateTime, type, shiftId, employeeId,
  paymentSource, infoCheck, egais, items[], totalTax, totalDiscount, totalAmount, extras});
  the deprecated flat receipt (`Till.flat_receipt`): the older definitions.yaml#/receipt.
- Webhooks (`WebhookSender`): paths.yaml `/partner.ru/...`: PUT stores/devices/employees and
  .../stores/{storeUuid}/documents, POST .../stores/{storeUuid}/products, POST
  /api/v2/receipts, GET /api/v1/commodities?scanCode=&alcCode=, POST /api/v1/user/verify,
  /user/create, /user/token; `Authorization: Bearer <token>` (parameters.yaml clientAuth;
  serverAuth allows Basic too for the user calls); "expects 200 OK; without an answer within
  10 seconds the cloud sends the notification again" (the timeout is `resend_after`).
- The cloud's REST API (`CloudApi`): paths.yaml `/api.evotor.ru/...`: X-Authorization
  (parameters.yaml auth), 401 with codes 1002/1003 (responses.yaml 40110021003), the
  X-RateLimit-Limit/-Remaining/-Reset headers on every answer, products replaced whole with
  X-Products-Violations-Count/-Violations for items breaking definitions.yaml#/product (each
  product once per request), 413 for a request too large, quantities as {uuid: "figure"},
  documents filtered by gtCloseDate < closeDate < ltCloseDate (both exclusive, format
  2017-01-10T09:33:19.757+0000, a range of at most one month, at most six months back,
  deviceUuid compared case-sensitively, `types` a comma list). 429 is not in paths.yaml: it is
  what the rate-limit headers imply, and what the issue asks the client to survive.

Anything a real cloud would not send, or a client request it would not understand, raises
ProtocolError, which fails the test.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import os
import random
import re
import time
import uuid as uuidlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from copy import deepcopy
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx

FREE_PRICE = "390067bf-e8d3-4fcc-8c30-fbfd77a0a70d"
DEFAULT_USER = "01-000000000000001"
Q3 = Decimal("0.001")
Q2 = Decimal("0.01")
DOC_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000")
PRODUCT_UUID = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[1-5][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
)
TAXES = {"NO_VAT", "VAT_0", "VAT_10", "VAT_10_110", "VAT_18", "VAT_18_118", "VAT_20", "VAT_20_120"}
PRODUCT_TYPES = {"NORMAL", "ALCOHOL_MARKED", "ALCOHOL_NOT_MARKED", "SERVICE"}


class ProtocolError(AssertionError):
    """Something the Evotor cloud would not send, or a request it would not understand."""


# --- the public samples -------------------------------------------------------------------


def samples_dir() -> Path | None:
    """../shared/samples/evotor beside the checkout (ORDERSYNC_SHARED_DIR when set), or the
    development machine's shared folder; None when absent (CI always has it)."""
    candidates = [Path(__file__).resolve().parents[1].parent / "shared", Path("/work/shared")]
    if os.environ.get("ORDERSYNC_SHARED_DIR"):
        candidates.insert(0, Path(os.environ["ORDERSYNC_SHARED_DIR"]))
    for shared in candidates:
        if (shared / "samples" / "evotor").is_dir():
            return shared / "samples" / "evotor"
    return None


# --- JSON as the cloud writes it -----------------------------------------------------------


def to_json(value: Any) -> str:
    """Decimals written digit for digit (`1.000`, `3548.00`), like the cloud's own numbers."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, float):
        raise ProtocolError("the simulator builds numbers as Decimals")
    if isinstance(value, Mapping):
        items = (f"{json.dumps(str(k), ensure_ascii=False)}:{to_json(v)}" for k, v in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(to_json(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def from_json(body: bytes | str) -> Any:
    return json.loads(body, parse_float=Decimal)


def doc_time(moment: datetime) -> str:
    utc = moment.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}+0000"


def parse_doc_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z").astimezone(UTC)


def add_months(moment: datetime, months: int) -> datetime:
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    for day in range(moment.day, 27, -1):
        try:
            return moment.replace(year=year, month=month, day=day)
        except ValueError:
            continue
    return moment.replace(year=year, month=month, day=min(moment.day, 28))


# --- ids ------------------------------------------------------------------------------------


class Ids:
    """uuid4s as real traffic writes them: `lower` (5a188de4-...), `upper`, or `dated`
    (20190528-92E7-4B2B-...: a date where uuid4 has random digits). Seeded: reproducible."""

    STYLES = ("lower", "upper", "dated")

    def __init__(self, style: str = "lower", seed: int = 1, day: date = date(2019, 5, 28)):
        if style not in self.STYLES:
            raise ValueError(f"style is one of {self.STYLES}")
        self.style, self.day = style, day
        self._random = random.Random(seed)

    def new(self) -> str:
        value = str(uuidlib.UUID(int=self._random.getrandbits(128), version=4))
        if self.style == "lower":
            return value
        if self.style == "upper":
            return value.upper()
        return f"{self.day:%Y%m%d}-{value[9:].upper()}"


def recase(value: str) -> str:
    """The same id in the other case, as another part of the cloud may write it."""
    return value.lower() if value != value.lower() else value.upper()


# --- what a till sells ----------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    uuid: str | None  # None or FREE_PRICE: "Позиция по свободной цене"
    code: str | None
    name: str
    price: Decimal
    barcode: str | None = None
    measure: str = "шт"
    tax: str = "NO_VAT"
    kind: str = "NORMAL"


def free_price_item(price: Decimal | str, uuid: str | None = FREE_PRICE, code: str = "1") -> Item:
    """A line typed in at a free price: no product, though real traffic still carries a code."""
    return Item(uuid, code, "Позиция по свободной цене", Decimal(price), measure="дроб")


Line = tuple[Item, Decimal | int | str]


class Till:
    """One smart terminal in one store: numbers its documents, keeps its session and its
    clock, and writes each document type the way pos-docs/*.json shows it."""

    def __init__(
        self,
        store_uuid: str,
        *,
        ids: Ids | None = None,
        device_uuid: str | None = None,
        imei: str = "352398080050414",
        cashier: str | None = None,
        start: datetime = datetime(2024, 3, 1, 9, 0, tzinfo=UTC),
        step: timedelta = timedelta(minutes=3),
    ) -> None:
        self.ids = ids or Ids()
        self.store_uuid = store_uuid
        self.device_uuid = device_uuid or self.ids.new()
        self.imei = imei
        self.cashier = cashier or self.ids.new()
        self.clock, self.step = start, step
        self.session_uuid, self.session_number = self.ids.new(), 1
        self.number, self.receipt_number, self.fiscal_number, self.tx = 0, 70, 117, 20

    # --- documents that move stock --------------------------------------------------------

    def sell(
        self,
        lines: Sequence[Line],
        *,
        at: datetime | None = None,
        payment: str = "CASH",
        discount_percent: Decimal | int = 0,
    ) -> dict[str, Any]:
        moment = self._tick(at)
        positions = [
            self._position(item, Decimal(q), moment, Decimal(discount_percent)) for item, q in lines
        ]
        total = sum((p[0]["resultSum"] for p in positions), Decimal("0.00"))
        gross = sum((p[0]["sum"] for p in positions), Decimal("0.00"))
        transactions = [self._open(moment)]
        for register, extra in positions:
            transactions += [register, *extra]
        transactions += [
            self._payment(total, payment, moment),
            self._fprint(total, moment),
            self._close(total, sum((Decimal(q) for _, q in lines), Decimal(0)), moment),
        ]
        return self._document("SELL", moment, transactions, gross, total)

    def payback(
        self,
        sale: Mapping[str, Any],
        lines: Sequence[Line] | None = None,
        *,
        at: datetime | None = None,
        base_uuid: str | None = None,
    ) -> dict[str, Any]:
        """A customer's return naming its sale (baseDocumentUUID, baseDocumentNumber); lines
        default to the whole sale. Quantities and sums negative, as 03-PAYBACK.json."""
        moment = self._tick(at)
        returned = lines if lines is not None else self.lines_of(sale)
        positions = [self._position(item, -Decimal(q), moment, Decimal(0)) for item, q in returned]
        total = sum((p[0]["resultSum"] for p in positions), Decimal("0.00"))
        transactions = [self._open(moment, base_uuid or sale["uuid"], str(sale["number"]))]
        for register, extra in positions:
            transactions += [register, *extra]
        transactions += [
            self._payment(total, "CASH", moment),
            self._fprint(-total, moment),
            self._close(total, -sum((Decimal(q) for _, q in returned), Decimal(0)), moment),
        ]
        return self._document("PAYBACK", moment, transactions, -total, -total)

    def accept(self, lines: Sequence[Line], *, at: datetime | None = None) -> dict[str, Any]:
        return self._stock_document("ACCEPT", lines, at)

    def write_off(self, lines: Sequence[Line], *, at: datetime | None = None) -> dict[str, Any]:
        return self._stock_document("WRITE_OFF", lines, at)

    def supplier_return(
        self, lines: Sequence[Line], *, at: datetime | None = None
    ) -> dict[str, Any]:
        return self._stock_document("RETURN", lines, at)

    def inventory(
        self,
        counts: Sequence[tuple[Item, Decimal | int | str, Decimal | int]],
        *,
        at: datetime | None = None,
    ) -> dict[str, Any]:
        """(item, counted, the till's figure before): INVENTORY transactions, the till's figure
        as a string as 08-INVENTORY.json writes it."""
        moment = self._tick(at)
        transactions = [self._open(moment)]
        for item, counted, before in counts:
            transactions.append(
                {
                    **self._tx("INVENTORY", moment),
                    "barcode": item.barcode,
                    "quantity": _q(counted),
                    "commodityCode": item.code,
                    "commodityUuid": item.uuid,
                    "balanceQuantity": str(before),
                }
            )
        total_quantity = sum((Decimal(c) for _, c, _ in counts), Decimal(0))
        transactions.append(self._close(Decimal("0.00"), total_quantity, moment))
        return self._document("INVENTORY", moment, transactions, Decimal(0), Decimal(0))

    # --- documents that move no stock -----------------------------------------------------

    def open_session(self, *, at: datetime | None = None) -> dict[str, Any]:
        self.session_uuid, self.session_number = self.ids.new(), self.session_number + 1
        moment = self._tick(at)
        return self._document(
            "OPEN_SESSION", moment, [self._tx("OPEN_SESSION", moment)], None, None
        )

    def close_session(self, *, at: datetime | None = None) -> dict[str, Any]:
        moment = self._tick(at)
        tx = {**self._tx("CLOSE_SESSION", moment), "total": Decimal(0), "proceeds": Decimal(0)}
        return self._document("CLOSE_SESSION", moment, [tx], Decimal(0), Decimal(0))

    def cash_income(self, amount: Decimal | str, *, at: datetime | None = None) -> dict[str, Any]:
        return self._cash("CASH_INCOME", Decimal(amount), at)

    def cash_outcome(self, amount: Decimal | str, *, at: datetime | None = None) -> dict[str, Any]:
        return self._cash("CASH_OUTCOME", Decimal(amount), at)

    def x_report(self, *, at: datetime | None = None) -> dict[str, Any]:
        moment = self._tick(at)
        tx = {
            **self._tx("FPRINT_X_REPORT", moment),
            "cash": 0,
            "total": 0,
            "proceeds": Decimal("7256.4"),
            "receiptNumber": 80,
            "sessionNumber": 0,
            "documentNumber": 138,
        }
        return self._document("FPRINT", moment, [tx], Decimal(0), Decimal("7256.4"))

    def z_report(self, *, at: datetime | None = None) -> dict[str, Any]:
        moment = self._tick(at)
        tx = {
            **self._tx("FPRINT_Z_REPORT", moment),
            "receiptNumber": 341,
            "documentNumber": 672,
            "sessionNumber": 0,
            "proceeds": 0,
            "cash": 5,
            "total": 0,
            "cashIn": 5,
            "cashOut": 0,
            "revenue": 0,
            "nonzeroSumSales": Decimal("253918358.8"),
        }
        return self._document("FPRINT", moment, [tx], Decimal(0), Decimal("7256.4"))

    def revaluation(
        self, item: Item, new_price: Decimal | str, *, at: datetime | None = None
    ) -> dict[str, Any]:
        moment = self._tick(at)
        tx = {
            **self._tx("REVALUATION", moment),
            "newPrice": Decimal(new_price),
            "oldPrice": item.price,
            "acceptPrice": item.price,
            "commodityCode": item.code,
            "commodityUuid": item.uuid,
        }
        close = self._close(Decimal(new_price), Decimal(1), moment)
        return self._document(
            "REVALUATION",
            moment,
            [self._open(moment), tx, close],
            Decimal(new_price),
            Decimal(new_price),
        )

    def open_tare(self, item: Item, *, at: datetime | None = None) -> dict[str, Any]:
        moment = self._tick(at)
        register, _ = self._position(item, Decimal(1), moment, Decimal(0))
        document = self._document(
            "OPEN_TARE",
            moment,
            [self._open(moment), register, self._close(Decimal(0), Decimal(1), moment)],
            None,
            None,
        )
        return document | {"completeInventory": True, "new": False}

    def buy(self, lines: Sequence[Line], *, at: datetime | None = None) -> dict[str, Any]:
        return self._v2_document("BUY", lines, at)

    def buyback(self, lines: Sequence[Line], *, at: datetime | None = None) -> dict[str, Any]:
        return self._v2_document("BUYBACK", lines, at)

    # --- receipts -------------------------------------------------------------------------

    def receipt_event(
        self, document: Mapping[str, Any], user_id: str = DEFAULT_USER, event_id: str | None = None
    ) -> dict[str, Any]:
        """The ReceiptCreated event of a SELL or PAYBACK document: `data.id` is the
        document's uuid, items carry the product uuid as `id`."""
        return {
            "id": event_id or self.ids.new(),
            "timestamp": int(parse_doc_time(document["closeDate"]).timestamp() * 1000),
            "userId": user_id,
            "type": "ReceiptCreated",
            "version": 2,
            "data": self._receipt_data(document, flat=False),
        }

    def flat_receipt(self, document: Mapping[str, Any]) -> dict[str, Any]:
        """The same receipt in the deprecated v1 shape (an element of the array form)."""
        return self._receipt_data(document, flat=True)

    @staticmethod
    def lines_of(document: Mapping[str, Any]) -> list[Line]:
        lines: list[Line] = []
        for tx in document["transactions"]:
            if tx["type"] == "REGISTER_POSITION":
                item = Item(
                    tx["commodityUuid"],
                    tx["commodityCode"],
                    tx["commodityName"],
                    tx["price"],
                    tx["barcode"],
                    tx["measureName"],
                )
                lines.append((item, abs(tx["quantity"])))
        return lines

    # --- the parts ------------------------------------------------------------------------

    def _tick(self, at: datetime | None) -> datetime:
        if at is not None:
            return at
        self.clock += self.step
        return self.clock

    def _tx(self, kind: str, moment: datetime) -> dict[str, Any]:
        self.tx += 1
        return {
            "id": str(self.tx),
            "type": kind,
            "uuid": None,
            "userCode": None,
            "userUuid": self.cashier,
            "creationDate": doc_time(moment),
        }

    def _open(
        self, moment: datetime, base: str | None = None, number: str | None = None
    ) -> dict[str, Any]:
        return {
            **self._tx("DOCUMENT_OPEN", moment),
            "clientName": None,
            "clientPhone": None,
            "couponNumber": None,
            "baseDocumentUUID": base,
            "baseDocumentNumber": number,
        }

    def _close(self, total: Decimal, quantity: Decimal, moment: datetime) -> dict[str, Any]:
        return {
            **self._tx("DOCUMENT_CLOSE", moment),
            "sum": _m(total),
            "quantity": _q(quantity),
            "clientName": None,
            "clientPhone": None,
            "couponNumber": None,
            "baseDocumentUUID": None,
            "baseDocumentNumber": None,
        }

    def _position(
        self, item: Item, quantity: Decimal, moment: datetime, percent: Decimal
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        gross = _m(item.price * quantity)
        cut = _m(abs(gross) * percent / 100) * (1 if quantity >= 0 else -1)
        result = gross - cut
        register = {
            **self._tx("REGISTER_POSITION", moment),
            "sum": gross,
            "mark": None,
            "price": item.price,
            "barcode": item.barcode,
            "quantity": _q(quantity),
            "costPrice": Decimal(0),
            "resultSum": result,
            "positionId": "-1",
            "tareVolume": 0,
            "measureName": item.measure,
            "extraKeys": [],
            "resultPrice": _m(result / quantity) if quantity else item.price,
            "commodityCode": item.code,
            "commodityName": item.name,
            "commodityType": item.kind,
            "commodityUuid": item.uuid,
            "fprintSection": "0",
            "alcoholByVolume": 0,
            "balanceQuantity": Decimal(10),
            "alcoholProductKindCode": 0,
        }
        extra = []
        if cut:
            extra.append(
                {
                    **self._tx("DISCOUNT_POSITION", moment),
                    "discountSum": abs(cut),
                    "discountType": 1,
                    "percent": _q(percent),
                }
            )
        extra.append(
            {
                **self._tx("POSITION_TAX", moment),
                "tax": item.tax,
                "taxSum": Q2 * 0,
                "barcode": item.barcode,
                "resultSum": result,
                "taxPercent": 0,
                "resultPrice": register["resultPrice"],
                "taxRateCode": None,
                "resultTaxSum": Q2 * 0,
                "commodityCode": item.code,
                "commodityUuid": item.uuid,
            }
        )
        return register, extra

    def _payment(self, total: Decimal, kind: str, moment: datetime) -> dict[str, Any]:
        return {**self._tx("PAYMENT", moment), "rrn": None, "sum": total, "paymentType": kind}

    def _fprint(self, total: Decimal, moment: datetime) -> dict[str, Any]:
        self.receipt_number += 1
        self.fiscal_number += 1
        return {
            **self._tx("DOCUMENT_CLOSE_FPRINT", moment),
            "total": total,
            "receiptNumber": str(self.receipt_number),
            "sessionNumber": "0",
            "documentNumber": str(self.fiscal_number),
        }

    def _stock_document(
        self, kind: str, lines: Sequence[Line], at: datetime | None
    ) -> dict[str, Any]:
        moment = self._tick(at)
        positions = [self._position(item, Decimal(q), moment, Decimal(0)) for item, q in lines]
        total = sum((p[0]["resultSum"] for p in positions), Decimal("0.00"))
        quantity = sum((Decimal(q) for _, q in lines), Decimal(0))
        transactions = [
            self._open(moment),
            *(p[0] for p in positions),
            self._close(total, quantity, moment),
        ]
        return self._document(kind, moment, transactions, total, total)

    def _cash(self, kind: str, amount: Decimal, at: datetime | None) -> dict[str, Any]:
        moment = self._tick(at)
        bills = {
            **self._tx("REGISTER_BILLS", moment),
            "sum": amount,
            "quantity": 1,
            "denomination": amount,
        }
        transactions = [
            self._open(moment),
            bills,
            self._fprint(amount, moment),
            {**self._tx(kind, moment), "sum": amount},
        ]
        return self._document(kind, moment, transactions, amount, amount)

    def _document(
        self,
        kind: str,
        moment: datetime,
        transactions: list[dict[str, Any]],
        close_sum: Decimal | None,
        result_sum: Decimal | None,
    ) -> dict[str, Any]:
        self.number += 1
        return {
            "type": kind,
            "uuid": self.ids.new(),
            "extras": {},
            "number": self.number,
            "closeSum": None if close_sum is None else format(close_sum, "f"),
            "openDate": doc_time(moment),
            "closeDate": doc_time(moment),
            "deviceId": self.imei,
            "storeUuid": self.store_uuid,
            "deviceUuid": self.device_uuid,
            "sessionUUID": self.session_uuid,
            "openUserCode": None,
            "openUserUuid": self.cashier,
            "transactions": transactions,
            "closeUserCode": None,
            "closeUserUuid": self.cashier,
            "sessionNumber": str(self.session_number),
            "closeResultSum": None if result_sum is None else format(result_sum, "f"),
            "version": "V1",
        }

    def _v2_document(self, kind: str, lines: Sequence[Line], at: datetime | None) -> dict[str, Any]:
        moment = self._tick(at)
        self.number += 1
        positions = [
            {
                "code": item.code,
                "quantity": Decimal(q),
                "productId": item.uuid,
                "resultSum": _m(item.price * Decimal(q)),
                "sum": _m(item.price * Decimal(q)),
                "costPrice": 0,
                "measureName": item.measure,
                "productName": item.name,
                "price": item.price,
                "id": index + 40,
                "productType": item.kind,
                "tax": {"resultSum": 0, "sum": 0, "type": item.tax},
            }
            for index, (item, q) in enumerate(lines)
        ]
        total = sum((p["resultSum"] for p in positions), Decimal("0.00"))
        return {
            "timeZoneOffset": 10800000,
            "extras": {},
            "sessionId": self.session_uuid,
            "type": kind,
            "body": {
                "positions": positions,
                "payments": [{"sum": total, "type": "CASH"}],
                "posPrintResults": [{"receiptNumber": 56, "documentNumber": 145}],
            },
            "storeId": self.store_uuid,
            "version": "V2",
            "deviceId": self.device_uuid,
            "closeDate": doc_time(moment),
            "number": self.number,
            "sessionNumber": self.session_number,
            "deviceImei": self.imei,
            "id": self.ids.new(),
            "closeUserId": self.cashier,
        }

    def _receipt_data(self, document: Mapping[str, Any], flat: bool) -> dict[str, Any]:
        if document["type"] not in ("SELL", "PAYBACK"):
            raise ProtocolError("the receipt feed carries sales and returns only")
        items = []
        for tx in document["transactions"]:
            if tx["type"] != "REGISTER_POSITION":
                continue
            items.append(
                {
                    ("uuid" if flat else "id"): tx["commodityUuid"],
                    "name": tx["commodityName"],
                    "itemType": tx["commodityType"],
                    "measureName": tx["measureName"],
                    "quantity": abs(tx["quantity"]),
                    "price": tx["price"],
                    "costPrice": tx["costPrice"],
                    "sumPrice": abs(tx["sum"]),
                    "tax": Q2 * 0,
                    "taxPercent": 0,
                    "discount": abs(tx["sum"]) - abs(tx["resultSum"]),
                }
            )
        total = abs(Decimal(document["closeResultSum"]))
        keys = (
            ("uuid", "storeUuid", "deviceUuid", "employeeUuid")
            if flat
            else ("id", "storeId", "deviceId", "employeeId")
        )
        return {
            keys[0]: document["uuid"],
            keys[2]: document["deviceUuid"],
            keys[1]: document["storeUuid"],
            "dateTime": document["closeDate"],
            "type": document["type"],
            "shiftId": document["sessionNumber"],
            keys[3]: document["closeUserUuid"],
            "paymentSource": "PAY_CASH",
            "infoCheck": False,
            "egais": False,
            "items": items,
            "totalTax": Q2 * 0,
            "totalDiscount": sum((i["discount"] for i in items), Decimal("0.00")),
            "totalAmount": total,
            "extras": {},
        }


def _q(value: Decimal | int | str) -> Decimal:
    return Decimal(value).quantize(Q3)


def _m(value: Decimal) -> Decimal:
    return value.quantize(Q2)


# broken documents: one defect each, as a batch's one bad document
DEFECTS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "no_uuid": lambda d: {k: v for k, v in d.items() if k != "uuid"},
    "no_close_date": lambda d: {k: v for k, v in d.items() if k != "closeDate"},
    "no_transactions": lambda d: {k: v for k, v in d.items() if k != "transactions"},
    "bad_close_date": lambda d: d | {"closeDate": "yesterday"},
    "bad_quantity": lambda d: _first_line(d, {"quantity": "two"}),
    "four_decimals": lambda d: _first_line(d, {"quantity": Decimal("1.0005")}),
    "negative_sale": lambda d: _first_line(d, {"quantity": Decimal("-1.000")}),
    "not_an_object": lambda d: ["not", "a", "document"],
}


def broken(document: Mapping[str, Any], defect: str) -> Any:
    return DEFECTS[defect](deepcopy(dict(document)))


def _first_line(document: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    for tx in document["transactions"]:
        if tx["type"] in ("REGISTER_POSITION", "INVENTORY"):
            tx.update(change)
            return document
    raise ProtocolError("the document has no line to break")


# --- entities the cloud sends ----------------------------------------------------------------


def store_json(uuid: str, name: str, address: str | None = None) -> dict[str, Any]:
    return {"uuid": uuid, "name": name, "address": address}


def device_json(uuid: str, name: str, store_uuid: str, tz_ms: int = 10800000) -> dict[str, Any]:
    return {"uuid": uuid, "name": name, "storeUuid": store_uuid, "timezoneOffset": tz_ms}


def employee_json(
    uuid: str,
    name: str,
    stores: Sequence[str],
    role: str = "CASHIER",
    last_name: str | None = None,
    phone: int | None = None,
) -> dict[str, Any]:
    return {
        "uuid": uuid,
        "name": name,
        "lastName": last_name,
        "patronymicName": None,
        "phone": phone,
        "stores": list(stores),
        "role": role,
    }


def till_product_json(
    uuid: str,
    name: str,
    price: Decimal | str,
    code: str | None = None,
    barcodes: Sequence[str] = (),
    measure: str = "шт",
) -> dict[str, Any]:
    """A product a cashier created on a till (definitions.yaml#/product, type NORMAL)."""
    return {
        "uuid": uuid,
        "name": name,
        "group": False,
        "parentUuid": None,
        "type": "NORMAL",
        "code": code,
        "barCodes": list(barcodes),
        "price": Decimal(price),
        "costPrice": Decimal("0"),
        "quantity": Decimal("0"),
        "measureName": measure,
        "tax": "NO_VAT",
        "allowToSell": True,
        "description": None,
        "articleNumber": None,
    }


# --- the cloud as the sender of webhooks -------------------------------------------------------


@dataclass
class Attempt:
    status: int | None  # None: no answer within resend_after (or no connection)
    elapsed: float
    body: Any = None


@dataclass
class Delivery:
    method: str
    path: str
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def delivered(self) -> bool:
        return bool(self.attempts) and self.attempts[-1].status == 200

    @property
    def status(self) -> int | None:
        return self.attempts[-1].status if self.attempts else None

    @property
    def body(self) -> Any:
        return self.attempts[-1].body if self.attempts else None


class WebhookSender:
    """Calls a hub the way the cloud does: to an ASGI app (in process) or to a base URL (a
    real server), under `prefix` (the service address registered in the developer account).
    A call not answered within `resend_after` seconds is sent again (the abandoned one keeps
    running, as it would on a real server: `drain()` waits for it), up to `max_attempts`;
    so is a 5xx. A 4xx is an answer: not resent."""

    def __init__(
        self,
        app: Any = None,
        *,
        base_url: str = "http://hub.test",
        prefix: str = "/evotor",
        token: str = "evotor-cloud-token",
        resend_after: float = 10.0,
        max_attempts: int = 3,
    ) -> None:
        transport = httpx.ASGITransport(app=app) if app is not None else None
        self._client = httpx.AsyncClient(transport=transport, base_url=base_url, timeout=None)
        self.prefix = prefix.rstrip("/")
        self.token = token
        self.resend_after = resend_after
        self.max_attempts = max_attempts
        self.deliveries: list[Delivery] = []
        self._abandoned: set[asyncio.Task[httpx.Response]] = set()

    async def aclose(self) -> None:
        await self.drain()
        await self._client.aclose()

    async def drain(self) -> None:
        """Waits for the requests given up on (a slow hub still finishes them)."""
        while self._abandoned:
            await asyncio.gather(*self._abandoned, return_exceptions=True)
            self._abandoned = {t for t in self._abandoned if not t.done()}

    # --- notifications (paths.yaml "Вебхуки-уведомления") ---------------------------------

    async def put_stores(self, stores: Sequence[Mapping[str, Any]]) -> Delivery:
        return await self.send("PUT", "/api/v1/inventories/stores", list(stores))

    async def put_devices(self, devices: Sequence[Mapping[str, Any]]) -> Delivery:
        return await self.send("PUT", "/api/v1/inventories/devices", list(devices))

    async def put_employees(self, employees: Sequence[Mapping[str, Any]]) -> Delivery:
        return await self.send("PUT", "/api/v1/inventories/employees", list(employees))

    async def put_documents(self, store_uuid: str, documents: Sequence[Any]) -> Delivery:
        path = f"/api/v1/inventories/stores/{store_uuid}/documents"
        return await self.send("PUT", path, list(documents))

    async def put_raw_documents(self, store_uuid: str, body: bytes) -> Delivery:
        """A body as bytes: the public samples as they are, or something malformed."""
        path = f"/api/v1/inventories/stores/{store_uuid}/documents"
        return await self.send("PUT", path, raw=body)

    async def post_receipt(self, event: Mapping[str, Any]) -> Delivery:
        return await self.send("POST", "/api/v2/receipts", dict(event))

    async def post_receipts(self, receipts: Sequence[Mapping[str, Any]]) -> Delivery:
        """The deprecated array form."""
        return await self.send("POST", "/api/v2/receipts", list(receipts))

    async def post_products(
        self, store_uuid: str, products: Sequence[Mapping[str, Any]]
    ) -> Delivery:
        path = f"/api/v1/inventories/stores/{store_uuid}/products"
        return await self.send("POST", path, list(products))

    # --- requests (paths.yaml "Вебхуки-запросы") ------------------------------------------

    async def commodities(self, scan_code: str, alc_code: str | None = None) -> Delivery:
        params = {"scanCode": scan_code} | ({"alcCode": alc_code} if alc_code else {})
        return await self.send("GET", "/api/v1/commodities", params=params)

    async def user_verify(
        self, user_id: str, username: str, password: str, **custom: str
    ) -> Delivery:
        body = {"userId": user_id, "username": username, "password": password, **custom}
        return await self.send("POST", "/api/v1/user/verify", body)

    async def user_create(self, user_id: str, **custom: str) -> Delivery:
        return await self.send("POST", "/api/v1/user/create", {"userId": user_id, **custom})

    async def user_token(self, user_id: str, token: str) -> Delivery:
        return await self.send("POST", "/api/v1/user/token", {"userId": user_id, "token": token})

    # --- the wire -------------------------------------------------------------------------

    def authorization(self, scheme: str = "Bearer") -> str:
        if scheme == "Basic":
            return "Basic " + base64.b64encode(self.token.encode()).decode()
        return f"Bearer {self.token}"

    async def send(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        params: Mapping[str, str] | None = None,
        scheme: str = "Bearer",
    ) -> Delivery:
        content = raw if raw is not None else (None if body is None else to_json(body).encode())
        headers = {
            "Authorization": self.authorization(scheme),
            "Accept": "application/json;charset=UTF-8",
        }
        if content is not None:
            headers["Content-Type"] = "application/json;charset=UTF-8"
        delivery = Delivery(method, self.prefix + path)
        self.deliveries.append(delivery)
        for _ in range(self.max_attempts):
            attempt = await self._attempt(method, delivery.path, content, headers, params)
            delivery.attempts.append(attempt)
            if attempt.status is not None and attempt.status < 500:
                break
        return delivery

    async def _attempt(
        self,
        method: str,
        path: str,
        content: bytes | None,
        headers: Mapping[str, str],
        params: Mapping[str, str] | None,
    ) -> Attempt:
        started = time.monotonic()
        task = asyncio.ensure_future(
            self._client.request(method, path, content=content, headers=headers, params=params)
        )
        done, _ = await asyncio.wait({task}, timeout=self.resend_after)
        elapsed = time.monotonic() - started
        if not done:
            self._abandoned.add(task)
            return Attempt(None, elapsed)
        try:
            response = task.result()
        except httpx.HTTPError:
            return Attempt(None, elapsed)
        try:
            answer = from_json(response.content) if response.content else None
        except ValueError:
            answer = response.text
        return Attempt(response.status_code, elapsed, answer)


# --- the cloud's REST API ---------------------------------------------------------------------


@dataclass
class Call:
    method: str
    path: str
    params: dict[str, str]
    body: Any
    status: int


class CloudApi:
    """api.evotor.ru for one account, as an httpx.MockTransport handler: keeps what the hub
    publishes, serves the documents the test gives it, limits the rate like the real one."""

    def __init__(
        self,
        token: str = "cloud-token-0f3a",
        *,
        limit: int = 100,
        window: float = 60.0,
        max_items: int = 1000,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.token = token
        self.limit, self.window, self.max_items = limit, window, max_items
        self._clock, self._now = clock, now
        self._window_start, self._used = clock(), 0
        self._throttled, self._failures = 0, 0
        self._every: int | None = None
        self._count = 0
        self.stores: list[dict[str, Any]] = []
        self.devices: list[dict[str, Any]] = []
        self.employees: list[dict[str, Any]] = []
        self.products: dict[str, dict[str, dict[str, Any]]] = {}  # store -> uuid -> product
        self.quantities: dict[str, dict[str, Decimal]] = {}  # store -> uuid -> figure
        self.documents: dict[str, list[dict[str, Any]]] = {}  # store -> documents
        self.calls: list[Call] = []

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handler)

    # --- control --------------------------------------------------------------------------

    def add_documents(self, store_uuid: str, documents: Iterable[Mapping[str, Any]]) -> None:
        self.documents.setdefault(store_uuid, []).extend(deepcopy(dict(d)) for d in documents)

    def throttle(self, requests: int) -> None:
        """The next N requests get 429 (the budget spent)."""
        self._throttled = requests

    def throttle_every(self, nth: int | None) -> None:
        """Every nth request gets 429 (None: stop): the "occasional" refusal a relay meets."""
        self._every, self._count = nth, 0

    def fail(self, requests: int) -> None:
        """The next N requests get 503."""
        self._failures = requests

    def paths_called(self) -> list[str]:
        return [f"{c.method} {c.path}" for c in self.calls]

    # --- HTTP -----------------------------------------------------------------------------

    def handler(self, request: httpx.Request) -> httpx.Response:
        params = {k: v[-1] for k, v in parse_qs(request.url.query.decode()).items()}
        body = self._body(request)
        response = self._answer(request, params, body)
        self.calls.append(
            Call(request.method, request.url.path, params, body, response.status_code)
        )
        return response

    def _answer(self, request: httpx.Request, params: dict[str, str], body: Any) -> httpx.Response:
        if request.headers.get("X-Authorization") != self.token:
            return self._json(401, {"errors": [{"code": 1002, "reason": "invalid token"}]})
        limited = self._spend()
        if limited is not None:
            return limited
        if self._failures:
            self._failures -= 1
            return self._json(503, {"errors": [{"code": 0, "reason": "unavailable"}]})
        route = self._route(request.method, request.url.path)
        if route is None:
            return self._json(404, {"errors": [{"code": 0, "reason": "not found"}]})
        handle, store = route
        return handle(store, params, body)

    def _route(
        self, method: str, path: str
    ) -> tuple[Callable[[str, dict[str, str], Any], httpx.Response], str] | None:
        for kind in ("stores", "devices", "employees"):
            if (method, path) == ("GET", f"/api/v1/inventories/{kind}/search"):
                return (lambda _s, _p, _b, kind=kind: self._json(200, getattr(self, kind))), ""
        match = re.fullmatch(r"/api/v[12]/inventories/stores/([^/]+)/(.+)", path)
        if not match:
            return None
        store, rest = match.groups()
        routes = {
            ("POST", "products"): self._post_products,
            ("GET", "products"): self._get_products,
            ("POST", "products/delete"): self._delete_products,
            ("POST", "products/quantities"): self._post_quantities,
            ("GET", "products/quantities"): self._get_quantities,
            ("GET", "documents"): self._get_documents,
        }
        handle = routes.get((method, rest))
        return (handle, store) if handle else None

    def _body(self, request: httpx.Request) -> Any:
        if request.method == "GET":
            if request.content:
                raise ProtocolError(f"GET {request.url.path} with a body")
            return None
        if "application/json" not in request.headers.get("content-type", ""):
            raise ProtocolError(f"{request.method} {request.url.path}: body is not JSON")
        try:
            return from_json(request.content)
        except ValueError as exc:
            raise ProtocolError(f"{request.url.path}: body does not parse: {exc}") from None

    def _spend(self) -> httpx.Response | None:
        now = self._clock()
        if now - self._window_start >= self.window:
            self._window_start, self._used = now, 0
        self._count += 1
        if self._every and self._count % self._every == 0:
            self._throttled += 1
        if self._throttled:
            self._throttled -= 1
            return self._json(
                429, {"errors": [{"code": 0, "reason": "too many requests"}]}, remaining=0
            )
        if self._used >= self.limit:
            return self._json(429, {"errors": [{"code": 0, "reason": "too many requests"}]})
        self._used += 1
        return None

    def _json(
        self,
        status: int,
        body: Any,
        headers: Mapping[str, str] | None = None,
        remaining: int | None = None,
    ) -> httpx.Response:
        reset = max(0, math.ceil(self._window_start + self.window - self._clock()))
        left = self.limit - self._used if remaining is None else remaining
        all_headers = {
            "Content-Type": "application/json;charset=UTF-8",
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(0, left)),
            "X-RateLimit-Reset": str(reset),
            **(headers or {}),
        }
        content = b"" if body is None else to_json(body).encode()
        return httpx.Response(status, content=content, headers=all_headers)

    def _error(
        self, status: int, code: int, reason: str, subject: str | None = None
    ) -> httpx.Response:
        item: dict[str, Any] = {"code": code, "reason": reason}
        if subject:
            item["subject"] = subject
        return self._json(status, {"errors": [item]})

    # --- products and quantities ----------------------------------------------------------

    def _post_products(self, store: str, _params: dict[str, str], body: Any) -> httpx.Response:
        if not isinstance(body, list):
            return self._error(400, 2001, "an array of products is expected")
        if len(body) > self.max_items:
            return self._json(413, {"errors": [{"code": 0, "reason": "request too large"}]})
        seen: dict[str, int] = {}
        for item in body:
            if isinstance(item, dict) and isinstance(item.get("uuid"), str):
                seen[item["uuid"]] = seen.get(item["uuid"], 0) + 1
        violations = []
        kept = self.products.setdefault(store, {})
        for index, item in enumerate(body):
            problems = product_problems(item)
            if isinstance(item, dict) and seen.get(item.get("uuid", ""), 0) > 1:
                problems.append("sent more than once in the request")
            if problems:
                violations.append(f"[{index}]: {'; '.join(problems)}")
            else:
                kept[item["uuid"]] = item  # the old fields go: the description is replaced
        headers = {"X-Products-Violations-Count": str(len(violations))}
        if violations:
            headers["X-Products-Violations"] = " | ".join(violations[:20])
        return self._json(200, None, headers)

    def _get_products(self, store: str, _params: dict[str, str], _body: Any) -> httpx.Response:
        return self._json(200, list(self.products.get(store, {}).values()))

    def _delete_products(self, store: str, _params: dict[str, str], body: Any) -> httpx.Response:
        if not isinstance(body, list):
            return self._error(400, 2001, "an array of products is expected")
        kept = self.products.setdefault(store, {})
        if not body:
            kept.clear()  # "an empty array deletes every product of the store"
        for item in body:
            kept.pop(item.get("uuid") if isinstance(item, dict) else None, None)
        return self._json(200, None)

    def _post_quantities(self, store: str, _params: dict[str, str], body: Any) -> httpx.Response:
        if not isinstance(body, dict):
            return self._error(400, 2001, "an object of product uuid: quantity is expected")
        figures = self.quantities.setdefault(store, {})
        for uuid, value in body.items():
            if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
                return self._error(400, 2003, "incorrect", uuid)
            try:
                figures[uuid] = Decimal(str(value))
            except ArithmeticError:
                return self._error(400, 2003, "incorrect", uuid)
        return self._json(200, None)

    def _get_quantities(self, store: str, _params: dict[str, str], _body: Any) -> httpx.Response:
        figures = self.quantities.get(store, {})
        return self._json(200, {uuid: format(q, "f") for uuid, q in figures.items()})

    # --- documents ------------------------------------------------------------------------

    def _get_documents(self, store: str, params: dict[str, str], _body: Any) -> httpx.Response:
        try:
            after = parse_doc_time(params["gtCloseDate"]) if "gtCloseDate" in params else None
            before = parse_doc_time(params["ltCloseDate"]) if "ltCloseDate" in params else None
        except ValueError:
            return self._error(400, 2003, "incorrect", "gtCloseDate/ltCloseDate")
        for name in ("gtCloseDate", "ltCloseDate"):
            if name in params and not DOC_TIME.fullmatch(params[name]):
                return self._error(400, 2003, "incorrect", name)
        now = self._now()
        before = before or now
        after = after or add_months(before, -1)
        if before > add_months(after, 1):
            return self._error(400, 2003, "the range is longer than one month", "ltCloseDate")
        if after < add_months(now, -6):
            return self._error(400, 2003, "older than six months", "gtCloseDate")
        types = set(params["types"].split(",")) if params.get("types") else None
        device = params.get("deviceUuid")
        found = [
            d
            for d in self.documents.get(store, [])
            if after < parse_doc_time(_close_date(d)) < before
            and (types is None or d.get("type") in types)
            and (device is None or d.get("deviceUuid", d.get("deviceId")) == device)
        ]
        found.sort(key=lambda d: parse_doc_time(_close_date(d)))
        return self._json(200, found)


def _close_date(document: Mapping[str, Any]) -> str:
    value = document.get("closeDate")
    if not isinstance(value, str):
        raise ProtocolError("a stored document without closeDate")
    return value


def product_problems(item: Any) -> list[str]:
    """What breaks definitions.yaml#/product (and NORMAL, SERVICE, ...) in one item."""
    if not isinstance(item, dict):
        return ["not an object"]
    found = []
    if not isinstance(item.get("uuid"), str) or not PRODUCT_UUID.fullmatch(item["uuid"]):
        found.append("uuid is not a uuid4")
    name = item.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= 100:
        found.append("name must have 1 to 100 characters")
    if not isinstance(item.get("group"), bool):
        found.append("group must be true or false")
    if item.get("group"):
        return found
    if item.get("type") not in PRODUCT_TYPES:
        found.append("type is not one of NORMAL, ALCOHOL_MARKED, ALCOHOL_NOT_MARKED, SERVICE")
    for key in ("price", "quantity", "measureName", "tax", "allowToSell"):
        if item.get(key) is None:
            found.append(f"{key} is required")
    if item.get("tax") is not None and item["tax"] not in TAXES:
        found.append("tax is not a known rate")
    for key in ("price", "costPrice"):
        value = item.get(key)
        if value is not None and not (
            isinstance(value, int | Decimal) and 0 <= value <= Decimal("9999999.99")
        ):
            found.append(f"{key} is not a number in 0..9999999.99")
    code = item.get("code")
    if code is not None and (not isinstance(code, str) or len(code) > 10):
        found.append("code is longer than 10 characters")
    for barcode in item.get("barCodes") or []:
        if not isinstance(barcode, str) or not barcode.isdigit():
            found.append(f"barcode {barcode!r} is not digits")
    return found
