"""Languages of the console: Russian by default, English available. Messages are gettext
catalogs (locale/<lang>/LC_MESSAGES/messages.po, English message ids), compiled in memory
when the console starts; numbers, money and dates are formatted by Babel for the locale."""

from __future__ import annotations

import datetime as dt
import gettext
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from io import BytesIO
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime, format_time
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency, format_decimal
from babel.support import Translations

LOCALES = ("ru", "en")
CATALOGS = Path(__file__).parent / "locale"


def compile_catalog(path: Path, locale: str) -> gettext.NullTranslations:
    with path.open("rb") as source:
        catalog = read_po(source, locale=locale)
    compiled = BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(compiled)


class Catalogs:
    """The compiled catalog of every language; English is the message ids themselves."""

    def __init__(self, directory: Path = CATALOGS) -> None:
        self._by_locale: dict[str, gettext.NullTranslations] = {"en": gettext.NullTranslations()}
        for locale in LOCALES:
            path = directory / locale / "LC_MESSAGES" / "messages.po"
            if path.is_file():
                self._by_locale[locale] = compile_catalog(path, locale)

    def get(self, locale: str) -> gettext.NullTranslations:
        return self._by_locale.get(locale, self._by_locale["en"])


def negotiate(accept_language: str | None, default: str) -> str:
    """The first of our languages the browser asks for (by its q values), else `default`."""
    wanted: list[tuple[float, int, str]] = []
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        language = tag.strip().lower().split("-")[0]
        if language in LOCALES and quality > 0:
            wanted.append((-quality, position, language))
    return min(wanted)[2] if wanted else default


@dataclass(frozen=True)
class Formats:
    """Numbers, money and times as the locale writes them, times in the network's zone."""

    locale: str
    zone: ZoneInfo

    def qty(self, value: Decimal) -> str:
        return format_decimal(value, format="#,##0.###", locale=self.locale)

    def money(self, value: Decimal, currency: str = "RUB") -> str:
        """349,00 ₽ in Russian; 349.00 RUB in English (whose symbol for the rouble is RUB)."""
        pattern = None if self.locale == "ru" else "#,##0.00\xa0¤"
        return format_currency(value, currency, format=pattern, locale=self.locale)

    def number(self, value: int) -> str:
        return format_decimal(value, locale=self.locale)

    def datetime(self, value: dt.datetime | None) -> str:
        if value is None:
            return ""
        return format_datetime(value, format="short", tzinfo=self.zone, locale=self.locale)

    def time(self, value: dt.datetime | None) -> str:
        if value is None:
            return ""
        return format_time(value, format="medium", tzinfo=self.zone, locale=self.locale)

    def date(self, value: dt.datetime | None) -> str:
        if value is None:
            return ""
        return format_date(value.astimezone(self.zone), format="medium", locale=self.locale)


Gettext = Callable[[str], str]
