"""`/bitrix/admin/1c_exchange.php`: the CommerceML 2 dialogue, answered as 1C-Bitrix answers it.

Every reply is plain text whose first line is `success`, `progress` or `failure` (nothing
before it: 1C reads the first line as the status), in windows-1251 unless configured
otherwise. Protocol failures are answered with HTTP 200 and `failure`, as Bitrix does, so 1C
shows the reason in its log instead of a transport error.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from fastapi import APIRouter, Request, Response

from ..config import ExchangeSettings, Settings
from ..db import exchange_records, exchange_stock
from ..db.exchange_records import ExchangeSession
from ..db.unit_of_work import Database
from ..domain.errors import BadExchangeFile, OrdersyncError
from ..services.context import Context, utcnow
from ..services.ids import uuid7
from . import auth
from .catalog_import import CatalogImport
from .sale_document import SERVED_VERSIONS, served_version
from .sale_exchange import SaleExchange
from .work_dir import WorkDir, safe_name

log = logging.getLogger("ordersync.exchange")
STANDARD_PATH = "/bitrix/admin/1c_exchange.php"
_TYPES = ("catalog", "sale")
_SEEN_EVERY = timedelta(minutes=1)
_FAILED_LOGIN_DELAY = 1.0
_LOG_KEPT = timedelta(days=30)


class Refused(Exception):
    """A protocol failure: answered `failure` with this reason."""


@dataclass
class Exchange:
    db: Database
    settings: ExchangeSettings
    catalog: CatalogImport
    sale: SaleExchange
    logins: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(1))

    @classmethod
    def build(cls, db: Database, settings: Settings, ctx: Context) -> Exchange:
        ex = settings.exchange
        return cls(db, ex, CatalogImport(db, ex, settings.master), SaleExchange(db, ex, ctx))

    async def checkauth(self, request: Request, type_: str) -> tuple[str, str]:
        """A new session: the reply, and the cookie (also sent as `Set-Cookie`)."""
        login, password = self._credentials(request.headers.get("authorization"))
        await self._verify(login, password)
        cookie = auth.new_cookie()
        now = utcnow()
        async with self.db.uow() as uow:
            await exchange_records.create_session(
                uow.conn, uuid7(), type_, auth.cookie_hash(cookie), login, now
            )
            await uow.commit()
        await self.forget_old_sessions()
        lines = ["success", auth.COOKIE_NAME, cookie, f"sessid={cookie_sessid(cookie)}"]
        if type_ == "catalog":
            lines.append(f"timestamp={int(now.timestamp())}")
        return "\n".join(lines), cookie

    async def session(self, request: Request) -> tuple[ExchangeSession, str]:
        """The caller's session and its key: by the cookie, as 1C does, or else by HTTP Basic
        on the call itself (clients that never keep a cookie). Not tied to an exchange type."""
        cookie = request.cookies.get(auth.COOKIE_NAME)
        session = await self._live(auth.cookie_hash(cookie)) if cookie else None
        if session is not None and cookie is not None:
            sessid = request.query_params.get("sessid")
            if sessid is not None and not hmac.compare_digest(sessid, cookie_sessid(cookie)):
                raise Refused("sessid does not match the session")
            return session, cookie
        header = request.headers.get("authorization")
        if auth.parse_basic(header) is not None:  # the credentials prove it: no sessid asked
            return await self._by_credentials(header, request.query_params.get("type", ""))
        if not cookie:
            raise Refused("no session cookie: call mode=checkauth first")
        raise Refused("unknown or expired session: call mode=checkauth again")

    async def _by_credentials(self, header: str | None, type_: str) -> tuple[ExchangeSession, str]:
        """The session of these credentials, resumed without PBKDF2 when it is alive (only
        credentials once verified ever open one), else opened after the checked login."""
        login, password = self._credentials(header)
        assert self.settings.password_hash is not None
        token = auth.credentials_token(login, password, self.settings.password_hash)
        hashed = auth.cookie_hash(token)
        session = await self._live(hashed)
        if session is None:
            await self._verify(login, password)
            await self.forget_old_sessions()  # an expired session of the same key goes first
            async with self.db.uow() as uow:
                await exchange_records.open_session(
                    uow.conn, uuid7(), type_, hashed, login, utcnow()
                )
                await uow.commit()
            session = await self._live(hashed)
            assert session is not None
        return session, token

    async def _live(self, hashed: str) -> ExchangeSession | None:
        """The session with this key unless it expired; its last_seen_at kept current."""
        async with self.db.uow_read() as uow:
            session = await exchange_records.session_by_cookie(uow.conn, hashed)
        now = utcnow()
        if session is None or now - session.last_seen_at > timedelta(
            hours=self.settings.session_hours
        ):
            return None
        if now - session.last_seen_at > _SEEN_EVERY:
            async with self.db.uow() as uow:
                await exchange_records.update_session(uow.conn, session.id, last_seen_at=now)
                await uow.commit()
        return session

    def _credentials(self, header: str | None) -> tuple[str, str]:
        if not self.settings.password_hash:
            raise Refused(
                "the 1C exchange is not configured: no exchange.password_hash is set (make one "
                "with `ordersync exchange hash-password` and set it in the file or in "
                "ORDERSYNC_EXCHANGE__PASSWORD_HASH)"
            )
        credentials = auth.parse_basic(header)
        if credentials is None:
            raise Refused("no credentials: send HTTP Basic authorization (a proxy may strip it)")
        return credentials

    async def _verify(self, login: str, password: str) -> None:
        # PBKDF2 is slow on purpose: off the event loop, one at a time, and a wrong guess
        # costs a second more.
        async with self.logins:
            valid = await asyncio.to_thread(
                auth.verify_password, password, self.settings.password_hash
            )
        if login != self.settings.login or not valid:
            await asyncio.sleep(_FAILED_LOGIN_DELAY)
            raise Refused("wrong login or password")

    async def dispatch(
        self, request: Request, session: ExchangeSession, key: str, type_: str, mode: str
    ) -> str | Response:
        filename = request.query_params.get("filename")
        if mode == "init":
            return await self.init(request, session, key, type_)
        if mode == "file":
            name = await self.receive(request, session, _required(filename))
            if type_ == "sale" and session.version is None:
                notes = await self.sale.import_file(session, name)  # the old flow: parse at once
                return "\n".join(["success", *notes])
            return "success"
        if mode == "import":
            name = safe_name(_required(filename))
            if type_ == "sale":
                return "\n".join(["success", *await self.sale.import_file(session, name)])
            step = await self.catalog.step(session, name)
            return f"{step.status}\n{step.message}"
        if type_ == "sale" and mode == "query":
            body = await self.sale.query(session)
            return Response(
                content=body,
                media_type=f"application/xml; charset={self.settings.encoding}",
            )
        if type_ == "sale" and mode == "success":
            count = await self.sale.success(session)
            return f"success\n{count} orders confirmed"
        if type_ == "catalog" and mode in ("deactivate", "complete"):
            # The hub never deletes products; deactivating what a full exchange left out is a
            # catalog decision 1C makes itself (it sends the product with ПометкаУдаления).
            return f"success\n{mode}: done"
        raise Refused(f"mode {mode!r} is not supported for type={type_}")

    async def init(self, request: Request, session: ExchangeSession, key: str, type_: str) -> str:
        version = request.query_params.get("version", "")[:16]
        if type_ == "catalog":  # a fresh start: files of an earlier init of this session go
            async with self.db.uow() as uow:
                await exchange_records.drop_files(uow.conn, session.id)
                await uow.commit()
            await asyncio.to_thread(WorkDir(self.settings.work_dir, session.id).clear)
        served = served_version(version) if type_ == "sale" and version else None
        if served is not None:
            async with self.db.uow() as uow:
                await exchange_records.update_session(uow.conn, session.id, version=served)
                if served != version:
                    await exchange_records.log(
                        uow.conn, session.id, None, "warning",
                        f"1C asked for CommerceML {version!r}; the hub serves "
                        f"{SERVED_VERSIONS[0]} to {SERVED_VERSIONS[-1]} and answered {served}",
                        utcnow(),
                    )  # fmt: skip
                await uow.commit()
        lines = [
            f"zip={'yes' if self.settings.zip else 'no'}",
            f"file_limit={self.settings.file_limit}",
        ]
        if served is not None:  # the version the orders will be written in
            lines += [f"sessid={cookie_sessid(key)}", f"version={served}"]
        return "\n".join(lines)

    async def receive(self, request: Request, session: ExchangeSession, raw: str) -> str:
        """Streams one chunk to a part file (never whole in memory), then appends it."""
        name = safe_name(raw)
        work = WorkDir(self.settings.work_dir, session.id)
        target = work.file(name)
        part = target.with_name(f".{target.name}.{uuid7()}.part")
        room = self.settings.max_session_bytes - await asyncio.to_thread(work.size)
        digest = hashlib.sha256()
        size = 0
        try:
            await asyncio.to_thread(target.parent.mkdir, parents=True, exist_ok=True)
            with await asyncio.to_thread(part.open, "wb") as out:
                async for data in request.stream():
                    size += len(data)
                    if size > self.settings.max_upload_bytes:  # file_limit is only advertised
                        raise Refused(
                            "a POST is larger than exchange.max_upload_bytes="
                            f"{self.settings.max_upload_bytes}"
                        )
                    if size > room:
                        raise Refused("the exchange's files are larger than max_session_bytes")
                    digest.update(data)
                    await asyncio.to_thread(out.write, data)
            await self._append(session, name, target, part, digest.hexdigest(), size)
            return name
        finally:
            await asyncio.to_thread(part.unlink, missing_ok=True)

    async def _append(
        self, session: ExchangeSession, name: str, target: Path, part: Path, hash_: str, size: int
    ) -> None:
        """The file grows only by what the database records: it is first cut back to the
        recorded size (a crash after an append and before its commit left a tail there)."""
        now = utcnow()
        async with self.db.uow() as uow:
            file = await exchange_records.get_file(uow.conn, session.id, name, lock=True)
            if file is not None and file.status != "receiving":
                # The same name again after it was imported: a new file under an old name.
                await exchange_records.reset_file(uow.conn, file.id, now)
                file = None
                await asyncio.to_thread(_cut, target, 0)
            elif file is None:
                await exchange_records.create_file(uow.conn, session.id, name, None, now)
            await uow.commit()
        async with self.db.uow() as uow:
            file = await exchange_records.get_file(uow.conn, session.id, name)
            assert file is not None
            if file.last_chunk_hash == hash_:
                # 1C sent the chunk again after losing our answer: appending it twice would
                # corrupt the file.
                await exchange_records.log(
                    uow.conn, session.id, name, "warning", "a repeated chunk was skipped", now
                )
                await uow.commit()
                return
        await asyncio.to_thread(_append_part, target, part, file.size)
        async with self.db.uow() as uow:
            grown = await exchange_records.grow_file(
                uow.conn, file.id, file.size, file.size + size, hash_, now
            )
            await uow.commit()
        if not grown:
            raise Refused(f"{name} was being uploaded twice at once; send it again")

    async def forget_old_sessions(self) -> None:
        """Sessions idle past their time: their files, stage rows and directories go."""
        before = utcnow() - timedelta(hours=self.settings.session_hours)
        async with self.db.uow() as uow:
            old = await exchange_records.expired_sessions(uow.conn, before)
            for session_id in old:
                await exchange_records.drop_session(uow.conn, session_id)
            await exchange_records.prune_log(uow.conn, utcnow() - _LOG_KEPT)
            await exchange_stock.prune_coverage(uow.conn)
            await uow.commit()
        for session_id in old:
            await asyncio.to_thread(WorkDir(self.settings.work_dir, session_id).clear)

    def text(self, reply: str) -> Response:
        charset = self.settings.encoding
        return Response(
            content=reply.encode(charset, errors="replace"),
            media_type=f"text/html; charset={charset}",  # as Bitrix answers
        )


def paths(settings: ExchangeSettings) -> tuple[str, ...]:
    return tuple(dict.fromkeys((STANDARD_PATH, settings.path)))


def router(settings: ExchangeSettings) -> APIRouter:
    api = APIRouter(tags=["1C exchange"])
    for path in paths(settings):
        api.add_api_route(
            path,
            handle,
            methods=["GET", "POST"],
            summary="CommerceML 2 exchange with 1C (Basic auth, then the session cookie)",
            response_class=Response,
        )
    return api


async def handle(request: Request) -> Response:
    exchange: Exchange = request.app.state.exchange
    params = request.query_params
    type_, mode = params.get("type", ""), params.get("mode", "")
    started = time.monotonic()
    try:
        if type_ not in _TYPES:
            raise Refused(f"unknown exchange type {type_!r}")
        if mode == "checkauth":
            text, cookie = await exchange.checkauth(request, type_)
            response = exchange.text(text)
            # As Bitrix: clients with a cookie jar keep the session from the header.
            response.set_cookie(auth.COOKIE_NAME, cookie, path="/", httponly=True, samesite=None)
            return response
        session, key = await exchange.session(request)
        reply = await exchange.dispatch(request, session, key, type_, mode)
    except Refused as exc:
        reply = f"failure\n{exc}"
    except BadExchangeFile as exc:
        reply = f"failure\n{exc.message}"
    except OrdersyncError as exc:
        reply = f"failure\n{exc.message}"
    except Exception:  # 1C must read a status word, never an HTML error page
        log.exception("1c exchange %s/%s failed", type_, mode)
        reply = "failure\ninternal error: see the hub's log; the call may be repeated"
    if isinstance(reply, Response):
        return reply
    log.info("1c exchange %s/%s: %s (%.0f ms)", type_, mode, reply.split("\n", 1)[0],
             (time.monotonic() - started) * 1000)  # fmt: skip
    return exchange.text(reply)


def _cut(target: Path, size: int) -> None:
    if target.exists():
        os.truncate(target, size)


def _append_part(target: Path, part: Path, recorded: int) -> None:
    with target.open("ab") as out, part.open("rb") as src:
        out.truncate(recorded)
        while block := src.read(1 << 20):
            out.write(block)
        out.flush()
        os.fsync(out.fileno())


def cookie_sessid(cookie: str) -> str:
    return hashlib.sha256(f"sessid:{cookie}".encode()).hexdigest()[:32]


def _required(filename: str | None) -> str:
    if not filename:
        raise Refused("filename is missing")
    return filename


__all__ = ["STANDARD_PATH", "Exchange", "paths", "router"]
