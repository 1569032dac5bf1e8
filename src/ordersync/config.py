"""One settings class: a TOML file (path in ORDERSYNC_CONFIG) with ORDERSYNC_* overrides."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from .domain.errors import ConfigError
from .domain.types import Channel, Master, PosMode

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./var/ordersync.db"


class HoldSettings(BaseModel):
    """How long an unpaid order keeps its stock, in minutes, per channel."""

    online: int = Field(default=30, ge=1)
    operator: int = Field(default=120, ge=1)
    pos: int = Field(default=60, ge=1)

    def minutes(self, channel: Channel) -> int:
        return int(getattr(self, channel.value))


class StoreSettings(BaseModel):
    """Per-store settings; applied to the stores table at startup when present."""

    serves_online: bool | None = None
    online_priority: int | None = None
    is_pickup_point: bool | None = None
    safety_stock: Decimal | None = Field(None, ge=0)
    pos_mode: PosMode | None = None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ORDERSYNC_", env_nested_delimiter="__", extra="forbid"
    )

    master: Master
    database_url: str = DEFAULT_DATABASE_URL
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = Field(1, ge=1, le=64)
    db_pool_size: int = Field(10, ge=1, le=500)
    max_body_bytes: int = Field(1_048_576, ge=1024)
    sweeper_interval_seconds: float = Field(2.0, gt=0)
    auth_cache_seconds: float = Field(5.0, ge=0)
    catalog_cache_seconds: float = Field(2.0, ge=0)
    seed_demo: bool = False  # `make run` turns it on (ordersync.example.toml)
    holds: HoldSettings = HoldSettings()
    stores: dict[str, StoreSettings] = Field(default_factory=dict)

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
