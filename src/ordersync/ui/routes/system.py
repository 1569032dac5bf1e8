"""System health (admins): the 1C exchange's last sessions and log, the relay per sink (the
figures /metrics gives), dead letters with retry and drop, the connections' last contact."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from ...api.routes.metrics import database_figures
from ...db import console_system, relay
from ...domain.errors import InvalidRequest
from ..dead_letters import drop, retry
from .deps import Con, Me, require

router = APIRouter()


@router.get("/system")
async def system_screen(
    request: Request, con: Con, me: Me, done: str | None = None, failed: str | None = None
) -> Response:
    require(me, "system")
    figures = await database_figures(con.db, con.settings)
    async with con.db.connect(autocommit=True) as conn:
        sessions = await console_system.last_sessions(conn)
        log_lines = await console_system.recent_log(conn)
        contacts = await console_system.last_contacts(conn)
        dead = await relay.dead_letters(conn)
    return con.render(
        request,
        me,
        "system.html",
        figures=figures,
        sessions=sessions,
        log_lines=log_lines,
        contacts=contacts,
        dead=dead,
        sinks=sorted(con.settings.sinks),
        exchange_enabled=con.settings.exchange.enabled,
        done=done,
        failed=failed,
    )


@router.post("/system/dead-letters")
async def dead_letter_action(
    request: Request,
    con: Con,
    me: Me,
    sink: Annotated[str, Form(max_length=64)],
    event: Annotated[int, Form(ge=1, le=2**62)],
    action: Annotated[str, Form(max_length=8)],
) -> Response:
    require(me, "system")
    if action == "retry":
        failure = await retry(con.db, con.settings, sink, event)
        if failure is not None:
            return RedirectResponse("/ui/system?failed=retry", status_code=303)
    elif action == "drop":
        await drop(con.db, sink, event)
    else:
        raise InvalidRequest("retry or drop", field="action")
    return RedirectResponse(f"/ui/system?done={action}", status_code=303)
