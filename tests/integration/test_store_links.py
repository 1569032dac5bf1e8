"""A store linked to Evotor from the configuration (`[stores.<code>] evotor_uuid`), as
`serve` applies it at every start: linked once, its tills then get the whole catalog."""

from __future__ import annotations

from ordersync.config import Settings
from ordersync.db.unit_of_work import Database
from ordersync.domain import events
from ordersync.entrypoints.cli import _apply_store_settings
from tests import support
from tests.integration import dbstate

UUID = "20170228-F4F1-401B-80FA-9ECCA8451FFB"


async def test_a_store_linked_in_the_config_is_linked_once_and_gets_the_catalog(
    db: Database, database_url: str
) -> None:
    net = await support.seed_network(db)
    settings = Settings(
        master="hub", database_url=database_url, stores={"S01": {"evotor_uuid": UUID}}
    )

    await _apply_store_settings(settings, db)
    await _apply_store_settings(settings, db)  # the next start changes nothing

    db.forget_stores()
    linked = {s.code: s.evotor_uuid for s in await db.fresh_stores()}
    assert linked == {"WH1": None, "S01": UUID.lower(), "S02": None}
    changed = await dbstate.events(db, events.CATALOG_CHANGED)
    assert [e.payload for e in changed] == [
        {"store_id": net.stores["S01"], "all": True, "source": "evotor_link"}
    ]
