"""A small demo network for `make run`: 3 stores, 20 products, stock, a token per role, and a
console login per staff role."""

from __future__ import annotations

import os
import re
import secrets
from decimal import Decimal
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from ..db import catalog, tokens, users
from ..db.tables import stores
from ..db.unit_of_work import Database
from ..domain.commands import ProductRef, StockDocument, StockLine
from ..domain.types import PosMode, Role, StaffRole, StoreKind, Unit
from ..services import stock
from ..services.context import Context, utcnow
from ..ui.accounts import hash_password

STORES = [
    (
        "WH1",
        "Central warehouse",
        StoreKind.WAREHOUSE,
        True,
        10,
        False,
        Decimal(0),
        PosMode.STOCK_ONLY,
    ),
    ("S01", "Shop on Lenina 1", StoreKind.SHOP, True, 20, True, Decimal(1), PosMode.ORDER),
    ("S02", "Shop on Mira 15", StoreKind.SHOP, False, 100, True, Decimal(1), PosMode.STOCK_ONLY),
]

PRODUCTS = [
    ("TEA-001", "Green tea 100 g", Unit.PCS, "349.00"),
    ("TEA-002", "Black tea 250 g", Unit.PCS, "429.00"),
    ("COF-001", "Coffee beans 1 kg", Unit.PCS, "1890.00"),
    ("COF-002", "Ground coffee 250 g", Unit.PCS, "590.00"),
    ("SUG-001", "Sugar, loose", Unit.KG, "89.90"),
    ("HON-001", "Buckwheat honey 500 g", Unit.PCS, "650.00"),
    ("CHO-001", "Dark chocolate 90 g", Unit.PCS, "159.00"),
    ("CHO-002", "Milk chocolate 90 g", Unit.PCS, "139.00"),
    ("BIS-001", "Oat biscuits 300 g", Unit.PCS, "119.00"),
    ("MUG-001", "Ceramic mug 350 ml", Unit.PCS, "450.00"),
    ("MUG-002", "Glass mug 250 ml", Unit.PCS, "390.00"),
    ("KET-001", "Electric kettle 1.7 l", Unit.PCS, "2490.00"),
    ("PRS-001", "French press 600 ml", Unit.PCS, "1290.00"),
    ("FIL-001", "Paper filters, 100 pcs", Unit.PCS, "199.00"),
    ("NUT-001", "Walnuts, loose", Unit.KG, "990.00"),
    ("NUT-002", "Almonds, loose", Unit.KG, "1190.00"),
    ("SYR-001", "Caramel syrup 1 l", Unit.PCS, "590.00"),
    ("MLK-001", "Oat milk 1 l", Unit.PCS, "229.00"),
    ("GFT-001", "Gift box Tea Time", Unit.PCS, "2990.00"),
    ("GFT-002", "Gift box Coffee Lover", Unit.PCS, "3490.00"),
]

STOCK = {"WH1": Decimal(40), "S01": Decimal(6), "S02": Decimal(3)}

# The demo shops linked to Evotor stores (their uuids in the Evotor cloud), so the demo's till
# sales come in through /evotor as an Evotor cloud sends them.
EVOTOR_STORES = {
    "S01": "20200101-0000-4000-8000-0000000000a1",
    "S02": "20200101-0000-4000-8000-0000000000a2",
}


async def is_empty(db: Database) -> bool:
    async with db.connect(autocommit=True) as conn:
        count = (await conn.execute(select(func.count()).select_from(stores))).scalar_one()
    return int(count) == 0


async def seed_demo(db: Database, token_file: Path | None) -> dict[str, str]:
    """Seeds an empty database; returns the demo tokens by role (and writes them to a file
    only the owner can read, since tokens are stored hashed and cannot be shown again)."""
    now = utcnow()
    async with db.uow() as uow:
        for code, name, kind, online, priority, pickup, safety, mode in STORES:
            await catalog.insert_store(
                uow.conn,
                catalog.store_values(
                    code,
                    name,
                    kind,
                    serves_online=online,
                    online_priority=priority,
                    is_pickup_point=pickup,
                    safety_stock=safety,
                    pos_mode=mode,
                ),
                now,
            )
        for sku, name, unit, price in PRODUCTS:
            await catalog.insert_product(
                uow.conn,
                {
                    "sku": sku,
                    "xml_id": f"demo-{sku.lower()}",
                    "name": name,
                    "unit": unit.value,
                    "price": Decimal(price),
                    "barcode": None,
                    "active": True,
                },
                now,
            )
        store_ids = {s.code: s.id for s in await catalog.all_stores(uow.conn)}
        for code, uuid in EVOTOR_STORES.items():  # the shops' tills speak Evotor
            await catalog.update_store(uow.conn, store_ids[code], {"evotor_uuid": uuid}, now)
        issued = {}
        for role in Role:
            scope = [store_ids["S01"]] if role is Role.POS else []
            _, token = await tokens.create_token(uow.conn, f"demo-{role.value}", role, scope, now)
            issued[role.value] = token
        await uow.commit()
    db.forget_stores()
    ctx = Context()
    for code, qty in STOCK.items():
        lines = tuple(StockLine(ProductRef(sku=sku), qty) for sku, *_ in PRODUCTS)
        await stock.receive(db.uow, StockDocument(code, f"DEMO-{code}", lines), ctx, None)
    if token_file is not None:
        _write_private(token_file, "".join(f"{role}={tok}\n" for role, tok in issued.items()))
    return issued


def demo_token_file(database_url: str) -> Path:
    """Where the demo tokens of this database are kept: one file per database, so a `serve`
    on another database never overwrites the tokens of one still running. Beside an SQLite
    file (var/ordersync.db: var/ordersync.demo-tokens.txt); else under var/, named by host,
    port and database."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        path = Path(url.database)
        return path.with_name(f"{path.stem}.demo-tokens.txt")
    name = f"{url.host or 'localhost'}-{url.port or 5432}-{url.database or 'default'}"
    return Path("var") / f"demo-tokens-{re.sub(r'[^A-Za-z0-9._-]', '_', name)}.txt"


def _write_private(path: Path, content: str) -> None:
    """Created readable by the owner only, before anything is written to it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(content)


_READABLE = "abcdefghijkmnpqrstuvwxyz23456789"  # no look-alikes to misread from a terminal
# Console logins of the demo: (name, role, store codes).
DEMO_USERS = [
    ("operator", StaffRole.OPERATOR, ()),
    ("admin", StaffRole.ADMIN, ()),
    ("shop1", StaffRole.STORE, ("S01",)),
]


async def seed_demo_users(db: Database, login_file: Path | None) -> dict[str, str]:
    """Console logins for the demo network, when it has none yet: passwords by user name,
    written to a file only the owner can read (they are stored hashed)."""
    async with db.uow() as uow:
        if await users.count_users(uow.conn):
            return {}
        known = {s.code: s.id for s in await catalog.all_stores(uow.conn)}
        issued: dict[str, str] = {}
        for name, role, codes in DEMO_USERS:
            if any(c not in known for c in codes):
                continue
            password = "".join(secrets.choice(_READABLE) for _ in range(12))
            hashed = await hash_password(password)
            await users.create_user(
                uow.conn, name, role, [known[c] for c in codes], hashed, utcnow()
            )
            issued[name] = password
        await uow.commit()
    if login_file is not None and issued:
        _write_private(login_file, "".join(f"{n} {p}\n" for n, p in issued.items()))
    return issued


def _beside_database(database_url: str, suffix: str, prefix: str) -> Path:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        path = Path(url.database)
        return path.with_name(f"{path.stem}.{suffix}")
    name = f"{url.host or 'localhost'}-{url.port or 5432}-{url.database or 'default'}"
    return Path("var") / f"{prefix}-{re.sub(r'[^A-Za-z0-9._-]', '_', name)}.txt"


def demo_login_file(database_url: str) -> Path:
    """Where the demo's console logins of this database are kept (beside its tokens)."""
    return _beside_database(database_url, "demo-logins.txt", "demo-logins")


def console_key_file(database_url: str) -> Path:
    """Where `serve` keeps the console's signing key of an SQLite database it made one for."""
    return _beside_database(database_url, "console-key", "console-key")


def console_key(database_url: str) -> str:
    """The signing key kept for this database, made (readable by the owner only) if missing."""
    path = console_key_file(database_url)
    if path.is_file():
        key = path.read_text().strip()
        if len(key) >= 32:
            return key
    key = secrets.token_urlsafe(48)
    _write_private(path, key + "\n")
    return key
