"""The console as a sub-application mounted at /ui, built from the settings by the API's
composition root (api/app.py), which also hands it the database when it starts.

Around its routes, outermost first: Server-Timing and security headers, the form guard,
asgi-csrf (a signed double-submit token in every form, checked on every POST), the session
cookie. Static files (/ui/static) and the login page are the only things served without a
session. The API's middleware and error bodies stay as they were: the console has its own
error pages, and none of its middleware is on the API's path.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asgi_csrf
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Scope, Send

from ..api.errors import status_of
from ..config import Settings
from ..db.availability import DatabaseUnavailable, is_unavailable
from ..db.unit_of_work import Database
from ..domain.errors import ConfigError, OrdersyncError
from ..services.context import Context
from .access import SCREENS, Staff
from .accounts import Authenticator
from .guards import FormGuard, Timed
from .i18n import Catalogs, Formats, negotiate
from .labels import QUESTIONS, STATUS_TITLES, label
from .live import Broadcaster
from .sessions import LoginRequired, SchemeSessions, current_staff

PREFIX = "/ui"
STATIC = Path(__file__).parent / "static"
CSRF_FIELD = "csrftoken"
log = logging.getLogger("ordersync.ui")


def require_secret_key(settings: Settings) -> None:
    """A server on PostgreSQL (several processes, restarts) needs the one key all of them sign
    with: `serve` and the ASGI factory refuse to start without it."""
    if settings.ui.enabled and not settings.ui.secret_key and not settings.is_sqlite:
        raise ConfigError(
            "ui.secret_key is not set: give the console's signing key in "
            "ORDERSYNC_UI__SECRET_KEY (for example `python -c 'import secrets; "
            "print(secrets.token_urlsafe(48))'`), or switch the console off with "
            "ui.enabled = false"
        )


def secret_key_of(settings: Settings) -> str:
    """ui.secret_key, or (an app built in-process without one, as tests do) a key for this
    process only: its sessions end with it. `serve` keeps one in var/ on SQLite."""
    if settings.ui.secret_key:
        return settings.ui.secret_key
    if not settings.is_sqlite:
        log.warning("ui.secret_key is not set: console sessions last as long as this process")
    return secrets.token_urlsafe(48)


class Console:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ui = settings.ui
        self.secret_key = secret_key_of(settings)
        self.idle_seconds = settings.ui.idle_minutes * 60
        self.zone = ZoneInfo(settings.ui.timezone)
        self.catalogs = Catalogs()
        self.templates = Environment(
            loader=PackageLoader("ordersync.ui", "templates"),
            autoescape=select_autoescape(default=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.globals.update(label=label, questions=QUESTIONS, status_titles=STATUS_TITLES)
        self._db: Database | None = None
        self._ctx: Context | None = None
        self.authenticator: Authenticator | None = None
        self.broadcaster: Broadcaster | None = None
        self._row_macro: Any = None
        self.app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
        self.app.state.console = self
        self._install_routes()
        self._install_errors()

    # --- the composition root hands over the database -----------------------------------

    async def start(self, db: Database, ctx: Context) -> None:
        self._db, self._ctx = db, ctx
        self.authenticator = Authenticator(db, self.ui.login_delay_seconds)
        self.broadcaster = Broadcaster(db, self.render_rows)

    async def stop(self) -> None:
        if self.broadcaster is not None:
            await self.broadcaster.close()

    @property
    def db(self) -> Database:
        assert self._db is not None, "the console has not been started"
        return self._db

    @property
    def ctx(self) -> Context:
        assert self._ctx is not None, "the console has not been started"
        return self._ctx

    def asgi(self) -> ASGIApp:
        sessions = SchemeSessions(self.app, self.secret_key, int(self.idle_seconds) + 1, PREFIX)
        protected = asgi_csrf.asgi_csrf(
            sessions,
            signing_secret=self.secret_key,
            cookie_path=PREFIX,
            cookie_samesite="Lax",
            always_protect={f"{PREFIX}/login"},
            send_csrf_failed=self._csrf_failed,
        )
        return Timed(FormGuard(protected, self._refuse))

    # --- who is asking ------------------------------------------------------------------

    def locale_of(self, request: Request, default: str) -> str:
        return negotiate(request.headers.get("accept-language"), default)

    async def staff(self, request: Request, touch: bool = True) -> Staff:
        return await current_staff(
            request, self.db, self.idle_seconds, self.ui.default_locale, self.locale_of, touch
        )

    # --- rendering ----------------------------------------------------------------------

    def formats(self, locale: str) -> Formats:
        return Formats(locale, self.zone)

    def context(self, locale: str) -> dict[str, Any]:
        translations = self.catalogs.get(locale)
        return {
            "_": translations.gettext,
            "ngettext": translations.ngettext,
            "fmt": self.formats(locale),
            "locale": locale,
            "base": PREFIX,
        }

    def render(
        self,
        request: Request,
        staff: Staff | None,
        template: str,
        status_code: int = 200,
        **values: Any,
    ) -> HTMLResponse:
        locale = staff.locale if staff else self.locale_of(request, self.ui.default_locale)
        token = request.scope.get(CSRF_FIELD)
        page = self.templates.get_template(template).render(
            **self.context(locale),
            request=request,
            staff=staff,
            screens=[(p, n) for p, n, roles in SCREENS if staff and staff.role in roles],
            csrftoken=token() if callable(token) else "",
            **values,
        )
        return HTMLResponse(page, status_code=status_code, headers={"Cache-Control": "no-store"})

    def render_rows(self, rows: list[Any], locale: str) -> dict[str, str]:
        """Order rows as the orders screen shows them, by order id (for the live stream)."""
        if self._row_macro is None:
            module = self.templates.get_template("_order_row.html").module
            self._row_macro = module.order_row  # type: ignore[attr-defined]
        macro = self._row_macro
        values = self.context(locale)
        codes = self.db.store_codes()
        return {r.id: str(macro(r, codes, values["_"], values["fmt"], PREFIX)) for r in rows}

    # --- refusals -------------------------------------------------------------------------

    async def _refuse(self, scope: Scope, send: Send, status: int, message: str) -> None:
        request = Request(scope)
        locale = self.locale_of(request, self.ui.default_locale)
        translate = self.catalogs.get(locale).gettext
        body = self.templates.get_template("error.html").render(
            **self.context(locale),
            request=request,
            staff=None,
            screens=[],
            csrftoken="",
            status=status,
            message=translate(message),
        )
        response = HTMLResponse(body, status_code=status)
        await response(scope, _no_receive, send)

    async def _csrf_failed(self, scope: Scope, send: Send, _reason: Any) -> None:
        await self._refuse(
            scope, send, 403, "the form has expired or came from elsewhere: reload the page"
        )

    def _install_routes(self) -> None:
        from .routes import (
            attention,
            auth,
            live,
            new_order,
            orders,
            picking,
            stock,
            system,
        )

        for module in (auth, orders, new_order, stock, picking, attention, system, live):
            self.app.include_router(module.router)
        self.app.mount("/static", StaticFiles(directory=STATIC), name="static")

    def _install_errors(self) -> None:
        app = self.app

        async def login_required(request: Request, _: Exception) -> Response:
            if _wants_json(request):
                return JSONResponse({"error": "unauthorized"}, status_code=401)
            target = request.url.path
            if request.method == "GET" and request.url.query:
                target += "?" + request.url.query
            response = RedirectResponse(f"{PREFIX}/?next={_quote(target)}", status_code=303)
            return response

        async def refused(request: Request, exc: Exception) -> Response:
            assert isinstance(exc, OrdersyncError)
            status = status_of(exc)
            if status == 500:
                raise exc
            return await self._error_page(request, status, exc.message)

        async def invalid(request: Request, exc: Exception) -> Response:
            return await self._error_page(request, 422, "the request is not valid")

        async def http_error(request: Request, exc: Exception) -> Response:
            assert isinstance(exc, StarletteHTTPException)
            messages = {404: "not found", 405: "not allowed here"}
            return await self._error_page(
                request, exc.status_code, messages.get(exc.status_code, str(exc.detail))
            )

        async def unavailable(request: Request, exc: Exception) -> Response:
            if not is_unavailable(exc):
                raise exc
            log.warning("database unavailable: %s", exc)
            page = await self._error_page(request, 503, "the database did not answer; retry")
            page.headers["Retry-After"] = "2"
            return page

        app.add_exception_handler(LoginRequired, login_required)
        app.add_exception_handler(OrdersyncError, refused)
        app.add_exception_handler(RequestValidationError, invalid)
        app.add_exception_handler(StarletteHTTPException, http_error)
        app.add_exception_handler(DatabaseUnavailable, unavailable)
        for kind in _DATABASE_ERRORS:
            app.add_exception_handler(kind, unavailable)

    async def _error_page(self, request: Request, status: int, message: str) -> Response:
        if _wants_json(request):
            return JSONResponse({"error": message}, status_code=status)
        staff = None
        try:
            staff = await self.staff(request, touch=False)
        except Exception:  # an error page never fails for want of a session
            staff = None
        locale = staff.locale if staff else self.locale_of(request, self.ui.default_locale)
        translate = self.catalogs.get(locale).gettext
        return self.render(
            request, staff, "error.html", status, status=status, message=translate(message)
        )


MACHINE_PATHS = (f"{PREFIX}/live", f"{PREFIX}/products")  # read by the pages' scripts


def _wants_json(request: Request) -> bool:
    return (
        "application/json" in request.headers.get("accept", "") or request.url.path in MACHINE_PATHS
    )


def _quote(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="/")


async def _no_receive() -> dict[str, Any]:
    return {"type": "http.disconnect"}


def _database_errors() -> tuple[type[Exception], ...]:
    import asyncpg
    from sqlalchemy.exc import SQLAlchemyError

    return (SQLAlchemyError, asyncpg.PostgresError, asyncpg.InterfaceError, ConnectionError)


_DATABASE_ERRORS = _database_errors()


def install_console(app: FastAPI, settings: Settings) -> Console:
    """Mounts the console at /ui; the caller starts it with the database in its lifespan."""
    console = Console(settings)
    app.mount(PREFIX, console.asgi(), name="console")
    app.state.console = console
    return console
