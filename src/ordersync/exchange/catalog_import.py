"""`type=catalog&mode=import`: one step at a time, each within the configured time.

A file goes receiving -> staging -> staged -> applying -> done (or failed). Staging reads the
whole file into the stage tables, so a file found broken halfway (truncated, a quantity that
is not a number) fails before anything of it reaches the ledger. Applying then takes a chunk
of items per transaction, recording in the same transaction how far it got: an import call
repeated after a dropped connection resumes there, and a finished file is never applied twice.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ..config import ExchangeSettings
from ..db import exchange_catalog, exchange_records, exchange_stock
from ..db.exchange_records import ExchangeFile, ExchangeSession
from ..db.unit_of_work import Database
from ..domain.errors import BadExchangeFile
from ..domain.stock_from_1c import bounded_formation
from ..domain.types import Master
from ..services.context import utcnow
from .catalog_apply import CatalogApply
from .read_ahead import Batch, ReadAhead, Source
from .work_dir import WorkDir, is_zip

_LIVE_READERS = 8
# Kept in the result, not for 1C's log.
_UNSHOWN = ("received_at", "stock_unread_ids", "compared_from")
_UNREAD_NAMED = 5


@dataclass(frozen=True)
class Step:
    status: str  # progress or success
    message: str


class _Overtaken(Exception):
    """Another call (another process) moved the same file on: this one stops quietly."""


class CatalogImport:
    def __init__(self, db: Database, settings: ExchangeSettings, master: Master) -> None:
        self.db = db
        self.settings = settings
        self.master = master
        self.zone = ZoneInfo(settings.timezone)
        self._readers: dict[int, ReadAhead] = {}
        self._busy: dict[int, asyncio.Lock] = {}
        self._total_store: str | None = None
        self.applier = CatalogApply(db, settings, master)

    async def step(self, session: ExchangeSession, name: str) -> Step:
        deadline = time.monotonic() + self.settings.step_seconds
        self._total_store = await self._total_store_xml_id()
        work = WorkDir(self.settings.work_dir, session.id)
        unpacked = await self._unpack_pending(session, work)
        if unpacked:
            return Step("progress", f"unpacked {unpacked}")
        file = await self._find(session, name)
        if len(self._busy) > _LIVE_READERS * 4:
            self._busy = {k: v for k, v in self._busy.items() if v.locked()}
        lock = self._busy.setdefault(file.id, asyncio.Lock())
        if lock.locked():
            return Step("progress", f"{name}: still working on the previous call")
        async with lock:
            try:
                return await self._advance(session, work, file, deadline)
            except _Overtaken:
                return Step("progress", f"{name}: another call is importing it")
            except BadExchangeFile as exc:
                await self._fail(session, file, exc.message)
                raise

    async def _find(self, session: ExchangeSession, name: str) -> ExchangeFile:
        """The file by its name, or by its bare name when it came in a subfolder of a zip
        (1C may ask for `import___x.xml` it sent as `goods/1/import___x.xml`)."""
        async with self.db.uow() as uow:
            file = await exchange_records.get_file(uow.conn, session.id, name)
            if file is not None:
                return file
            files = (
                [] if "/" in name else await exchange_records.session_files(uow.conn, session.id)
            )
        found = [f for f in files if f.name.rsplit("/", 1)[-1] == name and f.kind != "zip"]
        if len(found) > 1:
            paths = ", ".join(sorted(f.name for f in found))
            raise BadExchangeFile(
                f"{name} is ambiguous in this exchange ({paths}): name its folder"
            )
        if not found:
            raise BadExchangeFile(f"{name} was not uploaded in this exchange")
        return found[0]

    async def _advance(
        self, session: ExchangeSession, work: WorkDir, file: ExchangeFile, deadline: float
    ) -> Step:
        if file.status == "done":
            return Step("success", f"{file.name} was already imported: {_summary(file.result)}")
        if file.status == "failed":
            raise BadExchangeFile(file.message or f"{file.name} failed")
        if file.status in ("receiving", "staging"):
            file = await self._stage(session, work, file, deadline)
            if file.status != "staged":
                return Step("progress", f"{file.name}: read {file.staged} items")
        file = await self.applier.run(session, file, deadline)
        if file.status != "done":
            return Step("progress", f"{file.name}: applied {file.applied} of {file.staged}")
        self._forget_reader(file.id)
        return Step("success", f"{file.name} imported: {_summary(file.result)}")

    async def _stage(
        self, session: ExchangeSession, work: WorkDir, file: ExchangeFile, deadline: float
    ) -> ExchangeFile:
        path = work.file(file.name)
        if not await asyncio.to_thread(path.is_file):
            raise BadExchangeFile(f"{file.name} was not uploaded in this exchange")
        live = self._readers.get(file.id)
        if live is None or live.next_seq != file.staged:
            live = await self._open_reader(file, path)
        negatives = int(file.result.get("negative", 0))
        try:
            while True:
                start = live.next_seq
                batch = await live.batch()
                negatives += batch.negatives
                async with self.db.uow() as uow:
                    current = await exchange_records.get_file(
                        uow.conn, session.id, file.name, lock=True
                    )
                    if current is None or current.staged != start:
                        raise _Overtaken
                    await exchange_catalog.stage_stores(uow.conn, file.id, batch.new_stores)
                    await exchange_catalog.stage(uow.conn, batch.rows)
                    result = {**current.result, "negative": negatives}
                    if self.master is Master.ONE_C and self.db.engine.dialect.name != "sqlite":
                        # The apply reads again what another import or a sale wrote since.
                        result.setdefault("compared_from", utcnow().isoformat())
                        await exchange_stock.compare_staged(
                            uow.conn, file.id, start, batch.next_seq
                        )
                    _count_unread(result, batch)
                    if current.status == "receiving":  # its formation is bounded by this
                        result["received_at"] = current.updated_at.isoformat()
                    values: dict[str, object] = {
                        "status": "staging",
                        "staged": batch.next_seq,
                        "result": result,
                    }
                    if not batch.rows:
                        values.update(
                            await self._finish_staging(uow.conn, session, file, live, result)
                        )
                    await exchange_records.update_file(uow.conn, file.id, utcnow(), **values)
                    await uow.commit()
                if not batch.rows or time.monotonic() >= deadline:
                    break
        except BaseException:
            self._forget_reader(file.id)
            raise
        finally:
            await live.settle()
        async with self.db.uow_read() as uow:
            fresh = await exchange_records.get_file(uow.conn, session.id, file.name)
        assert fresh is not None
        return fresh

    async def _open_reader(self, file: ExchangeFile, path: Path) -> ReadAhead:
        self._forget_reader(file.id)
        if len(self._readers) >= _LIVE_READERS:  # abandoned imports do not pile up
            self._forget_reader(next(iter(self._readers)))
        async with self.db.uow_read() as uow:
            numbers = await exchange_catalog.staged_store_numbers(uow.conn, file.id)
        source = Source(
            path,
            file.id,
            self.settings.timezone,
            self.settings.price_type,
            self._total_store,
            file.staged,
            numbers,
        )
        live = ReadAhead(source)
        self._readers[file.id] = live
        return live

    def _forget_reader(self, file_id: int) -> None:
        live = self._readers.pop(file_id, None)
        if live is not None:
            live.close()

    async def _finish_staging(
        self,
        conn: AsyncConnection,
        session: ExchangeSession,
        file: ExchangeFile,
        live: ReadAhead,
        result: dict[str, Any],
    ) -> dict[str, object]:
        """The file's kind, formation time and result once it is read to the end (`result`
        as staged so far)."""
        negatives = int(result["negative"])
        reader = live.summary()
        listed = [x for x in reader.stores if x not in live.store_numbers]  # Склады, no stock
        await exchange_catalog.stage_stores(
            conn, file.id, _number(listed, live.store_numbers, reader.stores)
        )
        await exchange_catalog.name_staged_stores(conn, file.id, reader.stores)
        await conn.execute(text("ANALYZE exchange_stage_items"))  # the apply joins on it
        for message in _unread_warnings(file.name, result):
            await exchange_records.log(conn, session.id, file.name, "warning", message, utcnow())
        if negatives:
            await exchange_records.log(
                conn,
                session.id,
                file.name,
                "warning",
                f"{negatives} negative 1C balances in {file.name} taken as 0",
                utcnow(),
            )
        kind = "offers" if reader.has_offers else "import" if reader.has_products else "empty"
        received = result.get("received_at")
        arrived = datetime.fromisoformat(received) if received else utcnow()
        formed = bounded_formation(reader.formed_at or session.created_at, arrived)
        if reader.formed_at is not None and formed < reader.formed_at:
            await exchange_records.log(
                conn, session.id, file.name, "warning",
                f"{file.name} says it was formed at {reader.formed_at.isoformat()}, after it "
                f"arrived ({arrived.isoformat()}): taken as formed on arrival (is 1C's clock "
                "ahead, or exchange.timezone wrong?)", utcnow(),
            )  # fmt: skip
        # The chunk size is the file's: a changed setting must not move the chunk boundaries.
        result = {**result, "chunk": self.settings.chunk_offers}
        repeated = await exchange_catalog.keep_last_of_repeated(conn, file.id)
        if repeated:
            result["repeated_items"] = repeated
        return {
            "status": "staged",
            "kind": kind,
            "formed_at": formed,
            "applied": 0,
            "result": result,
        }

    async def _total_store_xml_id(self) -> str | None:
        code = self.settings.total_stock_store
        if code is None:
            return None
        for store in await self.db.fresh_stores():
            if store.code == code:
                return store.xml_id
        raise BadExchangeFile(f"exchange.total_stock_store names {code}, which does not exist")

    async def _unpack_pending(self, session: ExchangeSession, work: WorkDir) -> str | None:
        async with self.db.uow() as uow:
            files = await exchange_records.session_files(uow.conn, session.id)
        for file in files:
            if file.status == "unpacking":
                return f"{file.name}: another call is unpacking it"
            path = work.file(file.name)
            if file.status != "receiving" or not await asyncio.to_thread(_zip_file, path):
                continue
            async with self.db.uow() as uow:  # claimed, so a repeated call does not unpack too
                claimed = await exchange_records.get_file(
                    uow.conn, session.id, file.name, lock=True
                )
                if claimed is None or claimed.status != "receiving":
                    return f"{file.name}: another call is unpacking it"
                await exchange_records.update_file(uow.conn, file.id, utcnow(), status="unpacking")
                await uow.commit()
            try:
                names = await asyncio.to_thread(
                    work.unpack, file.name, self.settings.max_unpacked_bytes
                )
            except BadExchangeFile as exc:
                await self._fail(session, file, exc.message)
                raise
            async with self.db.uow() as uow:
                now = utcnow()
                for name in names:
                    existing = await exchange_records.get_file(uow.conn, session.id, name)
                    if existing is None:
                        await exchange_records.create_file(uow.conn, session.id, name, None, now)
                    else:
                        await exchange_records.reset_file(uow.conn, existing.id, now)
                await exchange_records.update_file(
                    uow.conn, file.id, now, kind="zip", status="done", result={"files": names}
                )
                await uow.commit()
            return f"{file.name}: {len(names)} files"
        return None

    async def _fail(self, session: ExchangeSession, file: ExchangeFile, message: str) -> None:
        self._forget_reader(file.id)
        async with self.db.uow() as uow:
            now = utcnow()
            await exchange_records.clear_stage(uow.conn, file.id)
            await exchange_records.update_file(
                uow.conn, file.id, now, status="failed", message=message[:2000]
            )
            await exchange_records.log(uow.conn, session.id, file.name, "error", message, now)
            await uow.commit()


def _count_unread(result: dict[str, Any], batch: Batch) -> None:
    if batch.unread:
        result["stock_unread"] = result.get("stock_unread", 0) + len(batch.unread)
        named = result.get("stock_unread_ids", [])
        result["stock_unread_ids"] = (named + batch.unread)[:_UNREAD_NAMED]
    if batch.totals_only:
        result["stock_total_only"] = result.get("stock_total_only", 0) + batch.totals_only


def _unread_warnings(name: str, result: dict[str, Any]) -> list[str]:
    messages = []
    if result.get("stock_unread"):
        named = ", ".join(result.get("stock_unread_ids", []))
        messages.append(
            f"the stock of {result['stock_unread']} offers in {name} could not be read "
            f"(a shape the hub does not know; e.g. {named}): their stock is not imported"
        )
    if result.get("stock_total_only"):
        messages.append(
            f"{result['stock_total_only']} offers in {name} carry only a total stock, without "
            "stores: set exchange.total_stock_store to the store it belongs to"
        )
    return messages


def _zip_file(path: Path) -> bool:
    return path.is_file() and is_zip(path)


def _number(
    xml_ids: list[str], numbers: dict[str, int], names: dict[str, str]
) -> list[tuple[int, str, str]]:
    out = []
    for xml_id in xml_ids:
        numbers[xml_id] = len(numbers)
        out.append((numbers[xml_id], xml_id, names.get(xml_id, xml_id)))
    return out


def _summary(result: dict[str, object]) -> str:
    shown = {k: v for k, v in result.items() if v and k not in _UNSHOWN}
    return ", ".join(f"{k} {v}" for k, v in shown.items()) or "nothing to change"
