"""The rules of what the hub tells the site, without a database: the sellable figure, which
orders are the site's own, and which orders are recorded on the site."""

from __future__ import annotations

from decimal import Decimal as D

from ordersync.services.site_out import HubOrder, is_site_order, sellable
from ordersync.sinks.bitrix_mirror import SiteMirror

BOTH = frozenset({"pos", "operator"})


def order(channel: str, source: str = "order", **kw: object) -> HubOrder:
    values: dict[str, object] = {
        "id": "o1", "number": 1, "channel": channel, "source": source, "status": "placed",
        "paid": False, "store_code": "S01", "total": D(10), "currency": "RUB",
        "external_id": None, "pos_transaction_id": None, "lines": (),
    }  # fmt: skip
    values.update(kw)
    return HubOrder(**values)  # type: ignore[arg-type]


def test_the_sellable_figure_takes_off_other_holds_and_safety_stock_never_below_zero() -> None:
    assert sellable(D(10), D(3), D(1)) == D(6)
    assert sellable(D(2), D(3), D(1)) == D(0)
    assert sellable(D("2.5"), D(0), D(0)) == D("2.5")


def test_a_site_order_is_an_online_order_with_the_sites_id() -> None:
    assert is_site_order("online", "1042")
    assert not is_site_order("online", None)  # an online order placed through the API
    assert not is_site_order("operator", "1042")


def test_till_sales_in_order_mode_and_operator_orders_are_mirrored() -> None:
    assert order("pos", "offline", pos_transaction_id="T1").mirrored(BOTH)
    assert not order("pos", "offline").mirrored(BOTH)  # a till shift's order
    assert not order("pos", "return", pos_transaction_id="T1").mirrored(BOTH)
    assert order("operator").mirrored(BOTH)
    assert not order("operator").mirrored(frozenset({"pos"}))
    assert not order("online").mirrored(frozenset({"pos", "operator", "online"}))


def test_the_mirror_wants_the_same_orders_from_their_created_event() -> None:
    async def none(ids: object) -> dict[str, HubOrder]:
        return {}

    mirror = SiteMirror(none)
    assert mirror.wants({"channel": "pos", "source": "offline", "pos_transaction_id": "T1"})
    assert not mirror.wants({"channel": "pos", "source": "offline", "pos_transaction_id": None})
    assert mirror.wants({"channel": "operator", "source": "order"})
    assert not mirror.wants({"channel": "online", "source": "order"})


def test_a_completed_mirrored_order_gets_the_final_status_others_the_mapped_one() -> None:
    async def none(ids: object) -> dict[str, HubOrder]:
        return {}

    mirror = SiteMirror(none, final_status="F")
    statuses = {"shipped": "DF", "completed": "X"}
    assert mirror.target_status(order("operator", status="completed"), statuses) == "F"
    assert mirror.target_status(order("operator", status="shipped"), statuses) == "DF"
    assert mirror.target_status(order("operator", status="placed"), statuses) is None
