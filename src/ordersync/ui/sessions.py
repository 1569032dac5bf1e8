"""Console sessions: a signed cookie (Starlette's SessionMiddleware, itsdangerous) holding the
user's id, the account's session version and when it was last used. HttpOnly, SameSite=Lax,
Path=/ui, Secure when the request came over https; it ends after `ui.idle_minutes` unused
(the signature's age and the last use are both checked), at logout, and when the account is
disabled or its password changes (the session version moves on)."""

from __future__ import annotations

import time
from typing import Any

from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from ..db import users
from ..db.unit_of_work import Database
from .access import Staff

COOKIE = "ordersync_console"


class LoginRequired(Exception):
    """No session, or it ended: the login page, or 401 for the live stream and lookups."""


class SchemeSessions:
    """SessionMiddleware with the cookie marked Secure on requests that came over https."""

    def __init__(self, app: ASGIApp, secret_key: str, max_age: int, path: str) -> None:
        options: dict[str, Any] = {
            "secret_key": secret_key,
            "session_cookie": COOKIE,
            "max_age": max_age,
            "path": path,
            "same_site": "lax",
        }
        self.plain = SessionMiddleware(app, https_only=False, **options)
        self.secure = SessionMiddleware(app, https_only=True, **options)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        https = scope.get("scheme") in ("https", "wss")
        await (self.secure if https else self.plain)(scope, receive, send)


def start_session(request: Request, user: users.User) -> None:
    request.session.clear()
    request.session.update({"uid": user.id, "ver": user.session_version, "seen": time.time()})


def end_session(request: Request) -> None:
    request.session.clear()


async def current_staff(
    request: Request,
    db: Database,
    idle_seconds: float,
    default_locale: str,
    locale_of: Any,
    touch: bool = True,
) -> Staff:
    """The staff member of this request's session, or LoginRequired. `touch`: counts as use
    (the live stream does not: a dashboard left open still ends its session when idle)."""
    session = request.session
    uid, version, seen = session.get("uid"), session.get("ver"), session.get("seen")
    if not isinstance(uid, int) or not isinstance(seen, int | float):
        raise LoginRequired()
    now = time.time()
    if now - seen > idle_seconds:
        session.clear()
        raise LoginRequired()
    async with db.connect(autocommit=True) as conn:
        user = await users.by_id(conn, uid)
    if user is None or user.disabled or user.session_version != version:
        session.clear()
        raise LoginRequired()
    if touch:
        session["seen"] = now
    locale = user.locale or locale_of(request, default_locale)
    return Staff(user.id, user.name, user.role, user.store_ids, locale)


def session_alive(request: Request, idle_seconds: float) -> bool:
    seen = request.session.get("seen")
    return isinstance(seen, int | float) and time.time() - seen <= idle_seconds
