"""Retrying and dropping dead letters from the console, as `ordersync events retry|drop` do
(relay/worker.py redeliver_dead, db/relay.py forget_dead)."""

from __future__ import annotations

import logging

from ..config import Settings
from ..db import relay as relay_store
from ..db.unit_of_work import Database
from ..relay.configured import build_sinks
from ..relay.worker import redeliver_dead
from ..sinks.base import DeliveryFailed

log = logging.getLogger("ordersync.ui")


async def retry(db: Database, settings: Settings, sink_name: str, event_id: int) -> str | None:
    """Sends the event to its sink again now; None when delivered, else why not."""
    conf = settings.sinks.get(sink_name)
    if conf is None:
        return f"no sink {sink_name} is configured"
    sink = (await build_sinks(db, {sink_name: conf}, bitrix=settings.bitrix))[sink_name]
    try:
        await redeliver_dead(db, sink, [event_id])
    except (DeliveryFailed, TimeoutError, OSError) as exc:
        log.warning("dead letter %s for %s still fails: %s", event_id, sink_name, exc)
        return str(exc) or type(exc).__name__
    finally:
        await sink.close()
    return None


async def drop(db: Database, sink_name: str, event_id: int) -> int:
    async with db.uow() as uow:
        count = await relay_store.forget_dead(uow.conn, sink_name, [event_id])
        await uow.commit()
    return count
