"""The sinks the configuration names, wired to the database: filters by store code, and the
Bitrix sink's references (1C Ид of products and stores, the site's own order numbers)."""

from __future__ import annotations

import pytest

from ordersync.config import SinkSettings
from ordersync.db.unit_of_work import Database
from ordersync.domain.errors import ConfigError
from ordersync.relay.configured import build_sinks
from ordersync.sinks.bitrix import BitrixSink
from ordersync.sinks.webhook import WebhookSink
from tests import support
from tests.integration.test_order_lifecycle import delivery, place

BITRIX = SinkSettings(
    kind="bitrix", url="https://shop.example/rest/1/abc/", iblock_id=2, status_map={"shipped": "F"}
)


async def test_the_bitrix_sink_names_products_stores_and_site_orders_as_the_site_does(
    db: Database,
) -> None:
    net = await support.seed_network(db, {"WH1": {"TEA": 5}})
    sinks = await build_sinks(db, {"site": BITRIX})
    sink = sinks["site"]
    assert isinstance(sink, BitrixSink)
    tea, wh1 = net.products["TEA"], net.stores["WH1"]

    refs = await sink.refs([tea, 999_999], [wh1])

    assert dict(refs.products) == {tea: "1c-tea"}
    assert dict(refs.stores) == {wh1: "WH1"}  # the seeded store's Ид is its code
    order = await place(db, delivery(("TEA", 1), external_id="1042"))
    other = await place(db, delivery(("TEA", 1), external_id="web-7"))
    assert sink.order_refs is not None
    assert dict(await sink.order_refs([order.id, other.id])) == {order.id: 1042}
    await sink.close()


async def test_filters_take_store_codes_and_unknown_ones_are_refused(db: Database) -> None:
    net = await support.seed_network(db)
    hook = SinkSettings(kind="webhook", url="https://erp.example/h", secret="s", stores=["S01"])
    sinks = await build_sinks(db, {"erp": hook})
    sink = sinks["erp"]
    assert isinstance(sink, WebhookSink)
    assert sink.event_filter.stores == frozenset({net.stores["S01"]})
    await sink.close()

    with pytest.raises(ConfigError, match="unknown stores: NOPE"):
        await build_sinks(db, {"erp": hook.model_copy(update={"stores": ["NOPE"]})})
    with pytest.raises(ConfigError, match="needs a secret"):
        await build_sinks(db, {"erp": hook.model_copy(update={"secret": None})})
    with pytest.raises(ConfigError, match="iblock_id"):
        await build_sinks(db, {"site": BITRIX.model_copy(update={"iblock_id": None})})
