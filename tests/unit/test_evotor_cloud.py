"""The hub's client of the Evotor cloud against the simulated REST API (tests/evotor_sim.py
CloudApi over an httpx.MockTransport): the token header, products and quantities, rate limits
and 429/503 with the time to wait, the month windows of the document pull, and errors that
never show the token."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from ordersync.channels.evotor import DocumentRejected, EvotorProduct, TillDocument
from ordersync.channels.evotor.cloud import (
    CloudAuthError,
    CloudRateLimited,
    CloudRequestError,
    CloudUnavailable,
    DocumentWindow,
    EvotorCloud,
    InvalidProducts,
)
from tests.evotor_sim import CloudApi, Ids, Item, Till, broken, parse_doc_time, store_json

D = Decimal
NOW = datetime(2024, 6, 15, 12, 0, tzinfo=UTC)
STORE = "20240101-5a12-403a-80f6-75c361356826"
TOKEN = "cloud-token-0f3a-very-secret"
TEA = Item("74e99680-3f9b-4abe-b902-fe197cf28ed2", "TEA-001", "Чай", D("199.99"))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@dataclass
class Setup:
    api: CloudApi
    cloud: EvotorCloud
    clock: Clock


@pytest.fixture
async def setup() -> AsyncIterator[Setup]:
    clock = Clock()
    api = CloudApi(TOKEN, limit=100, window=60, clock=clock, now=lambda: NOW)
    client = httpx.AsyncClient(transport=api.transport())
    cloud = EvotorCloud(
        TOKEN,
        "https://api.evotor.test",
        client=client,
        clock=clock,
        now=lambda: NOW,
        sleep=clock.sleep,
    )
    yield Setup(api, cloud, clock)
    await client.aclose()


def product(n: int, **changes: Any) -> EvotorProduct:
    uuid = f"0b0c2f0e-7d1a-4c55-9a57-{n:012d}"
    fields: dict[str, Any] = {
        "uuid": uuid,
        "name": f"Товар {n}",
        "code": str(n),
        "bar_codes": (f"46000000{n:05d}",),
        "price": D("199.90"),
        "cost_price": D("120.00"),
        "quantity": D("3.500"),
        "measure_name": "кг",
    }
    return EvotorProduct(**(fields | changes))


# --- products and quantities ------------------------------------------------------------------


async def test_products_are_published_whole_with_the_token_in_x_authorization(
    setup: Setup,
) -> None:
    result = await setup.cloud.publish_products(STORE, [product(1), product(2)])

    assert (result.requests, result.violations) == (1, 0)
    kept = setup.api.products[STORE]
    assert kept[product(1).uuid]["price"] == D("199.90")
    assert kept[product(1).uuid]["quantity"] == D("3.500")
    assert setup.api.paths_called() == [f"POST /api/v1/inventories/stores/{STORE}/products"]

    await setup.cloud.publish_products(STORE, [product(1, description=None, cost_price=None)])

    assert "costPrice" not in kept[product(1).uuid]  # the cloud replaces the old fields


async def test_products_the_cloud_would_refuse_are_caught_before_any_call(setup: Setup) -> None:
    with pytest.raises(InvalidProducts) as caught:
        await setup.cloud.publish_products(STORE, [product(1, name="x" * 101, tax="VAT_7")])
    with pytest.raises(ValueError, match="named twice"):
        await setup.cloud.publish_products(STORE, [product(1), product(1)])

    assert len(caught.value.problems[product(1).uuid]) == 2
    assert setup.api.calls == []


async def test_a_publication_too_large_for_the_cloud_is_split_until_it_fits() -> None:
    api = CloudApi(TOKEN, max_items=3)
    async with httpx.AsyncClient(transport=api.transport()) as client:
        cloud = EvotorCloud(TOKEN, client=client, products_per_request=10)

        result = await cloud.publish_products(STORE, [product(n) for n in range(10)])

    assert result.requests == 4  # 10 -> 413, 5 -> 413, then 2 + 3 and 2 + 3
    assert len(api.products[STORE]) == 10
    assert [c.status for c in api.calls].count(413) == 3


async def test_violations_the_cloud_reports_are_returned() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        headers = {"X-Products-Violations-Count": "1", "X-Products-Violations": "[0]: tax"}
        return httpx.Response(200, headers=headers)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        result = await EvotorCloud(TOKEN, client=client).publish_products(STORE, [product(1)])

    assert (result.violations, result.violation_details) == (1, ("[0]: tax",))


async def test_quantities_are_sent_as_their_decimal_text_and_read_back_exactly(
    setup: Setup,
) -> None:
    figures = {product(1).uuid: D("12.000"), product(2).uuid: D("0.347"), product(3).uuid: D(-2)}

    requests = await setup.cloud.publish_quantities(STORE, figures)

    assert requests == 1
    assert setup.api.calls[0].body == {
        product(1).uuid: "12",
        product(2).uuid: "0.347",
        product(3).uuid: "-2",
    }
    assert await setup.cloud.quantities(STORE) == figures
    with pytest.raises(ValueError, match="at most 3 places"):
        await setup.cloud.publish_quantities(STORE, {product(1).uuid: D("0.0001")})


async def test_deleting_every_product_must_be_asked_for_by_name(setup: Setup) -> None:
    await setup.cloud.publish_products(STORE, [product(1), product(2)])

    with pytest.raises(ValueError, match="everything=True"):
        await setup.cloud.delete_products(STORE, [])
    await setup.cloud.delete_products(STORE, [product(1).uuid])

    assert list(setup.api.products[STORE]) == [product(2).uuid]


# --- tokens and errors --------------------------------------------------------------------------


async def test_the_token_goes_in_x_authorization_and_nowhere_else() -> None:
    seen: list[httpx.Headers] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers)
        return httpx.Response(200, json=[])

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        cloud = EvotorCloud(TOKEN, client=client)
        await cloud.stores()
        await cloud.publish_quantities(STORE, {product(1).uuid: D(1)})

    assert [h["X-Authorization"] for h in seen] == [TOKEN, TOKEN]
    assert all("Authorization" not in h for h in seen)
    assert seen[1]["Content-Type"] == "application/json;charset=UTF-8"


async def test_a_wrong_token_is_an_auth_error_that_never_shows_the_token() -> None:
    api = CloudApi("the-right-token")
    async with httpx.AsyncClient(transport=api.transport()) as client:
        cloud = EvotorCloud(TOKEN, client=client)

        with pytest.raises(CloudAuthError) as caught:
            await cloud.stores()

    assert caught.value.status == 401 and "1002" in str(caught.value)
    assert TOKEN not in str(caught.value) and TOKEN not in repr(caught.value)
    assert TOKEN not in repr(cloud)


async def test_no_answer_at_all_is_unavailable_and_does_not_carry_the_request() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(CloudUnavailable) as caught:
            await EvotorCloud(TOKEN, client=client).stores()

    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert TOKEN not in str(caught.value)


async def test_a_4xx_carries_evotors_error_items() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = {"errors": [{"code": 2003, "reason": "incorrect", "subject": "deviceUuid"}]}
        return httpx.Response(400, json=body)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(CloudRequestError) as caught:
            await EvotorCloud(TOKEN, client=client).devices()

    assert [(e.code, e.subject) for e in caught.value.errors] == [(2003, "deviceUuid")]


# --- rate limits ----------------------------------------------------------------------------


async def test_a_429_says_when_to_come_back_from_the_reset_header(setup: Setup) -> None:
    setup.clock.now += 20  # 40 s of the 60 s interval left
    setup.api.throttle(1)

    with pytest.raises(CloudRateLimited) as caught:
        await setup.cloud.publish_quantities(STORE, {product(1).uuid: D(1)})

    assert caught.value.status == 429 and caught.value.retry_after == 40


async def test_a_503_is_a_rate_limit_too(setup: Setup) -> None:
    setup.api.fail(1)

    with pytest.raises(CloudRateLimited) as caught:
        await setup.cloud.stores()

    assert caught.value.status == 503 and caught.value.retry_after == 60


async def test_with_the_budget_spent_the_client_waits_or_does_not_call_at_all() -> None:
    clock = Clock()
    api = CloudApi(TOKEN, limit=2, window=60, clock=clock, now=lambda: NOW)
    async with httpx.AsyncClient(transport=api.transport()) as client:
        cloud = EvotorCloud(TOKEN, client=client, clock=clock, sleep=clock.sleep, now=lambda: NOW)
        await cloud.stores()
        clock.now += 15
        await cloud.stores()
        assert cloud.rate_limit is not None and cloud.rate_limit.remaining == 0

        with pytest.raises(CloudRateLimited) as caught:
            await cloud.stores()
        assert len(api.calls) == 2 and caught.value.retry_after == 45

        cloud.max_wait = 60
        await cloud.stores()

    assert clock.slept == [45] and [c.status for c in api.calls] == [200, 200, 200]


async def test_a_reset_given_as_a_unix_time_is_understood() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        reset = str(int(NOW.timestamp()) + 30)
        return httpx.Response(
            429, headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset}
        )

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(CloudRateLimited) as caught:
            await EvotorCloud(TOKEN, client=client, now=lambda: NOW).stores()

    assert caught.value.retry_after == 30


# --- the document pull ----------------------------------------------------------------------


async def pull(cloud: EvotorCloud, since: datetime, **kwargs: Any) -> list[DocumentWindow]:
    return [window async for window in cloud.documents(STORE, since, **kwargs)]


async def test_documents_are_pulled_in_windows_of_at_most_a_month_none_lost_at_the_edges(
    setup: Setup,
) -> None:
    since = NOW - timedelta(days=75)
    till = Till(STORE, ids=Ids("dated"))
    # one document a day, and one exactly on every edge a window could have
    moments = [since + timedelta(days=d, hours=3) for d in range(75)]
    moments += [since, NOW - timedelta(milliseconds=1)]
    documents = [till.sell([(TEA, 1)], at=m) for m in moments]
    setup.api.add_documents(STORE, documents)

    windows = await pull(setup.cloud, since)

    got = [r.uuid for w in windows for r in w.results if isinstance(r, TillDocument)]
    assert sorted(got) == sorted(d["uuid"].lower() for d in documents)
    assert len(got) == len(set(got))
    assert [w.since for w in windows[1:]] == [w.until for w in windows[:-1]]
    assert (windows[0].since, windows[-1].until) == (since, NOW)
    for call in setup.api.calls:
        after, before = (parse_doc_time(call.params[k]) for k in ("gtCloseDate", "ltCloseDate"))
        assert before - after <= timedelta(days=31) and call.status == 200


async def test_documents_older_than_the_cloud_keeps_are_reported_out_of_reach(
    setup: Setup,
) -> None:
    windows = await pull(setup.cloud, NOW - timedelta(days=400))

    assert windows[0].truncated_before is not None
    assert windows[0].truncated_before > NOW - timedelta(days=185)
    assert all(w.truncated_before is None for w in windows[1:])
    assert all(c.status == 200 for c in setup.api.calls)


async def test_the_pull_filters_by_types_and_device_as_the_cloud_does(setup: Setup) -> None:
    first, second = Till(STORE, ids=Ids(seed=1)), Till(STORE, ids=Ids(seed=2))
    at = NOW - timedelta(hours=5)
    setup.api.add_documents(
        STORE,
        [first.sell([(TEA, 1)], at=at), first.open_session(at=at), second.sell([(TEA, 2)], at=at)],
    )

    windows = await pull(
        setup.cloud,
        NOW - timedelta(days=1),
        types=["SELL", "PAYBACK"],
        device_uuid=first.device_uuid,
    )

    [window] = windows
    assert [r.evotor_type for r in window.results if isinstance(r, TillDocument)] == ["SELL"]
    assert setup.api.calls[0].params["types"] == "SELL,PAYBACK"


async def test_a_bad_document_in_a_pull_is_rejected_alone(setup: Setup) -> None:
    till = Till(STORE)
    at = NOW - timedelta(hours=1)
    setup.api.add_documents(
        STORE, [till.sell([(TEA, 1)], at=at), broken(till.sell([(TEA, 1)], at=at), "bad_quantity")]
    )

    [window] = await pull(setup.cloud, NOW - timedelta(hours=2))

    assert [type(r) for r in window.results] == [TillDocument, DocumentRejected]


async def test_the_documents_path_is_configurable(setup: Setup) -> None:
    setup.cloud.documents_path = "/api/v2/inventories/stores/{store}/documents"

    await pull(setup.cloud, NOW - timedelta(days=1))

    assert setup.api.paths_called() == [f"GET /api/v2/inventories/stores/{STORE}/documents"]


async def test_stores_devices_and_employees_are_listed(setup: Setup) -> None:
    setup.api.stores.append(store_json(STORE.upper(), "Магазин на Ленина", "Тверь"))

    [store] = await setup.cloud.stores()

    assert (store.uuid, store.name) == (STORE, "Магазин на Ленина")
    assert await setup.cloud.devices() == [] and await setup.cloud.employees() == []
