"""From a site order to the command the hub executes: pure functions, no I/O.

- Lines by the basket item's productXmlId (the 1C Ид the catalog reached the site with; for an
  offer `<product Ид>#<offer Ид>`, tried whole and then as the offer's Ид), else through a
  fallback (a site product id -> hub Ид mapping read once from the catalog).
- Delivery from the non-system shipments (a site may show its system shipment): pickup when the
  delivery service is in `pickup_deliveries`, at the store the basket's reservations name
  (`reservations[].storeId`), else at the store `pickup_stores` gives for the delivery service.
  Site store ids become hub stores by `store_map`, else by the site store's xmlId (the 1C Ид).
- Customer: name, phone, email and address from `propertyValues` by configured codes, nothing
  else. Paid from the order's flag or its payments; cancelled from its flag or the status map;
  confirmed (cash on delivery) from the status map or a pay system in `cod_pay_systems`.

What cannot be mapped is returned as problems, never raised: the order exists on the site and
the hub must record it even when it cannot hold all of it."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from ...domain.commands import LineInput, PlaceOrder, ProductRef
from ...domain.types import Channel, Fulfillment
from .orders import BasketItem, SiteOrder
from .values import BadSitePayload, site_id

CUSTOMER_FIELDS = ("name", "phone", "email", "address")
DEFAULT_PROPERTY_CODES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "name": ("FIO", "NAME", "CONTACT_PERSON"),
        "phone": ("PHONE",),
        "email": ("EMAIL",),
        "address": ("ADDRESS",),
    }
)


class StatusAction(StrEnum):
    """What a site status means to the hub (the values of `status_map`)."""

    CONFIRMED = "confirmed"
    SHIPPED = "shipped"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class MappingConfig:
    """The `[bitrix]` mappings. Site ids may be given as numbers or strings."""

    pickup_deliveries: frozenset[str] = frozenset()  # delivery service ids meaning pickup
    pickup_stores: Mapping[str, str] = field(default_factory=dict)  # delivery id -> hub store
    store_map: Mapping[str, str] = field(default_factory=dict)  # site store id -> hub store code
    property_codes: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: DEFAULT_PROPERTY_CODES
    )
    status_map: Mapping[str, StatusAction] = field(default_factory=dict)  # site status -> hub
    cod_pay_systems: frozenset[str] = frozenset()  # pay system ids of cash on delivery

    @classmethod
    def build(
        cls,
        *,
        pickup_deliveries: Iterable[str | int] = (),
        pickup_stores: Mapping[str | int, str] | None = None,
        store_map: Mapping[str | int, str] | None = None,
        property_codes: Mapping[str, str | Iterable[str]] | None = None,
        status_map: Mapping[str, str] | None = None,
        cod_pay_systems: Iterable[str | int] = (),
    ) -> MappingConfig:
        """From configuration values; raises ValueError on a mapping that cannot be right."""
        codes = dict(DEFAULT_PROPERTY_CODES)
        for name, given in (property_codes or {}).items():
            if name not in CUSTOMER_FIELDS:
                raise ValueError(f"property_codes: {name!r} is not one of {CUSTOMER_FIELDS}")
            listed = (given,) if isinstance(given, str) else tuple(given)
            if not listed or not all(isinstance(c, str) and c.strip() for c in listed):
                raise ValueError(f"property_codes.{name}: give one or more property codes")
            codes[name] = tuple(c.strip() for c in listed)
        actions: dict[str, StatusAction] = {}
        for status, action in (status_map or {}).items():
            try:
                actions[str(status).strip()] = StatusAction(action)
            except ValueError as exc:
                known = ", ".join(a.value for a in StatusAction)
                raise ValueError(f"status_map.{status}: {action!r} is not one of {known}") from exc
        return cls(
            pickup_deliveries=frozenset(
                _config_id(x, "pickup_deliveries") for x in pickup_deliveries
            ),
            pickup_stores={
                _config_id(k, "pickup_stores"): str(v) for k, v in (pickup_stores or {}).items()
            },
            store_map={_config_id(k, "store_map"): str(v) for k, v in (store_map or {}).items()},
            property_codes=MappingProxyType(codes),
            status_map=actions,
            cod_pay_systems=frozenset(_config_id(x, "cod_pay_systems") for x in cod_pay_systems),
        )


ProductFallback = Callable[[BasketItem], str | None]


@dataclass(frozen=True)
class HubCatalog:
    """What mapping looks up, read once and cached by the caller.

    products: the hub's product Ид (any container: a set, or an object answering `in`).
    stores: hub store Ид and hub store code -> hub store code.
    site_stores: site store id -> the site store's xmlId (catalog.store.list).
    product_fallback: for a basket item whose productXmlId the hub does not know, the hub Ид
    by another route (see by_site_product_id), or None."""

    products: Container[str]
    stores: Mapping[str, str]
    site_stores: Mapping[str, str] = field(default_factory=dict)
    product_fallback: ProductFallback | None = None


def by_site_product_id(site_products: Mapping[str, str]) -> ProductFallback:
    """A fallback through a site product id -> hub product Ид mapping."""

    def lookup(item: BasketItem) -> str | None:
        return site_products.get(item.product_id)

    return lookup


@dataclass(frozen=True, slots=True)
class Problem:
    """Something of the site order the hub could not map."""

    code: str  # unknown_product, unknown_store, no_pickup_store, empty_basket, ...
    detail: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class SyncSiteOrder:
    """Bring the hub's order in line with this site order (create it, or apply what changed)."""

    external_id: str  # the site order id
    account_number: str
    version: int
    date_update: datetime
    xml_id: str | None
    fulfillment: Fulfillment
    store_code: str | None  # the pickup store; None for delivery
    lines: tuple[LineInput, ...]  # products as ProductRef(xml_id=<hub Ид>)
    customer: Mapping[str, str]  # name, phone, email, address: those the site gave
    currency: str
    paid: bool
    cancelled: bool
    site_status: str
    status_action: StatusAction | None
    confirmed: bool
    comment: str | None
    problems: tuple[Problem, ...]
    channel: Channel = Channel.ONLINE

    @property
    def complete(self) -> bool:
        """Every line and the store were mapped."""
        return not self.problems

    def place_order(self) -> PlaceOrder:
        """The hub command for a new order, with the lines that could be mapped."""
        return PlaceOrder(
            channel=self.channel,
            fulfillment=self.fulfillment,
            lines=self.lines,
            store_code=self.store_code,
            customer=dict(self.customer),
            external_id=self.external_id,
            currency=self.currency,
            comment=self.comment,
        )


def map_site_order(order: SiteOrder, config: MappingConfig, catalog: HubCatalog) -> SyncSiteOrder:
    problems: list[Problem] = []
    lines = _lines(order, catalog, problems)
    fulfillment, store_code = _fulfillment(order, config, catalog, problems)
    action = config.status_map.get(order.status_id)
    cod = any(p.pay_system_id in config.cod_pay_systems for p in order.payments)
    return SyncSiteOrder(
        external_id=order.id,
        account_number=order.account_number,
        version=order.version,
        date_update=order.date_update,
        xml_id=order.xml_id,
        fulfillment=fulfillment,
        store_code=store_code,
        lines=lines,
        customer=customer(order, config),
        currency=order.currency,
        paid=is_paid(order),
        cancelled=order.canceled or action is StatusAction.CANCELLED,
        site_status=order.status_id,
        status_action=action,
        confirmed=cod or action is StatusAction.CONFIRMED,
        comment=order.user_description.strip() or None,
        problems=tuple(problems),
    )


def is_paid(order: SiteOrder) -> bool:
    """The order's PAYED flag, or every one of its payments paid."""
    return order.payed or (bool(order.payments) and all(p.paid for p in order.payments))


def customer(order: SiteOrder, config: MappingConfig) -> dict[str, str]:
    """Name, phone, email and address by the configured property codes; nothing else."""
    found: dict[str, str] = {}
    for name in CUSTOMER_FIELDS:
        for code in config.property_codes.get(name, ()):
            value = order.property_value(code)
            if value and value.strip():
                found[name] = value.strip()
                break
    return found


def hub_product_xml_id(item: BasketItem, catalog: HubCatalog) -> str | None:
    """The hub Ид of a basket item: productXmlId whole, then the offer's own Ид, then the
    fallback. The product part of `<product>#<offer>` is never used: it names another item."""
    for candidate in (item.product_xml_id, item.offer_xml_id):
        if candidate and candidate in catalog.products:
            return candidate
    if catalog.product_fallback is not None:
        return catalog.product_fallback(item)
    return None


def hub_store_code(site_store_id: str, config: MappingConfig, catalog: HubCatalog) -> str | None:
    """A site store's hub code: by `store_map`, else by the site store's xmlId (the 1C Ид)."""
    mapped = config.store_map.get(site_store_id)
    if mapped is not None:
        return catalog.stores.get(mapped)
    xml_id = catalog.site_stores.get(site_store_id)
    return catalog.stores.get(xml_id) if xml_id else None


def looks_like_hub_order_id(xml_id: str | None) -> bool:
    """A cheap first test for the hub's own orders mirrored to the site (xmlId = the hub order
    id, a UUID version 7); confirm by looking the id up before skipping an order."""
    if not xml_id:
        return False
    try:
        return uuid.UUID(xml_id).version == 7
    except ValueError:
        return False


# --- parts --------------------------------------------------------------------------------


def _lines(order: SiteOrder, catalog: HubCatalog, problems: list[Problem]) -> tuple[LineInput, ...]:
    if not order.basket:
        problems.append(Problem("empty_basket", {"order": order.id}))
    lines: list[LineInput] = []
    for item in order.basket:
        if item.quantity <= 0:
            problems.append(
                Problem("bad_quantity", {"basket_item": item.id, "quantity": str(item.quantity)})
            )
            continue
        xml_id = hub_product_xml_id(item, catalog)
        if xml_id is None:
            problems.append(Problem("unknown_product", _item_detail(item)))
            continue
        lines.append(LineInput(ProductRef(xml_id=xml_id), item.quantity, item.price))
    return tuple(lines)


def _fulfillment(
    order: SiteOrder, config: MappingConfig, catalog: HubCatalog, problems: list[Problem]
) -> tuple[Fulfillment, str | None]:
    deliveries = list(dict.fromkeys(s.delivery_id for s in order.delivery_shipments))
    if not deliveries:
        problems.append(Problem("no_delivery", {"order": order.id}))
        return Fulfillment.DELIVERY, None
    if len(deliveries) > 1:
        problems.append(Problem("several_deliveries", {"deliveries": ",".join(deliveries)}))
    delivery = deliveries[0]
    if delivery not in config.pickup_deliveries:
        return Fulfillment.DELIVERY, None
    return Fulfillment.PICKUP, _pickup_store(order, delivery, config, catalog, problems)


def _pickup_store(
    order: SiteOrder,
    delivery: str,
    config: MappingConfig,
    catalog: HubCatalog,
    problems: list[Problem],
) -> str | None:
    reserved_at = _reservation_stores(order)
    if len(reserved_at) > 1:
        problems.append(Problem("several_pickup_stores", {"stores": ",".join(reserved_at)}))
    if reserved_at:
        code = hub_store_code(reserved_at[0], config, catalog)
        if code is None:
            problems.append(Problem("unknown_store", {"site_store": reserved_at[0]}))
        return code
    configured = config.pickup_stores.get(delivery)
    if configured is None:
        problems.append(Problem("no_pickup_store", {"delivery": delivery}))
        return None
    code = catalog.stores.get(configured)
    if code is None:
        problems.append(Problem("unknown_store", {"hub_store": configured, "delivery": delivery}))
    return code


def _reservation_stores(order: SiteOrder) -> list[str]:
    """The site stores the basket is reserved at, the one holding most first."""
    held: dict[str, Decimal] = {}
    for item in order.basket:
        for reservation in item.reservations:
            if reservation.quantity > 0:
                held[reservation.store_id] = held.get(reservation.store_id, Decimal(0))
                held[reservation.store_id] += reservation.quantity
    return sorted(held, key=lambda store: (-held[store], int(store)))


def _item_detail(item: BasketItem) -> dict[str, str]:
    detail = {"basket_item": item.id, "product_id": item.product_id, "name": item.name}
    if item.product_xml_id:
        detail["product_xml_id"] = item.product_xml_id
    return detail


def _config_id(value: Any, where: str) -> str:
    try:
        return site_id(value, where)
    except BadSitePayload as exc:
        raise ValueError(f"{where}: {value!r} is not a site id") from exc
