"""The Evotor cloud as a sink: each linked store's tills learn the hub's nomenclature and how
much of each product they may sell, in the relay's order, retried, never lost.

- `catalog.changed` (products created or changed, or a store newly linked: `all`): the full
  description of each product (the cloud replaces a product's old fields) to every linked
  store, or to the one newly linked, with its quantity (`POST .../products`);
- `stock.changed`, and each level of a `stock.levels_changed`, at a linked store: the figure
  a till may sell, `on_hand - reserved` and never below zero, of the batch's last figure per
  product (`POST .../products/quantities`);
  a product the store's tills were never sent is described first.

Every product has one Evotor uuid for good (kept by the hub), the same in every store. The
cloud's rate limit (429, or X-RateLimit-Remaining spent) and its unavailability are the sink
being busy or down: the relay retries after the time the cloud gave, never dead-letters. A
request the cloud refuses for its content (another 4xx) is a refusal of the batch.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx

from ..channels.evotor.cloud import EvotorCloud
from ..channels.evotor.cloud_errors import (
    CloudAuthError,
    CloudError,
    CloudRateLimited,
    CloudRequestError,
    InvalidProducts,
)
from ..channels.evotor.products import EvotorProduct
from ..domain import events as ev
from ..domain.types import Unit
from ..services import evotor as records
from ..services.context import Context
from ..services.orders import UowFactory
from ..services.ports import Store
from .base import DeliveryFailed, OutboxEvent

MEASURES = {Unit.PCS: "шт", Unit.KG: "кг", Unit.L: "л", Unit.M: "м"}
PAGE = 500  # products per request, as the cloud takes them
DOWN = {401, 403, 404, 408}  # what a misconfigured or missing account answers to everything
STORES_SECONDS = 5.0


@dataclass(frozen=True)
class EvotorHub:
    """What the sink reads of the hub."""

    uow_factory: UowFactory
    stores: Callable[[], Awaitable[list[Store]]]
    ctx: Context
    token: Callable[[], Awaitable[str | None]]


class EvotorSink:
    name = "evotor"

    def __init__(
        self,
        hub: EvotorHub,
        base_url: str,
        tax: str = "NO_VAT",
        timeout: float = 30.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.hub = hub
        self.base_url = base_url
        self.tax = tax
        self._client = client or httpx.AsyncClient(timeout=timeout)
        self._own_client = client is None
        self._cloud: EvotorCloud | None = None
        self._token: str | None = None
        self._linked: dict[int, str] = {}
        self._linked_at = 0.0

    async def close(self) -> None:
        if self._own_client:
            await self._client.aclose()

    def wants(self, event: OutboxEvent) -> bool:
        """Stock events of stores not linked are passed over in `deliver`, which knows the
        links as they are now."""
        return event.type == ev.CATALOG_CHANGED or event.type in ev.STOCK_TYPES

    async def deliver(self, events: Sequence[OutboxEvent]) -> None:
        await self._refresh()
        if not self._linked:
            return  # no store is linked to Evotor (any more): nothing for the cloud
        cloud = await self._connect()
        try:
            for event in events:
                if event.type == ev.CATALOG_CHANGED:
                    await self._catalog(cloud, event.payload)
            await self._quantities(cloud, [e for e in events if e.type in ev.STOCK_TYPES])
        except CloudError as exc:
            raise _failed(exc) from None
        except InvalidProducts as exc:
            raise DeliveryFailed(f"{self.name}: {exc}", permanent=True) from None

    async def _refresh(self) -> None:
        """Which stores are linked (a store linked or unlinked shows within seconds)."""
        if time.monotonic() - self._linked_at < STORES_SECONDS and self._linked:
            return
        stores = records.linked_stores(await self.hub.stores())
        self._linked = {s.id: s.evotor_uuid for s in stores if s.evotor_uuid}
        self._linked_at = time.monotonic()

    async def _connect(self) -> EvotorCloud:
        token = await self.hub.token()
        if not token:
            raise DeliveryFailed(
                f"{self.name}: no cloud token yet ([evotor] token, or /user/token)"
            )
        if self._cloud is None or token != self._token:
            self._cloud = EvotorCloud(token, self.base_url, client=self._client)
            self._token = token
        return self._cloud

    async def _catalog(self, cloud: EvotorCloud, payload: dict[str, Any]) -> None:
        stores = self._stores_of(payload)
        if payload.get("all"):
            after = 0
            while page := await records.product_ids(self.hub.uow_factory, after, PAGE):
                for store_id in stores:
                    await self._publish(cloud, store_id, page)
                after = page[-1]
            return
        ids = [int(x) for x in payload.get("product_ids", [])]
        for store_id in stores:
            await self._publish(cloud, store_id, ids)

    def _stores_of(self, payload: dict[str, Any]) -> list[int]:
        store_id = payload.get("store_id")
        if store_id is None:
            return sorted(self._linked)
        return [store_id] if store_id in self._linked else []

    async def _publish(self, cloud: EvotorCloud, store_id: int, product_ids: list[int]) -> None:
        """Full descriptions, quantities included."""
        if not product_ids:
            return
        store = await self._store(store_id)
        items = await records.nomenclature(self.hub.uow_factory, store, product_ids, self.hub.ctx)
        uuid = self._linked[store_id]
        await cloud.publish_products(uuid, [self._describe(x) for x in items])
        await records.mark_published(self.hub.uow_factory, uuid, product_ids, self.hub.ctx)

    async def _store(self, store_id: int) -> Store:
        return next(s for s in await self.hub.stores() if s.id == store_id)

    async def _quantities(self, cloud: EvotorCloud, events: Sequence[OutboxEvent]) -> None:
        last: dict[int, dict[int, Decimal]] = {}  # store -> product -> sellable
        for p in (f for event in events for f in ev.stock_figures(event.type, event.payload)):
            if p["store_id"] not in self._linked:
                continue
            figure = records.sellable(Decimal(p["on_hand"]), Decimal(p["reserved"]))
            last.setdefault(p["store_id"], {})[p["product_id"]] = figure
        for store_id, figures in sorted(last.items()):
            uuid = self._linked[store_id]
            missing = await records.unpublished(self.hub.uow_factory, uuid, list(figures))
            if missing:  # described first, with the quantity as it is now
                await self._publish(cloud, store_id, missing)
            sent = [p for p in figures if p not in missing]
            if not sent:
                continue
            uuids = await records.published_uuids(self.hub.uow_factory, sent, self.hub.ctx)
            await cloud.publish_quantities(uuid, {uuids[p]: figures[p] for p in sent})

    def _describe(self, item: records.Nomenclature) -> EvotorProduct:
        """The hub's product as definitions.yaml#/product wants it."""
        p = item.product
        price = p.price if p.price is not None else Decimal("0.00")
        return EvotorProduct(
            uuid=item.uuid,
            name=(p.name or p.sku)[:100],
            code=p.sku if len(p.sku) <= 10 else None,
            bar_codes=tuple(b for b in [p.barcode] if b and b.isdigit()),
            price=min(price, Decimal("9999999.99")),
            quantity=item.available,
            measure_name=MEASURES.get(Unit(p.unit), "шт"),
            tax=self.tax,
            allow_to_sell=p.active,
            article_number=p.sku if len(p.sku) <= 20 else None,
        )


def _failed(exc: CloudError) -> DeliveryFailed:
    message = f"evotor: {exc}"
    if isinstance(exc, CloudRateLimited):
        return DeliveryFailed(message, retry_after=exc.retry_after)
    if isinstance(exc, CloudAuthError):
        return DeliveryFailed(message)
    if isinstance(exc, CloudRequestError) and exc.status not in DOWN:
        return DeliveryFailed(message, permanent=True)
    return DeliveryFailed(message)
