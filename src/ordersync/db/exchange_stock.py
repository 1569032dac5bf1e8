"""Applying a staged 1C stock file to the ledger, a chunk of items per transaction.

The rule (master = "1c"): 1C's figure is the physical stock at the moment 1C formed the file.
The hub adds to it its own movements that 1C cannot have counted yet: those whose business
time is after that moment, and those the hub itself learnt of after it (a till that was offline
reports a sale late). So the target is max(figure, 0) + late, never below 0; holds stay.

On PostgreSQL a chunk is one statement. It reads each level and the late movements in one
snapshot and writes only the levels still as it read them; if any changed meanwhile (a sale, a
receipt, another import), the statement undoes itself and the chunk is done again with its rows
locked first, in (product, store) order, so a sale is never forgotten nor counted twice. Most
chunks meet no concurrent write and take no lock before writing. SQLite has one writer at a
time and runs the same rule row by row.

An older file never rolls a level back: a figure is skipped where a file formed later already
set that (product, store) level, and only there. Which levels a file set is kept per applied
chunk and store (exchange_stock_coverage), not per level, so a re-import that changes little
writes little; the comparison runs only for a chunk whose stores a later file has touched.

A re-import on PostgreSQL compares while it stages (compare_staged, beside the parsing of the
next batch): the chunk's statement then reads and writes only the figures that differed, plus
those of products with hub movements the comparison may not have seen, and compares them all
when another file applied since (quiet_since).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Integer, TextClause, bindparam, delete, func, insert, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain import events
from ..domain.quantities import QUANTITY_SCALE, from_units
from ..domain.stock_from_1c import COVERAGE_KEPT, MAX_AHEAD
from ..domain.types import MovementReason
from .tables import exchange_stock_coverage
from .types import UtcDateTime

DOCUMENT_TYPE = "exchange_1c"
_WHOLE = 10**QUANTITY_SCALE  # one unit in thousandths
_SQLITE_SLICE = 250  # items a SQLite chunk reads and writes at a time
# A hub movement recorded this long before a file's staging compared its levels may have been
# committed after that comparison (a transaction still open then): its levels are read again.
STAGING_MARGIN = timedelta(hours=1)
_ATTEMPTS = 4  # the optimistic write, then with the chunk's rows locked first


@dataclass(frozen=True)
class ChunkResult:
    moved: int  # stock levels whose on_hand changed (one movement and one event each)
    figures: int  # store quantities in the chunk for products the hub has, adopted
    skipped_newer: int = 0  # figures for levels that a file formed later had set
    skipped_too_old: int = 0  # figures for stores whose newest file is COVERAGE_KEPT later


@dataclass(frozen=True)
class LaterFiles:
    """The file's stores where a file formed later set stock: `check` compares level by level,
    `too_old` (the newest file is more than COVERAGE_KEPT later) skips the store's figures."""

    check: list[int]
    too_old: list[int]


# The file's stores where another file formed later set some level (the index on (store_id,
# formed_at) answers it from a few rows; usually there are none).
_LATER_FILES = """
    SELECT c.store_id, MAX(c.formed_at) AS newest
    FROM exchange_stock_coverage c
    WHERE c.formed_at > :formed
      AND c.store_id IN (SELECT st.id FROM exchange_stage_stores ss
                         JOIN stores st ON st.xml_id = ss.xml_id WHERE ss.file_id = :f)
    GROUP BY c.store_id
"""

# The file's store numbers are mapped to store ids through :store_of (the id of number n at
# n + 1, NULL for a store the hub does not have): a join per figure cost a sixth of a chunk.
_PG_RAW = """
    {name} AS (
        SELECT DISTINCT ON (q.product_id, q.store_id) q.product_id, q.store_id,
               CASE WHEN q.unit = 'pcs' THEN GREATEST(q.qty, 0) / 1000 * 1000
                    ELSE GREATEST(q.qty, 0) END AS figure
        FROM (
            SELECT p.id AS product_id, p.unit, i.seq, u.qty,
                   (CAST(:store_of AS int[]))[u.num + 1] AS store_id
            FROM exchange_stage_items i
            CROSS JOIN LATERAL (  -- by its key: a join would hash every product per chunk
                SELECT p.id, p.unit FROM products p WHERE p.xml_id = i.xml_id LIMIT 1
            ) p
            CROSS JOIN LATERAL unnest(i.store_numbers, i.quantities) AS u(num, qty)
            WHERE i.file_id = :f AND i.seq >= :lo AND i.seq < :hi
        ) q
        WHERE q.store_id IS NOT NULL
        ORDER BY q.product_id, q.store_id, q.seq DESC
    ),"""

# The chunk's figures less those for levels a later file set (the later coverage of the
# chunk's stores, unnested only for rows whose bounds meet the chunk's products).
_PG_SKIP_LATER = """
    later AS MATERIALIZED (
        SELECT DISTINCT c.store_id, u.pid AS product_id
        FROM exchange_stock_coverage c
        CROSS JOIN LATERAL unnest(c.product_ids) AS u(pid)
        WHERE c.store_id = ANY(CAST(:check AS int[]))
          AND c.formed_at > CAST(:formed AS timestamptz)
          AND c.last_product >= (SELECT min(product_id) FROM raw)
          AND c.first_product <= (SELECT max(product_id) FROM raw)
          AND u.pid IN (SELECT product_id FROM raw)
    ),
    src AS (
        SELECT r.* FROM raw r
        WHERE r.store_id <> ALL(CAST(:too_old AS int[]))
          AND NOT EXISTS (SELECT 1 FROM later l
                          WHERE l.store_id = r.store_id AND l.product_id = r.product_id)
    ),"""

_PG_LATE = """
    late AS MATERIALIZED (
        SELECT m.product_id, m.store_id, SUM(m.quantity)::bigint AS qty
        FROM stock_movements m
        WHERE m.reason <> 'exchange_1c' AND m.recorded_at > CAST(:since AS timestamptz)
          AND (m.business_time > CAST(:formed AS timestamptz)
               OR m.recorded_at > CAST(:formed AS timestamptz))
        GROUP BY m.product_id, m.store_id
    ),
    -- The chunk's levels in one index scan by product, hashed to the figures: a probe per
    -- level cost a tenth of a first import's chunk. (Bounded by the chunk's products, never
    -- a merge or hash of the whole table.)
    levels AS MATERIALIZED (
        SELECT sl.product_id, sl.store_id, sl.on_hand, sl.reserved FROM stock_levels sl
        WHERE sl.product_id = ANY(ARRAY(SELECT DISTINCT product_id FROM src))
    ),
    diff AS (
        SELECT src.product_id, src.store_id, src.figure, sl.on_hand AS old,
               COALESCE(sl.reserved, 0) AS reserved, COALESCE(late.qty, 0) AS late_qty,
               GREATEST(src.figure + COALESCE(late.qty, 0), 0) AS target
        FROM src
        LEFT JOIN late ON late.product_id = src.product_id AND late.store_id = src.store_id
        LEFT JOIN levels sl ON sl.product_id = src.product_id AND sl.store_id = src.store_id
    )
"""


def _pg_source(skip_later: bool) -> str:
    """src (the chunk's figures to adopt), late and diff; `raw` too when skipping."""
    if skip_later:
        return _PG_RAW.format(name="raw") + _PG_SKIP_LATER + _PG_LATE
    return _PG_RAW.format(name="src") + _PG_LATE


def _pg_skipped(skip_later: bool) -> str:
    if not skip_later:
        return "0 AS skipped, 0 AS too_old"
    return (
        "(SELECT count(*) FROM raw) - (SELECT count(*) FROM src) AS skipped, "
        "(SELECT count(*) FROM raw WHERE store_id = ANY(CAST(:too_old AS int[]))) AS too_old"
    )


# What the chunk set, per store, as sorted product ids; an older row of exactly the same
# levels says nothing more and goes (a full file sent again replaces its predecessor's rows).
_PG_COV_WRITE = """
    cov_new AS (
        INSERT INTO exchange_stock_coverage (file_id, store_id, formed_at, first_product,
                                             last_product, product_ids)
        SELECT :f, store_id, CAST(:formed AS timestamptz), lo, hi, ids FROM cov
        RETURNING id
    ),
    cov_old AS (
        DELETE FROM exchange_stock_coverage o USING cov
        WHERE o.store_id = cov.store_id AND o.formed_at <= CAST(:formed AS timestamptz)
          AND o.first_product = cov.lo AND o.last_product = cov.hi
          AND o.product_ids = cov.ids
        RETURNING o.id
    ),"""
_PG_COVERAGE = (
    """
    cov AS (
        SELECT store_id, array_agg(product_id ORDER BY product_id) AS ids,
               min(product_id) AS lo, max(product_id) AS hi
        FROM src GROUP BY store_id
    ),"""
    + _PG_COV_WRITE
)

_PG_LOCK = """
    SELECT 1 FROM stock_levels sl
    JOIN (
        SELECT DISTINCT p.id AS product_id, st.id AS store_id
        FROM exchange_stage_items i
        CROSS JOIN LATERAL unnest(i.store_numbers) AS q(num)
        JOIN exchange_stage_stores ss ON ss.file_id = i.file_id AND ss.number = q.num
        JOIN stores st ON st.xml_id = ss.xml_id
        JOIN products p ON p.xml_id = i.xml_id
        WHERE i.file_id = :f AND i.seq >= :lo AND i.seq < :hi
    ) k ON k.product_id = sl.product_id AND k.store_id = sl.store_id
    ORDER BY sl.product_id, sl.store_id
    FOR NO KEY UPDATE OF sl
"""


def _pg_decimal(column: str) -> str:
    """Thousandths as the text events.dec() writes: 5, 1.25, -0.5 (whole numbers cheaply)."""
    return (
        f"CASE WHEN ({column}) % 1000 = 0 THEN (({column})::bigint / 1000)::text "
        f"ELSE trim_scale(({column})::numeric / 1000)::text END"
    )


# The event payload is built as text: json_build_object costs more than the rest of the row.
# One stock.levels_changed per product of the chunk, carrying each of its written levels.
_PG_LEVEL = (
    "'{\"store_id\": ' || store_id"
    f' || \', "on_hand": "\' || {_pg_decimal("on_hand")}'
    f' || \'", "reserved": "\' || {_pg_decimal("reserved")}'
    f' || \'", "available": "\' || {_pg_decimal("on_hand - reserved")} || \'"}}\''
)
_PG_PAYLOAD = (
    "('{\"product_id\": ' || product_id || ', \"levels\": ['"
    f" || string_agg({_PG_LEVEL}, ', ' ORDER BY store_id)"
    ' || \'], "reason": "exchange_1c", "document_type": "exchange_1c"\''
    " || ', \"document_id\": ' || CAST(:doc_json AS text) || '}')::json"
)

# Staging (master = "1c"): each staged batch is compared with the hub's levels while the
# reader parses the next batch, so a re-import's apply looks up only the figures that differ.
# `stale` has bit k - 1 set for each figure k (from 1) that differed from its level, or is for
# a store the hub does not have yet; an item naming a store twice, or with more than 63
# figures, is left uncompared (NULL).
# Items of products the hub does not have yet (a first import) are not compared either.
_PG_COMPARE = """
    WITH items AS MATERIALIZED (
        SELECT i.seq, p.id AS product_id, p.unit, i.store_numbers, i.quantities
        FROM exchange_stage_items i
        CROSS JOIN LATERAL (  -- by its key: a join would hash every product per batch
            SELECT p.id, p.unit FROM products p WHERE p.xml_id = i.xml_id LIMIT 1
        ) p
        WHERE i.file_id = :f AND i.seq >= :lo AND i.seq < :hi
    ),
    -- The batch's levels in one index scan by product (a probe per level cost twice as much),
    -- matched to the figures by hashing.
    levels AS MATERIALIZED (
        SELECT sl.product_id, sl.store_id, sl.on_hand FROM stock_levels sl
        WHERE sl.product_id = ANY(ARRAY(SELECT product_id FROM items))
    ),
    c AS MATERIALIZED (
        SELECT it.seq,
               COALESCE(bit_or(CAST(1 AS bigint) << CAST(u.k - 1 AS int)) FILTER (
                   WHERE l.on_hand IS DISTINCT FROM
                         CASE WHEN it.unit = 'pcs' THEN GREATEST(u.qty, 0) / 1000 * 1000
                              ELSE GREATEST(u.qty, 0) END
               ), 0) AS stale
        FROM items it
        CROSS JOIN LATERAL unnest(it.store_numbers, it.quantities)
                           WITH ORDINALITY AS u(num, qty, k)
        LEFT JOIN levels l
               ON l.product_id = it.product_id
              AND l.store_id = (CAST(:store_of AS int[]))[u.num + 1]
        GROUP BY it.seq
        HAVING count(DISTINCT u.num) = count(*) AND count(*) <= 63
    )
    -- Each item updated by its key, from arrays: the planner sizes an unnest small and drives
    -- the update from it (joined to `c` itself it compared every item with every other).
    UPDATE exchange_stage_items t SET stale = s.stale
    FROM unnest((SELECT array_agg(seq) FROM c), (SELECT array_agg(stale) FROM c))
         AS s(seq, stale)
    WHERE t.file_id = :f AND t.seq = s.seq
"""

# The chunk's figures when no later file set any of its stores. With :use_stale, a figure that
# was equal to its level when staged is left out (no level read, no write), unless the product
# has hub movements that the staging snapshot may not have seen or that make the target differ
# (late ones, and any recorded since shortly before staging); every other import of the hub
# since staging turns :use_stale off (CatalogApply asks quiet_since first).
_PG_FIG = """
    fig AS MATERIALIZED (
        SELECT p.id AS product_id, p.unit, i.seq, u.qty, u.k, i.stale,
               (CAST(:store_of AS int[]))[u.num + 1] AS store_id
        FROM exchange_stage_items i
        CROSS JOIN LATERAL (  -- by its key: a join would hash every product per chunk
            SELECT p.id, p.unit FROM products p WHERE p.xml_id = i.xml_id LIMIT 1
        ) p
        CROSS JOIN LATERAL unnest(i.store_numbers, i.quantities)
                           WITH ORDINALITY AS u(num, qty, k)
        WHERE i.file_id = :f AND i.seq >= :lo AND i.seq < :hi
    ),
    touched AS MATERIALIZED (
        SELECT DISTINCT m.product_id
        FROM stock_movements m
        WHERE CAST(:use_stale AS boolean) AND m.reason <> 'exchange_1c'
          AND m.recorded_at > CAST(:since AS timestamptz)
          AND (m.business_time > CAST(:formed AS timestamptz)
               OR m.recorded_at > LEAST(CAST(:formed AS timestamptz),
                                        CAST(:recent AS timestamptz)))
    ),
    src AS (
        SELECT DISTINCT ON (product_id, store_id) product_id, store_id,
               CASE WHEN unit = 'pcs' THEN GREATEST(qty, 0) / 1000 * 1000
                    ELSE GREATEST(qty, 0) END AS figure
        FROM fig
        WHERE store_id IS NOT NULL
          AND (NOT CAST(:use_stale AS boolean) OR stale IS NULL
               OR (stale >> CAST(k - 1 AS int)) & 1 = 1
               OR product_id IN (SELECT product_id FROM touched))
        ORDER BY product_id, store_id, seq DESC
    ),"""

# Coverage from every figure of the chunk (the levels the file set, changed or not).
_PG_FIG_COVERAGE = (
    """
    cov AS (
        SELECT store_id, array_agg(DISTINCT product_id ORDER BY product_id) AS ids,
               min(product_id) AS lo, max(product_id) AS hi
        FROM fig WHERE store_id IS NOT NULL GROUP BY store_id
    ),"""
    + _PG_COV_WRITE
)

_PG_ADOPT = """
    WITH {source},
    {coverage}
    changed AS (
        SELECT * FROM diff WHERE old IS NULL OR old <> target
    ),
    ins AS (
        -- A level created meanwhile by someone else is a unique violation: the chunk runs
        -- again and updates it (a plain insert costs less than ON CONFLICT's speculative one).
        INSERT INTO stock_levels (product_id, store_id, on_hand, reserved, updated_at)
        SELECT product_id, store_id, target, 0, CAST(:now AS timestamptz)
        FROM changed WHERE old IS NULL
        RETURNING product_id, store_id, on_hand, reserved
    ),
    -- The changed levels come as unnested arrays: the planner sizes an unnest small and looks
    -- each level up by its key, where it sized `changed` as the whole chunk and hashed all of
    -- stock_levels (a second per chunk at a million levels). The arrays are read from the one
    -- materialized `changed` in the same order, so they line up.
    upd AS (
        UPDATE stock_levels sl
        SET on_hand = c.target, updated_at = CAST(:now AS timestamptz)
        FROM unnest(
            (SELECT array_agg(product_id) FROM changed WHERE old IS NOT NULL),
            (SELECT array_agg(store_id) FROM changed WHERE old IS NOT NULL),
            (SELECT array_agg(target) FROM changed WHERE old IS NOT NULL),
            (SELECT array_agg(old) FROM changed WHERE old IS NOT NULL)
        ) AS c(product_id, store_id, target, old)
        WHERE sl.product_id = c.product_id AND sl.store_id = c.store_id
          AND sl.on_hand = c.old  -- unchanged since it was read, or this row is left out
        RETURNING sl.product_id, sl.store_id, sl.on_hand, sl.reserved
    ),
    -- The levels written with a movement: every update, and the inserts of a non-zero figure
    -- (no join back to `changed`: the planner cannot size these CTEs and would loop).
    written AS (
        SELECT product_id, store_id, on_hand, reserved FROM ins WHERE on_hand <> 0
        UNION ALL
        SELECT product_id, store_id, on_hand, reserved FROM upd
    ),
    mov AS (
        INSERT INTO stock_movements (product_id, store_id, quantity, reason, document_type,
                                     document_id, business_time, recorded_at)
        SELECT product_id, store_id, target - COALESCE(old, 0), 'exchange_1c',
               'exchange_1c', CAST(:doc AS text), CAST(:formed AS timestamptz),
               CAST(:now AS timestamptz)
        FROM changed WHERE target <> COALESCE(old, 0)
        RETURNING product_id
    ),
    evt AS (
        INSERT INTO outbox_events (type, aggregate_type, aggregate_id, payload, created_at)
        SELECT 'stock.levels_changed', 'stock', product_id::text, {payload},
               CAST(:now AS timestamptz)
        FROM written
        GROUP BY product_id
        RETURNING id
    )
    SELECT (SELECT count(*) FROM written) AS moved, {figures} AS figures,
           (SELECT count(*) FROM evt) AS events,
           (SELECT count(*) FROM mov) AS movements, {skipped},
           -- Every changed level written, or the statement undoes itself (a concurrent write).
           ordersync_assert((SELECT count(*) FROM ins) + (SELECT count(*) FROM upd)
                            = (SELECT count(*) FROM changed), 'exchange_race') AS complete
"""


def _pg_adopt(skip_later: bool) -> str:
    if skip_later:
        return _PG_ADOPT.format(
            source=_pg_source(True),
            coverage=_PG_COVERAGE,
            payload=_PG_PAYLOAD,
            skipped=_pg_skipped(True),
            figures="(SELECT count(*) FROM src)",
        )
    return _PG_ADOPT.format(
        source=_PG_FIG + _PG_LATE,
        coverage=_PG_FIG_COVERAGE,
        payload=_PG_PAYLOAD,
        skipped=_pg_skipped(False),
        figures="(SELECT COALESCE(sum(cardinality(ids)), 0) FROM cov)",
    )


_PG_ADOPT_ANY, _PG_ADOPT_SKIPPING = _pg_adopt(False), _pg_adopt(True)

# master = "hub": a figure never replaces one formed later.
_PG_FIGURES = f"""
    WITH {_pg_source(False)},
    recorded AS (
        INSERT INTO stock_1c_figures (product_id, store_id, quantity, hub_on_hand, formed_at,
                                      recorded_at)
        SELECT product_id, store_id, figure, GREATEST(COALESCE(old, 0) - late_qty, 0),
               CAST(:formed AS timestamptz), CAST(:now AS timestamptz)
        FROM diff
        ON CONFLICT (product_id, store_id) DO UPDATE
            SET quantity = EXCLUDED.quantity, hub_on_hand = EXCLUDED.hub_on_hand,
                formed_at = EXCLUDED.formed_at, recorded_at = EXCLUDED.recorded_at
            WHERE stock_1c_figures.formed_at <= EXCLUDED.formed_at
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM diff) AS figures, (SELECT count(*) FROM recorded) AS recorded
"""


def _sql(statement: str) -> TextClause:
    """Times bound through UtcDateTime, so SQLite compares them in its stored form."""
    present = [n for n in ("formed", "since", "now") if f":{n}" in statement]
    return text(statement).bindparams(*(bindparam(n, type_=UtcDateTime()) for n in present))


def _params(file_id: int, lo: int, hi: int, formed_at: datetime, now: datetime) -> dict[str, Any]:
    return {
        "f": file_id,
        "lo": lo,
        "hi": hi,
        "formed": formed_at,
        "since": formed_at - MAX_AHEAD,
        "now": now,
    }


async def later_files(conn: AsyncConnection, params: dict[str, Any]) -> LaterFiles:
    """The file's stores where a file formed later already set some stock level."""
    statement = _sql(_LATER_FILES).columns(store_id=Integer(), newest=UtcDateTime())
    check: list[int] = []
    too_old: list[int] = []
    for store_id, newest in await conn.execute(statement, params):
        (too_old if newest - params["formed"] > COVERAGE_KEPT else check).append(store_id)
    return LaterFiles(sorted(check), sorted(too_old))


async def adopt_figures(
    conn: AsyncConnection,
    file_id: int,
    lo: int,
    hi: int,
    formed_at: datetime,
    document_id: str,
    now: datetime,
    compared_from: datetime | None = None,
) -> ChunkResult:
    """master = "1c": the chunk's stock levels take 1C's figures (see the module docstring),
    except levels a file formed later already set."""
    params = {**_params(file_id, lo, hi, formed_at, now), "doc": document_id}
    later = await later_files(conn, params)
    params.update(check=later.check, too_old=later.too_old)
    if conn.dialect.name != "postgresql":
        return await _adopt_sqlite(conn, params, document_id, later)
    params["doc_json"] = json.dumps(document_id, ensure_ascii=False)
    params["store_of"] = await _store_of(conn, file_id)
    # The comparison made while staging holds if no other import wrote levels since.
    use_stale = compared_from is not None and await quiet_since(conn, file_id, compared_from)
    params["use_stale"] = use_stale
    params["recent"] = (compared_from or formed_at) - STAGING_MARGIN
    statement = _sql(_PG_ADOPT_SKIPPING if later.check or later.too_old else _PG_ADOPT_ANY)
    # A chunk's sorts and hashes fit in memory instead of spilling to disk. And every table
    # is reached through an index (a chunk touches a bounded part of each): the planner cannot
    # size the CTEs and would scan all the products per chunk to hash 2,000 of them.
    await conn.execute(text("SET LOCAL work_mem = '64MB'"))
    await conn.execute(text("SET LOCAL enable_seqscan = off"))
    for attempt in range(_ATTEMPTS):
        try:
            async with conn.begin_nested():
                if attempt:  # someone wrote a level between our read and our write
                    await conn.execute(_sql(_PG_LOCK), params)
                row = (await conn.execute(statement, params)).one()
            too_old = int(row.too_old)
            return ChunkResult(
                int(row.moved), int(row.figures), int(row.skipped) - too_old, too_old
            )
        except DBAPIError as exc:
            if not _raced(exc) or attempt == _ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


async def compare_staged(conn: AsyncConnection, file_id: int, lo: int, hi: int) -> None:
    """Marks the figures of staged items [lo, hi) that differ from the hub's levels now
    (PostgreSQL; SQLite compares when it applies). Run in the staging transaction, while the
    reader parses the next batch."""
    if conn.dialect.name != "postgresql":
        return
    params = {"f": file_id, "lo": lo, "hi": hi, "store_of": await _store_of(conn, file_id)}
    # Each level by its key: the planner cannot size the unnest and would hash all levels.
    await conn.execute(text("SET LOCAL enable_seqscan = off"))
    await conn.execute(text(_PG_COMPARE), params)
    await conn.execute(text("SET LOCAL enable_seqscan = on"))


async def quiet_since(conn: AsyncConnection, file_id: int, since: datetime) -> bool:
    """No other file is applying or changed at all at or after `since`: no level was written
    by another import after this file's staging compared it. Any change counts, not only a
    finished apply: a file partly applied and then sent again is back to receiving, and a
    file that was only uploaded meanwhile costs a full comparison, never a wrong figure."""
    statement = text(
        """
        SELECT count(*) FROM exchange_files
        WHERE id <> :f AND (status = 'applying' OR updated_at >= :since)
        """
    ).bindparams(bindparam("since", type_=UtcDateTime()))
    busy = (await conn.execute(statement, {"f": file_id, "since": since})).scalar_one()
    return int(busy) == 0


def _raced(exc: DBAPIError) -> bool:
    """Someone wrote one of the chunk's levels between its read and its write: a level changed
    (the statement's own check) or created (the primary key)."""
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return "exchange_race" in str(exc) or (code == "23505" and "pk_stock_levels" in str(exc))


async def _store_of(conn: AsyncConnection, file_id: int) -> list[int | None]:
    """The hub's store id of each of the file's store numbers (None: not a store here)."""
    rows = await conn.execute(
        text(
            "SELECT ss.number, st.id FROM exchange_stage_stores ss "
            "JOIN stores st ON st.xml_id = ss.xml_id WHERE ss.file_id = :f"
        ),
        {"f": file_id},
    )
    found = {int(n): int(sid) for n, sid in rows}
    return [found.get(n) for n in range(max(found, default=-1) + 1)]


async def record_figures(
    conn: AsyncConnection, file_id: int, lo: int, hi: int, formed_at: datetime, now: datetime
) -> tuple[int, int]:
    """master = "hub": 1C's figures are kept beside the hub's figure for the same moment,
    unless a figure formed later is kept already. (recorded, skipped as older)."""
    params = _params(file_id, lo, hi, formed_at, now)
    if conn.dialect.name == "postgresql":
        params["store_of"] = await _store_of(conn, file_id)
        row = (await conn.execute(_sql(_PG_FIGURES), params)).one()
        return int(row.recorded), int(row.figures) - int(row.recorded)
    rows, _ = await _sqlite_diff(conn, params)
    upsert = """
        INSERT INTO stock_1c_figures (product_id, store_id, quantity, hub_on_hand, formed_at,
                                      recorded_at)
        VALUES (:p, :s, :q, :h, :formed, :now)
        ON CONFLICT (product_id, store_id) DO UPDATE
            SET quantity = excluded.quantity, hub_on_hand = excluded.hub_on_hand,
                formed_at = excluded.formed_at, recorded_at = excluded.recorded_at
            WHERE stock_1c_figures.formed_at <= excluded.formed_at
    """
    values = [
        {
            "p": p,
            "s": s,
            "q": figure,
            "h": max((old or 0) - late, 0),
            "formed": formed_at,
            "now": now,
        }
        for p, s, figure, old, late in rows
    ]
    if not values:
        return 0, 0
    recorded = int((await conn.execute(_sql(upsert), values)).rowcount or 0)
    return recorded, len(values) - recorded


DiffRow = tuple[int, int, int, int | None, int]  # product, store, figure, on_hand or None, late


async def _sqlite_diff(
    conn: AsyncConnection, params: dict[str, Any], later: LaterFiles | None = None
) -> tuple[list[DiffRow], tuple[int, int]]:
    """(product, store, figure, on_hand or None, late) per level of the chunk, in lock order;
    the last figure an item gives wins. With `later`, the levels a later file set are left
    out, and counted: (skipped as set later, skipped as too old)."""
    items = await conn.execute(
        text(
            """
            SELECT p.id AS product_id, p.unit, i.store_numbers, i.quantities
            FROM exchange_stage_items i JOIN products p ON p.xml_id = i.xml_id
            WHERE i.file_id = :f AND i.seq >= :lo AND i.seq < :hi AND i.quantities IS NOT NULL
            ORDER BY i.seq
            """
        ),
        params,
    )
    numbers = await conn.execute(
        text(
            "SELECT ss.number, st.id FROM exchange_stage_stores ss "
            "JOIN stores st ON st.xml_id = ss.xml_id WHERE ss.file_id = :f"
        ),
        params,
    )
    store_of = {n: sid for n, sid in numbers}
    figures: dict[tuple[int, int], int] = {}
    for product_id, unit, store_numbers, quantities in items:
        for number, qty in zip(json.loads(store_numbers), json.loads(quantities), strict=True):
            if number in store_of:
                # adopted_on_hand(figure, 0, pcs) in thousandths
                figure = max(int(qty), 0)
                if unit == "pcs":
                    figure -= figure % _WHOLE
                figures[(product_id, store_of[number])] = figure
    skipped = (0, 0)
    if later is not None and (later.check or later.too_old):
        figures, skipped = await _without_later_levels(conn, params, later, figures)
    if not figures:
        return [], skipped
    product_ids = sorted({p for p, _ in figures})
    levels: dict[tuple[int, int], int] = {}
    late: dict[tuple[int, int], int] = defaultdict(int)
    for start in range(0, len(product_ids), 500):
        batch = {**params, "ids": product_ids[start : start + 500]}
        for p, s, on_hand in await conn.execute(
            text(
                "SELECT product_id, store_id, on_hand FROM stock_levels WHERE product_id IN :ids"
            ).bindparams(bindparam("ids", expanding=True)),
            batch,
        ):
            levels[(p, s)] = int(on_hand)
        for p, s, qty in await conn.execute(
            _sql(
                """
                SELECT product_id, store_id, SUM(quantity) FROM stock_movements
                WHERE product_id IN :ids AND reason <> 'exchange_1c' AND recorded_at > :since
                  AND (business_time > :formed OR recorded_at > :formed)
                GROUP BY product_id, store_id
                """
            ).bindparams(bindparam("ids", expanding=True)),
            batch,
        ):
            late[(p, s)] += int(qty)
    rows = [(p, s, f, levels.get((p, s)), late[(p, s)]) for (p, s), f in sorted(figures.items())]
    return rows, skipped


async def _without_later_levels(
    conn: AsyncConnection,
    params: dict[str, Any],
    later: LaterFiles,
    figures: dict[tuple[int, int], int],
) -> tuple[dict[tuple[int, int], int], tuple[int, int]]:
    kept = {k: v for k, v in figures.items() if k[1] not in later.too_old}
    too_old = len(figures) - len(kept)
    if not kept or not later.check:
        return kept, (0, too_old)
    products = [p for p, _ in kept]
    set_later: set[tuple[int, int]] = set()
    rows = await conn.execute(
        _sql(
            """
            SELECT store_id, product_ids FROM exchange_stock_coverage
            WHERE store_id IN :check AND formed_at > :formed
              AND last_product >= :first AND first_product <= :last
            """
        ).bindparams(bindparam("check", expanding=True)),
        {**params, "first": min(products), "last": max(products)},
    )
    for store_id, ids in rows:
        set_later.update((p, store_id) for p in json.loads(ids))
    fresh = {k: v for k, v in kept.items() if k not in set_later}
    return fresh, (len(kept) - len(fresh), too_old)


async def _cover_sqlite(
    conn: AsyncConnection, params: dict[str, Any], levels: list[tuple[int, int]]
) -> None:
    """SQLite's half of _PG_COVERAGE: what the chunk set, per store; older identical rows go."""
    by_store: dict[int, list[int]] = defaultdict(list)
    for product_id, store_id in levels:
        by_store[store_id].append(product_id)
    for store_id, ids in sorted(by_store.items()):
        ids.sort()
        same = await conn.execute(
            _sql(
                """
                SELECT id, product_ids FROM exchange_stock_coverage
                WHERE store_id = :s AND formed_at <= :formed
                  AND first_product = :first AND last_product = :last
                """
            ),
            {**params, "s": store_id, "first": ids[0], "last": ids[-1]},
        )
        for row_id in [i for i, old in same if json.loads(old) == ids]:
            await conn.execute(
                text("DELETE FROM exchange_stock_coverage WHERE id = :id"), {"id": row_id}
            )
        await conn.execute(
            insert(exchange_stock_coverage).values(
                file_id=params["f"],
                store_id=store_id,
                formed_at=params["formed"],
                first_product=ids[0],
                last_product=ids[-1],
                product_ids=ids,
            )
        )


async def prune_coverage(conn: AsyncConnection) -> None:
    """Keeps what files set for COVERAGE_KEPT before the newest file of each store."""
    c = exchange_stock_coverage.c
    newest = await conn.execute(select(c.store_id, func.max(c.formed_at)).group_by(c.store_id))
    for store_id, formed_at in newest.all():
        await conn.execute(
            delete(exchange_stock_coverage).where(
                c.store_id == store_id, c.formed_at < formed_at - COVERAGE_KEPT
            )
        )


async def _adopt_sqlite(
    conn: AsyncConnection, params: dict[str, Any], document_id: str, later: LaterFiles
) -> ChunkResult:
    """The chunk in slices of _SQLITE_SLICE items, in its one transaction: the server holds
    the rows of a slice at a time (SQLite runs in its process, so its peak memory is the
    hub's). A product is one item, so its levels still share one event."""
    moved = figures = skipped_later = too_old = 0
    covered: list[tuple[int, int]] = []
    for lo in range(params["lo"], params["hi"], _SQLITE_SLICE):
        part = {**params, "lo": lo, "hi": min(lo + _SQLITE_SLICE, params["hi"])}
        result, keys = await _adopt_row_by_row(conn, part, document_id, later)
        moved += result.moved
        figures += result.figures
        skipped_later += result.skipped_newer
        too_old += result.skipped_too_old
        covered += keys
    await _cover_sqlite(conn, params, covered)
    return ChunkResult(moved, figures, skipped_later, too_old)


async def _adopt_row_by_row(
    conn: AsyncConnection, params: dict[str, Any], document_id: str, later: LaterFiles
) -> tuple[ChunkResult, list[tuple[int, int]]]:
    """SQLite's half of _PG_ADOPT for a slice, in a few statements: the chunk's transaction
    began IMMEDIATE (db/engine.py), so what _sqlite_diff read stays as it read it."""
    rows, (skipped_later, too_old) = await _sqlite_diff(conn, params, later)
    levels: list[tuple[int, int, int]] = []  # created or changed: (product, store, on_hand)
    moved: list[tuple[int, int, int]] = []  # (product, store, quantity)
    settled: list[tuple[int, int, int]] = []  # a negative level the figure brings back
    written: dict[int, list[tuple[int, Decimal, Decimal]]] = defaultdict(list)
    for product_id, store_id, figure, old, late in rows:
        # adopted_on_hand in thousandths: the figure is already at least 0, and whole for
        # piece goods (_sqlite_diff).
        target = max(figure + late, 0)
        if old is None or target != old:
            levels.append((product_id, store_id, target))
        if target == (old or 0):
            continue
        moved.append((product_id, store_id, target - (old or 0)))
        if old is not None and old < 0:
            settled.append((product_id, store_id, target))
        written[product_id].append((store_id, _units(target), Decimal(0)))
    # Each statement takes the chunk's rows as one JSON array: binding them row by row through
    # executemany cost more than SQLite's own work (a million levels in a first import).
    if levels:
        await conn.execute(_sql(_SQLITE_LEVELS), {**params, "rows": json.dumps(levels)})
    if moved:
        await conn.execute(_sql(_SQLITE_MOVE), {**params, "rows": json.dumps(moved)})
    reserved = await _reserved(conn, [(p, s) for p, s, _ in settled] + [
        (p, s) for p, levels in written.items() for s, _, _ in levels
    ])  # fmt: skip
    await _sqlite_events(conn, params, document_id, written, settled, reserved)
    count = sum(len(levels) for levels in written.values())
    return ChunkResult(count, len(rows), skipped_later, too_old), [(p, s) for p, s, *_ in rows]


# A level is created or its on_hand set (its reserved stays); `WHERE true` lets SQLite parse
# the ON CONFLICT after a SELECT.
_SQLITE_LEVELS = """
    INSERT INTO stock_levels (product_id, store_id, on_hand, reserved, updated_at)
    SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'),
           json_extract(value, '$[2]'), 0, :now
    FROM json_each(:rows) WHERE true
    ON CONFLICT (product_id, store_id) DO UPDATE
        SET on_hand = excluded.on_hand, updated_at = excluded.updated_at
"""
_SQLITE_MOVE = """
    INSERT INTO stock_movements (product_id, store_id, quantity, reason, document_type,
                                 document_id, business_time, recorded_at)
    SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'),
           json_extract(value, '$[2]'), 'exchange_1c', 'exchange_1c', :doc, :formed, :now
    FROM json_each(:rows)
"""
_SQLITE_EVENTS = """
    INSERT INTO outbox_events (type, aggregate_type, aggregate_id, payload, created_at)
    SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'),
           json_extract(value, '$[2]'), json_extract(value, '$[3]'), :now
    FROM json_each(:rows)
"""


async def _reserved(
    conn: AsyncConnection, keys: list[tuple[int, int]]
) -> dict[tuple[int, int], int]:
    """The reserved figure of each level (holds stay: an import never changes it)."""
    found: dict[tuple[int, int], int] = {}
    products = sorted({p for p, _ in keys})
    for start in range(0, len(products), 500):
        rows = await conn.execute(
            text(
                "SELECT product_id, store_id, reserved FROM stock_levels "
                "WHERE product_id IN :ids AND reserved <> 0"
            ).bindparams(bindparam("ids", expanding=True)),
            {"ids": products[start : start + 500]},
        )
        found.update({(p, s): int(r) for p, s, r in rows})
    return found


async def _sqlite_events(
    conn: AsyncConnection,
    params: dict[str, Any],
    document_id: str,
    written: dict[int, list[tuple[int, Decimal, Decimal]]],
    settled: list[tuple[int, int, int]],
    reserved: dict[tuple[int, int], int],
) -> None:
    """One stock.levels_changed per product (as on PostgreSQL), and a stock.negative for a
    level the figure brought back from below zero (as stock_ops writes it)."""
    rows: list[tuple[str, str, str, str]] = []  # type, aggregate type and id, payload JSON
    for product_id, store_id, target in settled:
        payload = events.stock_negative(
            product_id, store_id, _units(target), str(MovementReason.EXCHANGE_1C), document_id
        )
        rows.append(_event(events.STOCK_NEGATIVE, f"{product_id}:{store_id}", payload))
    for product_id, levels in written.items():
        figures = sorted(
            (s, on_hand, _units(reserved.get((product_id, s), 0))) for s, on_hand, _ in levels
        )
        payload = events.stock_levels_changed(
            product_id, figures, DOCUMENT_TYPE, DOCUMENT_TYPE, document_id
        )
        rows.append(_event(events.STOCK_LEVELS_CHANGED, str(product_id), payload))
    if rows:
        await conn.execute(_sql(_SQLITE_EVENTS), {"now": params["now"], "rows": json.dumps(rows)})


def _event(type_: str, aggregate_id: str, payload: dict[str, Any]) -> tuple[str, str, str, str]:
    return (type_, events.AGGREGATE_STOCK, aggregate_id, json.dumps(payload))


def _units(thousandths: int) -> Decimal:
    return from_units(thousandths, QUANTITY_SCALE)
