"""What each role sees and may do at the console, in one place.

- operator: takes phone orders and manages every order; sees all stock and pick lists.
- store: its own stores' orders, stock and pick lists; hands pickup orders over at them.
- admin: everything, system health included (the 1C exchange, the relay, dead letters).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..domain.types import Fulfillment, OrderStatus, PaymentStatus, StaffRole
from .labels import N_

# Screens in menu order: (path under /ui, message id of its name, roles that see it).
SCREENS: tuple[tuple[str, str, frozenset[StaffRole]], ...] = (
    ("orders", N_("Orders"), frozenset(StaffRole)),
    ("new", N_("New order"), frozenset({StaffRole.OPERATOR, StaffRole.ADMIN})),
    ("stock", N_("Stock"), frozenset(StaffRole)),
    ("pick", N_("Pick list"), frozenset(StaffRole)),
    ("attention", N_("Attention"), frozenset(StaffRole)),
    ("system", N_("System"), frozenset({StaffRole.ADMIN})),
)


@dataclass(frozen=True, slots=True)
class Staff:
    id: int
    name: str
    role: StaffRole
    store_ids: frozenset[int]
    locale: str

    @property
    def key(self) -> str:
        """The principal of the staff member's Idempotency-Keys."""
        return f"user:{self.id}"

    @property
    def visible_stores(self) -> frozenset[int] | None:
        """The stores whose orders and stock this person sees; None: every store."""
        return self.store_ids if self.role is StaffRole.STORE else None

    def sees_screen(self, screen: str) -> bool:
        return any(path == screen and self.role in roles for path, roles in _ROLES)

    def sees_store(self, store_id: int | None) -> bool:
        visible = self.visible_stores
        return visible is None or store_id in visible

    def sees_order(self, stores: Iterable[int]) -> bool:
        visible = self.visible_stores
        return visible is None or bool(visible & set(stores))

    @property
    def manages_orders(self) -> bool:
        return self.role in (StaffRole.OPERATOR, StaffRole.ADMIN)

    @property
    def places_orders(self) -> bool:
        return self.sees_screen("new")

    @property
    def is_admin(self) -> bool:
        return self.role is StaffRole.ADMIN


_ROLES = tuple((path, roles) for path, _, roles in SCREENS)

# The actions of an order at the console, each a status change by the services; "hand_over"
# is completing a pickup order at its store; "confirm" (by phone: cash on delivery) keeps an
# unpaid order's stock for the channel's longer confirmed limit.
ACTIONS = ("confirm", "pay", "ship", "complete", "hand_over", "cancel")


def order_actions(
    staff: Staff,
    status: OrderStatus,
    payment: PaymentStatus,
    fulfillment: Fulfillment,
    store_id: int | None,
    confirmed: bool = False,
) -> list[str]:
    """What this person may do with an order in this state, in the order to show them."""
    found: list[str] = []
    pickup = fulfillment is Fulfillment.PICKUP
    if staff.manages_orders:
        if status is OrderStatus.PLACED and payment is PaymentStatus.UNPAID and not confirmed:
            found.append("confirm")
        if status is OrderStatus.PLACED and payment is PaymentStatus.UNPAID:
            found.append("pay")
        if status is OrderStatus.PLACED and fulfillment is Fulfillment.DELIVERY:
            found.append("ship")
        if status is OrderStatus.SHIPPED or (status is OrderStatus.PLACED and not pickup):
            found.append("complete")
    if status is OrderStatus.PLACED and pickup and staff.sees_store(store_id):
        found.append("hand_over")
    if staff.manages_orders and status is OrderStatus.PLACED:
        found.append("cancel")
    return found


def target_status(action: str) -> OrderStatus | None:
    """The status an action moves the order to (None for paying and confirming)."""
    return {
        "ship": OrderStatus.SHIPPED,
        "complete": OrderStatus.COMPLETED,
        "hand_over": OrderStatus.COMPLETED,
        "cancel": OrderStatus.CANCELLED,
    }.get(action)
