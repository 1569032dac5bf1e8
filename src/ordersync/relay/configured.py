"""The sinks and the relay policy named by the configuration."""

from __future__ import annotations

from ..config import RelaySettings, SinkSettings
from ..db.unit_of_work import Database
from ..domain.errors import ConfigError
from ..sinks.base import Sink
from ..sinks.filters import EventFilter
from ..sinks.onec_push import OneCPushSink
from ..sinks.rabbitmq import RabbitMQSink
from ..sinks.webhook import WebhookSink
from .worker import RelayPolicy


def policy(settings: RelaySettings) -> RelayPolicy:
    return RelayPolicy(
        lanes=settings.lanes,
        batch=settings.batch,
        lease_seconds=settings.lease_seconds,
        max_attempts=settings.max_attempts,
        backoff_base_seconds=settings.backoff_base_seconds,
        backoff_cap_seconds=settings.backoff_cap_seconds,
        poll_seconds=settings.poll_seconds,
        retention_hours=settings.retention_hours,
    )


async def build_sinks(db: Database, sinks: dict[str, SinkSettings]) -> dict[str, Sink]:
    codes = {store.code: store.id for store in await db.fresh_stores()}
    built: dict[str, Sink] = {}
    for name, conf in sinks.items():
        built[name] = _sink(name, conf, _filter(name, conf, codes))
    return built


def _filter(name: str, conf: SinkSettings, codes: dict[str, int]) -> EventFilter:
    stores: frozenset[int] | None = None
    if conf.stores is not None:
        unknown = [c for c in conf.stores if c not in codes]
        if unknown:
            raise ConfigError(f"sink {name} names unknown stores: {', '.join(unknown)}")
        stores = frozenset(codes[c] for c in conf.stores)
    types = frozenset(conf.types) if conf.types is not None else None
    return EventFilter(types=types, stores=stores)


def _sink(name: str, conf: SinkSettings, event_filter: EventFilter) -> Sink:
    if conf.kind == "webhook":
        if not conf.secret:
            raise ConfigError(f"sink {name}: a webhook needs a secret")
        return WebhookSink(name, conf.url, conf.secret, event_filter, conf.timeout_seconds)
    if conf.kind == "onec_push":
        if conf.login is None or conf.password is None:
            raise ConfigError(f"sink {name}: the 1C push sink needs login and password")
        return OneCPushSink(
            name, conf.url, conf.login, conf.password, event_filter, conf.timeout_seconds
        )
    return RabbitMQSink(name, conf.url, exchange=conf.exchange, event_filter=event_filter)
