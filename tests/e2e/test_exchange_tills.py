"""Tills and 1C (master = "hub"): every till sale and return reaches 1C through the order
exchange. An order-mode sale is its order, and a return linked to it changes that order
(1C receives it again with the quantities kept and returned); stock-only sales make one
order per store, till and shift; returns no known sale covers make one document of returned
goods (ХозОперация "Возврат товара") per store, till and shift."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.e2e.conftest import Hub, HubFactory
from tests.e2e.helpers import bearer, expect, line, sale
from tests.sim_1c import ExportedOrder, parse_orders

D = Decimal
STOCK: dict[str, dict[str, Decimal | int]] = {"S01": {"TEA": 10, "MUG": 5}, "S02": {"TEA": 10}}


@pytest.fixture
async def hub(start_hub: HubFactory) -> Hub:
    return await start_hub(master="hub", stock=STOCK)


async def post(hub: Hub, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await hub.http.post(path, json=body, headers=bearer(hub.admin))
    return expect(response, 201)


async def exported(hub: Hub) -> dict[str, ExportedOrder]:
    onec = hub.onec()
    await onec.open("sale")
    found = {o.id: o for o in parse_orders(await onec.query()).orders}
    assert (await onec.success()).status == "success"
    return found


async def test_a_return_is_a_change_of_its_sales_order_with_the_returned_quantities(
    hub: Hub,
) -> None:
    sold = await post(hub, "/pos/sales", sale("S01", "T1", line("TEA", 3), line("MUG", 1)))
    first = (await exported(hub))[sold["order_id"]]
    assert [(x["Ид"], D(x["Количество"])) for x in first.lines] == [
        ("1c-tea", D(3)),
        ("1c-mug", D(1)),
    ]

    back = {**sale("S01", "R1", line("TEA", 2), pos_id="T2"), "original_transaction_id": "T1"}
    await post(hub, "/pos/returns", back)
    again = (await exported(hub))[sold["order_id"]]

    assert again.fields["ХозОперация"] == "Заказ товара"
    assert [(x["Ид"], D(x["Количество"]), D(x["Сумма"])) for x in again.lines] == [
        ("1c-tea", D(1), D("100.00")),
        ("1c-mug", D(1), D("300.00")),
    ]
    assert again.line_properties[0]["Количество продано"] == "3"
    assert again.line_properties[0]["Количество возвращено"] == "2"
    assert "Количество возвращено" not in again.line_properties[1]
    assert D(again.fields["Сумма"]) == D("400.00")
    assert int(again.fields["Номер"]) == sold["order_number"]


async def test_stock_only_sales_reach_1c_as_one_order_per_store_till_and_shift(hub: Hub) -> None:
    await post(hub, "/pos/sales", {**sale("S02", "1", line("TEA", 1)), "shift": "Z-12"})
    result = await post(hub, "/pos/sales", {**sale("S02", "2", line("TEA", 2)), "shift": "Z-12"})

    shift = (await exported(hub))[result["shift_order_id"]]

    assert shift.fields["ХозОперация"] == "Заказ товара"
    assert [(x["Ид"], D(x["Количество"])) for x in shift.lines] == [("1c-tea", D(3))]
    assert shift.properties["Касса"] == "T1"
    assert shift.properties["Склад (код)"] == "S02"
    assert shift.properties["Источник"] == "offline"
    assert shift.fields["Комментарий"] == "till T1, shift Z-12"


async def test_returns_no_known_sale_covers_reach_1c_as_goods_returned(hub: Hub) -> None:
    back = {**sale("S01", "R9", line("TEA", 2)), "shift": "Z-1"}
    result = await post(hub, "/pos/returns", back)
    assert result["linked"] is False

    (document,) = (await exported(hub)).values()

    assert (document.fields["ХозОперация"], document.fields["Роль"]) == (
        "Возврат товара",
        "Продавец",
    )
    assert [(x["Ид"], D(x["Количество"]), D(x["Сумма"])) for x in document.lines] == [
        ("1c-tea", D(2), D("200.00"))
    ]
    assert document.properties["Источник"] == "return"
