"""Files 1C (or someone posing as it) should not send: each ends in `failure` with a reason,
and the hub's data is left exactly as it was. And files that look odd but are legal import."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tests.e2e.conftest import Hub, HubFactory
from tests.sim_1c import (
    BOM,
    NAMESPACE,
    Offer,
    Product,
    document,
    import_xml,
    make_zip,
    offers_xml,
)

D = Decimal
STORES = {"bad-store-1": "Склад 1"}


def earlier() -> datetime:
    return (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)


def good_offers(count: int = 20, **doc: object) -> bytes:
    offers = [
        Offer(f"bad-item-{i:04d}", f"Товар {i}", price=10 + i, stores={"bad-store-1": i + 1})
        for i in range(count)
    ]
    return offers_xml(offers, STORES, formed=earlier(), **doc)  # type: ignore[arg-type]


OFFER_BODY = (
    "  <ПакетПредложений>\n    <Предложения>\n      <Предложение>\n"
    "        <Ид>bad-item-0001</Ид>\n        <Наименование>{name}</Наименование>\n"
    "      </Предложение>\n    </Предложения>\n  </ПакетПредложений>\n"
)
BOMB = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    "<!DOCTYPE КоммерческаяИнформация [\n"
    '  <!ENTITY lol "lol">\n'
    + "".join(
        f'  <!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">\n'
        for i in range(1, 10)
    )
    + "]>\n"
    '<КоммерческаяИнформация ВерсияСхемы="2.08">\n'
    + OFFER_BODY.format(name="&lol9;")
    + "</КоммерческаяИнформация>\n"
).encode()
XXE = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<!DOCTYPE КоммерческаяИнформация [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
    '<КоммерческаяИнформация ВерсияСхемы="2.08">\n'
    + OFFER_BODY.format(name="&xxe;")
    + "</КоммерческаяИнформация>\n"
).encode()


XXE_BODY = (
    '<!DOCTYPE КоммерческаяИнформация [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
    '<КоммерческаяИнформация ВерсияСхемы="2.08">\n'
    + OFFER_BODY.format(name="Товар &xxe;")
    + "</КоммерческаяИнформация>\n"
)
# The same DTD where a check of the first bytes does not see it: after 64 KiB of comment
# (legal XML), or in UTF-16 (legal XML too; 1C never writes either).
XXE_LATE = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<!--' + " " * 70_000 + "-->\n" + XXE_BODY
).encode()
XXE_UTF16 = ('<?xml version="1.0" encoding="UTF-16"?>\n' + XXE_BODY).encode("utf-16")


def truncated() -> bytes:
    data = good_offers()
    return data[: len(data) // 2]


def bad_quantity() -> bytes:
    offers = [
        Offer("bad-item-0001", "Товар 1", stores={"bad-store-1": 5}),
        Offer("bad-item-0002", "Товар 2", stores={"bad-store-1": 7}),
        Offer("bad-item-0003", "Товар 3", stores={"bad-store-1": "abc"}),
    ]
    return offers_xml(offers, STORES, formed=earlier())


BAD_FILES = {
    "not-xml": (lambda: b"\x00\x01 this is not XML at all \xff\xfe", "not well-formed"),
    "plain-text": (lambda: "Остатки: 5 штук".encode("cp1251"), "not well-formed"),
    "empty": (lambda: b"", "empty"),
    "truncated": (truncated, "not well-formed"),
    "wrong-root": (
        lambda: document(OFFER_BODY.format(name="x"), root="Корень"),
        "КоммерческаяИнформация",
    ),
    "entity-bomb": (lambda: BOMB, "DTD"),
    "xxe": (lambda: XXE, "DTD"),
    "xxe-after-a-long-comment": (lambda: XXE_LATE, ""),
    "xxe-in-utf-16": (lambda: XXE_UTF16, ""),
    "quantity-abc": (bad_quantity, "abc"),
    "no-id": (
        lambda: offers_xml([Offer("", "Без Ид", stores={"bad-store-1": 1})], STORES),
        "Ид",
    ),
}


# Replies alternate between the two encodings; the wrong root's reason is Cyrillic in both.
CASES = [(case, "utf-8" if i % 2 else "windows-1251") for i, case in enumerate(BAD_FILES)] + [
    ("wrong-root", "utf-8"),
    ("wrong-root", "windows-1251"),
]


@pytest.mark.parametrize(("case", "encoding"), sorted(set(CASES)))
async def test_a_bad_file_fails_with_a_reason_and_changes_nothing(
    start_hub: HubFactory, case: str, encoding: str
) -> None:
    make, reason = BAD_FILES[case]
    hub = await start_hub(encoding=encoding)
    before = await hub.domain_state()
    onec = hub.onec()
    await onec.open("catalog")
    await onec.upload("catalog", "offers.xml", make())
    status, lines, _ = await onec.import_file("catalog", "offers.xml")
    assert status == "failure", lines
    assert onec.last_response is not None
    assert onec.last_response.content.startswith(b"failure\n")
    assert reason in "\n".join(lines[1:]), lines  # decoded in the configured encoding
    assert "root:" not in "\n".join(lines)  # nothing of /etc/passwd
    assert await hub.domain_state() == before
    assert await hub.log("error")
    # Asked again, the same file keeps failing; nothing was half applied meanwhile.
    status, lines, calls = await onec.import_file("catalog", "offers.xml")
    assert (status, calls) == ("failure", 1), lines
    assert await hub.domain_state() == before


async def test_a_file_broken_after_a_committed_staging_step_changes_nothing(
    start_hub: HubFactory,
) -> None:
    """Staged in several steps (2000 items each), broken near the end: failure after progress,
    and the ledger as it was."""
    hub = await start_hub(step_seconds=0.001, chunk_offers=500)
    before = await hub.domain_state()
    data = good_offers(2300)
    onec = hub.onec()
    await onec.open("catalog")
    await onec.upload("catalog", "offers.xml", data[: len(data) - 3000])
    replies = await onec.import_steps("catalog", "offers.xml")
    assert [r.status for r in replies[:-1]] == ["progress"] * (len(replies) - 1)
    assert len(replies) >= 2
    assert replies[-1].status == "failure", replies[-1]
    assert "not well-formed" in replies[-1].reason
    assert await hub.domain_state() == before


async def test_bad_names_and_oversized_chunks_are_refused(start_hub: HubFactory) -> None:
    hub = await start_hub(file_limit=1024, max_upload_bytes=2048)
    before = await hub.domain_state()
    onec = hub.onec()
    await onec.open("catalog")
    for name in ("../offers.xml", "goods/../../offers.xml", "C:\\offers.xml", "..\\offers.xml"):
        reply = await onec.post_chunk("catalog", name, b"<x/>")
        assert reply.raw.startswith(b"failure\n"), (name, reply)
    assert not (hub.work_dir / "offers.xml").exists()
    big = await onec.post_chunk("catalog", "offers.xml", good_offers(20))
    assert big.raw.startswith(b"failure\n"), big
    assert "max_upload_bytes" in big.reason
    never = await onec.call("catalog", "import", filename="never-sent.xml")
    assert never.raw.startswith(b"failure\n"), never
    assert await hub.domain_state() == before


async def test_a_zip_that_would_expand_past_the_limit_is_refused(start_hub: HubFactory) -> None:
    hub = await start_hub(zip=True, max_unpacked_bytes=64 * 1024)
    before = await hub.domain_state()
    onec = hub.onec()
    await onec.open("catalog")
    bomb = make_zip({"offers.xml": good_offers(5) + b" " * (1024 * 1024)})
    assert len(bomb) < 64 * 1024
    await onec.upload("catalog", "import.zip", bomb)
    status, lines, _ = await onec.import_file("catalog", "offers.xml")
    assert status == "failure", lines
    assert "limit" in "\n".join(lines[1:])
    assert await hub.domain_state() == before
    assert not any(p.name == "offers.xml" for p in hub.work_dir.rglob("*"))


# --- odd but legal ---------------------------------------------------------------------------


LEGAL = {
    "utf-8, BOM, namespace": {"encoding": "utf-8"},
    "utf-8, no BOM, namespace": {"encoding": "utf-8", "bom": False},
    "utf-8, BOM, no namespace": {"encoding": "utf-8", "namespace": False},
    "utf-8, 2.10 namespace": {"encoding": "utf-8", "namespace": "urn:1C.ru:commerceml_210"},
    "windows-1251, no namespace": {"encoding": "windows-1251"},
    "windows-1251, namespace": {"encoding": "windows-1251", "namespace": NAMESPACE},
}


@pytest.mark.parametrize("variant", list(LEGAL))
async def test_odd_but_legal_files_import(start_hub: HubFactory, variant: str) -> None:
    doc = LEGAL[variant]
    hub = await start_hub()
    products = import_xml([Product("bad-item-9999", "Товар «ноль»")], formed=earlier(), **doc)  # type: ignore[arg-type]
    offers = good_offers(5, **doc)
    assert offers.startswith(BOM) == (doc.get("bom", True) and doc["encoding"] == "utf-8")
    onec = hub.onec()
    results = await onec.catalog_exchange([("import.xml", products), ("offers.xml", offers)])
    assert {k: v[0] for k, v in results.items()} == {
        "import.xml": "success",
        "offers.xml": "success",
    }, results
    found = await hub.products()
    assert found["bad-item-9999"].name == "Товар «ноль»"
    assert found["bad-item-0004"].price == D(14)
    stock = await hub.on_hand()
    assert {k: v for k, v in stock.items() if k[0].startswith("bad-")} == {
        (f"bad-item-{i:04d}", "bad-store-1"): D(i + 1) for i in range(5)
    }
    assert (await hub.stores())["bad-store-1"].name == "Склад 1"


async def test_a_prefixed_namespace_and_comma_decimals_import(hub: Hub) -> None:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<cml:КоммерческаяИнформация xmlns:cml="{NAMESPACE}" ВерсияСхемы="2.08"'
        ' ДатаФормирования="2020-04-07T12:08:44">\n'
        "<!-- a comment 1C never writes -->\n"
        "<cml:ПакетПредложений><cml:Склады><cml:Склад><cml:Ид>bad-store-1</cml:Ид>"
        "<cml:Наименование>Склад 1</cml:Наименование></cml:Склад></cml:Склады>"
        "<cml:Предложения><cml:Предложение><cml:Ид>1c-sugar</cml:Ид>"
        '<cml:Склад ИдСклада="bad-store-1" КоличествоНаСкладе="12,750"/>'
        "</cml:Предложение></cml:Предложения></cml:ПакетПредложений>\n"
        "</cml:КоммерческаяИнформация>\n"
    ).encode()
    onec = hub.onec()
    results = await onec.catalog_exchange([("offers.xml", body)])
    assert results["offers.xml"][0] == "success", results
    assert (await hub.on_hand())[("1c-sugar", "bad-store-1")] == D("12.75")
