"""The schema, as SQLAlchemy Core tables. Alembic migrations are written against it."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY

from .types import Money, Quantity, UtcDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# BIGINT on PostgreSQL, INTEGER (the rowid, so autoincrementing) on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")

stores = Table(
    "stores",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("code", String(64), nullable=False, unique=True),
    Column("xml_id", String(128), nullable=False, unique=True),
    Column("name", String(255), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("serves_online", Boolean, nullable=False, default=False),
    Column("online_priority", Integer, nullable=False, default=100),
    Column("is_pickup_point", Boolean, nullable=False, default=False),
    Column("safety_stock", Quantity(), nullable=False, default=0),
    Column("pos_mode", String(16), nullable=False, default="order"),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    # The store's uuid in the Evotor cloud (lower case): its tills' documents are this store's.
    Column("evotor_uuid", String(64), nullable=True),
    CheckConstraint("safety_stock >= 0", name="safety_stock_non_negative"),
    Index("ix_stores_evotor_uuid", "evotor_uuid", unique=True),
)

products = Table(
    "products",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("sku", String(128), nullable=False, unique=True),  # 1C may give none: its Ид then
    Column("xml_id", String(128), nullable=False, unique=True),
    Column("name", String(255), nullable=False),
    Column("unit", String(8), nullable=False, default="pcs"),
    Column("barcode", String(64), nullable=True, index=True),
    Column("price", Money(), nullable=True),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

# Levels carry no foreign keys either (migration 0012): each is created for a product and a
# store the hub has, neither ever deleted, and the checks cost more than half of a level's
# insert in a 1C import; `ordersync check` reports a level of a missing product or store.
stock_levels = Table(
    "stock_levels",
    metadata,
    Column("product_id", Integer, primary_key=True),
    Column("store_id", Integer, primary_key=True),
    Column("on_hand", Quantity(), nullable=False, default=0),
    Column("reserved", Quantity(), nullable=False, default=0),
    Column("updated_at", UtcDateTime(), nullable=False),
    # on_hand may go below zero: a completed till sale is recorded in full (see
    # services/till_sale.py); every other write keeps its own condition.
    CheckConstraint("reserved >= 0", name="reserved_non_negative"),
    Index("ix_stock_levels_store_product", "store_id", "product_id"),  # a store's stock
)

# Levels below zero: flagged in /stock and counted in /metrics until a receipt, transfer or
# count settles them; few at any time, so the index is small.
_NEGATIVE = "on_hand < 0"
Index(
    "ix_stock_levels_negative",
    stock_levels.c.store_id,
    stock_levels.c.product_id,
    postgresql_where=text(_NEGATIVE),
    sqlite_where=text(_NEGATIVE),
)

# Movements carry no foreign keys: each is written by db/stock_ops.py (or the exchange's bulk
# apply) in the transaction that changed that very stock level, whose own keys prove the
# product and store exist; the checks cost a fifth of a bulk import and a key-share lock on
# the product row per sale.
stock_movements = Table(
    "stock_movements",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("product_id", Integer, nullable=False),
    Column("store_id", Integer, nullable=False),
    Column("quantity", Quantity(), nullable=False),
    Column("reason", String(16), nullable=False),
    Column("document_type", String(32), nullable=False),
    Column("document_id", String(128), nullable=False),
    Column("business_time", UtcDateTime(), nullable=False),
    Column("recorded_at", UtcDateTime(), nullable=False),
    Index("ix_stock_movements_product_store", "product_id", "store_id", "id"),
    Index("ix_stock_movements_product_id", "product_id", "id"),
    # No index by document (migration 0016): nothing reads the ledger by it, and it cost a
    # quarter of each movement's insert.
)

# The hub's own movements by the time it learnt of them: a stock import from 1C adds those
# that 1C's figure cannot contain yet (see db/exchange_stock.py).
_HUB_OWN = "reason <> 'exchange_1c'"
Index(
    "ix_stock_movements_hub_recorded_at",
    stock_movements.c.recorded_at,
    postgresql_where=text(_HUB_OWN),
    sqlite_where=text(_HUB_OWN),
)

orders = Table(
    "orders",
    metadata,
    Column("id", String(36), primary_key=True),
    # Short, sequential, unique: PostgreSQL draws it from orders_number_seq (migration 0004),
    # SQLite takes the next after the highest inside its one write transaction.
    Column("number", BigInteger, nullable=False),
    Column("channel", String(16), nullable=False),
    Column("source", String(16), nullable=False),
    Column("fulfillment", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("payment_status", String(16), nullable=False),
    Column("store_id", Integer, ForeignKey("stores.id"), nullable=True),
    Column("total", Money(), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("customer", JSON, nullable=False),
    Column("comment", Text, nullable=True),
    Column("external_id", String(128), nullable=True),
    Column("pos_id", String(64), nullable=True),
    Column("pos_transaction_id", String(128), nullable=True),
    Column("hold_expires_at", UtcDateTime(), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("paid_at", UtcDateTime(), nullable=True),
    Column("shipped_at", UtcDateTime(), nullable=True),
    Column("completed_at", UtcDateTime(), nullable=True),
    Column("cancelled_at", UtcDateTime(), nullable=True),
    # Confirmed by a person or by the site (cash on delivery): the unpaid holds keep to the
    # channel's longer confirmed limit (README, order lifecycle).
    Column("confirmed_at", UtcDateTime(), nullable=True),
    # The `updated_at` that 1C last confirmed receiving (sale exchange, mode=success).
    Column("exported_1c_at", UtcDateTime(), nullable=True),
    # Raised by every change of the order: 1C's НомерВерсии.
    Column("version", Integer, nullable=False, server_default=text("1")),
    # Search keys written at placement (domain/customers.py): the phone's digits, the folded
    # name. Compared by prefix in binary order, so "C" on PostgreSQL whatever the locale.
    Column("customer_phone", String(32).with_variant(String(32, collation="C"), "postgresql")),
    Column("customer_name", String(255).with_variant(String(255, collation="C"), "postgresql")),
    Index("ix_orders_number", "number", unique=True),
    Index("ix_orders_created_at", "created_at", "id"),
    Index("ix_orders_channel_created_at", "channel", "created_at"),
    Index("ix_orders_store_created_at", "store_id", "created_at"),
    Index("ix_orders_status_created_at", "status", "created_at"),
    Index("ix_orders_hold_expires_at", "hold_expires_at"),
    Index("ix_orders_customer_phone", "customer_phone"),
    Index("ix_orders_customer_name", "customer_name"),
    UniqueConstraint("channel", "external_id", name="uq_orders_channel_external_id"),
)

# Only orders that 1C has yet to receive (again): the sale exchange's `query` reads this.
_NOT_IN_1C = "exported_1c_at IS NULL OR updated_at > exported_1c_at"
Index(
    "ix_orders_not_in_1c",
    orders.c.updated_at,
    postgresql_where=text(_NOT_IN_1C),
    sqlite_where=text(_NOT_IN_1C),
)

# What about an order needs a person: open until resolved (by a person, or by the hub when the
# order ends). The attention screen reads the open ones, newest first.
order_attention = Table(
    "order_attention",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("order_id", String(36), ForeignKey("orders.id"), nullable=False),
    Column("code", String(32), nullable=False),
    Column("detail", JSON, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("resolved_at", UtcDateTime(), nullable=True),
    Column("resolution", String(255), nullable=True),
    Index("ix_order_attention_order_id", "order_id"),
)

_OPEN = "resolved_at IS NULL"
Index(
    "ix_order_attention_open",
    order_attention.c.created_at,
    postgresql_where=text(_OPEN),
    sqlite_where=text(_OPEN),
)

order_lines = Table(
    "order_lines",
    metadata,
    Column("order_id", String(36), ForeignKey("orders.id"), primary_key=True),
    Column("line_no", Integer, primary_key=True),
    Column("product_id", Integer, ForeignKey("products.id"), nullable=False),
    Column("quantity", Quantity(), nullable=False),
    Column("price", Money(), nullable=False),
    # Units customers brought back to a till (returns linked to this order's sale).
    Column("returned", Quantity(), nullable=False, server_default=text("0")),
    # 0: an operator dropped the line (services/line_sourcing.py)
    CheckConstraint("quantity >= 0", name="quantity_not_negative"),
)

# A hold's product and store carry no foreign keys: a hold is only ever written in the
# transaction that raised `reserved` on that very stock level, which proves both exist, and a
# key-share lock from a foreign-key check on the hot stock row would cost every order.
holds = Table(
    "holds",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("order_id", String(36), nullable=False),
    Column("line_no", Integer, nullable=False),
    Column("product_id", Integer, nullable=False),
    Column("store_id", Integer, nullable=False),
    Column("quantity", Quantity(), nullable=False),
    Column("state", String(16), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=True),
    Column("closed_at", UtcDateTime(), nullable=True),
    # The displaced hold this one carries on (moved to another store, or what stayed).
    Column("replaces", BigInteger, nullable=True),
    ForeignKeyConstraint(
        ["order_id", "line_no"],
        ["order_lines.order_id", "order_lines.line_no"],
        name="fk_holds_order_line",
    ),
    CheckConstraint("quantity > 0", name="quantity_positive"),
    Index("ix_holds_order_id", "order_id"),
    Index("ix_holds_product_store_state", "product_id", "store_id", "state"),
)

# A store's pick list: the orders holding stock there now.
_ACTIVE = "state = 'active'"
Index(
    "ix_holds_store_active",
    holds.c.store_id,
    holds.c.order_id,
    postgresql_where=text(_ACTIVE),
    sqlite_where=text(_ACTIVE),
)

# A till is known by its store and its own id: two stores' tills may share an id, and a token
# scoped to one store can never collide with another store's transactions.
pos_transactions = Table(
    "pos_transactions",
    metadata,
    Column("store_id", Integer, ForeignKey("stores.id"), primary_key=True),
    Column("pos_id", String(64), primary_key=True),
    Column("transaction_id", String(128), primary_key=True),
    Column("kind", String(8), nullable=False),
    Column("order_id", String(36), nullable=True),
    Column("original_transaction_id", String(128), nullable=True),
    Column("request_hash", String(64), nullable=False),
    Column("result", JSON, nullable=False),
    Column("business_time", UtcDateTime(), nullable=False),
    Column("recorded_at", UtcDateTime(), nullable=False),
    Column("shift", String(40), nullable=True),  # the till's shift (Evotor's session)
    # A return finds its sale by transaction id across the store's tills; a sale that comes
    # after its return (an offline till) finds the return.
    Index("ix_pos_transactions_store_transaction", "store_id", "transaction_id"),
    Index("ix_pos_transactions_store_original", "store_id", "original_transaction_id"),
)

pos_returned = Table(
    "pos_returned",
    metadata,
    # How much of each line of a sale has been returned, so a return cannot exceed the sale.
    Column("store_id", Integer, primary_key=True),
    Column("pos_id", String(64), primary_key=True),
    Column("transaction_id", String(128), primary_key=True),
    Column("product_id", Integer, primary_key=True),
    Column("sold", Quantity(), nullable=False),
    Column("returned", Quantity(), nullable=False, default=0),
    CheckConstraint("returned <= sold", name="returned_within_sold"),
)

# What about a till's documents needs a person: a line whose product the hub could not match
# (kept as the till sent it), a return no known sale covers, a product created on a till
# the hub does not know, a till document the hub could not apply. Open until resolved.
till_review = Table(
    "till_review",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("store_id", Integer, nullable=True),
    Column("document_type", String(32), nullable=False),
    Column("document_id", String(160), nullable=False),
    Column("pos_id", String(64), nullable=True),
    Column("position", Integer, nullable=True),
    Column("commodity_uuid", String(64), nullable=True),
    Column("code", String(128), nullable=True),
    Column("barcode", String(128), nullable=True),
    Column("name", String(255), nullable=True),
    Column("quantity", Quantity(), nullable=True),
    Column("price", Money(), nullable=True),
    Column("reason", Text, nullable=False),
    Column("detail", JSON, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("resolved_at", UtcDateTime(), nullable=True),
    Column("resolution", String(255), nullable=True),
    Index("ix_till_review_document", "document_type", "document_id"),
)

Index(
    "ix_till_review_open",
    till_review.c.id,
    postgresql_where=text(_OPEN),
    sqlite_where=text(_OPEN),
)

# Receipts, write-offs, counts and transfers, once each per (kind, store, document number):
# a document that 1C or a warehouse system sends again is answered with its first result.
stock_documents = Table(
    "stock_documents",
    metadata,
    Column("document_type", String(16), primary_key=True),
    Column("store_id", Integer, ForeignKey("stores.id"), primary_key=True),
    Column("document_id", String(128), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("result", JSON, nullable=False),
    Column("recorded_at", UtcDateTime(), nullable=False),
)

outbox_events = Table(
    "outbox_events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("type", String(64), nullable=False),
    Column("aggregate_type", String(16), nullable=False),
    Column("aggregate_id", String(64), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    # Given by the relay's sequencer once the event is committed (see db/relay.py): a gap-free
    # delivery order, and the lane (a hash of the aggregate) the event is delivered in.
    Column("seq", BigInteger, nullable=True),
    Column("lane", SmallInteger, nullable=True),
    Index("ix_outbox_events_aggregate", "aggregate_type", "aggregate_id", "id"),
    Index("ix_outbox_events_lane_seq", "lane", "seq"),
)

# An order's history for the console's timeline: a copy of each order event, written with it,
# kept `ui.timeline_days` (the outbox itself is pruned once delivered).
order_timeline = Table(
    "order_timeline",
    metadata,
    Column("event_id", BigId, primary_key=True, autoincrement=False),
    Column("order_id", String(36), nullable=False),
    Column("type", String(64), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Index("ix_order_timeline_order_id", "order_id", "event_id"),
    Index("ix_order_timeline_created_at", "created_at"),
)

Index(
    "ix_outbox_events_unsequenced",
    outbox_events.c.id,
    postgresql_where=text("seq IS NULL"),
    sqlite_where=text("seq IS NULL"),
)

relay_state = Table(
    "relay_state",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

# Per sink and lane: how far delivery got, who holds the lane now, and when to try again.
relay_cursors = Table(
    "relay_cursors",
    metadata,
    Column("sink", String(64), primary_key=True),
    Column("lane", SmallInteger, primary_key=True),
    Column("delivered_seq", BigInteger, nullable=False, default=0),
    # Failed deliveries in a row (any kind): the backoff grows with them.
    Column("attempts", Integer, nullable=False, default=0),
    # Permanent refusals in a row of the lane's head event; at relay.max_attempts it is dead.
    Column("refusals", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", UtcDateTime(), nullable=False),
    Column("succeeded_at", UtcDateTime(), nullable=True),  # the lane's last delivery
    Column("lease_owner", String(64), nullable=True),
    Column("lease_until", UtcDateTime(), nullable=True),
    Column("last_error", Text, nullable=True),
    # Counters for /metrics, kept on the lane's own row: only its leaseholder writes it.
    Column("delivered_total", BigInteger, nullable=False, default=0),
    Column("batches_total", BigInteger, nullable=False, default=0),
    Column("failures_total", BigInteger, nullable=False, default=0),
    Column("latency_sum", Float, nullable=False, default=0),
    Column("latency_le_0_05", BigInteger, nullable=False, default=0),
    Column("latency_le_0_1", BigInteger, nullable=False, default=0),
    Column("latency_le_0_25", BigInteger, nullable=False, default=0),
    Column("latency_le_0_5", BigInteger, nullable=False, default=0),
    Column("latency_le_1", BigInteger, nullable=False, default=0),
    Column("latency_le_2_5", BigInteger, nullable=False, default=0),
    Column("latency_le_5", BigInteger, nullable=False, default=0),
    Column("latency_le_10", BigInteger, nullable=False, default=0),
)

# Events a sink refused too many times; `ordersync events retry` sends them again.
relay_dead = Table(
    "relay_dead",
    metadata,
    Column("sink", String(64), primary_key=True),
    Column("event_id", BigInteger, primary_key=True),
    Column("attempts", Integer, nullable=False),
    Column("error", Text, nullable=False),
    Column("dead_at", UtcDateTime(), nullable=False),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("principal", String(64), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("response", JSON, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False),
    Column("role", String(16), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("store_ids", JSON, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("revoked_at", UtcDateTime(), nullable=True),
)


# Staff of the console (ui/): operators, admins, and shop or warehouse staff (role "store",
# scoped to their stores). `session_version` goes up when the password changes or the
# account is disabled, which ends the account's sessions.
users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("store_ids", JSON, nullable=False),
    Column("password_hash", String(255), nullable=False),
    Column("locale", String(8), nullable=True),  # none: the browser's language
    Column("session_version", Integer, nullable=False, server_default=text("1")),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("disabled_at", UtcDateTime(), nullable=True),
)


# --- the CommerceML exchange with 1C ---------------------------------------------------------

exchange_sessions = Table(
    "exchange_sessions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("type", String(16), nullable=False),  # catalog or sale
    Column("cookie_hash", String(64), nullable=False, unique=True),
    Column("login", String(128), nullable=False),
    Column("version", String(16), nullable=True),  # sale init's `version`: stepwise file import
    # The orders of the last `query`, as [order id, updated_at], until 1C confirms them.
    Column("pending_query", JSON, nullable=True),
    Column("confirmed_at", UtcDateTime(), nullable=True),  # 1C's last `success` of a query
    Column("created_at", UtcDateTime(), nullable=False),
    Column("last_seen_at", UtcDateTime(), nullable=False),
)

exchange_files = Table(
    "exchange_files",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("session_id", String(36), nullable=False),
    Column("name", String(255), nullable=False),
    Column("kind", String(16), nullable=True),
    Column("status", String(16), nullable=False),
    Column("size", BigInteger, nullable=False, default=0),
    Column("last_chunk_hash", String(64), nullable=True),
    Column("formed_at", UtcDateTime(), nullable=True),
    Column("staged", Integer, nullable=False, default=0),  # items read into the stage tables
    Column("applied", Integer, nullable=False, default=0),  # items applied to the ledger
    Column("result", JSON, nullable=False),
    Column("message", Text, nullable=True),
    Column("updated_at", UtcDateTime(), nullable=False),
    UniqueConstraint("session_id", "name", name="uq_exchange_files_session_name"),
)


# A file is read whole into these before anything of it is applied, so a file that turns out
# broken halfway leaves the ledger as it was. One row per item; its stock is two parallel lists
# (the file's own store numbers, and quantities in thousandths): arrays on PostgreSQL, where the
# apply expands them in SQL, JSON on SQLite.
exchange_stage_items = Table(
    "exchange_stage_items",
    metadata,
    Column("file_id", BigId, primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("xml_id", String(128), nullable=False),
    Column("article", String(128), nullable=True),
    Column("name", String(255), nullable=True),
    Column("unit", String(8), nullable=True),
    Column("barcode", String(64), nullable=True),
    Column("price", Money(), nullable=True),
    Column("active", Boolean, nullable=True),
    Column(
        "store_numbers",
        JSON(none_as_null=True).with_variant(ARRAY(Integer), "postgresql"),
        nullable=True,
    ),
    Column(
        "quantities",
        JSON(none_as_null=True).with_variant(ARRAY(BigInteger), "postgresql"),
        nullable=True,
    ),
    # Bit k - 1 set for each figure k (from 1) that differed from the hub's level when the item
    # was staged; NULL when it was not compared (db/exchange_stock.py, compare_staged).
    Column("stale", BigInteger, nullable=True),
)

exchange_stage_stores = Table(
    "exchange_stage_stores",
    metadata,
    Column("file_id", BigId, primary_key=True),
    Column("number", Integer, primary_key=True),
    Column("xml_id", String(128), nullable=False),
    Column("name", String(255), nullable=False),
)

# Which chunks of a staged file have been applied: a chunk's row is written in the chunk's own
# transaction, so each is applied exactly once however many calls (or processes) work on it.
exchange_chunks = Table(
    "exchange_chunks",
    metadata,
    Column("file_id", BigId, primary_key=True),
    Column("chunk", Integer, primary_key=True),
    Column("result", JSON, nullable=False),
)

# master = "hub": 1C's last figure per stock level, beside what the hub had then.
stock_1c_figures = Table(
    "stock_1c_figures",
    metadata,
    Column("product_id", Integer, primary_key=True),
    Column("store_id", Integer, primary_key=True),
    Column("quantity", Quantity(), nullable=False),  # 1C's figure, negatives taken as 0
    Column("hub_on_hand", Quantity(), nullable=False),  # the hub's figure for the same moment
    Column("formed_at", UtcDateTime(), nullable=False),
    Column("recorded_at", UtcDateTime(), nullable=False),
)

# Which stock levels each applied file set, at the moment it was formed: one row per applied
# chunk and store (not per level: a re-import that changes little writes little). A figure of a
# file formed earlier is skipped only for the levels a later file set (db/exchange_stock.py).
exchange_stock_coverage = Table(
    "exchange_stock_coverage",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("file_id", BigId, nullable=False),
    Column("store_id", Integer, nullable=False),
    Column("formed_at", UtcDateTime(), nullable=False),
    Column("first_product", Integer, nullable=False),  # the bounds of product_ids, to look
    Column("last_product", Integer, nullable=False),  # at the rows that can meet a chunk only
    Column(
        "product_ids", JSON().with_variant(ARRAY(Integer), "postgresql"), nullable=False
    ),  # sorted
    Index("ix_exchange_stock_coverage_store_formed", "store_id", "formed_at"),
)

exchange_log = Table(
    "exchange_log",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("session_id", String(36), nullable=True),
    Column("file_name", String(255), nullable=True),
    Column("level", String(8), nullable=False),
    Column("message", Text, nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Index("ix_exchange_log_at", "at"),
)

# What 1C calls an order of ours: its own number, and the version it last sent.
order_1c = Table(
    "order_1c",
    metadata,
    Column("order_id", String(36), primary_key=True),
    Column("number_1c", String(128), nullable=True),
    Column("version", String(64), nullable=True),
    Column("updated_at", UtcDateTime(), nullable=False),
    # 1C's own Ид of its document, when it is not the hub's order id.
    Column("id_1c", String(128), nullable=True),
    Index("ix_order_1c_id_1c", "id_1c"),
    Index("ix_order_1c_number_1c", "number_1c"),
)


# --- the Evotor cloud --------------------------------------------------------------------

# Every till document the cloud sent or the catch-up pulled, stored in the request's own
# transaction before it is answered, so a slow apply never makes the cloud send it again.
# One row per (store, document uuid), whichever feed brought it first: applied once.
evotor_inbox = Table(
    "evotor_inbox",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("store_uuid", String(64), nullable=False),
    Column("document_uuid", String(64), nullable=True),  # None: a document unread
    Column("feed", String(16), nullable=False),  # documents, receipts, pull
    Column("evotor_type", String(32), nullable=True),
    Column("closed_at", UtcDateTime(), nullable=True),
    Column("body", Text, nullable=False),  # the document as the cloud wrote it
    # pending -> done (applied, or acknowledged and ignored); failed: refused when applied;
    # rejected: unreadable. `claimed_until`: an applier holds it until then.
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("claimed_until", UtcDateTime(), nullable=True),
    Column("error", Text, nullable=True),
    Column("result", JSON, nullable=True),
    Column("received_at", UtcDateTime(), nullable=False),
    Column("applied_at", UtcDateTime(), nullable=True),
    Index("ix_evotor_inbox_document", "store_uuid", "document_uuid", unique=True),
)

_PENDING = "state = 'pending'"
Index(
    "ix_evotor_inbox_pending",
    evotor_inbox.c.id,
    postgresql_where=text(_PENDING),
    sqlite_where=text(_PENDING),
)
# Failed (refused when applied) or rejected (unreadable): counted by /metrics, listed for a
# person, few among the documents the inbox keeps for good.
_UNAPPLIED = "state IN ('failed', 'rejected')"
Index(
    "ix_evotor_inbox_unapplied",
    evotor_inbox.c.id,
    postgresql_where=text(_UNAPPLIED),
    sqlite_where=text(_UNAPPLIED),
)

# Stores, smart terminals and employees as the cloud last sent them: documents name their
# till and cashier by these uuids.
evotor_entities = Table(
    "evotor_entities",
    metadata,
    Column("kind", String(16), primary_key=True),  # store, device, employee
    Column("uuid", String(64), primary_key=True),
    Column("name", String(255), nullable=True),
    Column("store_uuid", String(64), nullable=True),
    Column("data", Text, nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

# Evotor product uuids and the hub's products: the one the hub publishes for each product
# (`origin` hub, stable forever) and those cashiers created on a till and the hub matched.
evotor_products = Table(
    "evotor_products",
    metadata,
    Column("evotor_uuid", String(64), primary_key=True),
    Column("product_id", Integer, nullable=False),
    Column("origin", String(8), nullable=False),
    Column("store_uuid", String(64), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Index("ix_evotor_products_product", "product_id"),
)

_PUBLISHED = "origin = 'hub'"
Index(
    "ix_evotor_products_published",
    evotor_products.c.product_id,
    unique=True,
    postgresql_where=text(_PUBLISHED),
    sqlite_where=text(_PUBLISHED),
)

# Which products each linked store's tills have been sent (their full description).
evotor_published = Table(
    "evotor_published",
    metadata,
    Column("store_uuid", String(64), primary_key=True),
    Column("product_id", Integer, primary_key=True),
    Column("published_at", UtcDateTime(), nullable=False),
)

# The catch-up pull per linked store: documents closed before `closed_before` were pulled.
evotor_watermarks = Table(
    "evotor_watermarks",
    metadata,
    Column("store_uuid", String(64), primary_key=True),
    Column("closed_before", UtcDateTime(), nullable=False),
    Column("polled_at", UtcDateTime(), nullable=True),
    Column("lease_until", UtcDateTime(), nullable=True),
)

# Evotor accounts linked through /user/verify or /user/create, and the cloud token each
# handed over through /user/token (used when [evotor] token is not set).
evotor_accounts = Table(
    "evotor_accounts",
    metadata,
    Column("user_id", String(32), primary_key=True),
    Column("token_id", Integer, nullable=True),  # the hub token the cloud calls with
    Column("cloud_token", Text, nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

# The Bitrix site's outgoing events (POST /bitrix/events), stored before they are answered
# and applied by the site worker (entrypoints/site_task.py). pending -> done; failed: refused
# for good (kept for a person); a site call that fails leaves it pending until next_attempt_at.
bitrix_inbox = Table(
    "bitrix_inbox",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("event", String(64), nullable=False),  # upper case, as Bitrix sends it
    Column("site_order_id", String(32), nullable=True),
    Column("xml_id", String(128), nullable=True),
    Column("body", Text, nullable=False),  # the form fields as JSON
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", UtcDateTime(), nullable=True),  # also: held by a worker until
    Column("error", Text, nullable=True),
    Column("received_at", UtcDateTime(), nullable=False),
    Column("applied_at", UtcDateTime(), nullable=True),
)
Index(
    "ix_bitrix_inbox_pending",
    bitrix_inbox.c.id,
    postgresql_where=text(_PENDING),
    sqlite_where=text(_PENDING),
)
Index(
    "ix_bitrix_inbox_unapplied",
    bitrix_inbox.c.id,
    postgresql_where=text(_UNAPPLIED),
    sqlite_where=text(_UNAPPLIED),
)

# Each site order the hub has seen and the site version it last applied: (site order,
# version) acts once. order_id None: not a hub order (the hub's own order mirrored to the
# site, or one deleted before the hub saw it).
bitrix_orders = Table(
    "bitrix_orders",
    metadata,
    Column("site_order_id", String(32), primary_key=True),
    Column("order_id", String(36), nullable=True),
    Column("site_version", Integer, nullable=False),
    Column("account_number", String(64), nullable=True),
    Column("date_update", UtcDateTime(), nullable=True),
    Column("state", String(16), nullable=False),  # linked, own, deleted
    Column("updated_at", UtcDateTime(), nullable=False),
    Index("ix_bitrix_orders_order_id", "order_id"),
)

# The catch-up poll's watermark: the latest dateUpdate a complete poll of sale.order.list saw.
bitrix_watermarks = Table(
    "bitrix_watermarks",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("date_update", UtcDateTime(), nullable=True),
    Column("polled_at", UtcDateTime(), nullable=True),
    Column("lease_until", UtcDateTime(), nullable=True),
)
