"""The console's pure parts: customer search keys, the language of a browser, what each role
may do with an order, formats per locale, and the Russian catalog kept complete."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from ordersync.domain.customers import name_key, phone_key, phone_prefix, prefix_bounds
from ordersync.domain.types import Fulfillment, OrderStatus, PaymentStatus, StaffRole
from ordersync.ui.access import Staff, order_actions
from ordersync.ui.i18n import Catalogs, Formats, negotiate

UI = Path(__file__).resolve().parents[2] / "src" / "ordersync" / "ui"


@pytest.mark.parametrize(
    "typed", ["+7 (916) 123-45-67", "8 916 123 45 67", "9161234567", "79161234567", 79161234567]
)
def test_a_phone_written_any_way_has_one_key(typed: object) -> None:
    assert phone_key(typed) == "79161234567"


def test_phone_keys_and_prefixes_of_what_is_typed_so_far() -> None:
    assert phone_key("") is None and phone_key(None) is None and phone_key("abc") is None
    assert phone_key("+44 20 7946 0958") == "442079460958"
    assert phone_prefix("8 916 12") == "791612"
    assert phone_prefix("916 12") == "791612"
    assert phone_prefix("+7 903") is None
    assert phone_prefix("7903") is None  # fewer than 5 digits: not yet a phone


def test_a_name_key_folds_case_and_yo_and_collapses_spaces() -> None:
    assert name_key("  Пётр   ИВАНОВ ") == "петр иванов"
    assert name_key("Straße") == "strasse"
    assert name_key(None) is None and name_key("   ") is None


def test_prefix_bounds_hold_every_text_starting_with_the_prefix_and_nothing_else() -> None:
    low, high = prefix_bounds("иван")
    assert low <= "иван" < high and low <= "иванов" < high and low <= "иван\U0010ffff" < high
    assert not low <= "ивао" < high and not low <= "ива" < high
    assert prefix_bounds("a\U0010ffff") == ("a\U0010ffff", "b")


def test_the_browsers_language_is_taken_by_its_weights_and_russian_is_the_default() -> None:
    assert negotiate("en-US,en;q=0.9,ru;q=0.8", "ru") == "en"
    assert negotiate("de-DE, ru;q=0.5, en;q=0.4", "ru") == "ru"
    assert negotiate("fr, de", "ru") == "ru"
    assert negotiate(None, "ru") == "ru"
    assert negotiate("en;q=0, ru;q=x", "ru") == "ru"


def _staff(role: StaffRole, stores: frozenset[int] = frozenset()) -> Staff:
    return Staff(1, "x", role, stores, "ru")


def test_what_each_role_may_do_with_an_order() -> None:
    placed, unpaid = OrderStatus.PLACED, PaymentStatus.UNPAID
    operator, shop = _staff(StaffRole.OPERATOR), _staff(StaffRole.STORE, frozenset({1}))
    assert order_actions(operator, placed, unpaid, Fulfillment.DELIVERY, None) == [
        "confirm", "pay", "ship", "complete", "cancel"]  # fmt: skip
    assert order_actions(operator, placed, unpaid, Fulfillment.PICKUP, 1) == [
        "confirm", "pay", "hand_over", "cancel"]  # fmt: skip
    assert order_actions(
        operator, placed, unpaid, Fulfillment.PICKUP, 1, confirmed=True
    ) == ["pay", "hand_over", "cancel"]  # fmt: skip
    assert "confirm" not in order_actions(
        operator, placed, PaymentStatus.PAID, Fulfillment.DELIVERY, None
    )
    assert order_actions(shop, placed, unpaid, Fulfillment.PICKUP, 1) == ["hand_over"]
    assert order_actions(shop, placed, unpaid, Fulfillment.PICKUP, 2) == []
    assert order_actions(shop, placed, unpaid, Fulfillment.DELIVERY, None) == []
    assert order_actions(operator, OrderStatus.SHIPPED, unpaid, Fulfillment.DELIVERY, None) == [
        "complete"]  # fmt: skip
    assert order_actions(operator, OrderStatus.CANCELLED, unpaid, Fulfillment.PICKUP, 1) == []
    assert not _staff(StaffRole.STORE).sees_screen("system")
    assert _staff(StaffRole.ADMIN).sees_screen("system")


def test_money_numbers_and_times_are_written_as_the_locale_writes_them() -> None:
    zone = ZoneInfo("Europe/Moscow")
    ru, en = Formats("ru", zone), Formats("en", zone)
    assert ru.money(Decimal("1234.5")) == "1\xa0234,50\xa0₽"
    assert en.money(Decimal("1234.5")) == "1,234.50\xa0RUB"
    assert ru.qty(Decimal("0.347")) == "0,347" and en.qty(Decimal("2")) == "2"
    from datetime import UTC, datetime

    assert ru.datetime(datetime(2026, 3, 1, 9, 5, tzinfo=UTC)) == "01.03.2026, 12:05"


def test_every_text_of_the_console_has_its_russian_translation() -> None:
    wanted: set[str | tuple[str, ...]] = set()
    for _, _, message, _, _ in extract_from_dir(
        str(UI),
        method_map=[("**.py", "python"), ("**/templates/**.html", "jinja2")],
        options_map={"**/templates/**.html": {"trimmed": "true"}},
        keywords={"_": None, "N_": None, "ngettext": (1, 2)},
    ):
        wanted.add(message)
    with (UI / "locale" / "ru" / "LC_MESSAGES" / "messages.po").open("rb") as source:
        catalog = read_po(source, locale="ru")
    translated = {m.id for m in catalog if m.id and m.string and all(m.string)}
    missing = sorted(str(m) for m in wanted - translated)
    assert missing == [], f"add to messages.po: {missing}"
    assert len(wanted) > 150


def test_the_catalogs_translate_and_english_is_the_message_itself() -> None:
    catalogs = Catalogs()
    assert catalogs.get("ru").gettext("Orders") == "Заказы"
    assert catalogs.get("en").gettext("Orders") == "Orders"
    plural = "%(n)s file", "%(n)s files"
    assert [catalogs.get("ru").ngettext(*plural, n) % {"n": n} for n in (1, 3, 5, 21)] == [
        "1 файл", "3 файла", "5 файлов", "21 файл"]  # fmt: skip


def test_a_server_on_postgresql_needs_the_console_signing_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ordersync.config import Settings
    from ordersync.domain.errors import ConfigError
    from ordersync.entrypoints import asgi
    from ordersync.ui.app import require_secret_key

    postgres = "postgresql+asyncpg://hub@127.0.0.1:5432/hub"
    with pytest.raises(ConfigError, match="ORDERSYNC_UI__SECRET_KEY"):
        require_secret_key(Settings(master="hub", database_url=postgres))
    require_secret_key(Settings(master="hub", database_url=postgres, ui={"secret_key": "k" * 32}))
    require_secret_key(Settings(master="hub", database_url=postgres, ui={"enabled": False}))
    require_secret_key(Settings(master="hub"))  # SQLite: `serve` keeps one in var/
    for name in [n for n in __import__("os").environ if n.startswith("ORDERSYNC_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("ORDERSYNC_MASTER", "hub")
    monkeypatch.setenv("ORDERSYNC_DATABASE_URL", postgres)
    with pytest.raises(ConfigError):
        asgi.create()
