"""What a screen behind the live stream missed, from one newest-first read (ui/catch_up.py)."""

from __future__ import annotations

from ordersync.ui.catch_up import ChangedOrders

# Newest first, as read: (event id, order id or None for a stock event).
EVENTS = [(20, "B"), (19, None), (17, "A"), (15, "B"), (12, "C"), (11, None)]


def test_each_order_is_taken_once_at_its_newest_event_newest_first() -> None:
    changes = ChangedOrders.from_events(EVENTS, full=False)
    assert changes.orders == ["B", "A", "C"]
    assert changes.at == {"B": 20, "A": 17, "C": 12}
    assert changes.oldest_read == 11


def test_a_screen_takes_the_orders_changed_after_its_own_event() -> None:
    changes = ChangedOrders.from_events(EVENTS, full=False)
    assert changes.orders_after(20, 10) == ([], False)
    assert changes.orders_after(19, 10) == (["B"], False)
    assert changes.orders_after(16, 10) == (["B", "A"], False)
    assert changes.orders_after(0, 10) == (["B", "A", "C"], False)
    assert changes.orders_after(0, 2) == (["B", "A"], True)  # more than it is sent


def test_a_full_read_leaves_only_screens_older_than_it_unsure() -> None:
    changes = ChangedOrders.from_events(EVENTS, full=True)
    assert changes.orders_after(10, 10) == (["B", "A", "C"], False)  # 11 was read
    assert changes.orders_after(9, 10) == (["B", "A", "C"], True)  # 10 may have been anything
    assert not changes.unread_after(16)


def test_an_orders_own_screen_asks_for_its_order_only() -> None:
    changes = ChangedOrders.from_events(EVENTS, full=False)
    assert changes.order_changed_after("B", 17)
    assert not changes.order_changed_after("A", 17)
    assert not changes.order_changed_after("Z", 0)


def test_nothing_read_is_nothing_missed() -> None:
    changes = ChangedOrders.from_events([], full=False)
    assert changes.orders_after(0, 10) == ([], False) and changes.oldest_read is None
