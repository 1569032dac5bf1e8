"""What every console route gets: the console, and the staff member of the session."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ...domain.errors import Forbidden, InvalidRequest
from ...services.ports import Store
from ..access import Staff
from ..app import Console


async def console(request: Request) -> Console:
    found: Console = request.app.state.console
    return found


async def staff(request: Request) -> Staff:
    found: Console = request.app.state.console
    return await found.staff(request)


Con = Annotated[Console, Depends(console)]
Me = Annotated[Staff, Depends(staff)]


def require(me: Staff, screen: str) -> None:
    if not me.sees_screen(screen):
        raise Forbidden("this screen is not for your role", screen=screen)


def blank(value: str | None) -> str | None:
    """Form and query values: an empty field is no value."""
    if value is None:
        return None
    value = value.strip()
    return value or None


async def visible_stores(con: Console, me: Staff) -> list[Store]:
    return [s for s in await con.db.fresh_stores() if s.active and me.sees_store(s.id)]


def store_by_code(stores: list[Store], code: str | None) -> Store | None:
    if code is None:
        return None
    found = next((s for s in stores if s.code == code), None)
    if found is None:
        raise InvalidRequest(f"no store {code} here", store=code)
    return found
