"""Which holds a completed till sale displaces, and in which order (domain/displacement.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from ordersync.domain.displacement import HeldUnits, OtherStore, plan, units_to_displace

D = Decimal
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def held(
    hold_id: int,
    qty: int,
    *,
    movable: bool = False,
    paid: bool = False,
    minutes: int = 0,
    safety: bool = True,
) -> HeldUnits:
    return HeldUnits(
        hold_id,
        f"order-{hold_id}",
        1,
        D(qty),
        movable=movable,
        paid=paid,
        created_at=T0 + timedelta(minutes=minutes),
        safety=safety,
    )


def taken(chosen: list) -> list[tuple[int, list[tuple[int, Decimal]], Decimal]]:
    return [(d.hold.hold_id, d.moved, d.cut) for d in chosen]


def test_free_units_go_first_and_no_more_than_is_on_hand_stays_held() -> None:
    assert units_to_displace(D(10), D(4), D(6)) == 0
    assert units_to_displace(D(10), D(4), D(8)) == 2
    assert units_to_displace(D(3), D(3), D(5)) == 3  # everything held is taken, 2 below zero
    # held beyond what was on hand (after a count): the sale leaves no hold uncovered
    assert units_to_displace(D(2), D(5), D(1)) == 4


def test_a_delivery_hold_moves_to_the_first_store_with_the_units() -> None:
    chosen = plan(D(2), [held(1, 2, movable=True)], [OtherStore(7, D(1)), OtherStore(8, D(5))])
    assert taken(chosen) == [(1, [(7, D(1)), (8, D(1))], D(0))]


def test_a_move_leaves_the_safety_stock_of_online_and_operator_orders() -> None:
    others = [OtherStore(7, D(3), safety=D(2)), OtherStore(8, D(5))]
    assert taken(plan(D(2), [held(1, 2, movable=True)], others)) == [
        (1, [(7, D(1)), (8, D(1))], D(0))
    ]
    pos_order = held(2, 2, movable=True, safety=False)
    assert taken(plan(D(2), [pos_order], others)) == [(2, [(7, D(2))], D(0))]


def test_delivery_holds_move_before_anything_is_cut() -> None:
    pickup_new_unpaid = held(1, 1, minutes=30)
    delivery_old_paid = held(2, 1, movable=True, paid=True, minutes=0)
    chosen = plan(D(1), [pickup_new_unpaid, delivery_old_paid], [OtherStore(7, D(1))])
    assert taken(chosen) == [(2, [(7, D(1))], D(0))]


def test_delivery_holds_move_unpaid_before_paid_then_newest_first() -> None:
    holds = [
        held(1, 1, movable=True, paid=True, minutes=50),
        held(2, 1, movable=True, minutes=10),
        held(3, 1, movable=True, minutes=20),
    ]
    chosen = plan(D(2), holds, [OtherStore(7, D(9))])
    assert [d.hold.hold_id for d in chosen] == [3, 2]


def test_what_cannot_move_is_cut_unpaid_before_paid_then_newest_first() -> None:
    holds = [
        held(1, 2, paid=True, minutes=50),
        held(2, 2, minutes=10),
        held(3, 1, minutes=20),
        held(4, 2, movable=True, minutes=40),  # no other store has the units
    ]
    chosen = plan(D(4), holds, [OtherStore(7, D(0))])
    assert taken(chosen) == [(4, [], D(2)), (3, [], D(1)), (2, [], D(1))]


def test_a_delivery_hold_partly_moved_is_cut_for_the_rest() -> None:
    chosen = plan(D(3), [held(1, 3, movable=True)], [OtherStore(7, D(1))])
    assert taken(chosen) == [(1, [(7, D(1))], D(2))]
    assert chosen[0].kept == 0


def test_nothing_beyond_the_need_is_taken() -> None:
    chosen = plan(D(1), [held(1, 5)], [])
    assert taken(chosen) == [(1, [], D(1))]
    assert chosen[0].kept == 4
