"""How a stock figure from 1C becomes the hub's on_hand when 1C is the master: pure rules.

db/exchange_stock.py applies them to a whole chunk in one SQL statement on PostgreSQL, and
through these functions row by row on SQLite; db/reconcile.py uses them to adopt figures."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal

# The hub's movements that 1C's figure, formed at a moment, cannot contain: those whose business
# time is after the moment, and those the hub itself learnt of after it (a till reporting late).
# A business time is taken to be at most MAX_AHEAD after the recording, which bounds the search.
MAX_AHEAD = timedelta(days=1)

# A figure is skipped where a file formed later already set that stock level (an older file
# never rolls a level back). What each file set is kept this long before the newest file of
# its store; a file formed longer before than that has that store's figures skipped.
COVERAGE_KEPT = timedelta(days=30)


def bounded_formation(formed_at: datetime, arrived_at: datetime) -> datetime:
    """A file cannot have been formed after it arrived: a later ДатаФормирования (1C's clock
    ahead, or a wrong exchange.timezone) is taken as the arrival, so it freezes nothing."""
    return min(formed_at, arrived_at)


def adopted_on_hand(figure: Decimal, later: Decimal, whole_pieces: bool) -> Decimal:
    """1C's figure (a negative one taken as 0, whole pieces for piece goods) plus the hub's
    later movements, never below 0."""
    base = max(figure, Decimal(0))
    if whole_pieces:
        base = base.to_integral_value(rounding=ROUND_DOWN)
    return max(base + later, Decimal(0))
