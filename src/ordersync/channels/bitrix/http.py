"""POST /bitrix/events: the handler URL of the site's outgoing webhook (Bitrix admin:
Developer resources -> Other -> Outgoing webhook, events ONSALEORDERSAVED and
OnSaleBeforeOrderDelete, handler `https://<hub>/bitrix/events`).

The body is form-encoded (`event`, `data[FIELDS][ID]`, `ts`, `auth[application_token]`, ...).
The sender is known by `auth[application_token]` alone, compared in constant time with
`[bitrix] application_token`: a mismatch is answered 401 and records nothing. A matching event
is written to the inbox and answered at once; the site worker reads the order and applies it
(entrypoints/site_task.py), so a slow site or a crash never loses an event. Errors are the
API's `{"error": code, "detail": ...}`, never a 500. With no `[bitrix] application_token`
configured the route answers 404 `not_found` (the hub takes no site events)."""

from __future__ import annotations

import json
import re

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ...config import BitrixSettings
from ...db.unit_of_work import Database
from ...domain.errors import NotFound
from ...services import site_inbox
from ...services.context import Context
from .events import MAX_BODY_BYTES, ORDER_EVENTS, form_fields, read_event
from .values import BadSitePayload

PATH = "/bitrix/events"
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def router(settings: BitrixSettings) -> APIRouter:
    api = APIRouter(tags=["bitrix"])

    @api.post(PATH, summary="An outgoing event of the Bitrix site (form-encoded)")
    async def receive(request: Request) -> JSONResponse:
        token = settings.application_token
        if not token:
            raise NotFound(
                "the hub takes no Bitrix events: [bitrix] application_token is not configured"
            )
        body = await _body(request)
        fields = form_fields(body)
        event = read_event(fields, token)  # Unauthorized (401) before anything is read
        for key, value in fields.items():
            if UNSTORABLE.search(key) or UNSTORABLE.search(value):
                raise BadSitePayload("the event carries text that cannot be stored", field=key)
        db: Database = request.app.state.db
        ctx: Context = request.app.state.context
        if not event.is_order_event:
            return JSONResponse({"stored": False, "event": event.name})
        kept = {k: v for k, v in fields.items() if k != "auth[application_token]"}
        inbox_id = await site_inbox.store_event(
            db.uow, event.name, event.order_id, event.xml_id, json.dumps(kept), ctx
        )
        worker = getattr(request.app.state, "site_task", None)
        if worker is not None:
            worker.wake()
        return JSONResponse({"stored": True, "event": event.name, "inbox_id": inbox_id})

    return api


async def _body(request: Request) -> bytes:
    """At most MAX_BODY_BYTES, read as it arrives (an event is well under a kilobyte)."""
    declared = request.headers.get("content-length") or "0"
    size = int(declared) if declared.isdigit() else 0
    if size > MAX_BODY_BYTES:
        raise BadSitePayload("event body too large", bytes=size)
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > MAX_BODY_BYTES:
            raise BadSitePayload("event body too large", bytes=total)
        chunks.append(chunk)
    return b"".join(chunks)


__all__ = ["ORDER_EVENTS", "PATH", "router"]
