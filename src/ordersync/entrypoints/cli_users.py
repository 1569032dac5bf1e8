"""`ordersync user`: staff accounts of the console (operators, admins, store staff)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Annotated

import typer

from ..config import Settings
from ..db import users
from ..db.catalog import all_stores
from ..domain.errors import OrdersyncError
from ..domain.types import StaffRole
from ..services.context import utcnow
from ..ui.accounts import check_password_rules, hash_password
from .cli_db import opened

user_app = typer.Typer(help="Staff accounts of the console at /ui/ (passwords stored as argon2).")

PasswordStdin = Annotated[
    bool,
    typer.Option(
        "--password-stdin",
        help="read the password from standard input (its first line) instead of asking",
    ),
]


def _password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    try:
        check_password_rules(password)
    except OrdersyncError as exc:
        typer.echo(exc.message, err=True)
        raise typer.Exit(2) from exc
    return password


def register(app: typer.Typer, settings: Callable[[], Settings]) -> None:
    app.add_typer(user_app, name="user")

    @user_app.command("create")
    def create(
        name: str,
        role: Annotated[StaffRole, typer.Option(help="operator, admin or store")],
        store: Annotated[
            list[str] | None, typer.Option(help="store code (repeat); a store user needs one")
        ] = None,
        password_stdin: PasswordStdin = False,
    ) -> None:
        """Create a staff account."""
        codes = store or []
        if role is StaffRole.STORE and not codes:
            typer.echo("a store user sees its own stores: give --store", err=True)
            raise typer.Exit(2)
        if role is not StaffRole.STORE and codes:
            typer.echo("only store users are scoped to stores; leave out --store", err=True)
            raise typer.Exit(2)
        if not 1 <= len(name) <= 64 or name != name.strip():
            typer.echo("a name has 1 to 64 characters, without spaces around", err=True)
            raise typer.Exit(2)
        password = _password(password_stdin)

        async def run() -> int:
            async with opened(settings()) as db, db.uow() as uow:
                known = {s.code: s.id for s in await all_stores(uow.conn)}
                missing = [c for c in codes if c not in known]
                if missing:
                    typer.echo(f"unknown store(s): {', '.join(missing)}", err=True)
                    raise typer.Exit(2)
                hashed = await hash_password(password)
                user_id = await users.create_user(
                    uow.conn, name, role, [known[c] for c in codes], hashed, utcnow()
                )
                await uow.commit()
                return user_id

        try:
            user_id = asyncio.run(run())
        except OrdersyncError as exc:
            typer.echo(exc.message, err=True)
            raise typer.Exit(1) from exc
        typer.echo(f"user {user_id} {name} ({role.value}; stores: {', '.join(codes) or 'all'})")

    @user_app.command("list")
    def list_users() -> None:
        """Staff accounts (never their passwords)."""

        async def run() -> None:
            async with opened(settings()) as db, db.connect(autocommit=True) as conn:
                codes = {s.id: s.code for s in await all_stores(conn)}
                for u in await users.all_users(conn):
                    scope = ", ".join(codes.get(i, f"#{i}") for i in sorted(u.store_ids))
                    state = "disabled" if u.disabled else "active"
                    typer.echo(
                        f"{u.id:5} {u.name:20} {u.role.value:9} {state:8} stores: {scope or 'all'}"
                    )

        asyncio.run(run())

    @user_app.command("disable")
    def disable(name: str) -> None:
        """Disable an account; its open sessions end at their next request."""

        async def run() -> bool:
            async with opened(settings()) as db, db.uow() as uow:
                done = await users.disable(uow.conn, name, utcnow())
                await uow.commit()
                return done

        if not asyncio.run(run()):
            typer.echo(f"no active user {name}", err=True)
            raise typer.Exit(1)
        typer.echo(f"user {name} disabled")

    @user_app.command("set-password")
    def set_password(name: str, password_stdin: PasswordStdin = False) -> None:
        """Set a new password (and enable the account); its open sessions end."""
        password = _password(password_stdin)

        async def run() -> bool:
            async with opened(settings()) as db, db.uow() as uow:
                done = await users.set_password(
                    uow.conn, name, await hash_password(password), utcnow()
                )
                await uow.commit()
                return done

        if not asyncio.run(run()):
            typer.echo(f"no user {name}", err=True)
            raise typer.Exit(1)
        typer.echo(f"password of {name} set")
