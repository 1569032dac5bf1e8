"""One settings class: a TOML file (path in ORDERSYNC_CONFIG) with ORDERSYNC_* overrides."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from .domain.errors import ConfigError
from .domain.types import Channel, Master, PosMode

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./var/ordersync.db"
LogLevel = Literal["critical", "error", "warning", "info", "debug"]


def _known_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r}") from exc
    return value


TimeZoneName = Annotated[str, AfterValidator(_known_zone)]  # an IANA name, e.g. Europe/Moscow


class ConfirmedHoldSettings(BaseModel):
    """How long a confirmed, unpaid order keeps its stock, in minutes, per channel (the
    `[holds.confirmed]` table): cash on delivery is paid at the door, days later."""

    online: int = Field(default=72 * 60, ge=1)
    operator: int = Field(default=72 * 60, ge=1)
    pos: int = Field(default=24 * 60, ge=1)


class HoldSettings(BaseModel):
    """How long an unpaid order keeps its stock, in minutes, per channel."""

    online: int = Field(default=30, ge=1)
    operator: int = Field(default=120, ge=1)
    pos: int = Field(default=60, ge=1)
    confirmed: ConfirmedHoldSettings = Field(default_factory=ConfirmedHoldSettings)

    def minutes(self, channel: Channel) -> int:
        return int(getattr(self, channel.value))

    def confirmed_minutes(self, channel: Channel) -> int:
        return int(getattr(self.confirmed, channel.value))


class StoreSettings(BaseModel):
    """Per-store settings; applied to the stores table at startup when present."""

    serves_online: bool | None = None
    online_priority: int | None = None
    is_pickup_point: bool | None = None
    safety_stock: Decimal | None = Field(None, ge=0)
    pos_mode: PosMode | None = None
    evotor_uuid: str | None = Field(None, pattern=r"^[0-9A-Za-z_-]{1,64}$")  # at Evotor

    @field_validator("evotor_uuid")
    @classmethod
    def _lower(cls, value: str | None) -> str | None:
        return None if value is None else value.lower()


class EvotorSettings(BaseModel):
    """The Evotor cloud (the `[evotor]` table): its webhooks at /evotor, and the hub's calls to
    its REST API (products, quantities, the catch-up pull), made by `ordersync worker` (and by
    `serve` on SQLite)."""

    enabled: bool = True  # the /evotor webhooks
    base_url: str = "https://api.evotor.ru"
    # The cloud's token, sent as X-Authorization: better in ORDERSYNC_EVOTOR__TOKEN. Unset: the
    # token the cloud handed over through /user/token, if any; else no calls to the cloud.
    token: str | None = None
    # The catch-up pull; evotor/documentation-api documents /api/v1/... (the issue said v2).
    documents_path: str = "/api/v1/inventories/stores/{store}/documents"
    poll_minutes: float = Field(default=10.0, gt=0)
    overlap_hours: float = Field(default=24.0, ge=0)  # how long a till may stay offline
    first_pull_days: int = Field(default=7, ge=0, le=180)  # back from a store's first pull
    # Documents are applied while the cloud waits for the answer, this long at most (the
    # cloud resends after 10 s); the rest is applied in the background.
    apply_budget_seconds: float = Field(default=4.0, gt=0, lt=10)
    publish: bool = True  # products and quantities to the cloud, through the relay
    tax: str = "NO_VAT"  # the VAT of the products published
    timeout_seconds: float = Field(default=30.0, gt=0)


class ExchangeSettings(BaseModel):
    """The CommerceML 2 exchange with 1C (the `[exchange]` table)."""

    enabled: bool = True
    path: str = "/bitrix/admin/1c_exchange.php"  # also served at this path when changed
    login: str = "1c"
    # `ordersync exchange hash-password` makes one; without it the exchange is "not configured".
    password_hash: str | None = None
    encoding: Literal["windows-1251", "utf-8"] = "windows-1251"
    zip: bool = False
    file_limit: int = Field(default=100 * 1024 * 1024, ge=1024)  # advertised to 1C at init
    max_upload_bytes: int = Field(default=1024**3, ge=1024)  # what one POST may carry
    max_session_bytes: int = Field(default=8 * 1024**3, ge=1024)  # disk one exchange may fill
    max_unpacked_bytes: int = Field(default=8 * 1024**3, ge=1024)  # what a zip may expand to
    timezone: TimeZoneName = "Europe/Moscow"  # 1C writes local times without a zone
    step_seconds: float = Field(default=20.0, gt=0)
    chunk_offers: int = Field(default=2000, ge=1, le=100_000)  # offers applied per transaction
    apply_workers: int = Field(default=2, ge=1, le=16)  # chunks applied at once (PostgreSQL)
    work_dir: Path = Path("./var/exchange")
    session_hours: float = Field(default=24.0, gt=0)
    export_channels: list[Channel] = Field(default_factory=lambda: list(Channel))
    query_limit: int = Field(default=500, ge=1)
    status_map: dict[str, str] = Field(default_factory=lambda: {"F": "completed"})
    price_type: str | None = None  # Ид or Наименование; unset: the first price of an offer
    total_stock_store: str | None = None  # store code for offers that carry only a total

    @model_validator(mode="after")
    def _uploads_fit_the_advertised_limit(self) -> ExchangeSettings:
        if self.max_upload_bytes < self.file_limit:
            raise ValueError(
                f"max_upload_bytes ({self.max_upload_bytes}) is below file_limit "
                f"({self.file_limit}): 1C's POSTs of file_limit bytes would be refused"
            )
        return self

    @field_validator("status_map")
    @classmethod
    def _known_targets(cls, value: dict[str, str]) -> dict[str, str]:
        allowed = {"paid", "shipped", "completed", "cancelled"}
        wrong = {k: v for k, v in value.items() if v not in allowed}
        if wrong:
            raise ValueError(f"status_map targets must be one of {sorted(allowed)}: {wrong}")
        return value


class BitrixSettings(BaseModel):
    """The 1C-Bitrix online store (the `[bitrix]` table), configured once for both ways: its
    orders in (outgoing webhook to POST /bitrix/events, the catch-up poll of sale.order.list)
    and the hub's stock, statuses and mirrored orders out (a sink of kind "bitrix" with no url
    of its own reads this table). The site is connected when `url` is set."""

    # https://<site>/rest/<user>/<code>/, the incoming webhook (a secret: ORDERSYNC_BITRIX__URL)
    url: str | None = None
    # The outgoing webhook's token, checked on every event (ORDERSYNC_BITRIX__APPLICATION_TOKEN)
    application_token: str | None = None
    poll_seconds: float = Field(default=60.0, gt=0)  # the catch-up poll of sale.order.list
    overlap_seconds: float = Field(default=60.0, ge=0)  # the poll re-reads this far back
    timeout_seconds: float = Field(default=10.0, gt=0)
    # Site -> hub mappings (site ids as numbers or strings)
    pickup_deliveries: list[str | int] = Field(default_factory=list)  # delivery ids = pickup
    pickup_stores: dict[str, str] = Field(default_factory=dict)  # delivery id -> hub store code
    store_map: dict[str, str] = Field(default_factory=dict)  # site store id -> hub store code
    property_codes: dict[str, str | list[str]] = Field(default_factory=dict)  # name/phone/...
    status_map: dict[str, str] = Field(default_factory=dict)  # site statusId -> hub action
    cod_pay_systems: list[str | int] = Field(default_factory=list)  # cash on delivery
    short_status: str | None = None  # site statusId for an order the hub cannot hold in full
    # Hub -> site
    push_statuses: dict[str, str] = Field(default_factory=dict)  # hub status -> site statusId
    stock_figure: Literal["sellable", "physical"] = "sellable"
    stock_mode: Literal["documents", "storeproduct"] = "documents"
    iblock_id: int | None = None  # the catalog's information block
    mirror_channels: list[Channel] = Field(default_factory=lambda: [Channel.POS, Channel.OPERATOR])
    mirror_status: str = "F"  # the site status of a mirrored till or operator order
    # What sale.order.add needs for a mirrored order: the site (lid), the payer type, and the
    # pay system of its payment (sale.paysystem.list; usually the site's cash pay system)
    site_id: str = "s1"
    person_type_id: int = Field(default=1, ge=1)
    mirror_pay_system_id: int = Field(default=1, ge=1)

    @property
    def connected(self) -> bool:
        return bool(self.url)

    @model_validator(mode="after")
    def _url_is_http(self) -> BitrixSettings:
        if self.url and not self.url.rstrip("/").startswith(("http://", "https://")):
            raise ValueError("url must be the incoming webhook's http(s) address")
        return self


class SinkSettings(BaseModel):
    """One destination of the outbox (the `[sinks.<name>]` tables)."""

    kind: Literal["webhook", "onec_push", "rabbitmq", "bitrix"]
    # http(s) for webhook and 1C push; amqp:// for RabbitMQ; the site's incoming-webhook URL
    # https://<site>/rest/<user>/<code>/ for Bitrix (it is a secret: keep it in the env). A
    # Bitrix sink without one is the site of the [bitrix] table (url, iblock_id, stock_mode,
    # push_statuses come from there).
    url: str | None = None
    secret: str | None = None  # webhook HMAC key; better in ORDERSYNC_SINKS__<NAME>__SECRET
    login: str | None = None  # 1C push (HTTP Basic)
    password: str | None = None
    exchange: str = "ordersync"  # RabbitMQ topic exchange
    iblock_id: int | None = None  # Bitrix: the catalog's information block
    stock_mode: Literal["documents", "storeproduct"] = "documents"  # Bitrix
    status_map: dict[str, str] = Field(default_factory=dict)  # Bitrix: hub status -> statusId
    # Bitrix: the per-store figure sent (see BitrixSettings); unset: [bitrix].stock_figure
    stock_figure: Literal["sellable", "physical"] | None = None
    types: list[str] | None = None  # event types; unset: all
    stores: list[str] | None = None  # store codes; unset: all
    timeout_seconds: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _url_unless_bitrix(self) -> SinkSettings:
        if not self.url and self.kind != "bitrix":
            raise ValueError(f"a {self.kind} sink needs a url")
        return self

    def with_site(self, site: BitrixSettings) -> SinkSettings:
        """A Bitrix sink without a url of its own: the [bitrix] site's url, iblock, stock
        mode and statuses (what the sink itself sets wins)."""
        if self.kind != "bitrix" or self.url:
            return self
        given = self.model_fields_set
        return self.model_copy(
            update={
                "url": site.url,
                "iblock_id": self.iblock_id if "iblock_id" in given else site.iblock_id,
                "stock_mode": self.stock_mode if "stock_mode" in given else site.stock_mode,
                "status_map": self.status_map if "status_map" in given else site.push_statuses,
                "timeout_seconds": self.timeout_seconds
                if "timeout_seconds" in given
                else site.timeout_seconds,
            }
        )


BITRIX_SINK = "bitrix"  # the sink the [bitrix] site gets when no Bitrix sink is configured


class RelaySettings(BaseModel):
    """The outbox relay (`ordersync worker`, or inside `serve` on SQLite)."""

    lanes: int = Field(default=16, ge=1, le=1024)
    batch: int = Field(default=500, ge=1, le=10_000)
    lease_seconds: float = Field(default=30.0, gt=0)
    max_attempts: int = Field(default=5, ge=1)  # refusals of one event, then a dead letter
    backoff_base_seconds: float = Field(default=1.0, ge=0)
    backoff_cap_seconds: float = Field(default=300.0, ge=0)
    probe_seconds: float = Field(default=5.0, gt=0)  # a sink that is down is tried this often
    poll_seconds: float = Field(default=0.2, gt=0)
    retention_hours: float = Field(default=72.0, gt=0)  # delivered events are kept this long


class UiSettings(BaseModel):
    """The console at /ui/ (the `[ui]` table): staff screens served by the hub."""

    enabled: bool = True
    # Signs the session cookies and CSRF tokens; from the environment:
    # ORDERSYNC_UI__SECRET_KEY. `serve` on SQLite makes one and keeps it in var/; on
    # PostgreSQL the hub does not start without it.
    secret_key: str | None = Field(default=None, min_length=32)
    idle_minutes: float = Field(default=30.0, gt=0)  # a session unused this long ends
    login_delay_seconds: float = Field(default=1.0, ge=0)  # the answer to a wrong password
    default_locale: Literal["ru", "en"] = "ru"  # when neither the user nor the browser says
    timezone: TimeZoneName = "Europe/Moscow"  # times on the screens
    timeline_days: int = Field(default=90, ge=1)  # an order's events are kept this long
    page_size: int = Field(default=50, ge=10, le=500)  # orders per page
    low_stock: Decimal = Field(default=Decimal(2), ge=0)  # available at or below: low


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ORDERSYNC_", env_nested_delimiter="__", extra="forbid"
    )

    master: Master
    database_url: str = DEFAULT_DATABASE_URL
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = Field(default=1, ge=1, le=64)
    db_pool_size: int = Field(default=10, ge=1, le=500)
    # How long a request waits for a database connection (a free pooled one, or a new one)
    # before it is answered 503 database_unavailable.
    db_timeout_seconds: float = Field(default=10.0, gt=0)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    sweeper_interval_seconds: float = Field(default=2.0, gt=0)
    auth_cache_seconds: float = Field(default=5.0, ge=0)
    catalog_cache_seconds: float = Field(default=2.0, ge=0)
    seed_demo: bool = False  # `make run` turns it on (ordersync.example.toml)
    log_level: LogLevel = "warning"  # of the server's and ordersync's own log lines
    access_log: bool = False  # a line per HTTP request
    # `serve --workers N`: where the worker processes keep their metrics (a directory per
    # port), so that /metrics adds them up whichever worker answers
    metrics_dir: Path = Path("./var/metrics")
    holds: HoldSettings = HoldSettings()
    stores: dict[str, StoreSettings] = Field(default_factory=dict)
    exchange: ExchangeSettings = ExchangeSettings()
    relay: RelaySettings = RelaySettings()
    sinks: dict[str, SinkSettings] = Field(default_factory=dict)
    evotor: EvotorSettings = EvotorSettings()
    ui: UiSettings = UiSettings()
    bitrix: BitrixSettings = BitrixSettings()

    @model_validator(mode="after")
    def _one_site(self) -> Settings:
        """The [bitrix] site is one sink: Bitrix sinks without a url take it, and a site with
        a url and no Bitrix sink configured gets one named "bitrix"."""
        sinks = {name: conf.with_site(self.bitrix) for name, conf in self.sinks.items()}
        for name, conf in sinks.items():
            if conf.kind == "bitrix" and not conf.url:
                raise ValueError(
                    f"sink {name}: no url, and [bitrix] has none (ORDERSYNC_BITRIX__URL)"
                )
        if self.bitrix.connected and not any(c.kind == "bitrix" for c in sinks.values()):
            if BITRIX_SINK in sinks:
                raise ValueError(f'the sink name "{BITRIX_SINK}" is the [bitrix] site\'s')
            sinks[BITRIX_SINK] = SinkSettings(kind="bitrix").with_site(self.bitrix)
        self.sinks = sinks
        return self

    @field_validator("master", mode="before")
    @classmethod
    def _master_is_one_of_two(cls, value: Any) -> Any:
        if str(value).lower() not in {m.value for m in Master}:
            raise ValueError(f'master must be "1c" or "hub" (no hybrid), got {value!r}')
        return str(value).lower()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = os.environ.get("ORDERSYNC_CONFIG")
        if path:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(path)))
        return tuple(sources)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def load_settings(**overrides: Any) -> Settings:
    """Settings from the file and the environment, or a ConfigError that says what is wrong."""
    path = os.environ.get("ORDERSYNC_CONFIG")
    if path and not Path(path).is_file():
        raise ConfigError(f"ORDERSYNC_CONFIG names {path}, which is not a file")
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}"
            for err in exc.errors()
        )
        hint = "" if path else " (set ORDERSYNC_CONFIG to a TOML file, see ordersync.example.toml)"
        raise ConfigError(f"invalid configuration: {problems}{hint}") from exc
