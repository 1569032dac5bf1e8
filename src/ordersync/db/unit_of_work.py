"""The unit of work over SQLAlchemy connections, and the Database that makes them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Self

import asyncpg
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncTransaction

from ..domain.allocation import Allocation
from ..domain.commands import LineInput
from ..domain.errors import AlreadyRecorded
from ..domain.orders import Attention, Order
from ..domain.types import Channel, HoldState, Role
from ..services.ports import (
    Hold,
    IdempotencyRecord,
    PlacedLine,
    PosRecord,
    Product,
    ReviewItem,
    Savepoint,
    StockChange,
    StockLevel,
    Store,
    StoredResponse,
    StoreHold,
)
from . import (
    attention,
    catalog,
    displacement,
    documents,
    idempotency,
    orders,
    outbox,
    pg_place_at_store,
    pg_placement,
    placement,
    pos,
    stock_ops,
    till_review,
    tokens,
)
from .availability import connecting
from .bitrix import BitrixSql
from .engine import READ_ONLY, create_engine
from .evotor import EvotorSql
from .pg_till_batch import PgSaleBatches


class Database:
    """The engine and the per-process caches; made once by the composition root."""

    def __init__(
        self,
        engine: AsyncEngine,
        catalog_cache_seconds: float = 2.0,
        pool_size: int = 20,
        timeout_seconds: float = 10.0,
    ) -> None:
        self.engine = engine
        self.is_postgres = engine.dialect.name == "postgresql"
        # PostgreSQL: every statement commits by itself. SQLite: a deferred read transaction.
        self._autocommit_engine = (
            engine.execution_options(isolation_level="AUTOCOMMIT")
            if self.is_postgres
            else engine.execution_options(**{READ_ONLY: True})
        )
        self._pg_pool: asyncpg.Pool | None = None
        self._pg_pool_lock = asyncio.Lock()
        self._pool_size = pool_size
        self._timeout = timeout_seconds
        self._stores: list[Store] | None = None
        self._stores_at = 0.0
        self._cache_seconds = catalog_cache_seconds
        self.committed = asyncio.Event()  # set by every commit of this process
        # More events to set at every commit (the console's live stream, while it runs).
        self.commit_watchers: set[asyncio.Event] = set()

    @classmethod
    def from_url(
        cls,
        url: str,
        pool_size: int = 20,
        catalog_cache_seconds: float = 2.0,
        timeout_seconds: float = 10.0,
    ) -> Self:
        engine = create_engine(url, pool_size, timeout_seconds)
        return cls(engine, catalog_cache_seconds, pool_size, timeout_seconds)

    @property
    def pool_size(self) -> int:
        return self._pool_size

    def uow(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self)

    def uow_read(self) -> SqlUnitOfWork:
        """For reads: no write lock on SQLite, autocommit on PostgreSQL."""
        return SqlUnitOfWork(self, autocommit=True)

    def sale_batches(self) -> PgSaleBatches | None:
        """Completed till sales written a batch at a time: PostgreSQL only."""
        if not self.is_postgres:
            return None

        async def release(connection: asyncpg.Connection) -> None:
            await (await self.pg_pool()).release(connection)

        return PgSaleBatches(self.acquire_pg, release)

    def placement_uow(self) -> SqlUnitOfWork:
        """For order placement: on PostgreSQL one read and one write on a plain asyncpg
        connection (see pg_placement.py); on SQLite an ordinary write transaction."""
        if self.is_postgres:
            return PgPlacementUnitOfWork(self)
        return SqlUnitOfWork(self)

    async def listen(
        self, channel: str, wake: asyncio.Event, on_lost: Callable[[], None] | None = None
    ) -> asyncpg.Connection:
        """A connection LISTENing on a PostgreSQL channel, setting `wake` on every
        notification and calling `on_lost` if the server closes it; the caller closes it."""
        url = self.engine.url.set(drivername="postgresql")
        async with connecting():
            connection: asyncpg.Connection = await asyncpg.connect(
                url.render_as_string(hide_password=False), timeout=self._timeout
            )
        try:
            if on_lost is not None:
                connection.add_termination_listener(lambda *_: on_lost())
            await connection.add_listener(channel, lambda *_: wake.set())
        except BaseException:
            connection.terminate()
            raise
        return connection

    async def pg_pool(self) -> asyncpg.Pool:
        """asyncpg's own pool for the placement path. SQLAlchemy's connection handling costs
        more CPU per order than the two statements themselves."""
        if self._pg_pool is None:
            async with self._pg_pool_lock:
                if self._pg_pool is None:
                    url = self.engine.url.set(drivername="postgresql")
                    async with connecting():
                        self._pg_pool = await asyncpg.create_pool(
                            url.render_as_string(hide_password=False),
                            min_size=1,
                            max_size=self._pool_size,
                            init=pg_placement.prepare,
                            reset=_keep_session,
                            timeout=self._timeout,
                        )
        return self._pg_pool

    async def acquire_pg(self) -> asyncpg.Connection:
        """A placement connection; asyncpg's pool replaces one the server closed (restart,
        terminated session) by a new one as it hands it out."""
        pool = await self.pg_pool()
        async with connecting():
            connection: asyncpg.Connection = await pool.acquire(timeout=self._timeout)
        return connection

    def engine_for(self, autocommit: bool) -> AsyncEngine:
        return self._autocommit_engine if autocommit else self.engine

    @asynccontextmanager
    async def connect(self, autocommit: bool = False) -> AsyncIterator[AsyncConnection]:
        """A connection from the pool; failing to get one raises DatabaseUnavailable."""
        async with connecting():
            conn = await self.engine_for(autocommit).connect().start()
        try:
            yield conn
        finally:
            await conn.close()

    async def cached_stores(self, conn: AsyncConnection) -> list[Store]:
        if self._stores is None or time.monotonic() - self._stores_at > self._cache_seconds:
            self._stores = await catalog.all_stores(conn)
            self._stores_at = time.monotonic()
        return self._stores

    def store_codes(self) -> dict[int, str]:
        """Codes by id from the cache (filled by any use case that read the stores)."""
        return {s.id: s.code for s in self._stores or ()}

    async def fresh_stores(self) -> list[Store]:
        """The stores, from the cache while it is fresh (catalog_cache_seconds)."""
        if self._stores is not None and time.monotonic() - self._stores_at <= self._cache_seconds:
            return self._stores
        async with self.connect(autocommit=True) as conn:
            return await self.cached_stores(conn)

    def forget_stores(self) -> None:
        self._stores = None

    async def dispose(self) -> None:
        if self._pg_pool is not None:
            await self._pg_pool.close()
            self._pg_pool = None
        await self.engine.dispose()


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Pool connections keep their prepared statements; placement leaves no other state
    (every message is its own implicit transaction), so nothing needs resetting, unless a
    cancelled request left a transaction open."""
    if connection.is_in_transaction():
        await connection.execute("ROLLBACK")


class SqlUnitOfWork:
    """One database transaction (or, for placement on PostgreSQL, one autocommit session)."""

    def __init__(self, db: Database, autocommit: bool = False) -> None:
        self.db = db
        self.autocommit = autocommit
        self._conn: AsyncConnection | None = None
        self._tx: AsyncTransaction | None = None

    @property
    def conn(self) -> AsyncConnection:
        assert self._conn is not None, "use the unit of work inside `async with`"
        return self._conn

    @property
    def evotor(self) -> EvotorSql:
        return EvotorSql(self.conn)

    @property
    def bitrix(self) -> BitrixSql:
        return BitrixSql(self.conn)

    async def __aenter__(self) -> Self:
        async with connecting():
            self._conn = await self.db.engine_for(self.autocommit).connect().start()
            if not self.autocommit:
                try:
                    self._tx = await self._conn.begin()
                except BaseException:
                    await self._conn.close()
                    self._conn = None
                    raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            if self._tx is not None and self._tx.is_active:
                await self._tx.rollback()
        finally:
            await self.conn.close()
            self._conn = None

    async def commit(self) -> None:
        if self._tx is not None:
            await self._tx.commit()
            self.db.committed.set()  # an in-process relay need not wait for its next poll
            for watcher in self.db.commit_watchers:
                watcher.set()

    # catalog
    async def stores(self) -> list[Store]:
        return await self.db.cached_stores(self.conn)

    async def products_by_refs(
        self, ids: Sequence[int], skus: Sequence[str], xml_ids: Sequence[str]
    ) -> list[Product]:
        return await catalog.products_by_refs(self.conn, ids, skus, xml_ids)

    async def products_with_stock(
        self,
        ids: Sequence[int],
        skus: Sequence[str],
        xml_ids: Sequence[str],
        store_ids: Sequence[int],
    ) -> tuple[list[Product], list[StockLevel]]:
        found = await catalog.products_by_refs(self.conn, ids, skus, xml_ids)
        stock = await stock_ops.read_stock(self.conn, [p.id for p in found], store_ids)
        return found, stock

    # stock
    async def read_stock(
        self, product_ids: Sequence[int], store_ids: Sequence[int] | None = None
    ) -> list[StockLevel]:
        return await stock_ops.read_stock(self.conn, product_ids, store_ids)

    async def hold_stock(self, change: StockChange, safety: Decimal) -> StockLevel | None:
        return await stock_ops.hold_stock(self.conn, change, safety)

    async def release_hold(self, change: StockChange) -> StockLevel | None:
        return await stock_ops.release_hold(self.conn, change)

    async def consume_hold(self, change: StockChange) -> StockLevel | None:
        return await stock_ops.consume_hold(self.conn, change)

    async def deduct_stock(self, change: StockChange) -> StockLevel | None:
        return await stock_ops.deduct_stock(self.conn, change)

    async def add_stock(self, change: StockChange) -> StockLevel:
        return await stock_ops.add_stock(self.conn, change)

    async def set_on_hand(self, change: StockChange) -> tuple[StockLevel, Decimal]:
        return await stock_ops.set_on_hand(self.conn, change)

    async def take_sold(self, change: StockChange) -> StockLevel:
        return await stock_ops.take_sold(self.conn, change)

    async def lock_levels(self, product_id: int, store_ids: Sequence[int]) -> dict[int, StockLevel]:
        return await stock_ops.lock_levels(self.conn, product_id, store_ids)

    async def savepoint(self) -> Savepoint:
        return await self.conn.begin_nested()

    # holds a completed till sale may displace
    async def holds_at(self, store_id: int, product_ids: Sequence[int]) -> list[StoreHold]:
        return await displacement.holds_at(self.conn, store_id, product_ids)

    async def lock_orders(self, order_ids: Sequence[str], wait: bool = True) -> bool:
        return await displacement.lock_orders(self.conn, order_ids, wait)

    async def close_hold(self, hold_id: int, state: HoldState, now: datetime) -> None:
        await displacement.close_hold(self.conn, hold_id, state, now)

    async def carry_hold(
        self, replaced: StoreHold, store_id: int, quantity: Decimal, now: datetime
    ) -> None:
        await displacement.carry_hold(self.conn, replaced, store_id, quantity, now)

    async def add_hold(
        self,
        order_id: str,
        line_no: int,
        product_id: int,
        store_id: int,
        quantity: Decimal,
        expires_at: datetime | None,
        now: datetime,
    ) -> None:
        await displacement.add_hold(
            self.conn, order_id, line_no, product_id, store_id, quantity, expires_at, now
        )

    async def set_line_quantity(self, order_id: str, line_no: int, quantity: Decimal) -> None:
        await orders.set_line_quantity(self.conn, order_id, line_no, quantity)

    # orders
    async def place_order(
        self,
        order: Order,
        allocations: Sequence[Allocation],
        safety_by_store: dict[int, Decimal],
        response: IdempotencyRecord | None,
    ) -> None:
        assert not self.autocommit, "placement writes in a transaction"
        savepoint = await self.conn.begin_nested()
        try:
            await placement.place_order_in_transaction(
                self.conn, order, allocations, safety_by_store, response, order.created_at
            )
        except BaseException:
            await savepoint.rollback()
            raise
        await savepoint.commit()

    places_at_store = False

    async def place_at_store(
        self, order: Order, lines: Sequence[LineInput], store_id: int, safety: Decimal
    ) -> tuple[int, list[PlacedLine]] | None:
        return None  # one writer at a time (SQLite): the full path is as short

    async def next_order_number(self) -> int:
        return await orders.next_number(self.conn)

    async def insert_order(self, order: Order) -> None:
        try:
            await orders.insert_order(self.conn, order)
        except IntegrityError as exc:  # (channel, external id) taken by a concurrent request
            raise AlreadyRecorded("an order with this external id exists") from exc

    async def get_order(self, order_id: str, lock: bool = False) -> Order | None:
        return await orders.get_order(self.conn, order_id, lock)

    async def find_order_by_external_id(self, channel: Channel, external_id: str) -> Order | None:
        return await orders.find_by_external_id(self.conn, channel, external_id)

    async def set_order_fields(self, order_id: str, **values: Any) -> None:
        await orders.set_order_fields(self.conn, order_id, **values)

    async def active_holds(self, order_id: str) -> list[Hold]:
        return await orders.active_holds(self.conn, order_id)

    async def close_holds(self, order_id: str, state: HoldState, now: datetime) -> None:
        await orders.close_holds(self.conn, order_id, state, now)

    async def keep_holds(self, order_id: str) -> None:
        await orders.keep_holds(self.conn, order_id)

    async def extend_holds(self, order_id: str, until: datetime) -> None:
        await orders.extend_holds(self.conn, order_id, until)

    async def orders_with_expired_holds(self, now: datetime, limit: int) -> list[str]:
        return await orders.orders_with_expired_holds(self.conn, now, limit)

    # attention
    async def raise_attention(
        self, order_id: str, code: str, detail: dict[str, Any], now: datetime
    ) -> int:
        return await attention.raise_item(self.conn, order_id, code, detail, now)

    async def resolve_attention(
        self, order_id: str, attention_ids: Sequence[int] | None, resolution: str, now: datetime
    ) -> list[Attention]:
        return await attention.resolve(self.conn, order_id, attention_ids, resolution, now)

    # POS
    async def find_pos_record(
        self, store_id: int, pos_id: str, transaction_id: str
    ) -> PosRecord | None:
        return await pos.find_pos_record(self.conn, store_id, pos_id, transaction_id)

    async def insert_pos_record(self, record: PosRecord, now: datetime) -> None:
        try:
            await pos.insert_pos_record(self.conn, record, now)
        except IntegrityError as exc:
            raise AlreadyRecorded("this POS transaction was recorded concurrently") from exc

    async def update_pos_result(
        self, store_id: int, pos_id: str, transaction_id: str, result: dict[str, Any]
    ) -> None:
        await pos.update_result(self.conn, store_id, pos_id, transaction_id, result)

    async def add_sold(
        self, store_id: int, pos_id: str, transaction_id: str, product_id: int, quantity: Decimal
    ) -> None:
        await pos.add_sold(self.conn, store_id, pos_id, transaction_id, product_id, quantity)

    async def take_returned(
        self, store_id: int, pos_id: str, transaction_id: str, product_id: int, quantity: Decimal
    ) -> bool:
        return await pos.take_returned(
            self.conn, store_id, pos_id, transaction_id, product_id, quantity
        )

    async def find_sale(self, store_id: int, pos_id: str, transaction_id: str) -> PosRecord | None:
        return await pos.find_sale(self.conn, store_id, pos_id, transaction_id)

    async def returns_naming(self, store_id: int, transaction_id: str) -> list[PosRecord]:
        return await pos.returns_naming(self.conn, store_id, transaction_id)

    async def returnable(
        self, store_id: int, pos_id: str, transaction_id: str, product_id: int
    ) -> Decimal:
        return await pos.returnable(self.conn, store_id, pos_id, transaction_id, product_id)

    async def return_to_order(
        self, order_id: str, product_id: int, quantity: Decimal
    ) -> list[tuple[int, Decimal]]:
        return await pos.return_to_order(self.conn, order_id, product_id, quantity)

    async def add_to_order_line(
        self, order_id: str, product_id: int, price: Decimal, quantity: Decimal
    ) -> None:
        await pos.add_to_order_line(self.conn, order_id, product_id, price, quantity)

    async def add_review(self, item: ReviewItem, now: datetime) -> int:
        return await till_review.add(self.conn, item, now)

    async def resolve_reviews(
        self, kind: str, document_type: str, document_id: str, resolution: str, now: datetime
    ) -> int:
        return await till_review.resolve_document(
            self.conn, kind, document_type, document_id, resolution, now
        )

    # stock documents
    async def find_document(
        self, document_type: str, store_id: int, document_id: str
    ) -> tuple[str, dict[str, Any]] | None:
        return await documents.find_document(self.conn, document_type, store_id, document_id)

    async def record_document(
        self,
        document_type: str,
        store_id: int,
        document_id: str,
        request_hash: str,
        result: dict[str, Any],
        now: datetime,
    ) -> None:
        await documents.record_document(
            self.conn, document_type, store_id, document_id, request_hash, result, now
        )

    async def create_token(self, name: str, role: Role, now: datetime) -> tuple[int, str]:
        return await tokens.create_token(self.conn, name, role, [], now)

    # outbox and idempotency
    async def add_event(
        self,
        type_: str,
        aggregate_type: str,
        aggregate_id: str,
        payload: dict[str, Any],
        now: datetime,
    ) -> None:
        await outbox.add_event(self.conn, type_, aggregate_type, aggregate_id, payload, now)

    async def claim_key(self, principal: str, key: str, request_hash: str) -> StoredResponse | None:
        return await idempotency.claim(self.conn, principal, key, request_hash, datetime.now(UTC))

    async def find_response(
        self, principal: str, key: str, request_hash: str
    ) -> StoredResponse | None:
        return await idempotency.find_response(self.conn, principal, key, request_hash)

    async def save_response(
        self, principal: str, key: str, request_hash: str, response: StoredResponse
    ) -> None:
        try:
            await idempotency.save_response(
                self.conn,
                principal,
                key,
                request_hash,
                response,
                datetime.now(UTC),
            )
        except IntegrityError as exc:
            raise AlreadyRecorded("this Idempotency-Key was used concurrently") from exc


class PgPlacementUnitOfWork(SqlUnitOfWork):
    """Order placement on PostgreSQL: a plain asyncpg connection, taken on first use, that
    runs the planning read and the one-message write (pg_placement.py). Each statement is its
    own transaction, so there is nothing to commit or roll back here. The rarely needed
    reads (an idempotency replay, an external id) use a SQLAlchemy connection of their own."""

    def __init__(self, db: Database) -> None:
        super().__init__(db, autocommit=True)
        self._apg: asyncpg.Connection | None = None
        self._pool: asyncpg.Pool | None = None
        self._number: int | None = None  # taken by the planning read

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._apg is not None and self._pool is not None:
            await self._pool.release(self._apg)
            self._apg = None

    async def commit(self) -> None:
        return None

    async def _driver(self) -> asyncpg.Connection:
        if self._apg is None:
            self._pool = await self.db.pg_pool()
            self._apg = await self.db.acquire_pg()
        return self._apg

    async def stores(self) -> list[Store]:
        return await self.db.fresh_stores()

    async def next_order_number(self) -> int:
        number, self._number = self._number, None
        if number is not None:
            return number
        return int(await (await self._driver()).fetchval(pg_placement.NEXT_NUMBER))

    async def products_with_stock(
        self,
        ids: Sequence[int],
        skus: Sequence[str],
        xml_ids: Sequence[str],
        store_ids: Sequence[int],
    ) -> tuple[list[Product], list[StockLevel]]:
        products, stock, self._number = await pg_placement.products_with_stock(
            await self._driver(), ids, skus, xml_ids, store_ids
        )
        return products, stock

    places_at_store = True

    async def place_at_store(
        self, order: Order, lines: Sequence[LineInput], store_id: int, safety: Decimal
    ) -> tuple[int, list[PlacedLine]] | None:
        return await pg_place_at_store.place_at_store(
            await self._driver(), order, lines, store_id, safety
        )

    async def read_stock(
        self, product_ids: Sequence[int], store_ids: Sequence[int] | None = None
    ) -> list[StockLevel]:
        return await pg_placement.read_stock(await self._driver(), product_ids, store_ids)

    async def place_order(
        self,
        order: Order,
        allocations: Sequence[Allocation],
        safety_by_store: dict[int, Decimal],
        response: IdempotencyRecord | None,
    ) -> None:
        await pg_placement.place_order(
            await self._driver(), order, allocations, safety_by_store, response
        )

    async def find_response(
        self, principal: str, key: str, request_hash: str
    ) -> StoredResponse | None:
        async with self.db.connect(autocommit=True) as conn:
            return await idempotency.find_response(conn, principal, key, request_hash)

    async def find_order_by_external_id(self, channel: Channel, external_id: str) -> Order | None:
        async with self.db.connect(autocommit=True) as conn:
            return await orders.find_by_external_id(conn, channel, external_id)
