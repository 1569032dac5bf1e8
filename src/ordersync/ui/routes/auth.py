"""Logging in and out, and the language of the screens."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from ...db import users
from ...services.context import utcnow
from ..i18n import LOCALES
from ..sessions import LoginRequired, end_session, start_session
from .deps import Con, Me

router = APIRouter()
HOME = "/ui/orders"


def _safe_next(target: str | None) -> str:
    """Only a page of the console: never another host (no open redirect)."""
    if target and target.startswith("/ui/") and not target.startswith("//") and "\\" not in target:
        return target
    return HOME


@router.get("/")
async def login_page(request: Request, con: Con, next: str | None = None) -> Response:
    try:
        await con.staff(request)
    except LoginRequired:
        return con.render(request, None, "login.html", next=_safe_next(next), failed=False)
    return RedirectResponse(_safe_next(next), status_code=303)


@router.post("/login")
async def login(
    request: Request,
    con: Con,
    username: Annotated[str, Form(max_length=200)] = "",
    password: Annotated[str, Form(max_length=2000)] = "",
    next: Annotated[str, Form(max_length=2000)] = HOME,
) -> Response:
    assert con.authenticator is not None
    user = await con.authenticator.login(username.strip(), password)
    if user is None:
        return con.render(
            request,
            None,
            "login.html",
            401,
            next=_safe_next(next),
            failed=True,
            username=username.strip(),
        )
    start_session(request, user)
    return RedirectResponse(_safe_next(next), status_code=303)


@router.post("/logout")
async def logout(request: Request) -> Response:
    end_session(request)
    return RedirectResponse("/ui/", status_code=303)


@router.post("/language")
async def language(
    request: Request,
    con: Con,
    me: Me,
    locale: Annotated[str, Form(max_length=8)] = "",
    back: Annotated[str, Form(max_length=2000)] = HOME,
) -> Response:
    chosen = locale if locale in LOCALES else None  # none: the browser's language again
    async with con.db.uow() as uow:
        await users.set_locale(uow.conn, me.id, chosen, utcnow())
        await uow.commit()
    return RedirectResponse(_safe_next(back), status_code=303)
