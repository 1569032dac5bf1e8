"""The Bitrix site channel's inbox and catch-up watermark (ports.SiteRecords), one transaction
each: events stored before the site is answered, claimed by one worker at a time, finished,
or left for a retry with backoff (a failing site call never loses an event)."""

from __future__ import annotations

from datetime import datetime, timedelta

from .context import Context
from .orders import UowFactory
from .ports import SiteEvent

CLAIM_SECONDS = 120  # a worker that dies lets go of its event after this
DONE = "done"
FAILED = "failed"  # refused for good: kept, with its error, for a person
WATERMARK = "orders"
BACKOFF_BASE_SECONDS = 2.0
BACKOFF_CAP_SECONDS = 300.0


def backoff(attempts: int) -> timedelta:
    """2 s, 4 s, 8 s ... up to 5 minutes after the n-th failed attempt."""
    seconds = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(0, attempts - 1))
    return timedelta(seconds=seconds)


async def store_event(
    uow_factory: UowFactory,
    event: str,
    site_order_id: str | None,
    xml_id: str | None,
    body: str,
    ctx: Context,
) -> int:
    async with uow_factory() as uow:
        inbox_id = await uow.bitrix.store_event(event, site_order_id, xml_id, body, ctx.clock())
        await uow.commit()
    return inbox_id


async def due_events(uow_factory: UowFactory, ctx: Context, limit: int = 200) -> list[int]:
    async with uow_factory() as uow:
        return await uow.bitrix.due_events(ctx.clock(), limit)


async def claim(uow_factory: UowFactory, event_id: int, ctx: Context) -> SiteEvent | None:
    now = ctx.clock()
    async with uow_factory() as uow:
        found = await uow.bitrix.claim_event(event_id, now, now + timedelta(seconds=CLAIM_SECONDS))
        await uow.commit()
    return found


async def finish(uow_factory: UowFactory, event_id: int, error: str | None, ctx: Context) -> None:
    """Applied (`error` None), or refused for good."""
    async with uow_factory() as uow:
        state = DONE if error is None else FAILED
        await uow.bitrix.finish_event(event_id, state, error, ctx.clock())
        await uow.commit()


KEEP_APPLIED = timedelta(days=7)  # applied events are kept this long, for a look back


async def prune(uow_factory: UowFactory, ctx: Context, limit: int = 5000) -> int:
    """Applied events older than KEEP_APPLIED go, a batch at a time; failed ones stay."""
    async with uow_factory() as uow:
        gone = await uow.bitrix.prune_events(ctx.clock() - KEEP_APPLIED, limit)
        await uow.commit()
    return gone


async def retry_later(uow_factory: UowFactory, event: SiteEvent, error: str, ctx: Context) -> None:
    async with uow_factory() as uow:
        at = ctx.clock() + backoff(event.attempts)
        await uow.bitrix.retry_event(event.id, error[:2000], at)
        await uow.commit()


async def lease_watermark(
    uow_factory: UowFactory, lease: timedelta, ctx: Context
) -> tuple[bool, datetime | None]:
    now = ctx.clock()
    async with uow_factory() as uow:
        found = await uow.bitrix.lease_watermark(WATERMARK, now, now + lease)
        await uow.commit()
    return found


async def move_watermark(uow_factory: UowFactory, reached: datetime | None, ctx: Context) -> None:
    async with uow_factory() as uow:
        await uow.bitrix.move_watermark(WATERMARK, reached, ctx.clock())
        await uow.commit()
