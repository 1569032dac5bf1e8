"""One site configured once: Bitrix sinks without a url are the [bitrix] site, a site with a
url and no Bitrix sink gets the sink "bitrix", and old sinks with their own url still work."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ordersync.config import BITRIX_SINK, Settings

URL = "https://shop.example/rest/1/hook0secret/"


def settings(**kw: object) -> Settings:
    return Settings(master="hub", **kw)  # type: ignore[arg-type]


def test_a_site_with_a_url_and_no_bitrix_sink_gets_one_named_bitrix() -> None:
    conf = settings(
        bitrix={"url": URL, "iblock_id": 2, "push_statuses": {"shipped": "DF"}},
        sinks={"erp": {"kind": "webhook", "url": "https://erp.example/h", "secret": "s"}},
    )
    site = conf.sinks[BITRIX_SINK]
    assert (site.kind, site.url, site.iblock_id) == ("bitrix", URL, 2)
    assert site.status_map == {"shipped": "DF"} and site.stock_mode == "documents"
    assert set(conf.sinks) == {"erp", BITRIX_SINK}


def test_no_site_no_sink() -> None:
    assert settings().sinks == {}


def test_a_bitrix_sink_without_url_is_the_site_and_keeps_what_it_sets_itself() -> None:
    conf = settings(
        bitrix={"url": URL, "iblock_id": 2, "push_statuses": {"shipped": "DF"}},
        sinks={
            "shop": {"kind": "bitrix", "types": ["stock.changed"], "stock_mode": "storeproduct"}
        },
    )
    assert set(conf.sinks) == {"shop"}  # no second sink for the same site
    shop = conf.sinks["shop"]
    assert (shop.url, shop.iblock_id, shop.stock_mode) == (URL, 2, "storeproduct")
    assert shop.status_map == {"shipped": "DF"} and shop.types == ["stock.changed"]


def test_an_old_bitrix_sink_with_its_own_url_is_left_as_it_was() -> None:
    own = "https://old.example/rest/7/abc/"
    conf = settings(
        bitrix={"url": URL, "iblock_id": 2},
        sinks={"site": {"kind": "bitrix", "url": own, "iblock_id": 9, "status_map": {"a": "B"}}},
    )
    assert set(conf.sinks) == {"site"}
    assert (conf.sinks["site"].url, conf.sinks["site"].iblock_id) == (own, 9)
    assert conf.sinks["site"].status_map == {"a": "B"}


def test_a_bitrix_sink_without_a_url_anywhere_is_refused() -> None:
    with pytest.raises(ValidationError, match="ORDERSYNC_BITRIX__URL"):
        settings(sinks={"shop": {"kind": "bitrix", "iblock_id": 2}})


def test_other_sinks_still_need_their_url() -> None:
    with pytest.raises(ValidationError, match="webhook sink needs a url"):
        settings(sinks={"erp": {"kind": "webhook", "secret": "s"}})


def test_the_name_bitrix_is_kept_for_the_site() -> None:
    with pytest.raises(ValidationError, match="bitrix"):
        settings(
            bitrix={"url": URL},
            sinks={"bitrix": {"kind": "webhook", "url": "https://erp.example/h", "secret": "s"}},
        )


def test_the_site_url_may_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDERSYNC_BITRIX__URL", URL)
    monkeypatch.setenv("ORDERSYNC_BITRIX__IBLOCK_ID", "3")
    conf = settings()
    assert conf.sinks[BITRIX_SINK].url == URL and conf.sinks[BITRIX_SINK].iblock_id == 3
