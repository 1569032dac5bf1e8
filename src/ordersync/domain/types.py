"""The vocabulary of the trade as enumerations."""

from __future__ import annotations

from enum import StrEnum


class Channel(StrEnum):
    ONLINE = "online"
    OPERATOR = "operator"
    POS = "pos"


class Source(StrEnum):
    """Where an order was born: a customer order, or a sale already made at a till."""

    ORDER = "order"
    OFFLINE = "offline"


class Fulfillment(StrEnum):
    DELIVERY = "delivery"
    PICKUP = "pickup"
    IN_STORE = "in_store"  # a till sale: the customer leaves with the goods


class OrderStatus(StrEnum):
    PLACED = "placed"
    SHIPPED = "shipped"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class PaymentStatus(StrEnum):
    UNPAID = "unpaid"
    PAID = "paid"


class HoldState(StrEnum):
    ACTIVE = "active"
    RELEASED = "released"
    CONSUMED = "consumed"
    EXPIRED = "expired"


class MovementReason(StrEnum):
    SALE = "sale"
    POS_SALE = "pos_sale"
    POS_RETURN = "pos_return"
    RECEIPT = "receipt"
    WRITE_OFF = "write_off"
    TRANSFER_OUT = "transfer_out"
    TRANSFER_IN = "transfer_in"
    COUNT = "count"
    SHIPMENT = "shipment"
    EXCHANGE_1C = "exchange_1c"  # a figure adopted from 1C's stock (master = "1c")


class HoldReason(StrEnum):
    """Why `reserved` changed (these change no `on_hand`, so they are not movements)."""

    HOLD = "hold"
    RELEASE = "release"
    EXPIRE = "expire"


class StoreKind(StrEnum):
    SHOP = "shop"
    WAREHOUSE = "warehouse"
    PICKUP_POINT = "pickup_point"


class PosMode(StrEnum):
    ORDER = "order"
    STOCK_ONLY = "stock_only"


class Role(StrEnum):
    ONLINE = "online"
    POS = "pos"
    OPERATOR = "operator"
    ADMIN = "admin"


class StaffRole(StrEnum):
    """People at the console: an operator takes and manages orders; a store's staff see their
    own stores; an admin sees everything, system health included."""

    OPERATOR = "operator"
    STORE = "store"
    ADMIN = "admin"


class Unit(StrEnum):
    """Units of measure; only pieces must be whole."""

    PCS = "pcs"
    KG = "kg"
    L = "l"
    M = "m"


class Master(StrEnum):
    ONE_C = "1c"
    HUB = "hub"
