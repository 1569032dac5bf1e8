"""The vocabulary of the trade as enumerations."""

from __future__ import annotations

from enum import StrEnum


class Channel(StrEnum):
    ONLINE = "online"
    OPERATOR = "operator"
    POS = "pos"


class Source(StrEnum):
    """Where an order was born: a customer order, a sale already made at a till, or units
    customers brought back to a till that no sale the hub knows covers."""

    ORDER = "order"
    OFFLINE = "offline"
    RETURN = "return"


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
    # A completed till sale took the units: the hold is closed and new active holds carry
    # what moved to another store or what stayed (services/till_sale.py).
    DISPLACED = "displaced"


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
    DISPLACE = "displace"  # a completed till sale took held units (services/till_sale.py)


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
    EVOTOR = "evotor"  # the Evotor cloud: may call /evotor only


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
