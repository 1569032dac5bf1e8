"""The Bitrix site sink: keeps the online store's per-store stock true and pushes the status of
orders that came from the site, through the site's REST API (see bitrix_rest).

Stock: per (product, store) only the batch's last `stock.changed` counts. What is sent is, with
`figures` (stock_figure "sellable", the default), the pair's sellable figure read from the hub
when the batch is delivered (services/site_out.py: on_hand minus the holds of orders that are
not the site's, minus safety stock), so a late retry never sends an old figure; without it
(stock_figure "physical"), the event's `on_hand`. Never `available`: Bitrix subtracts its own
reservations from the per-store amount itself, so the site's own orders' holds must stay in.
Every hold placed or released writes a `stock.changed` of its pair, so a phone order's hold
reaches the site too.

Orders: statuses of the site's own orders (sale.order.update, `status_map`; an open
`site_order_short` attention moves the order to `short_status`), and, with `mirror`, till and
operator orders recorded on the site (sinks/bitrix_mirror.py).

- mode "documents" (inventory management on, the only way the official REST API changes
  stock): read the current per-store amounts (`catalog.storeproduct.list`), and turn the
  differences into one stock adjustment document (docType "S") for the increases and one
  write-off (docType "D") for the decreases: `catalog.document.add`, a
  `catalog.document.element.add` per line, `catalog.document.conduct`.
- mode "storeproduct": write the amounts directly, `catalog.storeproduct.update` on the existing
  row or `catalog.storeproduct.add`. The official REST API has no such writing methods (only
  get/list/getFields); this mode is for sites that publish them (a custom REST handler on an
  on-premise site), and the method names are settings.

Hub ids become Bitrix ids through the 1C Ид: `refs` (from the relay) gives the xml_id of hub
products and stores; the site imported the same 1C catalog, so its elements and stores carry
the same XML_ID. Products or stores the site does not know are skipped and counted, not failed.

Every command goes through `batch` (at most 50 commands a call). Any Bitrix error fails the
whole delivery (DeliveryFailed, with retry_after on a rate limit); the relay retries the batch,
and since amounts are absolute and re-read on every attempt, a retry after a partly applied
attempt only sends what is still missing. A module's error about a command's data (a numeric
code: an unknown order, a status the site lacks, too little stock to write off) is a
permanent refusal, which the relay narrows down to the event that carried it; system errors
(rate limits, authentication, access denied, a missing method, HTTP 5xx) and network errors
say the site is unavailable and are retried for as long as that lasts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Literal

import httpx

from ..domain import events as ev
from .base import DeliveryFailed, OutboxEvent
from .bitrix_rest import BATCH_LIMIT, BitrixError, BitrixRateLimited, BitrixRest

if TYPE_CHECKING:
    from .bitrix_mirror import SiteMirror

Mode = Literal["documents", "storeproduct"]


@dataclass(frozen=True)
class HubRefs:
    """xml_id (1C Ид) of hub products and stores; absent ids have none."""

    products: Mapping[int, str]
    stores: Mapping[int, str]


RefsFn = Callable[[Sequence[int], Sequence[int]], Awaitable[HubRefs]]
FiguresFn = Callable[[Sequence[tuple[int, int]]], Awaitable[Mapping[tuple[int, int], Decimal]]]
OrderRefsFn = Callable[[Sequence[str]], Awaitable[Mapping[str, int]]]
EventFilter = Callable[[OutboxEvent], bool]

STOCK_TYPES = ev.STOCK_TYPES  # stock.changed, and a 1C import's stock.levels_changed
ORDER_TYPES = frozenset({ev.ORDER_STATUS_CHANGED, ev.ORDER_PAID})
CANCELLED = "cancelled"
PAID = "paid"  # the status_map key for order.paid
SHORT = "short"  # an open site_order_short attention: the status_map key, else short_status
SITE_ORDER_SHORT = "site_order_short"


@dataclass(frozen=True)
class _DocRef:
    """An id known only once an earlier command has run: `result[<key>][<entity>][id]`
    (catalog.document.add answers `document`, sale.order.add `order`)."""

    key: str
    entity: str = "document"


@dataclass(frozen=True)
class _Cmd:
    key: str
    method: str
    params: dict[str, Any]


@dataclass(frozen=True)
class _Line:
    product: int  # Bitrix product id
    store: int  # Bitrix store id
    target: Decimal  # physical amount to reach
    current: Decimal
    row_id: int | None  # catalog.storeproduct row


def _chunks(items: Sequence[Any], size: int = BATCH_LIMIT) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _decimal(value: Any) -> Decimal:
    try:
        return Decimal(str(value)) if value is not None else Decimal(0)
    except InvalidOperation:
        return Decimal(0)


def _number(value: Decimal) -> str:
    return format(value.normalize(), "f")


class BitrixSink:
    def __init__(
        self,
        name: str,
        rest: BitrixRest,
        refs: RefsFn,
        mode: Mode = "documents",
        status_map: Mapping[str, str] | None = None,
        event_filter: EventFilter | None = None,
        order_refs: OrderRefsFn | None = None,
        *,
        iblock_id: int | None = None,
        currency: str = "RUB",
        responsible_id: int = 1,
        storeproduct_update_method: str = "catalog.storeproduct.update",
        storeproduct_add_method: str = "catalog.storeproduct.add",
        figures: FiguresFn | None = None,
        short_status: str | None = None,
        mirror: SiteMirror | None = None,
    ) -> None:
        if mode not in ("documents", "storeproduct"):
            raise ValueError(f"unknown Bitrix stock mode {mode!r}")
        self.name = name
        self.rest = rest
        self.refs = refs
        self.mode: Mode = mode
        self.status_map = dict(status_map or {})
        self.event_filter = event_filter
        self.order_refs = order_refs
        self.iblock_id = iblock_id  # catalog.product.list requires filter[iblockId]
        self.currency = currency
        self.responsible_id = responsible_id
        self.update_method = storeproduct_update_method
        self.add_method = storeproduct_add_method
        self.figures = figures  # None: the events' physical on_hand
        self.short_status = short_status
        self.mirror = mirror
        self._products: dict[str, int] = {}  # xml_id -> Bitrix product id
        self._stores: dict[str, int] = {}  # xml_id -> Bitrix store id
        self.skipped: Counter[str] = Counter()  # why events or lines were not sent, in total
        self.batch_sizes: list[int] = []

    # --- Sink -----------------------------------------------------------------------------

    def wants(self, event: OutboxEvent) -> bool:
        if not (
            event.type in STOCK_TYPES
            or event.type in ORDER_TYPES
            or (event.type == ev.ORDER_ATTENTION and self._short(event))
            or (
                event.type == ev.ORDER_CREATED
                and self.mirror is not None
                and self.mirror.wants(event.payload)
            )
        ):
            return False
        return self.event_filter is None or self.event_filter(event)

    def _short(self, event: OutboxEvent) -> bool:
        p = event.payload
        return (
            (self.short_status is not None or SHORT in self.status_map)
            and p.get("code") == SITE_ORDER_SHORT
            and p.get("state") == "open"
        )

    async def deliver(self, events: Sequence[OutboxEvent]) -> None:
        mine = [e for e in events if self.wants(e)]
        try:
            await self._push_stock([e for e in mine if e.type in STOCK_TYPES])
            order_events = [e for e in mine if e.type not in STOCK_TYPES]
            others = await self._push_orders(order_events)
            if self.mirror is not None and others:
                created = {e.aggregate_id for e in order_events if e.type == ev.ORDER_CREATED}
                await self.mirror.deliver(self, others, created)
        except BitrixError as exc:
            retry = exc.retry_after if exc.retry_later else None
            raise DeliveryFailed(
                f"{self.name}: {exc}", retry_after=retry, permanent=exc.refuses_data
            ) from exc
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"{self.name}: {type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        await self.rest.close()

    # --- batches --------------------------------------------------------------------------

    async def _run(self, commands: Sequence[_Cmd], halt: bool = False) -> dict[str, Any]:
        """Runs the commands in order, in batches of at most 50. A `_DocRef` in the params
        becomes `$result[key][document][id]` inside the batch that adds the document, and the
        literal id in later batches. `halt` stops a batch at its first failing command."""
        results: dict[str, Any] = {}
        for chunk in _chunks(list(commands)):
            in_chunk = {c.key for c in chunk}

            def resolve(value: Any, in_chunk: set[str] = in_chunk) -> Any:
                if isinstance(value, _DocRef):
                    if value.key in in_chunk:
                        return f"$result[{value.key}][{value.entity}][id]"
                    return results[value.key][value.entity]["id"]
                if isinstance(value, dict):
                    return {k: resolve(v) for k, v in value.items()}
                return value

            batch = {c.key: (c.method, resolve(c.params)) for c in chunk}
            self.batch_sizes.append(len(batch))
            results.update(await self.rest.batch(batch, halt=halt))
        return results

    # --- stock ----------------------------------------------------------------------------

    async def _push_stock(self, stock_events: Sequence[OutboxEvent]) -> None:
        if not stock_events:
            return
        last: dict[tuple[int, int], Decimal] = {}
        for event in stock_events:  # in order: the last one of a pair wins
            for p in ev.stock_figures(event.type, event.payload):
                last[(int(p["product_id"]), int(p["store_id"]))] = Decimal(str(p["on_hand"]))
        if self.figures is not None:  # the sellable figure as it is now
            now = await self.figures(list(last))
            last = {pair: now[pair] for pair in last if pair in now}
        hub_products = sorted({k[0] for k in last})
        hub_stores = sorted({k[1] for k in last})
        refs = await self.refs(hub_products, hub_stores)
        await self._resolve(
            [x for x in (refs.products.get(i) for i in hub_products) if x],
            [x for x in (refs.stores.get(i) for i in hub_stores) if x],
        )
        wanted: dict[tuple[int, int], Decimal] = {}
        for (product_id, store_id), amount in last.items():
            product_xml = refs.products.get(product_id)
            store_xml = refs.stores.get(store_id)
            if not product_xml or not store_xml:
                self.skipped["no_xml_id"] += 1
            elif product_xml not in self._products:
                self.skipped["unknown_product"] += 1
            elif store_xml not in self._stores:
                self.skipped["unknown_store"] += 1
            else:
                wanted[(self._products[product_xml], self._stores[store_xml])] = amount
        if not wanted:
            return
        lines = await self._current(wanted)
        if self.mode == "documents":
            await self._documents(lines)
        else:
            await self._storeproducts(lines)

    async def _resolve(self, product_xml: Sequence[str], store_xml: Sequence[str]) -> None:
        """Fills the xml_id caches with what Bitrix knows. Misses are not cached: the site may
        import the product later."""
        products = sorted(set(product_xml) - self._products.keys())
        stores = sorted(set(store_xml) - self._stores.keys())
        commands: list[_Cmd] = []
        for n, chunk in enumerate(_chunks(products)):
            product_filter: dict[str, Any] = {"xmlId": list(chunk)}
            if self.iblock_id is not None:
                product_filter["iblockId"] = self.iblock_id
            commands.append(
                _Cmd(
                    f"p{n}",
                    "catalog.product.list",
                    {"select": ["id", "iblockId", "xmlId"], "filter": product_filter},
                )
            )
        for n, chunk in enumerate(_chunks(stores)):
            commands.append(
                _Cmd(
                    f"s{n}",
                    "catalog.store.list",
                    {"select": ["id", "xmlId"], "filter": {"xmlId": list(chunk)}},
                )
            )
        if not commands:
            return
        results = await self._run(commands)
        for key, result in results.items():
            rows = (result or {}).get("products" if key[0] == "p" else "stores") or []
            cache = self._products if key[0] == "p" else self._stores
            for row in rows:
                xml = row.get("xmlId")
                if xml and xml not in cache:
                    cache[str(xml)] = int(row["id"])

    async def _current(self, wanted: Mapping[tuple[int, int], Decimal]) -> list[_Line]:
        """The current per-store physical amounts (and row ids) of the wanted pairs."""
        by_store: dict[int, list[int]] = {}
        for product, store in wanted:
            by_store.setdefault(store, []).append(product)
        commands: list[_Cmd] = []
        for store, products in sorted(by_store.items()):
            # one row per (product, store): 50 products fit one page
            for n, chunk in enumerate(_chunks(sorted(products))):
                commands.append(
                    _Cmd(
                        f"a{store}_{n}",
                        "catalog.storeproduct.list",
                        {
                            "select": ["id", "productId", "storeId", "amount"],
                            "filter": {"storeId": store, "@productId": list(chunk)},
                        },
                    )
                )
        rows: dict[tuple[int, int], tuple[int, Decimal]] = {}
        for result in (await self._run(commands)).values():
            for row in (result or {}).get("storeProducts") or []:
                pair = (int(row["productId"]), int(row["storeId"]))
                rows[pair] = (int(row["id"]), _decimal(row.get("amount")))
        lines = []
        for pair, target in sorted(wanted.items()):
            row_id, current = rows.get(pair, (None, Decimal(0)))
            lines.append(_Line(pair[0], pair[1], target, current, row_id))
        return lines

    async def _documents(self, lines: Sequence[_Line]) -> None:
        ups = [line for line in lines if line.target > line.current]
        downs = [line for line in lines if line.target < line.current]
        commands: list[_Cmd] = []
        conducts: list[_Cmd] = []
        for doc_type, doc_lines, store_field in (("S", ups, "storeTo"), ("D", downs, "storeFrom")):
            if not doc_lines:
                continue
            doc_key = f"doc_{doc_type}"
            ref = _DocRef(doc_key)
            commands.append(
                _Cmd(
                    doc_key,
                    "catalog.document.add",
                    {
                        "fields": {
                            "docType": doc_type,
                            "currency": self.currency,
                            "responsibleId": self.responsible_id,
                            "title": f"ordersync {self.name}",
                            "commentary": "Per-store physical stock from the ordersync hub",
                        }
                    },
                )
            )
            for n, line in enumerate(doc_lines):
                commands.append(
                    _Cmd(
                        f"el_{doc_type}{n}",
                        "catalog.document.element.add",
                        {
                            "fields": {
                                "docId": ref,
                                store_field: line.store,
                                "elementId": line.product,
                                "amount": _number(abs(line.target - line.current)),
                            }
                        },
                    )
                )
            conducts.append(_Cmd(f"conduct_{doc_type}", "catalog.document.conduct", {"id": ref}))
        if commands:
            await self._run(commands + conducts, halt=True)

    async def _storeproducts(self, lines: Sequence[_Line]) -> None:
        commands: list[_Cmd] = []
        for n, line in enumerate(lines):
            if line.target == line.current and line.row_id is not None:
                continue
            amount = _number(line.target)
            if line.row_id is not None:
                commands.append(
                    _Cmd(
                        f"u{n}",
                        self.update_method,
                        {"id": line.row_id, "fields": {"amount": amount}},
                    )
                )
            else:
                commands.append(
                    _Cmd(
                        f"c{n}",
                        self.add_method,
                        {
                            "fields": {
                                "productId": line.product,
                                "storeId": line.store,
                                "amount": amount,
                            }
                        },
                    )
                )
        await self._run(commands)

    # --- orders ---------------------------------------------------------------------------

    async def _push_orders(self, order_events: Sequence[OutboxEvent]) -> list[str]:
        """Pushes the statuses of the site's own orders; returns the other orders the events
        name, in order of first mention (the mirror's candidates)."""
        if not order_events:
            return []
        status: dict[str, str] = {}  # hub order id -> last hub status of the batch
        cancelled: set[str] = set()
        known: dict[str, int] = {}
        named: dict[str, None] = {}
        for event in order_events:
            order_id = str(event.payload.get("order_id") or event.aggregate_id)
            named.setdefault(order_id, None)
            if event.type == ev.ORDER_CREATED:
                continue  # a site order is the site's; other orders are the mirror's
            if event.type == ev.ORDER_ATTENTION:
                hub_status = SHORT
            elif event.type == ev.ORDER_PAID:
                hub_status = PAID
            else:
                hub_status = str(event.payload.get("to"))
            if event.type == ev.ORDER_PAID and PAID not in self.status_map:
                continue  # payment is a payment entity in Bitrix: only a mapped status is sent
            status[order_id] = hub_status
            if hub_status == CANCELLED:
                cancelled.add(order_id)
            enriched = event.payload.get("bitrix_order_id")
            if enriched:
                known[order_id] = int(enriched)
        missing = sorted(set(named) - known.keys())
        if missing and self.order_refs is not None:
            known.update({k: int(v) for k, v in (await self.order_refs(missing)).items()})
        commands: list[_Cmd] = []
        for n, (order_id, hub_status) in enumerate(status.items()):
            if order_id not in known:
                if self.mirror is None:
                    self.skipped["order_not_from_site"] += 1
                continue
            fields: dict[str, Any] = {}
            if hub_status in self.status_map:
                fields["statusId"] = self.status_map[hub_status]
            elif hub_status == SHORT and self.short_status:
                fields["statusId"] = self.short_status
            if order_id in cancelled:
                fields["canceled"] = "Y"
            if not fields:
                self.skipped["status_not_mapped"] += 1
                continue
            commands.append(
                _Cmd(f"o{n}", "sale.order.update", {"id": known[order_id], "fields": fields})
            )
        await self._run(commands)
        return [order_id for order_id in named if order_id not in known]


__all__ = ["BitrixRateLimited", "BitrixSink", "HubRefs"]
