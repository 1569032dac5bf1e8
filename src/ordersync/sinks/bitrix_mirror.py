"""Till and operator orders recorded on the Bitrix site, the way integrators record offline
sales (api-reference/sale/order/sale-order-add.md, basket-item/sale-basket-item-add.md,
payment/sale-payment-add.md): `sale.order.add` with `xmlId` = the hub order id, a basket item
per line (`customPrice` "Y": the hub's price), one payment (paid when the hub order is paid),
the final status (`mirror_status`) for a completed order, and `additionalInfo` carrying
`{"source": "offline"|"operator", "store": <code>, "pos_transaction_id": ...}`, with
`externalOrder` "Y" and `dateInsert` the hub order's time (a till sale's: at the till). No shipment
is added: the site's stock is the hub's to send (a deducted shipment would count the sale
twice).

Exactly once: the orders are looked up first by `xmlId` (`sale.order.list`, `@xmlId`), so a
retry after a lost answer finds the order instead of adding a second. An order found when its
`order.created` is delivered again is read (`sale.order.get`) and completed: basket items whose
`xmlId` (`<hub id>#<line>`) is missing are added, and a payment if it has none. Later events of
a mirrored order (status changes, payment) update its status, `canceled` flag and payment
(`sale.payment.update` paid "Y") to what the hub order is now, only where the site differs.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ..domain.types import Channel, OrderStatus, Source
from ..services.site_out import HubOrder
from .bitrix import BitrixSink, _Cmd, _DocRef

OrdersFn = Callable[[Sequence[str]], Awaitable[Mapping[str, HubOrder]]]
LOOKUP_PAGE = 50


def _number(value: Decimal) -> str:
    return format(value.normalize(), "f")


@dataclass
class SiteMirror:
    orders: OrdersFn  # the hub orders as they are at delivery time
    channels: frozenset[str] = frozenset({Channel.POS.value, Channel.OPERATOR.value})
    final_status: str = "F"
    site_id: str = "s1"
    person_type_id: int = 1
    pay_system_id: int = 1
    counts: Counter[str] = field(default_factory=Counter)

    def wants(self, payload: Mapping[str, Any]) -> bool:
        """An order.created of a channel mirrored (a till's shift order is not)."""
        channel = str(payload.get("channel"))
        if channel not in self.channels:
            return False
        if channel == Channel.POS.value:
            return payload.get("source") == Source.OFFLINE.value and bool(
                payload.get("pos_transaction_id")
            )
        return channel == Channel.OPERATOR.value

    def target_status(self, order: HubOrder, status_map: Mapping[str, str]) -> str | None:
        if order.status == OrderStatus.COMPLETED.value:
            return self.final_status
        return status_map.get(order.status)

    def info(self, order: HubOrder) -> dict[str, Any]:
        source = "offline" if order.channel == Channel.POS.value else "operator"
        return {
            "source": source,
            "store": order.store_code,
            "pos_transaction_id": order.pos_transaction_id,
        }

    async def deliver(self, sink: BitrixSink, order_ids: Sequence[str], created: set[str]) -> None:
        hub = await self.orders(order_ids)
        mine = [hub[i] for i in order_ids if i in hub and hub[i].mirrored(self.channels)]
        self.counts["not_mirrored"] += len(order_ids) - len(mine)
        if not mine:
            return
        found = await self._find(sink, [o.id for o in mine])
        await sink._resolve(sorted({line.product_xml_id for o in mine for line in o.lines}), [])
        for order in mine:
            row = found.get(order.id)
            if row is None:
                await self._add(sink, order)
                self.counts["added"] += 1
                continue
            site_id = int(row["id"])
            if order.id in created:
                await self._complete(sink, order, site_id)
            await self._follow(sink, order, site_id, row)

    async def _find(self, sink: BitrixSink, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        commands = [
            _Cmd(
                f"f{n}",
                "sale.order.list",
                {
                    "select": ["id", "xmlId", "statusId", "canceled", "payed"],
                    "filter": {"@xmlId": list(ids[start : start + LOOKUP_PAGE])},
                },
            )
            for n, start in enumerate(range(0, len(ids), LOOKUP_PAGE))
        ]
        found: dict[str, dict[str, Any]] = {}
        for result in (await sink._run(commands)).values():
            for row in (result or {}).get("orders") or []:
                found.setdefault(str(row.get("xmlId")), row)
        return found

    def _item(self, sink: BitrixSink, order: HubOrder, index: int, ref: Any) -> _Cmd:
        line = order.lines[index]
        price = _number(line.price)
        return _Cmd(
            f"i{line.line_no}",
            "sale.basketitem.add",
            {
                "fields": {
                    "orderId": ref,
                    "productId": sink._products.get(line.product_xml_id, 0),
                    "productXmlId": line.product_xml_id,
                    "name": line.name,
                    "quantity": _number(line.quantity),
                    "currency": order.currency,
                    "customPrice": "Y",
                    "price": price,
                    "basePrice": price,
                    "discountPrice": "0",
                    "xmlId": f"{order.id}#{line.line_no}",
                }
            },
        )

    def _payment(self, order: HubOrder, ref: Any) -> _Cmd:
        return _Cmd(
            "pay",
            "sale.payment.add",
            {
                "fields": {
                    "orderId": ref,
                    "paySystemId": self.pay_system_id,
                    "sum": _number(order.total),
                    "paid": "Y" if order.paid else "N",
                    "xmlId": f"{order.id}#payment",
                }
            },
        )

    async def _add(self, sink: BitrixSink, order: HubOrder) -> None:
        fields: dict[str, Any] = {
            "lid": self.site_id,
            "personTypeId": self.person_type_id,
            "currency": order.currency,
            "xmlId": order.id,
            "externalOrder": "Y",
            "comments": f"ordersync order {order.number}",
            "additionalInfo": json.dumps(self.info(order), ensure_ascii=False),
        }
        if order.created_at is not None:
            fields["dateInsert"] = order.created_at.isoformat(timespec="seconds")
        status = self.target_status(order, sink.status_map)
        if status:
            fields["statusId"] = status
        if order.status == OrderStatus.CANCELLED.value:
            fields["canceled"] = "Y"
        ref = _DocRef("add", "order")
        commands = [_Cmd("add", "sale.order.add", {"fields": fields})]
        commands += [self._item(sink, order, n, ref) for n in range(len(order.lines))]
        commands.append(self._payment(order, ref))
        await sink._run(commands, halt=True)

    async def _complete(self, sink: BitrixSink, order: HubOrder, site_id: int) -> None:
        """An order added by an attempt whose answer was lost or that stopped half-way."""
        got = await sink.rest.call("sale.order.get", {"id": site_id})
        site = (got or {}).get("order") or {}
        have = {str(item.get("xmlId")) for item in site.get("basketItems") or []}
        commands = [
            self._item(sink, order, n, site_id)
            for n, line in enumerate(order.lines)
            if f"{order.id}#{line.line_no}" not in have
        ]
        if not site.get("payments"):
            commands.append(self._payment(order, site_id))
        if commands:
            self.counts["completed"] += 1
            await sink._run(commands, halt=True)
        else:
            self.counts["found"] += 1

    async def _follow(
        self, sink: BitrixSink, order: HubOrder, site_id: int, row: Mapping[str, Any]
    ) -> None:
        fields: dict[str, Any] = {}
        status = self.target_status(order, sink.status_map)
        if status and status != row.get("statusId"):
            fields["statusId"] = status
        if order.status == OrderStatus.CANCELLED.value and row.get("canceled") != "Y":
            fields["canceled"] = "Y"
        if fields:
            await sink._run([_Cmd("upd", "sale.order.update", {"id": site_id, "fields": fields})])
        if order.paid and row.get("payed") != "Y":
            await self._pay(sink, order, site_id)

    async def _pay(self, sink: BitrixSink, order: HubOrder, site_id: int) -> None:
        """The hub order was paid after it was recorded: its payment on the site is marked
        paid (sale.payment.update), or one is added when it has none."""
        got = await sink.rest.call("sale.order.get", {"id": site_id})
        payments = ((got or {}).get("order") or {}).get("payments") or []
        ours = [p for p in payments if p.get("xmlId") == f"{order.id}#payment"] or payments
        if not ours:
            await sink._run([self._payment(order, site_id)])
            return
        fields = {
            "paySystemId": ours[0].get("paySystemId") or self.pay_system_id,
            "paid": "Y",
            "sum": _number(order.total),
        }
        await sink._run(
            [_Cmd("pay", "sale.payment.update", {"id": ours[0]["id"], "fields": fields})]
        )
