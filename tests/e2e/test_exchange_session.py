"""The exchange session as 1C-Bitrix keeps it, for 1C and for third-party clients: the cookie
also in `Set-Cookie`, HTTP Basic accepted on any call, one session for catalog and sale, the
file_limit only advertised, zip members named without their folder; on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from ordersync.exchange import auth
from ordersync.exchange import http as exchange_http
from tests.e2e.conftest import Hub, HubFactory
from tests.e2e.helpers import delivery, line, placed
from tests.sim_1c import Offer, OneC, Product, import_xml, make_zip, offers_xml, parse_orders

D = Decimal
SHOP = "sess-store-1"
STORES = {SHOP: "Магазин 1"}


def files(count: int = 3, **doc: Any) -> list[tuple[str, bytes]]:
    formed = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)
    products = [Product(f"sess-{i}", f"Товар {i}") for i in range(count)]
    offers = [
        Offer(f"sess-{i}", f"Товар {i}", price=10, stores={SHOP: i + 1}) for i in range(count)
    ]
    return [
        ("import.xml", import_xml(products, formed=formed, **doc)),
        ("offers.xml", offers_xml(offers, STORES, formed=formed, **doc)),
    ]


async def shop_stock(hub: Hub) -> dict[str, Decimal]:
    return {p: q for (p, store), q in (await hub.on_hand()).items() if store == SHOP}


EXPECTED = {"sess-0": D(1), "sess-1": D(2), "sess-2": D(3)}


def count_pbkdf2(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    verify = auth.verify_password

    def counted(password: str, stored: str | None) -> bool:
        calls.append(password)
        return verify(password, stored)

    monkeypatch.setattr(auth, "verify_password", counted)
    return calls


# --- the cookie, from the body or from Set-Cookie -------------------------------------------


async def test_checkauth_also_sends_the_cookie_as_set_cookie(hub: Hub) -> None:
    onec = hub.onec()
    reply = await onec.checkauth("catalog")
    assert reply.status == "success", reply
    assert onec.last_response is not None
    header = onec.last_response.headers["set-cookie"]
    pair, *attributes = [part.strip() for part in header.split(";")]
    assert pair == f"{reply.lines[1]}={reply.lines[2]}"
    assert "HttpOnly" in attributes and "Path=/" in attributes


async def test_a_client_that_keeps_only_set_cookie_runs_a_catalog_exchange(hub: Hub) -> None:
    onec = hub.onec(keeps="jar")
    results = await onec.catalog_exchange(files())
    assert {name: r[0] for name, r in results.items()} == {
        "import.xml": "success",
        "offers.xml": "success",
    }, results
    assert onec.cookie is None and onec.sessid is None  # it never read them from the body
    assert await shop_stock(hub) == EXPECTED


# --- HTTP Basic on every call ---------------------------------------------------------------


async def test_a_client_that_sends_basic_on_every_call_runs_both_exchanges(
    start_hub: HubFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = await start_hub(stock={"WH1": {"TEA": 5}})
    order = await placed(hub.http, hub.net.tokens["online"], delivery(line("TEA", 1)))
    pbkdf2 = count_pbkdf2(monkeypatch)
    onec = hub.onec(keeps="basic")

    results = await onec.catalog_exchange(files())
    assert all(r[0] == "success" for r in results.values()), results
    await onec.init("sale", "2.09")
    exported = parse_orders(await onec.query())
    confirmed = await onec.success()

    assert order["id"] in exported.by_id()
    assert confirmed.status == "success", confirmed
    assert await shop_stock(hub) == EXPECTED
    # checkauth verifies, and the first call without a cookie; the rest resume that session.
    assert onec.requests > 8
    assert len(pbkdf2) == 2


async def test_basic_without_a_session_needs_the_right_password_every_time(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = hub.onec(keeps="basic")
    assert (await good.init("catalog")).status != "failure"
    pbkdf2 = count_pbkdf2(monkeypatch)

    for wrong in (hub.onec(keeps="basic", password="wrong"), hub.onec(keeps="basic", login="x")):
        started = time.monotonic()
        reply = await wrong.call("catalog", "init")
        assert reply.raw.startswith(b"failure\n"), reply
        assert "wrong login or password" in reply.reason
        assert time.monotonic() - started >= 0.9  # the delay after a wrong guess stays
    assert len(pbkdf2) == 2  # each wrong guess ran the slow check; none was taken as known
    assert (await good.init("catalog")).status != "failure"
    assert len(pbkdf2) == 2  # the right one resumed its session


async def test_a_cookie_wins_over_basic_and_a_stale_cookie_falls_back_to_basic(hub: Hub) -> None:
    onec = hub.onec()
    await onec.checkauth("catalog")
    wrong = {"Authorization": hub.onec(password="wrong").basic()}
    assert (await onec.call("catalog", "init", headers=wrong)).raw.startswith(b"zip=")

    onec.cookie = (auth.COOKIE_NAME, "expired-or-unknown")
    onec.sessid = None
    reply = await onec.call("catalog", "init", headers={"Authorization": onec.basic()})
    assert reply.raw.startswith(b"zip="), reply
    reply = await onec.call("catalog", "init")
    assert reply.raw.startswith(b"failure\n") and "checkauth" in reply.reason, reply


# --- one session, both exchanges ------------------------------------------------------------


async def test_one_session_runs_the_catalog_and_the_sale_exchange(start_hub: HubFactory) -> None:
    hub = await start_hub(stock={"WH1": {"TEA": 5}})
    order = await placed(hub.http, hub.net.tokens["online"], delivery(line("TEA", 1)))
    onec = hub.onec()
    results = await onec.catalog_exchange(files())  # checkauth with type=catalog
    assert all(r[0] == "success" for r in results.values()), results

    init = await onec.init("sale", "2.09")
    exported = parse_orders(await onec.query())
    confirmed = await onec.success()
    again = await onec.call("catalog", "import", filename="offers.xml")

    assert init.status != "failure", init
    assert order["id"] in exported.by_id()
    assert confirmed.status == "success", confirmed
    assert again.status == "success", again
    assert await shop_stock(hub) == EXPECTED


# --- file_limit is advertised, max_upload_bytes enforced ------------------------------------


async def test_a_post_larger_than_file_limit_is_accepted_up_to_max_upload_bytes(
    start_hub: HubFactory,
) -> None:
    hub = await start_hub(file_limit=20000)
    onec = hub.onec()
    await onec.open("catalog")
    (_, products), (_, offers) = files(150)
    assert len(offers) > 3 * 20000

    for name, data in (("import.xml", products), ("offers.xml", offers)):
        reply = await onec.post_chunk("catalog", name, data)  # one POST, whatever file_limit
        assert reply.status == "success", reply
        assert (await onec.import_file("catalog", name))[0] == "success"
    assert (await shop_stock(hub))["sess-149"] == D(150)


async def test_a_post_larger_than_max_upload_bytes_is_refused(start_hub: HubFactory) -> None:
    hub = await start_hub(file_limit=1024, max_upload_bytes=4096)
    onec = hub.onec()
    await onec.open("catalog")
    reply = await onec.post_chunk("catalog", "offers.xml", files(150)[1][1])
    assert reply.raw.startswith(b"failure\n"), reply
    assert "max_upload_bytes=4096" in reply.reason


async def test_max_upload_bytes_below_file_limit_is_a_configuration_error(
    start_hub: HubFactory,
) -> None:
    with pytest.raises(ValueError, match="max_upload_bytes"):
        await start_hub(file_limit=100_000, max_upload_bytes=4096)


# --- names of unpacked zip members ----------------------------------------------------------


async def test_a_zip_member_may_be_imported_by_its_bare_name(start_hub: HubFactory) -> None:
    hub = await start_hub(zip=True)
    onec = hub.onec()
    await onec.open("catalog")
    (_, products), (_, offers) = files()
    archive = make_zip({"goods/1/import___x1.xml": products, "goods/1/offers___x1.xml": offers})
    await onec.upload("catalog", "import.zip", archive)

    for name in ("import___x1.xml", "offers___x1.xml"):
        status, lines, _ = await onec.import_file("catalog", name)
        assert status == "success", lines
    assert await shop_stock(hub) == EXPECTED


async def test_an_ambiguous_bare_name_fails_naming_the_candidates(start_hub: HubFactory) -> None:
    hub = await start_hub(zip=True)
    onec = hub.onec()
    await onec.open("catalog")
    offers = files()[1][1]
    archive = make_zip({"goods/1/rests___a.xml": offers, "goods/2/rests___a.xml": offers})
    await onec.upload("catalog", "import.zip", archive)

    status, lines, _ = await onec.import_file("catalog", "rests___a.xml")

    assert status == "failure"
    assert "ambiguous" in lines[1]
    assert "goods/1/rests___a.xml" in lines[1] and "goods/2/rests___a.xml" in lines[1]
    status, lines, _ = await onec.import_file("catalog", "goods/2/rests___a.xml")
    assert status == "success", lines


# --- not configured -------------------------------------------------------------------------


@pytest.mark.parametrize("keeps", ["body", "basic"])
async def test_without_a_password_hash_the_exchange_says_it_is_not_configured(
    start_hub: HubFactory, keeps: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Were the answer delayed as a wrong password's is, it would take 30 s: far beyond what a
    # loaded machine adds to an undelayed answer.
    monkeypatch.setattr(exchange_http, "_FAILED_LOGIN_DELAY", 30.0)
    hub = await start_hub(password_hash=None)
    onec: OneC = hub.onec(keeps=keeps)
    started = time.monotonic()
    reply = await (onec.checkauth("catalog") if keeps == "body" else onec.init("catalog"))
    assert reply.raw.startswith(b"failure\n"), reply
    assert "not configured" in reply.reason
    assert "exchange.password_hash" in reply.reason and "hash-password" in reply.reason
    assert "wrong login" not in reply.reason
    assert time.monotonic() - started < 15
