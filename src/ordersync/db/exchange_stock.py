"""Applying a staged 1C stock file to the ledger, a chunk of offers per transaction.

The rule (master = "1c"): 1C's figure is the physical stock at the moment 1C formed the file.
The hub adds to it its own movements that 1C cannot have counted yet: those whose business
time is after that moment, and those the hub itself learnt of after it (a till that was offline
reports a sale late). So on_hand := max(figure, 0) + late, never below 0; holds stay.

Existing stock rows of the chunk are locked first, in (product, store) order; the late
movements are summed after the lock, so a sale that committed before it is counted and one that
waits for it is applied on top of the new figure. On PostgreSQL the whole chunk is one
statement; on SQLite (one writer at a time) the same rule runs row by row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import TextClause, bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain.types import MovementReason
from ..services.ports import StockChange
from . import stock_ops
from .types import UtcDateTime

DOCUMENT_TYPE = "exchange_1c"
# A movement's business time is never this far ahead of when the hub recorded it.
_MAX_AHEAD = timedelta(days=1)


@dataclass(frozen=True)
class ChunkResult:
    moved: int  # stock levels whose on_hand changed (one movement and one event each)
    created: int  # stock levels that did not exist before


def _params(file_id: int, lo: int, hi: int, formed_at: datetime) -> dict[str, Any]:
    return {"f": file_id, "lo": lo, "hi": hi, "formed": formed_at, "since": formed_at - _MAX_AHEAD}


_PG_LOCK = text(
    """
    SELECT 1 FROM stock_levels sl
    JOIN products p ON p.id = sl.product_id
    JOIN exchange_stage_stock s ON s.product_xml_id = p.xml_id
    JOIN stores st ON st.id = sl.store_id AND st.xml_id = s.store_xml_id
    WHERE s.file_id = :f AND s.seq >= :lo AND s.seq < :hi
    ORDER BY sl.product_id, sl.store_id
    FOR NO KEY UPDATE OF sl
    """
)

_PG_SOURCE = """
    src AS (
        SELECT DISTINCT ON (p.id, st.id) p.id AS product_id, st.id AS store_id,
               GREATEST(s.quantity, 0) AS figure
        FROM exchange_stage_stock s
        JOIN products p ON p.xml_id = s.product_xml_id
        JOIN stores st ON st.xml_id = s.store_xml_id
        WHERE s.file_id = :f AND s.seq >= :lo AND s.seq < :hi
        ORDER BY p.id, st.id, s.seq DESC
    ),
    late AS (
        SELECT m.product_id, m.store_id, SUM(m.quantity) AS qty
        FROM stock_movements m
        JOIN src ON src.product_id = m.product_id AND src.store_id = m.store_id
        WHERE m.reason <> 'exchange_1c' AND m.recorded_at > CAST(:since AS timestamptz)
          AND (m.business_time > CAST(:formed AS timestamptz)
               OR m.recorded_at > CAST(:formed AS timestamptz))
        GROUP BY m.product_id, m.store_id
    ),
    diff AS (
        SELECT src.product_id, src.store_id, src.figure, sl.on_hand AS old,
               COALESCE(sl.reserved, 0) AS reserved, COALESCE(late.qty, 0) AS late_qty,
               GREATEST(src.figure + COALESCE(late.qty, 0), 0) AS target
        FROM src
        LEFT JOIN late ON late.product_id = src.product_id AND late.store_id = src.store_id
        LEFT JOIN stock_levels sl
               ON sl.product_id = src.product_id AND sl.store_id = src.store_id
    )
"""


def _pg_decimal(column: str) -> str:
    """Thousandths as the text events.dec() writes: 5, 1.25, -0.5."""
    return f"trim_scale(({column})::numeric / 1000)::text"


_PG_ADOPT = text(
    f"""
    WITH {_PG_SOURCE},
    changed AS (
        SELECT * FROM diff WHERE old IS NULL OR old <> target
    ),
    ins AS (
        -- A level created meanwhile by someone else keeps what they added: ours is relative.
        INSERT INTO stock_levels (product_id, store_id, on_hand, reserved, updated_at)
        SELECT product_id, store_id, target, 0, CAST(:now AS timestamptz)
        FROM changed WHERE old IS NULL
        ON CONFLICT (product_id, store_id) DO UPDATE
            SET on_hand = stock_levels.on_hand + EXCLUDED.on_hand,
                updated_at = EXCLUDED.updated_at
        RETURNING product_id
    ),
    upd AS (
        UPDATE stock_levels sl
        SET on_hand = sl.on_hand + (c.target - c.old), updated_at = CAST(:now AS timestamptz)
        FROM changed c
        WHERE sl.product_id = c.product_id AND sl.store_id = c.store_id AND c.old IS NOT NULL
        RETURNING sl.product_id
    ),
    mov AS (
        INSERT INTO stock_movements (product_id, store_id, quantity, reason, document_type,
                                     document_id, business_time, recorded_at)
        SELECT product_id, store_id, target - COALESCE(old, 0), 'exchange_1c',
               CAST(:doctype AS text), CAST(:doc AS text), CAST(:formed AS timestamptz),
               CAST(:now AS timestamptz)
        FROM changed WHERE target <> COALESCE(old, 0)
        ORDER BY product_id, store_id
        RETURNING product_id
    ),
    evt AS (
        INSERT INTO outbox_events (type, aggregate_type, aggregate_id, payload, created_at)
        SELECT 'stock.changed', 'stock', product_id || ':' || store_id,
               json_build_object(
                   'product_id', product_id, 'store_id', store_id,
                   'on_hand', {_pg_decimal("target")},
                   'reserved', {_pg_decimal("reserved")},
                   'available', {_pg_decimal("target - reserved")},
                   'reason', 'exchange_1c', 'document_type', CAST(:doctype AS text),
                   'document_id', CAST(:doc AS text)),
               CAST(:now AS timestamptz)
        FROM changed WHERE target <> COALESCE(old, 0)
        ORDER BY product_id, store_id
        RETURNING id
    )
    SELECT (SELECT count(*) FROM evt) AS moved, (SELECT count(*) FROM ins) AS created,
           (SELECT count(*) FROM upd) + (SELECT count(*) FROM mov) AS touched
    """
)

_PG_FIGURES = text(
    f"""
    WITH {_PG_SOURCE}
    INSERT INTO stock_1c_figures (product_id, store_id, quantity, hub_on_hand, formed_at,
                                  recorded_at)
    SELECT product_id, store_id, figure, GREATEST(COALESCE(old, 0) - late_qty, 0),
           CAST(:formed AS timestamptz), CAST(:now AS timestamptz)
    FROM diff
    ON CONFLICT (product_id, store_id) DO UPDATE
        SET quantity = EXCLUDED.quantity, hub_on_hand = EXCLUDED.hub_on_hand,
            formed_at = EXCLUDED.formed_at, recorded_at = EXCLUDED.recorded_at
    """
)

# SQLite: the same source rows, one writer at a time, so no locks are needed.
_SQLITE_DIFF = text(
    """
    WITH src AS (
        SELECT p.id AS product_id, st.id AS store_id, MAX(s.quantity, 0) AS figure,
               MAX(s.seq) AS last_seq
        FROM exchange_stage_stock s
        JOIN products p ON p.xml_id = s.product_xml_id
        JOIN stores st ON st.xml_id = s.store_xml_id
        WHERE s.file_id = :f AND s.seq >= :lo AND s.seq < :hi
        GROUP BY p.id, st.id
    )
    SELECT src.product_id, src.store_id, src.figure, sl.on_hand AS old,
           COALESCE(sl.reserved, 0) AS reserved,
           COALESCE((
               SELECT SUM(m.quantity) FROM stock_movements m
               WHERE m.product_id = src.product_id AND m.store_id = src.store_id
                 AND m.reason <> 'exchange_1c' AND m.recorded_at > :since
                 AND (m.business_time > :formed OR m.recorded_at > :formed)
           ), 0) AS late_qty
    FROM src
    LEFT JOIN stock_levels sl ON sl.product_id = src.product_id AND sl.store_id = src.store_id
    ORDER BY src.product_id, src.store_id
    """
)


async def adopt_figures(
    conn: AsyncConnection,
    file_id: int,
    lo: int,
    hi: int,
    formed_at: datetime,
    document_id: str,
    now: datetime,
) -> ChunkResult:
    """master = "1c": the chunk's stock levels take 1C's figures (see the module docstring)."""
    params = {**_params(file_id, lo, hi, formed_at), "now": now, "doc": document_id}
    if conn.dialect.name == "postgresql":
        await conn.execute(_typed(_PG_LOCK), params)
        row = (await conn.execute(_typed(_PG_ADOPT), {**params, "doctype": DOCUMENT_TYPE})).one()
        return ChunkResult(int(row.moved), int(row.created))
    return await _sqlite_adopt(conn, params, formed_at, document_id, now)


async def _sqlite_adopt(
    conn: AsyncConnection,
    params: dict[str, Any],
    formed_at: datetime,
    document_id: str,
    now: datetime,
) -> ChunkResult:
    rows = (await conn.execute(_typed(_SQLITE_DIFF), params)).all()
    moved = created = 0
    for row in rows:
        old = None if row.old is None else int(row.old)
        target = max(int(row.figure) + int(row.late_qty), 0)
        if old is None:
            created += 1
            await stock_ops.ensure_stock_level(conn, row.product_id, row.store_id, now)
        if target == (old or 0):
            continue
        change = StockChange(
            row.product_id,
            row.store_id,
            _units(target),
            MovementReason.EXCHANGE_1C,
            DOCUMENT_TYPE,
            document_id,
            formed_at,
            now,
        )
        await stock_ops.set_on_hand(conn, change)
        moved += 1
    return ChunkResult(moved, created)


async def record_figures(
    conn: AsyncConnection, file_id: int, lo: int, hi: int, formed_at: datetime, now: datetime
) -> int:
    """master = "hub": 1C's figures are kept beside the hub's figure for the same moment."""
    params = {**_params(file_id, lo, hi, formed_at), "now": now}
    if conn.dialect.name == "postgresql":
        result = await conn.execute(_typed(_PG_FIGURES), params)
        return int(result.rowcount or 0)
    rows = (await conn.execute(_typed(_SQLITE_DIFF), params)).all()
    upsert = text(
        """
        INSERT INTO stock_1c_figures (product_id, store_id, quantity, hub_on_hand, formed_at,
                                      recorded_at)
        VALUES (:p, :s, :q, :h, :formed, :now)
        ON CONFLICT (product_id, store_id) DO UPDATE
            SET quantity = excluded.quantity, hub_on_hand = excluded.hub_on_hand,
                formed_at = excluded.formed_at, recorded_at = excluded.recorded_at
        """
    )
    values = [
        {
            "p": r.product_id,
            "s": r.store_id,
            "q": int(r.figure),
            "h": max(int(r.old or 0) - int(r.late_qty), 0),
            "formed": formed_at,
            "now": now,
        }
        for r in rows
    ]
    if values:
        await conn.execute(_typed(upsert), values)
    return len(values)


def _units(scaled: int) -> Decimal:
    return Decimal(scaled).scaleb(-3)


def _typed(statement: TextClause) -> TextClause:
    """Times bound through UtcDateTime, so SQLite compares them in its stored form."""
    names = ("formed", "since", "now")
    present = [n for n in names if f":{n}" in statement.text]
    return statement.bindparams(*(bindparam(n, type_=UtcDateTime()) for n in present))
