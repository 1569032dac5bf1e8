"""POST /bitrix/events: the site's outgoing events are stored when their application token
matches (and answered at once), refused 401 with nothing recorded when it does not, and
hostile bodies are answered 4xx, never 500."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import func, select

from ordersync.api.app import create_app
from ordersync.config import BitrixSettings, Settings
from ordersync.db.tables import bitrix_inbox
from ordersync.db.unit_of_work import Database

TOKEN = "4f1c0e5b2a7d9e8c3b6a1f0d2e4c6a8b"
FORM = {"content-type": "application/x-www-form-urlencoded"}


def event(name: str = "ONSALEORDERSAVED", order_id: str = "300", token: str = TOKEN) -> str:
    return urlencode(
        {
            "event": name,
            "event_handler_id": "7",
            "data[FIELDS][ID]": order_id,
            "data[FIELDS][XML_ID]": "bx_000000000300",
            "data[FIELDS][ACTION]": "save",
            "ts": "1764400000",
            "auth[domain]": "shop.example",
            "auth[member_id]": "a223c6b3710f85df22e9377d6c4f7553",
            "auth[application_token]": token,
        }
    )


@pytest.fixture
async def site_client(settings: Settings, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    configured = settings.model_copy(update={"bitrix": BitrixSettings(application_token=TOKEN)})
    app = create_app(configured, db=db, sweeper=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
            yield http


async def inbox(db: Database) -> list[tuple[str, str | None, str]]:
    async with db.uow_read() as uow:
        i = bitrix_inbox.c
        rows = await uow.conn.execute(select(i.event, i.site_order_id, i.body).order_by(i.id))
        return [(r.event, r.site_order_id, r.body) for r in rows]


async def test_a_matching_event_is_stored_and_answered_at_once(
    site_client: httpx.AsyncClient, db: Database
) -> None:
    response = await site_client.post("/bitrix/events", content=event(), headers=FORM)

    assert response.status_code == 200, response.text
    assert response.json()["stored"] is True
    rows = await inbox(db)
    assert [(e, o) for e, o, _ in rows] == [("ONSALEORDERSAVED", "300")]
    assert TOKEN not in rows[0][2]  # the secret is not kept


async def test_event_names_arrive_upper_case_and_deletes_are_stored_too(
    site_client: httpx.AsyncClient, db: Database
) -> None:
    for name in ("onSaleBeforeOrderDelete", "ONORDERDELETED"):
        response = await site_client.post(
            "/bitrix/events", content=event(name, "301"), headers=FORM
        )
        assert response.status_code == 200, response.text
    assert [(e, o) for e, o, _ in await inbox(db)] == [
        ("ONSALEBEFOREORDERDELETE", "301"),
        ("ONORDERDELETED", "301"),
    ]


@pytest.mark.parametrize("token", ["wrong", "", TOKEN[:-1], TOKEN + "x"])
async def test_a_wrong_token_is_refused_401_and_records_nothing(
    site_client: httpx.AsyncClient, db: Database, token: str
) -> None:
    response = await site_client.post("/bitrix/events", content=event(token=token), headers=FORM)

    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert "detail" in response.json()
    assert await inbox(db) == []


async def test_an_event_without_a_token_is_refused_401(
    site_client: httpx.AsyncClient, db: Database
) -> None:
    body = urlencode({"event": "ONSALEORDERSAVED", "data[FIELDS][ID]": "5"})
    response = await site_client.post("/bitrix/events", content=body, headers=FORM)
    assert response.status_code == 401
    assert await inbox(db) == []


@pytest.mark.parametrize(
    "body",
    [
        b"",  # nothing
        b"\xff\xfe\x00garbage",  # not UTF-8
        event(order_id="").encode(),  # a saved order without its id
        event(order_id="12abc").encode(),  # an id that is not one
        event().encode() + b"&data[FIELDS][XML_ID]=%00",  # text PostgreSQL cannot store
        event().encode() + b"&x=" + b"a" * 70_000,  # larger than any event
        (event() + "&" + "&".join(f"k{n}=v" for n in range(300))).encode(),  # too many fields
    ],
)
async def test_hostile_bodies_are_answered_4xx_never_500(
    site_client: httpx.AsyncClient, db: Database, body: bytes
) -> None:
    response = await site_client.post("/bitrix/events", content=body, headers=FORM)

    assert 400 <= response.status_code < 500, response.text
    assert "error" in response.json()
    async with db.uow_read() as uow:
        count = (await uow.conn.execute(select(func.count()).select_from(bitrix_inbox))).scalar()
    assert count == 0


async def test_without_an_application_token_the_hub_takes_no_site_events(
    client: httpx.AsyncClient, db: Database
) -> None:
    response = await client.post("/bitrix/events", content=event(), headers=FORM)

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    assert await inbox(db) == []


async def test_serve_on_sqlite_runs_the_site_worker_when_the_site_is_connected(
    settings: Settings, db: Database, backend: str
) -> None:
    site = BitrixSettings(url="http://127.0.0.1:9/rest/1/x/", application_token=TOKEN)
    app = create_app(settings.model_copy(update={"bitrix": site}), db=db, sweeper=True)
    async with app.router.lifespan_context(app):
        running = app.state.site_task
        unconnected = settings.model_copy(update={"bitrix": BitrixSettings()})
    bare = create_app(unconnected, db=db, sweeper=True)
    async with bare.router.lifespan_context(bare):
        assert bare.state.site_task is None
    # on PostgreSQL `ordersync worker` runs it, as it runs the relay
    assert (running is not None) is (backend == "sqlite")
