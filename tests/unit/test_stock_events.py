"""The stock events' shapes: stock.levels_changed carries one product's levels, and
stock_figures reads either shape level by level as stock.changed payloads."""

from __future__ import annotations

from decimal import Decimal

from ordersync.domain import events

D = Decimal


def test_a_levels_changed_payload_carries_each_level_with_its_available_figure() -> None:
    payload = events.stock_levels_changed(
        7, [(1, D("2.500"), D(1)), (3, D(0), D(0))], "exchange_1c", "exchange_1c", "s/offers.xml"
    )
    assert payload == {
        "product_id": 7,
        "levels": [
            {"store_id": 1, "on_hand": "2.5", "reserved": "1", "available": "1.5"},
            {"store_id": 3, "on_hand": "0", "reserved": "0", "available": "0"},
        ],
        "reason": "exchange_1c",
        "document_type": "exchange_1c",
        "document_id": "s/offers.xml",
    }


def test_stock_figures_reads_both_shapes_as_stock_changed_payloads() -> None:
    levels = events.stock_levels_changed(
        7, [(1, D(5), D(1)), (3, D(2), D(0))], "exchange_1c", "exchange_1c", "s/offers.xml"
    )
    one = events.stock_changed(7, 3, D(2), D(0), "exchange_1c", "exchange_1c", "s/offers.xml")

    figures = events.stock_figures(events.STOCK_LEVELS_CHANGED, levels)

    assert figures[1] == one
    assert figures[0] == events.stock_changed(
        7, 1, D(5), D(1), "exchange_1c", "exchange_1c", "s/offers.xml"
    )
    assert events.stock_figures(events.STOCK_CHANGED, one) == [one]
    assert events.stock_figures(events.ORDER_PAID, {"order_id": "o"}) == []
    assert {events.STOCK_CHANGED, events.STOCK_LEVELS_CHANGED} == events.STOCK_TYPES
