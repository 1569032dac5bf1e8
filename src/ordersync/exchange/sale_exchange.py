"""`type=sale`: orders out to 1C (query, then success), and 1C's changes back (file/import)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncConnection

from ..config import ExchangeSettings
from ..db import exchange_orders, exchange_records
from ..db.exchange_records import ExchangeSession
from ..db.unit_of_work import Database
from ..domain.errors import BadExchangeFile, Conflict, NotFound
from ..domain.orders import Order
from ..domain.types import OrderStatus, PaymentStatus
from ..services.context import Context, utcnow
from ..services.orders import change_status, pay_order
from .sale_document import SCHEMA_VERSION, Refs, orders_document, served_version
from .sale_reader import OrderChange, read_order_changes
from .work_dir import WorkDir, is_zip


class SaleExchange:
    def __init__(self, db: Database, settings: ExchangeSettings, ctx: Context) -> None:
        self.db = db
        self.settings = settings
        self.ctx = ctx
        self.zone = ZoneInfo(settings.timezone)

    async def query(self, session: ExchangeSession) -> bytes:
        """The orders 1C has yet to receive. They count as received only on `success`."""
        async with self.db.uow() as uow:
            found = await exchange_orders.orders_not_in_1c(
                uow.conn, self.settings.export_channels, self.settings.query_limit
            )
            product_ids = sorted({line.product_id for o in found for line in o.lines})
            refs = Refs(
                await exchange_orders.product_info(uow.conn, product_ids),
                await exchange_orders.store_refs(uow.conn),
                self.zone,
            )
            sent = [[o.id, _stamp(o)] for o in found]
            await exchange_records.update_session(uow.conn, session.id, pending_query=sent)
            await uow.commit()
        version = served_version(session.version) if session.version else SCHEMA_VERSION
        return orders_document(
            found,
            refs,
            utcnow(),
            self.settings.encoding,
            version,
            versioned=session.version is not None,
        )

    async def success(self, session: ExchangeSession) -> int:
        pending = session.pending_query or []
        async with self.db.uow() as uow:
            await exchange_orders.mark_in_1c(
                uow.conn, [(oid, datetime.fromisoformat(at)) for oid, at in pending]
            )
            await exchange_records.update_session(
                uow.conn, session.id, pending_query=None, confirmed_at=utcnow()
            )
            await uow.commit()
        return len(pending)

    async def import_file(self, session: ExchangeSession, name: str) -> list[str]:
        """Applies the order changes of a file once; the lines say what happened."""
        async with self.db.uow() as uow:
            file = await exchange_records.get_file(uow.conn, session.id, name, lock=True)
            if file is None:
                raise BadExchangeFile(f"{name} was not uploaded in this exchange")
            if file.status == "done":
                return [f"{name} was already imported"]
            await exchange_records.update_file(uow.conn, file.id, utcnow(), status="applying")
            await uow.commit()
        work = WorkDir(self.settings.work_dir, session.id)
        try:
            changes = await asyncio.to_thread(self._read, work, name)
        except BadExchangeFile as exc:
            await self._finish(session, file.id, name, "failed", exc.message, [exc.message])
            raise
        notes = [await self._apply(change) for change in changes]
        await self._finish(session, file.id, name, "done", None, notes)
        return notes

    def _read(self, work: WorkDir, name: str) -> list[OrderChange]:
        """The changes in the file, or in every XML file of it when it is a zip (1C zips its
        orders when `init` answered zip=yes)."""
        path = work.file(name)
        if not path.is_file():
            raise BadExchangeFile(f"{name} was not uploaded in this exchange")
        if not is_zip(path):
            return list(read_order_changes(path))
        members = work.unpack(name, self.settings.max_unpacked_bytes)
        changes: list[OrderChange] = []
        for member in sorted(m for m in members if m.lower().endswith(".xml")):
            changes.extend(read_order_changes(work.file(member)))
        return changes

    async def _finish(
        self,
        session: ExchangeSession,
        file_id: int,
        name: str,
        status: str,
        message: str | None,
        notes: list[str],
    ) -> None:
        async with self.db.uow() as uow:
            now = utcnow()
            await exchange_records.update_file(
                uow.conn, file_id, now, status=status, message=message, kind="orders"
            )
            for note in notes:
                level = "info" if note.startswith("order ") else "warning"
                await exchange_records.log(uow.conn, session.id, name, level, note, now)
            await uow.commit()

    async def _apply(self, change: OrderChange) -> str:
        async with self.db.uow() as uow:
            order_id, problem = await find_order(uow.conn, change)
            if order_id is None:
                return problem
            if change.version and change.version == await exchange_orders.version_1c(
                uow.conn, order_id
            ):
                return f"order {order_id}: version {change.version} already applied"
        done: list[str] = []
        try:
            for step in self._steps(change):
                order = await self._run(order_id, step)
                if order is not None:
                    done.append(step)
        except (Conflict, NotFound) as exc:
            return f"order {order_id}: {exc.message} (1C said {', '.join(self._steps(change))})"
        async with self.db.uow() as uow:
            await exchange_orders.remember_1c(
                uow.conn,
                order_id,
                change.number_1c,
                change.version,
                utcnow(),
                id_1c=change.id if change.id and change.id != order_id else None,
            )
            await uow.commit()
        return f"order {order_id}: {', '.join(done) or 'no change'}"

    def _steps(self, change: OrderChange) -> list[str]:
        if change.deleted or change.cancelled:
            return ["cancelled"]
        steps: list[str] = []
        mapped = self.settings.status_map.get(change.status_id or "")
        if change.paid or mapped == "paid":
            steps.append("paid")
        if change.shipped or mapped in ("shipped", "completed"):
            steps.append("shipped")
        if mapped == "completed":
            steps.append("completed")
        if mapped == "cancelled":
            steps = ["cancelled"]
        return steps

    async def _run(self, order_id: str, step: str) -> Order | None:
        """One use case; None when the order was already there (nothing changed)."""
        async with self.db.uow_read() as uow:
            order = await uow.get_order(order_id)
        if order is None:
            raise NotFound(f"order {order_id} is gone")
        if step == "paid":
            if order.payment_status is PaymentStatus.PAID:
                return None
            result = await pay_order(self.db.uow, order_id, self.ctx)
        else:
            target = OrderStatus(step)
            if order.status is target or _beyond(order.status, target):
                return None
            result = await change_status(self.db.uow, order_id, target, self.ctx, reason="1c")
        assert isinstance(result, Order)
        return result


async def find_order(conn: AsyncConnection, change: OrderChange) -> tuple[str | None, str]:
    """The order a 1C document means, by its Ид first (the hub's id, or 1C's own id or number
    remembered from an earlier document), else by its Номер (the hub's number, the site's
    number, 1C's number). Several orders sharing that number are told apart by the document's
    Сумма; if that does not single one out, nothing is applied: (None, why)."""
    if change.id:
        found = await exchange_orders.orders_by_id(conn, change.id)
        if len(found) == 1:
            return found[0], ""
    if not change.number:
        return None, f"unknown order {change.label}: not created"
    candidates = await exchange_orders.orders_by_number(conn, change.number)
    if not candidates:
        return None, f"unknown order {change.label}: not created"
    if len(candidates) == 1:
        return candidates[0][0], ""
    by_sum = [oid for oid, total in candidates if total == change.total]
    if len(by_sum) == 1:
        return by_sum[0], ""
    return None, (
        f"order {change.label}: number {change.number} names {len(candidates)} orders "
        "and its Сумма does not tell them apart: not applied"
    )


def _beyond(current: OrderStatus, target: OrderStatus) -> bool:
    """1C saying "shipped" about a completed order is old news, not an error."""
    return current is OrderStatus.COMPLETED and target is OrderStatus.SHIPPED


def _stamp(order: Order) -> str:
    assert order.updated_at is not None
    return order.updated_at.isoformat()
