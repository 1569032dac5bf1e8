"""A 1C-Bitrix online store at the protocol level: its REST API as an httpx.MockTransport
handler, its orders, its stock and its outgoing webhooks.

REST, as shared/spec/bitrix-rest.md digests it: incoming-webhook URLs
`/rest/<user>/<code>/<method>.json`, JSON bodies, the success envelope (`result`, `time`;
`total` and `next` for lists, 50 rows a page, `start: -1` skipping the count), error envelopes
with numeric codes (sale/catalog, HTTP 400) or string codes (system errors: QUERY_LIMIT_EXCEEDED
with 503, ERROR_METHOD_NOT_FOUND with 404), and `batch` (`halt`, `cmd` of at most 50
`method?query` strings in PHP's nested query form, `$result[...]` references to earlier commands,
always HTTP 200 with `result_error`, `result_total`, `result_next`).

Every shape follows the official documentation, bitrix24/b24restdocs:
- sale.order.get / list / add / update / delete: api-reference/sale/order/*.md (rendering and the
  list rules in tests/bitrix_sim_orders.py); deleting answers 200540400001 "order does not exist"
  afterwards (sale-order-get.md's example; its table says 201240400001).
- sale.basketitem.add: api-reference/sale/basket-item/sale-basket-item-add.md (ids as numbers,
  errors 200140400007/08/09/11); sale.payment.add: sale/payment/sale-payment-add.md;
  sale.shipment.add: sale/shipment/sale-shipment-add.md (SALE_SHIPMENT_WRONG_DELIVERY_SERVICE).
- sale.status.list: sale/status/sale-status-list.md, default statuses from
  default-status-table.md (N, S, P, D, F for orders; DN, DD, DF for deliveries).
- sale.delivery.getlist: sale/delivery/delivery/sale-delivery-get-list.md (SELECT/FILTER/ORDER in
  upper case, a plain array of UPPER_CASE rows, no total); sale.paysystem.list:
  api-reference/pay-system/sale-pay-system-list.md (same form; scope pay_system).
- catalog.store.list: api-reference/catalog/store/catalog-store-list.md; catalog.storeproduct.list,
  catalog.document.*: as the Bitrix sink uses them (tests/integration/test_bitrix_sink.py).
- Outgoing events: tests/bitrix_sim_events.py (local-integrations/local-webhooks.md,
  api-reference/sale/events/*.md). Every save fires ONSALEORDERSAVED, those made through REST
  as well; deleting fires ONSALEBEFOREORDERDELETE and ONORDERDELETED.

The site keeps orders with versions (0 when created, one more on each change) and dateUpdate in
its own offset (+03:00), its own reservations per store (basket items' reservations; released
on cancel, written off on shipping), and per-store amounts changed by store documents. Some
saves can commit "a second late": their dateUpdate is set when the save starts, but the order
(and its event) becomes visible only `late_by` later. The clock is real time shifted by
`advance()`, or a given clock. Anything a real site would not accept as a request shape raises
ProtocolError, which fails the test.
"""

from __future__ import annotations

import copy
import json
import random
import re
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple
from urllib.parse import parse_qsl

import httpx

from tests.bitrix_sim_events import EventQueue, OutgoingWebhook
from tests.bitrix_sim_orders import (
    ORDER_SCHEMA,
    PAGE,
    SITE_TZ,
    Names,
    ProtocolError,
    Schema,
    SimBasketItem,
    SimError,
    SimOrder,
    SimPayment,
    SimProperty,
    SimReservation,
    SimShipment,
    basket_item,
    full_order,
    header,
    iso,
    num,
    payment,
    select_fields,
    shipment,
    sort_rows,
)
from tests.bitrix_sim_orders import page as list_page

__all__ = ["BitrixSim", "ProtocolError", "SimError", "SiteLine", "SiteRefused", "parse_php_query"]

BATCH_LIMIT = 50
REF = re.compile(r"^\$result\[([^\]]+)\]((?:\[[^\]]*\])*)$")
ORDER_EVENTS = ("ONSALEORDERSAVED", "ONSALEBEFOREORDERDELETE")

# default-status-table.md, plus the type of each
DEFAULT_STATUSES = {
    "N": "O",
    "S": "O",
    "P": "O",
    "D": "O",
    "F": "O",
    "DN": "D",
    "DD": "D",
    "DF": "D",
}
# sale-order-update.md: the fields an update may carry, and which of them are Y/N flags
UPDATE_FIELDS = frozenset(
    {
        "price",
        "discountValue",
        "statusId",
        "empStatusId",
        "dateInsert",
        "marked",
        "empMarkedId",
        "reasonMarked",
        "userDescription",
        "additionalInfo",
        "comments",
        "companyId",
        "responsibleId",
        "recurringId",
        "lockedBy",
        "recountFlag",
        "affiliateId",
        "updated1c",
        "orderTopic",
        "xmlId",
        "id1c",
        "version1c",
        "externalOrder",
        "canceled",
        "empCanceledId",
        "reasonCanceled",
    }
)
ADD_FIELDS = UPDATE_FIELDS | {"lid", "personTypeId", "currency", "userId"}
# sale-basket-item-add.md: the fields of a basket item added to an existing order
BASKET_ITEM_FIELDS = frozenset(
    {
        "orderId",
        "sort",
        "productId",
        "price",
        "basePrice",
        "discountPrice",
        "currency",
        "customPrice",
        "quantity",
        "xmlId",
        "name",
        "weight",
        "dimensions",
        "measureCode",
        "measureName",
        "canBuy",
        "vatRate",
        "vatIncluded",
        "catalogXmlId",
        "productXmlId",
    }
)
# sale-payment-add.md: the fields of a new payment
PAYMENT_FIELDS = frozenset(
    {
        "orderId",
        "paySystemId",
        "paid",
        "datePaid",
        "empPaidId",
        "psStatus",
        "psStatusCode",
        "psStatusDescription",
        "psStatusMessage",
        "psSum",
        "psCurrency",
        "psResponseDate",
        "payVoucherNum",
        "payVoucherDate",
        "datePayBefore",
        "dateBill",
        "xmlId",
        "sum",
        "companyId",
        "payReturnNum",
        "priceCod",
        "payReturnDate",
        "empReturnId",
        "payReturnComment",
        "responsibleId",
        "empResponsibleId",
        "isReturn",
        "comments",
        "updated1c",
        "id1c",
        "version1c",
        "externalPayment",
        "psInvoiceId",
        "marked",
        "reasonMarked",
        "empMarkedId",
    }
)
FLAG_FIELDS = frozenset({"marked", "recountFlag", "updated1c", "externalOrder", "canceled"})

STORE_SCHEMA = Schema(
    frozenset({"id", "title", "active", "address", "code", "xmlId", "issuingCenter", "sort"}),
    ints=frozenset({"id", "sort"}),
)
STATUS_SCHEMA = Schema(
    frozenset({"id", "type", "notify", "color", "sort", "xmlId"}), ints=frozenset({"sort"})
)
DELIVERY_SCHEMA = Schema(
    frozenset({"ID", "PARENT_ID", "NAME", "ACTIVE", "DESCRIPTION", "SORT", "CURRENCY"}),
    ints=frozenset({"ID", "PARENT_ID", "SORT"}),
)
PAYSYSTEM_SCHEMA = Schema(
    frozenset({"ID", "NAME", "PSA_NAME", "ACTIVE", "IS_CASH", "XML_ID", "SORT", "PERSON_TYPE_ID"}),
    ints=frozenset({"ID", "SORT", "PERSON_TYPE_ID"}),
)


class SiteRefused(Exception):
    """The site would not take this order from a customer (not enough free stock)."""


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


def _int(value: Any, what: str) -> int:
    try:
        return int(str(value))
    except ValueError as exc:
        raise SimError(0, f"{what} must be an integer, got {value!r}") from exc


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def _decimal(value: Any, what: str) -> Decimal:
    try:
        return Decimal(str(value))
    except ArithmeticError as exc:
        raise SimError(0, f"{what} must be a number, got {value!r}") from exc


def _flag(value: Any, what: str) -> bool:
    if value not in ("Y", "N"):
        raise ProtocolError(f"{what} is a Y/N flag, not {value!r}")
    return bool(value == "Y")


class Reply(NamedTuple):
    result: Any
    total: int | None = None
    next: int | None = None


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


@dataclass(frozen=True)
class SiteLine:
    """A line a customer puts in the basket; `store_id` reserves it at that site store."""

    product_id: int
    quantity: Decimal | int | str
    price: Decimal | int | str = Decimal(100)
    store_id: int | None = None
    xml_id: str | None = None  # overrides the product's xmlId (an offer's `<product>#<offer>`)
    name: str | None = None


@dataclass
class Store:
    id: int
    xml_id: str
    title: str
    code: str | None
    issuing_center: bool
    active: bool = True


class BitrixSim:
    ORDER_STATUSES = tuple(DEFAULT_STATUSES)

    def __init__(
        self,
        user: str = "1",
        code: str = "hook0secret",
        iblock_id: int = 14,
        direct_amounts: bool = False,
        *,
        application_token: str = "4f1c0e5b2a7d9e8c3b6a1f0d2e4c6a8b",
        domain: str = "shop.example",
        member_id: str = "a223c6b3710f85df22e9377d6c4f7553",
        clock: Callable[[], datetime] | None = None,
        show_system_shipment: bool = False,
        late_share: float = 0.0,
        late_by: timedelta = timedelta(seconds=1),
        enforce_stock: bool = False,
        seed: int = 0,
    ) -> None:
        self.user = user
        self.code = code
        self.iblock_id = iblock_id
        self.direct_amounts = direct_amounts  # publishes catalog.storeproduct.add/update
        self.application_token = application_token
        self.domain = domain
        self.show_system_shipment = show_system_shipment
        self.late_share = late_share
        self.late_by = late_by
        self.enforce_stock = enforce_stock
        self.products: dict[int, str] = {}  # id -> xmlId
        self.prices: dict[int, Decimal] = {}
        self.stores: dict[int, str] = {}  # id -> xmlId
        self.store_details: dict[int, Store] = {}
        self.amounts: dict[tuple[int, int], Decimal] = {}
        self.reserved: dict[tuple[int, int], Decimal] = {}  # held by something else than orders
        self.row_ids: dict[tuple[int, int], int] = {}
        self.documents: dict[int, Document] = {}
        self.orders: dict[int, SimOrder] = {}  # committed: what get and list see
        self.deleted: set[int] = set()
        self.statuses: dict[str, str] = dict(DEFAULT_STATUSES)  # id -> type
        self.deliveries: dict[int, tuple[str, int | None]] = {
            1: ("No delivery", None),
            2: ("Courier Delivery", None),
            3: ("Pickup", None),
        }
        self.pay_systems: dict[int, tuple[str, bool]] = {
            1: ("Cash", True),
            2: ("Card Payment", False),
            3: ("Cash on delivery", True),
        }
        self.order_props: dict[str, tuple[int, str]] = {
            "FIO": (20, "First Last"),
            "EMAIL": (21, "E-Mail"),
            "PHONE": (22, "Phone"),
            "ADDRESS": (26, "Delivery Address"),
        }
        self.calls: list[Call] = []
        self.http_requests = 0
        self.batch_sizes: list[int] = []
        self.events = EventQueue(
            {"domain": domain, "member_id": member_id, "application_token": application_token}
        )
        self._clock = clock
        self._shift = timedelta(0)
        self._rng = random.Random(seed)
        self._pending: list[tuple[datetime, SimOrder]] = []  # late commits
        self._limited = 0
        self._failures: list[tuple[str, SimError]] = []
        self._lost: list[str] = []  # methods whose next request's answer never arrives
        self._next_id = 1000
        self._next_order = 1
        self._next_account = 301  # account numbers differ from ids, as on real sites

    # --- setup and control ----------------------------------------------------------------

    @property
    def webhook_url(self) -> str:
        return f"https://{self.domain}/rest/{self.user}/{self.code}/"

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handler)

    def add_product(self, product_id: int, xml_id: str, price: Decimal | int = 100) -> None:
        self.products[product_id] = xml_id
        self.prices[product_id] = Decimal(price)

    def add_store(
        self,
        store_id: int,
        xml_id: str,
        title: str | None = None,
        code: str | None = None,
        issuing_center: bool = True,
    ) -> None:
        self.stores[store_id] = xml_id
        self.store_details[store_id] = Store(
            store_id, xml_id, title or f"Store {store_id}", code, issuing_center
        )

    def add_delivery(self, delivery_id: int, name: str, parent_id: int | None = None) -> None:
        self.deliveries[delivery_id] = (name, parent_id)

    def add_pay_system(self, pay_system_id: int, name: str, is_cash: bool = False) -> None:
        self.pay_systems[pay_system_id] = (name, is_cash)

    def add_status(self, status_id: str, kind: str = "O") -> None:
        self.statuses[status_id] = kind

    def set_amount(self, product_id: int, store_id: int, amount: Decimal | int) -> None:
        self.amounts[(product_id, store_id)] = Decimal(amount)
        self.row_ids.setdefault((product_id, store_id), self._new_id())

    def amount(self, product_id: int, store_id: int) -> Decimal | None:
        return self.amounts.get((product_id, store_id))

    def quantity_reserved(self, product_id: int, store_id: int) -> Decimal:
        """What the site holds at a store: its orders' reservations and any set by hand."""
        pair = (product_id, store_id)
        held = self.reserved.get(pair, Decimal(0))
        for order in self.orders.values():
            held += order.reserved().get(pair, Decimal(0))
        return held

    def sellable(self, product_id: int, store_id: int) -> Decimal:
        free = self.amounts.get((product_id, store_id), Decimal(0))
        return free - self.quantity_reserved(product_id, store_id)

    def add_order(self, order_id: int, status_id: str = "N") -> None:
        """An order already on the site (no event): an empty basket and the system shipment."""
        order = self._new_order(order_id, status_id=status_id)
        self.orders[order_id] = order

    def rate_limit(self, next_requests: int) -> None:
        """The next N HTTP requests get 503 QUERY_LIMIT_EXCEEDED."""
        self._limited = next_requests

    def fail_next(
        self, method: str, code: int | str, description: str = "", status: int = 400
    ) -> None:
        """The next call of `method` (direct or in a batch) answers this error."""
        self._failures.append((method, SimError(code, description, status)))

    def lose_answer(self, method: str, times: int = 1) -> None:
        """The next `times` requests calling `method` (direct or in a batch) are carried out,
        and their answer is lost on the way back (the client sees a read timeout)."""
        self._lost.extend([method] * times)

    def methods_called(self) -> list[str]:
        return [c.method for c in self.calls]

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    # --- clock and commits ----------------------------------------------------------------

    def now_precise(self) -> datetime:
        base = self._clock() if self._clock else datetime.now(SITE_TZ)
        return base.astimezone(SITE_TZ) + self._shift

    def now(self) -> datetime:
        """The site's time as it stores dates: whole seconds, in its offset."""
        return self.now_precise().replace(microsecond=0)

    def advance(self, seconds: float) -> None:
        self._shift += timedelta(seconds=seconds)
        self.settle()

    def settle(self) -> None:
        """Commits the late saves whose moment has come (and fires their events)."""
        if not self._pending:
            return
        moment = self.now_precise()
        due = [(at, order) for at, order in self._pending if at <= moment]
        self._pending = [(at, order) for at, order in self._pending if at > moment]
        for _, order in due:
            self._commit(order)

    @property
    def pending_orders(self) -> list[int]:
        """Orders saved but not yet committed (not visible to get or list)."""
        return [order.id for _, order in self._pending]

    def _working(self, order_id: int) -> SimOrder:
        """A copy of the order to change: the one being committed late, if any."""
        self.settle()
        for _, order in self._pending:
            if order.id == order_id:
                return order
        if order_id not in self.orders:
            raise SimError(200540400001, "order does not exist")
        return copy.deepcopy(self.orders[order_id])

    def _save(self, order: SimOrder, *, changed: bool = True, late: bool | None = None) -> None:
        """Ends a save: a changed order gets the next version and today's dateUpdate; it is
        committed now, or late_by later (a late save keeps its earlier dateUpdate)."""
        if changed:
            if order.id in self.orders or any(o is order for _, o in self._pending):
                order.version += 1
            order.date_update = self.now()
        if any(o is order for _, o in self._pending):
            return  # joins the late commit already under way
        if late is None:
            late = self.late_share > 0 and self._rng.random() < self.late_share
        if late:
            self._pending.append((self.now_precise() + self.late_by, order))
        else:
            self._commit(order)

    def _commit(self, order: SimOrder) -> None:
        self.orders[order.id] = order
        self.events.push(
            "ONSALEORDERSAVED",
            {"ID": order.id, "XML_ID": order.xml_id, "ACTION": "save"},
            self.now(),
        )

    # --- outgoing webhooks ----------------------------------------------------------------

    def outgoing_webhook(
        self,
        url: str,
        *,
        app: Any = None,
        transport: httpx.AsyncBaseTransport | None = None,
        events: Iterable[str] = ORDER_EVENTS,
        drop_share: float = 0.0,
        seed: int = 0,
    ) -> OutgoingWebhook:
        """Sends the events to `url`: through an ASGI app, a transport, or the network."""
        if app is not None:
            transport = httpx.ASGITransport(app=app)
        client = httpx.AsyncClient(transport=transport, timeout=10.0)
        return self.events.add_webhook(url, events, client=client, drop_share=drop_share, seed=seed)

    async def deliver_events(self) -> int:
        """Commits what is due, then sends every queued event; the number answered 2xx."""
        self.settle()
        return await self.events.deliver()

    def event_pump(self, interval: float = 0.005) -> AbstractAsyncContextManager[None]:
        """Delivers events in the background while the block runs."""
        return self.events.pump(self.settle, interval)

    async def aclose(self) -> None:
        await self.events.close()

    # --- the site's own actions (a customer, an operator in the admin) ----------------------

    def place_order(
        self,
        lines: Iterable[SiteLine],
        *,
        delivery_id: int = 2,
        pay_system_id: int | None = 2,
        paid: bool = False,
        properties: Mapping[str, str] | None = None,
        status_id: str = "N",
        person_type_id: int = 1,
        user_id: int = 1,
        currency: str = "RUB",
        xml_id: str | None = None,
        user_description: str = "",
        delivery_price: Decimal | int = 0,
        late: bool | None = None,
    ) -> int:
        """A customer's checkout: basket (reserved where a line names a store), a shipment by
        the delivery service, a payment, the order properties. Returns the order id."""
        self.settle()
        lines = list(lines)
        if self.enforce_stock:
            self._check_stock(lines)
        if delivery_id not in self.deliveries:
            raise SimError("SALE_SHIPMENT_WRONG_DELIVERY_SERVICE", "Delivery service not found")
        order = self._new_order(self._order_id(), status_id=status_id, currency=currency)
        order.person_type_id = person_type_id
        order.user_id = user_id
        order.xml_id = xml_id if xml_id is not None else f"bx_{order.id:012x}"
        order.user_description = user_description
        order.basket = [self._line(line, currency) for line in lines]
        order.shipments.append(self._shipment(order, delivery_id, Decimal(delivery_price)))
        order.recount()
        if pay_system_id is not None:
            order.payments.append(self._payment(order, pay_system_id, paid, order.price))
        for code, value in (properties or {}).items():
            props_id, name = self.order_props.setdefault(
                code, (100 + len(self.order_props), code.title())
            )
            order.properties.append(SimProperty(self._new_id(), props_id, code, name, value))
        order.recount()
        self._save(order, changed=False, late=late)
        return order.id

    def set_status(self, order_id: int, status_id: str, late: bool | None = None) -> None:
        if status_id not in self.statuses:
            raise SimError(0, f"Unknown status {status_id!r}")
        order = self._working(order_id)
        order.status_id = status_id
        order.date_status = self.now()
        self._save(order, late=late)

    def pay_order(self, order_id: int, late: bool | None = None) -> None:
        order = self._working(order_id)
        if not order.payments:
            order.payments.append(self._payment(order, 2, True, order.price))
        for p in order.payments:
            p.paid = True
        order.recount()
        self._save(order, late=late)

    def cancel_order(self, order_id: int, reason: str = "", late: bool | None = None) -> None:
        """Cancelling releases the order's reservations."""
        order = self._working(order_id)
        order.canceled = True
        order.reason_canceled = reason
        order.date_canceled = self.now()
        self._save(order, late=late)

    def ship_order(self, order_id: int, late: bool | None = None) -> None:
        """Deducting the shipments writes the reserved quantities off the stores' amounts."""
        order = self._working(order_id)
        for (product, store), quantity in order.reserved().items():
            pair = (product, store)
            self.amounts[pair] = max(Decimal(0), self.amounts.get(pair, Decimal(0)) - quantity)
        for item in order.basket:
            item.reservations.clear()
        for s in order.shipments:
            if not s.system:
                s.deducted = s.allow_delivery = True
                s.status_id = "DF"
        order.deducted = True
        self._save(order, late=late)

    def edit_basket(
        self, order_id: int, lines: Iterable[SiteLine], late: bool | None = None
    ) -> None:
        """An operator replaces the basket in the admin (reservations follow the new lines)."""
        order = self._working(order_id)
        order.basket = [self._line(line, order.currency) for line in lines]
        order.recount()
        self._save(order, late=late)

    def delete_order(self, order_id: int) -> None:
        """Deleting fires OnSaleBeforeOrderDelete (the order still readable in the event's
        data) and OnOrderDeleted; afterwards sale.order.get answers "order does not exist"."""
        self.settle()
        order = self.orders.get(order_id)
        if order is None:
            raise SimError(200540400001, "order does not exist")
        fields = {"ID": order.id, "XML_ID": order.xml_id, "ACTION": "delete"}
        self.events.push("ONSALEBEFOREORDERDELETE", fields, self.now())
        del self.orders[order_id]
        self.deleted.add(order_id)
        self.events.push("ONORDERDELETED", {"ID": order_id}, self.now())

    def _order_id(self) -> int:
        while self._next_order in self.orders or self._next_order in self.deleted:
            self._next_order += 1
        taken = self._next_order
        self._next_order += 1
        return taken

    def _new_order(self, order_id: int, status_id: str = "N", currency: str = "RUB") -> SimOrder:
        now = self.now()
        order = SimOrder(
            id=order_id,
            account_number=str(self._next_account),
            person_type_id=1,
            status_id=status_id,
            currency=currency,
            user_id=1,
            date_insert=now,
            date_update=now,
            date_status=now,
            version=0,
        )
        self._next_account += 1
        order.shipments.append(  # Bitrix's system shipment holds the undistributed items
            SimShipment(
                self._new_id(),
                1,
                True,
                False,
                False,
                "DN",
                currency,
                f"{order.account_number}/1",
                now,
                f"bx_sys{order_id}",
            )
        )
        return order

    def _line(self, line: SiteLine, currency: str) -> SimBasketItem:
        if line.product_id not in self.products:
            raise SimError(200140400007, "basket item is not saved - bad data")
        quantity = Decimal(str(line.quantity))
        item = SimBasketItem(
            id=self._new_id(),
            product_id=line.product_id,
            product_xml_id=line.xml_id or self.products[line.product_id],
            name=line.name or f"Product {line.product_id}",
            quantity=quantity,
            price=Decimal(str(line.price)),
            currency=currency,
            xml_id=f"bx_b{self._next_id}",
            date_insert=self.now(),
        )
        if line.store_id is not None:
            if line.store_id not in self.stores:
                raise SimError(0, f"store {line.store_id} does not exist")
            item.reservations.append(
                SimReservation(self._new_id(), line.store_id, quantity, self.now())
            )
        return item

    def _shipment(self, order: SimOrder, delivery_id: int, price: Decimal) -> SimShipment:
        return SimShipment(
            self._new_id(),
            delivery_id,
            False,
            False,
            False,
            "DN",
            order.currency,
            f"{order.account_number}/{len(order.shipments) + 1}",
            self.now(),
            f"bx_sh{self._next_id}",
            price,
        )

    def _payment(self, order: SimOrder, pay_system_id: int, paid: bool, amount: Any) -> SimPayment:
        if pay_system_id not in self.pay_systems:
            raise SimError(0, f"Payment system {pay_system_id} not found")
        return SimPayment(
            self._new_id(),
            pay_system_id,
            paid,
            Decimal(str(amount)),
            order.currency,
            f"bx_pay{self._next_id}",
            f"{order.account_number}/{len(order.payments) + 1}",
            self.now(),
        )

    def _check_stock(self, lines: list[SiteLine]) -> None:
        for line in lines:
            wanted = Decimal(str(line.quantity))
            if line.store_id is not None:
                free = self.sellable(line.product_id, line.store_id)
            else:
                free = sum((self.sellable(line.product_id, s) for s in self.stores), Decimal(0))
            if wanted > free:
                raise SiteRefused(f"product {line.product_id}: {wanted} wanted, {free} free")

    def _names(self) -> Names:
        return Names(
            delivery=lambda d: self.deliveries.get(d, ("", None))[0],
            pay_system=lambda p: self.pay_systems.get(p, ("", False)),
        )

    # --- HTTP -----------------------------------------------------------------------------

    def handler(self, request: httpx.Request) -> httpx.Response:
        before = len(self.calls)
        response = self._handle(request)
        called = {c.method for c in self.calls[before:]}
        for index, method in enumerate(self._lost):
            if method in called:
                del self._lost[index]
                raise httpx.ReadTimeout("the answer was lost", request=request)
        return response

    def _handle(self, request: httpx.Request) -> httpx.Response:
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
        self.settle()
        try:
            if method == "batch":
                result = self._batch(params)
                return self._ok({"result": result}, start)
            self.calls.append(Call(method, params, None))
            reply = self._dispatch(method, params)
        except SimError as exc:
            return self._error(exc)
        body: dict[str, Any] = {"result": reply.result}
        if reply.next is not None:
            body["next"] = reply.next
        if reply.total is not None:
            body["total"] = reply.total
        return self._ok(body, start)

    def _ok(self, body: dict[str, Any], start: float) -> httpx.Response:
        finish = time.time()
        body["time"] = {
            "start": start,
            "finish": finish,
            "duration": finish - start,
            "processing": finish - start,
            "date_start": iso(self.now()),
            "date_finish": iso(self.now()),
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
                reply = self._dispatch(method, call.params)
            except SimError as exc:
                out["result_error"][key] = exc.envelope()
                if halt:
                    break
                continue
            out["result"][key] = reply.result
            if reply.total is not None:
                out["result_total"][key] = reply.total
            if reply.next is not None:
                out["result_next"][key] = reply.next
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

    def _dispatch(self, method: str, params: dict[str, Any]) -> Reply:
        for index, (name, error) in enumerate(self._failures):
            if name == method:
                del self._failures[index]
                raise error
        handler: Callable[[dict[str, Any]], Reply] | None = {
            "catalog.product.list": self._product_list,
            "catalog.store.list": self._store_list,
            "catalog.storeproduct.list": self._storeproduct_list,
            "catalog.document.add": self._document_add,
            "catalog.document.element.add": self._element_add,
            "catalog.document.conduct": self._conduct,
            "sale.order.get": self._order_get,
            "sale.order.list": self._order_list,
            "sale.order.add": self._order_add,
            "sale.order.update": self._order_update,
            "sale.order.delete": self._order_delete,
            "sale.basketitem.add": self._basketitem_add,
            "sale.payment.add": self._payment_add,
            "sale.payment.update": self._payment_update,
            "sale.shipment.add": self._shipment_add,
            "sale.status.list": self._status_list,
            "sale.delivery.getlist": self._delivery_list,
            "sale.paysystem.list": self._paysystem_list,
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
    def _filter(params: dict[str, Any], key: str = "filter") -> dict[str, Any]:
        flt = params.get(key, {})
        if flt in ("", []):
            return {}
        if not isinstance(flt, dict):
            raise SimError(0, f"{key} must be an object")
        return flt

    @staticmethod
    def _page(rows: list[Any], params: dict[str, Any]) -> tuple[list[Any], int | None, int | None]:
        return list_page(rows, params.get("start", 0))

    def _listed(
        self, rows: list[dict[str, Any]], params: dict[str, Any], schema: Schema, key: str
    ) -> Reply:
        """filter, order, select and start over rows, as the list methods take them."""
        flt = self._filter(params)
        rows = [r for r in rows if schema.matches(r, flt)]
        rows = sort_rows(rows, params.get("order"), schema)
        chunk, total, following = self._page(
            select_fields(rows, params.get("select"), schema), params
        )
        return Reply({key: chunk}, total, following)

    def _product_list(self, params: dict[str, Any]) -> Reply:
        flt = self._filter(params)
        if "iblockId" not in flt:
            raise SimError(0, "Required filter field iblockId is missing")
        select = _as_list(params.get("select", []))
        if "id" not in select or "iblockId" not in select:
            raise SimError(0, "Required select fields: id, iblockId")
        if _int(flt["iblockId"], "iblockId") != self.iblock_id:
            return Reply({"products": []}, 0)
        wanted = {str(x) for x in _as_list(flt.get("xmlId", []))} if "xmlId" in flt else None
        rows = [
            {"id": pid, "iblockId": self.iblock_id, "xmlId": xml}
            for pid, xml in sorted(self.products.items())
            if wanted is None or xml in wanted
        ]
        chunk, total, following = self._page(rows, params)
        return Reply({"products": chunk}, total, following)

    def _store_list(self, params: dict[str, Any]) -> Reply:
        rows = [
            {
                "active": "Y" if s.active else "N",
                "address": f"Main St. {s.id}",
                "code": s.code,
                "id": s.id,
                "issuingCenter": "Y" if s.issuing_center else "N",
                "sort": 100,
                "title": s.title,
                "xmlId": s.xml_id,
            }
            for s in sorted(self.store_details.values(), key=lambda s: s.id)
        ]
        return self._listed(rows, params, STORE_SCHEMA, "stores")

    def _storeproduct_list(self, params: dict[str, Any]) -> Reply:
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
                "amount": num(amount),
                "quantityReserved": num(self.quantity_reserved(*pair)),
            }
            for pair, amount in sorted(self.amounts.items())
            if (products is None or pair[0] in products) and (stores is None or pair[1] in stores)
        ]
        chunk, total, following = self._page(rows, params)
        return Reply({"storeProducts": chunk}, total, following)

    def _fields(self, params: dict[str, Any]) -> dict[str, Any]:
        fields = params.get("fields")
        if not isinstance(fields, dict) or not fields:
            raise SimError(100, "Parameter fields is not specified or is empty")
        return fields

    def _document_add(self, params: dict[str, Any]) -> Reply:
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
        return Reply(
            {
                "document": {
                    "id": doc.id,
                    "docType": doc.doc_type,
                    "currency": doc.currency,
                    "responsibleId": doc.responsible_id,
                    "status": doc.status,
                    "title": fields.get("title"),
                }
            }
        )

    def _element_add(self, params: dict[str, Any]) -> Reply:
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
        shown = {**element, "amount": num(amount)}
        return Reply({"documentElement": shown})

    def _conduct(self, params: dict[str, Any]) -> Reply:
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
        return Reply(True)

    def _storeproduct_add(self, params: dict[str, Any]) -> Reply:
        fields = self._fields(params)
        pair = (_int(fields.get("productId"), "productId"), _int(fields.get("storeId"), "storeId"))
        if pair in self.amounts:
            raise SimError(0, "Store product already exists")
        self.set_amount(pair[0], pair[1], Decimal(str(fields.get("amount", "0"))))
        return Reply({"storeProduct": {"id": self.row_ids[pair]}})

    def _storeproduct_update(self, params: dict[str, Any]) -> Reply:
        row = _int(params.get("id"), "id")
        fields = self._fields(params)
        for pair, row_id in self.row_ids.items():
            if row_id == row:
                self.amounts[pair] = Decimal(str(fields["amount"]))
                return Reply({"storeProduct": {"id": row}})
        raise SimError(0, "Store product not found")

    # --- sale: orders ---------------------------------------------------------------------

    def _order_id_param(self, params: dict[str, Any]) -> int:
        if params.get("id") in (None, ""):
            raise SimError(100, "Parameter id not specified")
        return _int(params["id"], "id")

    def _order_get(self, params: dict[str, Any]) -> Reply:
        order = self.orders.get(self._order_id_param(params))
        if order is None:
            raise SimError(200540400001, "order does not exist")
        return Reply({"order": full_order(order, self._names(), self.show_system_shipment)})

    def _order_list(self, params: dict[str, Any]) -> Reply:
        rows = [header(o) for _, o in sorted(self.orders.items())]
        return self._listed(rows, params, ORDER_SCHEMA, "orders")

    def _order_add(self, params: dict[str, Any]) -> Reply:
        fields = self._fields(params)
        for name in fields:
            if name not in ADD_FIELDS:
                raise ProtocolError(f"sale.order.add: undocumented field {name!r}")
        for required in ("lid", "personTypeId", "currency"):
            if fields.get(required) in (None, ""):
                raise SimError(0, f"Required fields: {required}")
        order = self._new_order(
            self._order_id(),
            status_id=str(fields.get("statusId") or "N"),
            currency=str(fields["currency"]),
        )
        order.lid = str(fields["lid"])
        order.person_type_id = _int(fields["personTypeId"], "personTypeId")
        if "userId" in fields:
            order.user_id = _int(fields["userId"], "userId")
        self._apply(order, fields)
        self._save(order, changed=False)
        shown = header(order)
        shown.update({"clients": [], "requisiteLink": []})
        return Reply({"order": shown})

    def _order_update(self, params: dict[str, Any]) -> Reply:
        order = self._working(self._order_id_param(params))
        fields = self._fields(params)
        for name in fields:
            if name not in UPDATE_FIELDS:
                raise ProtocolError(f"sale.order.update: unexpected field {name!r}")
        before = header(order)
        self._apply(order, fields)
        self._save(order, changed=header(order) != before)
        shown = header(order)
        shown.update({"clients": [], "requisiteLink": []})
        return Reply({"order": shown})

    def _apply(self, order: SimOrder, fields: dict[str, Any]) -> None:
        for name in FLAG_FIELDS & fields.keys():
            _flag(fields[name], name)
        if "statusId" in fields:
            status = str(fields["statusId"])
            if status not in self.statuses:
                raise SimError(0, f"Unknown status {status!r}")
            if status != order.status_id:
                order.status_id = status
                order.date_status = self.now()
        if "canceled" in fields:
            canceled = _flag(fields["canceled"], "canceled")
            if canceled != order.canceled:
                order.canceled = canceled
                order.date_canceled = self.now() if canceled else None
        for name, attr in (
            ("xmlId", "xml_id"),
            ("comments", "comments"),
            ("userDescription", "user_description"),
            ("additionalInfo", "additional_info"),
            ("reasonCanceled", "reason_canceled"),
        ):
            if name in fields:
                setattr(order, attr, str(fields[name] or ""))
        if "externalOrder" in fields:
            order.external_order = _flag(fields["externalOrder"], "externalOrder")
        if fields.get("dateInsert") not in (None, ""):
            try:
                moment = datetime.fromisoformat(str(fields["dateInsert"]))
            except ValueError as exc:
                raise SimError(0, f"Invalid value of dateInsert: {fields['dateInsert']!r}") from exc
            moment = moment if moment.tzinfo else moment.replace(tzinfo=SITE_TZ)
            order.date_insert = moment.astimezone(SITE_TZ).replace(microsecond=0)

    def _order_delete(self, params: dict[str, Any]) -> Reply:
        self.delete_order(self._order_id_param(params))
        return Reply(True)

    def _basketitem_add(self, params: dict[str, Any]) -> Reply:
        fields = self._fields(params)
        for name in fields:
            if name not in BASKET_ITEM_FIELDS:
                raise ProtocolError(f"sale.basketitem.add: undocumented field {name!r}")
        if _flag(fields.get("customPrice", "N"), "customPrice"):
            # customPrice Y: price, basePrice and discountPrice given, basePrice = price + discount
            given = [fields.get(n) for n in ("price", "basePrice", "discountPrice")]
            if any(v in (None, "") for v in given):
                raise SimError(0, "customPrice Y needs price, basePrice and discountPrice")
            price_, base, discount = (_decimal(v, "price") for v in given)
            if base != price_ + discount:
                raise SimError(0, "basePrice must be price + discountPrice")
        if fields.get("orderId") in (None, ""):
            raise SimError(200140400008, "Required fields: fields[ORDER_ID]")
        for required in ("productId", "currency", "quantity"):
            if fields.get(required) in (None, ""):
                raise SimError(100, f"Required parameters are not specified: {required}")
        try:
            order = self._working(_int(fields["orderId"], "orderId"))
        except SimError as exc:
            raise SimError(200140400009, "Order not found") from exc
        if str(fields["currency"]) != order.currency:
            raise SimError(200140400011, "Currency must be the currency of the order")
        product = _int(fields["productId"], "productId")
        if product != 0 and product not in self.products:
            raise SimError(200140400007, "basket item is not saved - bad data")
        if product == 0 and not fields.get("name"):
            raise SimError(100, "Required parameters are not specified: name")
        quantity = _decimal(fields["quantity"], "quantity")
        price = fields.get("price")
        item = SimBasketItem(
            id=self._new_id(),
            product_id=product,
            product_xml_id=str(fields.get("productXmlId") or self.products.get(product, "")),
            name=str(fields.get("name") or f"Product {product}"),
            quantity=quantity,
            price=_decimal(price, "price") if price not in (None, "") else self.prices[product],
            currency=order.currency,
            xml_id=str(fields.get("xmlId") or f"bx_b{self._next_id}"),
            date_insert=self.now(),
        )
        order.basket.append(item)
        order.recount()
        self._save(order)
        return Reply({"basketItem": basket_item(order, item, as_get=False)})

    def _payment_add(self, params: dict[str, Any]) -> Reply:
        fields = self._fields(params)
        for name in fields:
            if name not in PAYMENT_FIELDS:
                raise ProtocolError(f"sale.payment.add: undocumented field {name!r}")
        for required in ("orderId", "paySystemId"):
            if fields.get(required) in (None, ""):
                raise SimError(0, f"Required fields: {required}")
        order = self._working(_int(fields["orderId"], "orderId"))
        paid = _flag(fields.get("paid", "N"), "paid")
        amount = fields.get("sum")
        record = self._payment(
            order,
            _int(fields["paySystemId"], "paySystemId"),
            paid,
            _decimal(amount, "sum") if amount not in (None, "") else order.price,
        )
        if fields.get("xmlId"):
            record.xml_id = str(fields["xmlId"])
        order.payments.append(record)
        order.recount()
        self._save(order)
        return Reply({"payment": payment(order, record, self._names())})

    def _payment_update(self, params: dict[str, Any]) -> Reply:
        """sale-payment-update.md: `id` and the fields to change (not orderId); the table marks
        paySystemId required."""
        if params.get("id") in (None, ""):
            raise SimError(100, "Parameter id not specified")
        payment_id = _int(params["id"], "id")
        fields = self._fields(params)
        if fields.get("paySystemId") in (None, ""):
            raise SimError(0, "Required fields: paySystemId")
        for name in fields:
            if name not in PAYMENT_FIELDS or name == "orderId":
                raise ProtocolError(f"sale.payment.update: unexpected field {name!r}")
        owner = next(
            (o for o in self.orders.values() if any(p.id == payment_id for p in o.payments)),
            None,
        )
        if owner is None:
            raise SimError(200640400001, "payment does not exist")
        order = self._working(owner.id)
        record = next(p for p in order.payments if p.id == payment_id)
        if "paid" in fields:
            record.paid = _flag(fields["paid"], "paid")
        if fields.get("sum") not in (None, ""):
            record.sum = _decimal(fields["sum"], "sum")
        order.recount()
        self._save(order)
        return Reply({"payment": payment(order, record, self._names())})

    def _shipment_add(self, params: dict[str, Any]) -> Reply:
        fields = self._fields(params)
        for required in ("orderId", "allowDelivery", "deducted", "deliveryId"):
            if fields.get(required) in (None, ""):
                raise SimError(0, f"Required fields: {required}")
        order = self._working(_int(fields["orderId"], "orderId"))
        delivery = _int(fields["deliveryId"], "deliveryId")
        if delivery not in self.deliveries:
            raise SimError("SALE_SHIPMENT_WRONG_DELIVERY_SERVICE", "Delivery service not found")
        price = fields.get("basePriceDelivery")
        record = self._shipment(
            order, delivery, _decimal(price, "basePriceDelivery") if price else Decimal(0)
        )
        record.allow_delivery = _flag(fields["allowDelivery"], "allowDelivery")
        record.deducted = _flag(fields["deducted"], "deducted")
        record.status_id = str(fields.get("statusId") or "DN")
        if fields.get("xmlId"):
            record.xml_id = str(fields["xmlId"])
        order.shipments.append(record)
        order.recount()
        self._save(order)
        return Reply({"shipment": shipment(order, record, self._names())})

    def _status_list(self, params: dict[str, Any]) -> Reply:
        rows = [
            {
                "color": "#BEEDF1",
                "id": sid,
                "notify": "Y",
                "sort": 10 * n,
                "type": kind,
                "xmlId": None,
            }
            for n, (sid, kind) in enumerate(self.statuses.items(), start=1)
        ]
        return self._listed(rows, params, STATUS_SCHEMA, "statuses")

    def _upper_list(
        self, params: dict[str, Any], rows: list[dict[str, Any]], schema: Schema
    ) -> Reply:
        """sale.delivery.getlist / sale.paysystem.list: SELECT, FILTER, ORDER in upper case and
        a plain array of rows, without total."""
        for key in params:
            if key in ("select", "filter", "order"):
                raise ProtocolError(f"this method takes {key.upper()}, not {key}")
        flt = self._filter(params, "FILTER")
        rows = [r for r in rows if schema.matches(r, flt)]
        rows = sort_rows(rows, params.get("ORDER"), schema)
        return Reply(select_fields(rows, params.get("SELECT"), schema)[:PAGE])

    def _delivery_list(self, params: dict[str, Any]) -> Reply:
        rows = [
            {
                "NAME": name,
                "ACTIVE": "Y",
                "DESCRIPTION": name,
                "CURRENCY": "RUB",
                "ID": did,
                "PARENT_ID": parent,
                "SORT": 100,
            }
            for did, (name, parent) in sorted(self.deliveries.items())
        ]
        return self._upper_list(params, rows, DELIVERY_SCHEMA)

    def _paysystem_list(self, params: dict[str, Any]) -> Reply:
        rows = [
            {
                "NAME": name,
                "PSA_NAME": name,
                "ACTIVE": "Y",
                "IS_CASH": "Y" if cash else "N",
                "XML_ID": f"bx_ps{pid}",
                "ID": pid,
                "PERSON_TYPE_ID": 1,
                "SORT": 100,
            }
            for pid, (name, cash) in sorted(self.pay_systems.items())
        ]
        return self._upper_list(params, rows, PAYSYSTEM_SCHEMA)
