"""The second half of a catalog import: applying a fully staged file to the hub.

Stores named by the file are created first. Then the items go in chunks of
`exchange.chunk_offers`, each in its own transaction that also claims the chunk
(db.exchange_records.claim_chunk), so each chunk is applied exactly once however many calls or
processes work on the file, and an import broken off resumes with the chunks still missing. On
PostgreSQL `exchange.apply_workers` chunks run at once (they touch different products); SQLite
has one writer.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import datetime

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from ..config import ExchangeSettings
from ..db import exchange_catalog, exchange_records, exchange_stock
from ..db.catalog import create_store_from_1c
from ..db.exchange_records import ExchangeFile, ExchangeSession
from ..db.outbox import add_event
from ..db.unit_of_work import Database
from ..domain import events
from ..domain.stock_from_1c import COVERAGE_KEPT
from ..domain.types import Master
from ..services.context import utcnow

_RETRIES = 5  # a chunk that meets a deadlock (two chunks creating the same SKU) is run again


class CatalogApply:
    def __init__(self, db: Database, settings: ExchangeSettings, master: Master) -> None:
        self.db = db
        self.settings = settings
        self.master = master

    async def run(
        self, session: ExchangeSession, file: ExchangeFile, deadline: float
    ) -> ExchangeFile:
        if file.status == "staged":
            await self._begin(session, file)
        async with self.db.uow_read() as uow:
            fresh = await exchange_records.get_file(uow.conn, session.id, file.name)
        assert fresh is not None
        file = fresh
        size = int(file.result.get("chunk", self.settings.chunk_offers))
        chunks = -(-file.staged // size)
        async with self.db.uow_read() as uow:
            done = await exchange_records.chunk_results(uow.conn, file.id)
        todo = iter([k for k in range(chunks) if k not in done])
        workers = self.settings.apply_workers if self.db.engine.dialect.name != "sqlite" else 1

        async def worker() -> None:
            for k in todo:  # shared by the workers: each chunk is taken once
                await self._chunk(file, k, k * size, min((k + 1) * size, file.staged))
                if time.monotonic() >= deadline:
                    return

        await asyncio.gather(*(worker() for _ in range(workers)))
        return await self._finish(session, file, chunks)

    async def _begin(self, session: ExchangeSession, file: ExchangeFile) -> None:
        async with self.db.uow() as uow:
            current = await exchange_records.get_file(uow.conn, session.id, file.name, lock=True)
            if current is None or current.status != "staged":
                return  # another call began it
            now = utcnow()
            await self._create_stores(uow.conn, session, current, now)
            await exchange_records.update_file(uow.conn, file.id, now, status="applying")
            await uow.commit()
        self.db.forget_stores()

    async def _chunk(self, file: ExchangeFile, k: int, lo: int, hi: int) -> None:
        for attempt in range(_RETRIES):
            try:
                await self._apply_chunk(file, k, lo, hi)
                return
            except DBAPIError as exc:
                if attempt == _RETRIES - 1 or not _is_deadlock(exc):
                    raise

    async def _apply_chunk(self, file: ExchangeFile, k: int, lo: int, hi: int) -> None:
        async with self.db.uow() as uow:
            conn = uow.conn
            if not await exchange_records.claim_chunk(conn, file.id, k):
                return
            now = utcnow()
            result: Counter[str] = Counter()
            created, updated = await exchange_catalog.apply_products(conn, file.id, lo, hi, now)
            result["products_created"] += created
            result["products_updated"] += updated
            if created or updated:  # tills selling them (Evotor) are told
                changed = await exchange_catalog.products_changed(conn, file.id, lo, hi, now)
                await add_event(conn, events.CATALOG_CHANGED, events.AGGREGATE_CATALOG,
                                "products", events.catalog_changed(changed, "1c"), now)  # fmt: skip
            result["unknown_products"] += await exchange_catalog.unknown_stock_products(
                conn, file.id, lo, hi
            )
            assert file.formed_at is not None
            if self.master is Master.ONE_C:
                compared = file.result.get("compared_from")
                moved = await exchange_stock.adopt_figures(
                    conn, file.id, lo, hi, file.formed_at, document_id(file), now,
                    datetime.fromisoformat(compared) if compared else None,
                )  # fmt: skip
                result["stock_changed"] += moved.moved
                result["store_figures"] += moved.figures
                result["figures_skipped_newer"] += moved.skipped_newer
                result["figures_skipped_too_old"] += moved.skipped_too_old
            else:
                recorded, older = await exchange_stock.record_figures(
                    conn, file.id, lo, hi, file.formed_at, now
                )
                result["figures_recorded"] += recorded
                result["figures_skipped_newer"] += older
            await exchange_records.set_chunk_result(conn, file.id, k, dict(result))
            await uow.commit()

    async def _finish(
        self, session: ExchangeSession, file: ExchangeFile, chunks: int
    ) -> ExchangeFile:
        async with self.db.uow() as uow:
            conn = uow.conn
            current = await exchange_records.get_file(conn, session.id, file.name, lock=True)
            assert current is not None
            if current.status == "done":
                return current
            done = await exchange_records.chunk_results(conn, file.id)
            now = utcnow()
            size = int(current.result.get("chunk", self.settings.chunk_offers))
            applied = min(len(done) * size, current.staged)
            values: dict[str, object] = {"applied": applied}
            if len(done) >= chunks:
                totals: Counter[str] = Counter(current.result)
                for partial in done.values():
                    totals.update(partial)
                totals.pop("compared_from", None)  # the apply's own, done with
                values.update(status="done", applied=current.staged, result=dict(totals))
                for message in _skipped(file.name, totals):
                    await exchange_records.log(conn, session.id, file.name, "warning", message, now)
                if totals["unknown_products"]:
                    await exchange_records.log(
                        conn,
                        session.id,
                        file.name,
                        "warning",
                        f"the stock of {totals['unknown_products']} items was skipped: the "
                        "hub does not know their products (send import.xml first)",
                        now,
                    )
                # The staged rows have served; a finished file is never applied again.
                await exchange_records.clear_stage(conn, file.id)
            await exchange_records.update_file(conn, file.id, now, **values)
            await uow.commit()
        async with self.db.uow_read() as uow:
            fresh = await exchange_records.get_file(uow.conn, session.id, file.name)
        assert fresh is not None
        return fresh

    async def _create_stores(
        self, conn: AsyncConnection, session: ExchangeSession, file: ExchangeFile, now: datetime
    ) -> None:
        for xml_id, name in await exchange_catalog.new_stores(conn, file.id):
            code = await create_store_from_1c(conn, xml_id, name, now)
            await exchange_records.log(
                conn,
                session.id,
                file.name,
                "warning",
                f"store {xml_id} ({name}) is new: created as {code}, not serving online "
                "and not a pickup point until configured",
                now,
            )
        await exchange_catalog.rename_stores(conn, file.id, now)


def _skipped(name: str, totals: Counter[str]) -> list[str]:
    """Warnings for the figures an older file did not apply."""
    messages = []
    if totals["figures_skipped_newer"]:
        messages.append(
            f"{totals['figures_skipped_newer']} stock figures of {name} were skipped: a file "
            "formed later had already set those levels"
        )
    if totals["figures_skipped_too_old"]:
        days = COVERAGE_KEPT.days
        messages.append(
            f"{totals['figures_skipped_too_old']} stock figures of {name} were skipped: it "
            f"was formed more than {days} days before the newest stock file of their stores"
        )
    return messages


def document_id(file: ExchangeFile) -> str:
    """The movements' source document: the exchange session and the file."""
    return f"{file.session_id}/{file.name}"[:128]


def _is_deadlock(exc: DBAPIError) -> bool:
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return code in ("40P01", "40001") or "deadlock" in str(exc).lower()
