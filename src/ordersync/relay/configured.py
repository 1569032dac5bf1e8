"""The sinks and the relay policy named by the configuration."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal

import httpx

from ..config import BitrixSettings, EvotorSettings, RelaySettings, SinkSettings
from ..db import sink_refs, site_out
from ..db.unit_of_work import Database
from ..domain.errors import ConfigError
from ..services import evotor as records
from ..services.context import Context
from ..services.site_out import HubOrder
from ..sinks.base import Sink
from ..sinks.bitrix import BitrixSink, HubRefs
from ..sinks.bitrix_mirror import SiteMirror
from ..sinks.bitrix_rest import BitrixRest
from ..sinks.evotor import EvotorHub, EvotorSink
from ..sinks.filters import EventFilter
from ..sinks.onec_push import OneCPushSink
from ..sinks.rabbitmq import RabbitMQSink
from ..sinks.webhook import WebhookSink
from .worker import RelayPolicy


def policy(settings: RelaySettings) -> RelayPolicy:
    """RelaySettings names a subset of RelayPolicy's fields, with the same names."""
    return RelayPolicy(**settings.model_dump())


async def build_sinks(
    db: Database,
    sinks: dict[str, SinkSettings],
    evotor: EvotorSettings | None = None,
    evotor_client: httpx.AsyncClient | None = None,
    bitrix: BitrixSettings | None = None,
    bitrix_client: httpx.AsyncClient | None = None,
) -> dict[str, Sink]:
    """The configured sinks; and the Evotor cloud's (named `evotor`) when `[evotor] publish`
    is on and a store is linked to Evotor or the cloud's token is set (stores linked later
    count from the worker's next start). Bitrix sinks take their stock figure, mirroring and
    short status from `bitrix` (the [bitrix] table; Settings has already given url-less Bitrix
    sinks its url, and made the sink "bitrix" for a site with no sink configured)."""
    site = bitrix or BitrixSettings()
    stores = await db.fresh_stores()
    codes = {store.code: store.id for store in stores}
    built: dict[str, Sink] = {}
    linked = any(s.evotor_uuid for s in stores)
    if evotor is not None and evotor.enabled and evotor.publish and (linked or evotor.token):
        if EvotorSink.name in sinks:
            raise ConfigError(f"the sink name {EvotorSink.name} is the Evotor cloud's")
        built[EvotorSink.name] = _evotor(db, evotor, evotor_client)
    for name, conf in sinks.items():
        event_filter = _filter(name, conf, codes)
        try:
            if conf.kind == "bitrix":
                built[name] = _bitrix(db, name, conf, event_filter, site, bitrix_client)
            else:
                built[name] = _sink(name, conf, event_filter)
        except ValueError as exc:  # a URL or secret the sink cannot use
            raise ConfigError(f"sink {name}: {exc}") from exc
    return built


def _bitrix(
    db: Database,
    name: str,
    conf: SinkSettings,
    event_filter: EventFilter,
    site: BitrixSettings,
    client: httpx.AsyncClient | None = None,
) -> Sink:
    if not conf.url:
        raise ConfigError(f"sink {name}: Bitrix needs url (or the [bitrix] table's)")
    if conf.iblock_id is None:
        raise ConfigError(f"sink {name}: Bitrix needs iblock_id (the catalog's iblock)")

    async def refs(product_ids: Sequence[int], store_ids: Sequence[int]) -> HubRefs:
        async with db.uow_read() as uow:
            found_products, found_stores = await sink_refs.xml_ids(uow.conn, product_ids, store_ids)
        return HubRefs(found_products, found_stores)

    async def order_refs(order_ids: Sequence[str]) -> Mapping[str, int]:
        async with db.uow_read() as uow:
            return await sink_refs.site_order_numbers(uow.conn, order_ids)

    async def figures(pairs: Sequence[tuple[int, int]]) -> Mapping[tuple[int, int], Decimal]:
        async with db.uow_read() as uow:
            return await site_out.sellable_figures(uow.conn, pairs)

    async def hub_orders(order_ids: Sequence[str]) -> Mapping[str, HubOrder]:
        async with db.uow_read() as uow:
            return await site_out.hub_orders(uow.conn, order_ids)

    mirror = None
    if site.mirror_channels:
        mirror = SiteMirror(
            hub_orders,
            frozenset(c.value for c in site.mirror_channels),
            site.mirror_status,
            site.site_id,
            site.person_type_id,
            site.mirror_pay_system_id,
        )
    stock_figure = conf.stock_figure or site.stock_figure
    return BitrixSink(
        name,
        BitrixRest(conf.url, client=client, timeout=conf.timeout_seconds),
        refs,
        mode=conf.stock_mode,
        status_map=conf.status_map,
        event_filter=event_filter.matches,
        order_refs=order_refs,
        iblock_id=conf.iblock_id,
        figures=figures if stock_figure == "sellable" else None,
        short_status=site.short_status,
        mirror=mirror,
    )


def _evotor(db: Database, conf: EvotorSettings, client: httpx.AsyncClient | None) -> EvotorSink:
    async def token() -> str | None:
        return conf.token or await records.cloud_token(db.uow)

    hub = EvotorHub(db.uow, db.fresh_stores, Context(), token)
    return EvotorSink(hub, conf.base_url, conf.tax, conf.timeout_seconds, client)


def _filter(name: str, conf: SinkSettings, codes: dict[str, int]) -> EventFilter:
    stores: frozenset[int] | None = None
    if conf.stores is not None:
        unknown = [c for c in conf.stores if c not in codes]
        if unknown:
            raise ConfigError(f"sink {name} names unknown stores: {', '.join(unknown)}")
        stores = frozenset(codes[c] for c in conf.stores)
    types = frozenset(conf.types) if conf.types is not None else None
    return EventFilter(types=types, stores=stores)


def _sink(name: str, conf: SinkSettings, event_filter: EventFilter) -> Sink:
    assert conf.url  # SinkSettings: every kind but Bitrix has one
    if conf.kind == "webhook":
        if not conf.secret:
            raise ConfigError(f"sink {name}: a webhook needs a secret")
        return WebhookSink(name, conf.url, conf.secret, event_filter, conf.timeout_seconds)
    if conf.kind == "onec_push":
        if conf.login is None or conf.password is None:
            raise ConfigError(f"sink {name}: the 1C push sink needs login and password")
        return OneCPushSink(
            name, conf.url, conf.login, conf.password, event_filter, conf.timeout_seconds
        )
    return RabbitMQSink(name, conf.url, exchange=conf.exchange, event_filter=event_filter)
