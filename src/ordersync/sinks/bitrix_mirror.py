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
        """Three round trips at most, whatever the number of orders (each in batches of 50
        commands): the lookup by xmlId, the reads of orders found that may need completing or
        paying, and every add, completion and update."""
        hub = await self.orders(order_ids)
        mine = [hub[i] for i in order_ids if i in hub and hub[i].mirrored(self.channels)]
        self.counts["not_mirrored"] += len(order_ids) - len(mine)
        if not mine:
            return
        found = await self._find(sink, [o.id for o in mine])
        await sink._resolve(sorted({line.product_xml_id for o in mine for line in o.lines}), [])
        reads = [
            _Cmd(f"g{n}", "sale.order.get", {"id": int(found[o.id]["id"])})
            for n, o in enumerate(mine)
            if o.id in found and (o.id in created or self._unpaid(o, found[o.id]))
        ]
        read = await sink._run(reads)
        writes: list[_Cmd] = []
        for n, order in enumerate(mine):
            row = found.get(order.id)
            if row is None:
                writes += self._add(sink, order, n)
                self.counts["added"] += 1
                continue
            site = ((read.get(f"g{n}") or {}).get("order")) or {}
            if order.id in created:
                writes += self._complete(sink, order, n, int(row["id"]), site)
            completing = order.id in created
            writes += self._follow(sink, order, n, int(row["id"]), row, site, completing)
        await sink._run(writes, halt=True)

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

    @staticmethod
    def _unpaid(order: HubOrder, row: Mapping[str, Any]) -> bool:
        return order.paid and row.get("payed") != "Y"

    def _item(self, sink: BitrixSink, order: HubOrder, n: int, index: int, ref: Any) -> _Cmd:
        line = order.lines[index]
        price = _number(line.price)
        return _Cmd(
            f"i{n}_{line.line_no}",
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

    def _payment(self, order: HubOrder, n: int, ref: Any) -> _Cmd:
        return _Cmd(
            f"p{n}",
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

    def _add(self, sink: BitrixSink, order: HubOrder, n: int) -> list[_Cmd]:
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
        ref = _DocRef(f"a{n}", "order")
        commands = [_Cmd(f"a{n}", "sale.order.add", {"fields": fields})]
        commands += [
            self._item(sink, order, n, i, ref)
            for i, line in enumerate(order.lines)
            if line.quantity > 0  # a line an operator cancelled keeps quantity 0
        ]
        commands.append(self._payment(order, n, ref))
        return commands

    def _complete(
        self, sink: BitrixSink, order: HubOrder, n: int, site_id: int, site: Mapping[str, Any]
    ) -> list[_Cmd]:
        """An order added by an attempt whose answer was lost or that stopped half-way: the
        basket items and the payment it lacks."""
        have = {str(item.get("xmlId")) for item in site.get("basketItems") or []}
        commands = [
            self._item(sink, order, n, i, site_id)
            for i, line in enumerate(order.lines)
            if line.quantity > 0 and f"{order.id}#{line.line_no}" not in have
        ]
        if not site.get("payments"):
            commands.append(self._payment(order, n, site_id))
        self.counts["completed" if commands else "found"] += 1
        return commands

    def _follow(
        self,
        sink: BitrixSink,
        order: HubOrder,
        n: int,
        site_id: int,
        row: Mapping[str, Any],
        site: Mapping[str, Any],
        completing: bool,
    ) -> list[_Cmd]:
        """Status, cancellation and payment as the hub order is now, where the site differs."""
        commands: list[_Cmd] = []
        fields: dict[str, Any] = {}
        status = self.target_status(order, sink.status_map)
        if status and status != row.get("statusId"):
            fields["statusId"] = status
        if order.status == OrderStatus.CANCELLED.value and row.get("canceled") != "Y":
            fields["canceled"] = "Y"
        if fields:
            commands.append(_Cmd(f"u{n}", "sale.order.update", {"id": site_id, "fields": fields}))
        payments = site.get("payments") or []
        if self._unpaid(order, row) and not payments and not completing:
            commands.append(self._payment(order, n, site_id))  # paid, as the order is now
        if self._unpaid(order, row) and payments:  # none: a payment is added, paid
            ours = [p for p in payments if p.get("xmlId") == f"{order.id}#payment"] or payments
            paid = {
                "paySystemId": ours[0].get("paySystemId") or self.pay_system_id,
                "paid": "Y",
                "sum": _number(order.total),
            }
            commands.append(
                _Cmd(f"q{n}", "sale.payment.update", {"id": ours[0]["id"], "fields": paid})
            )
        return commands
