"""/metrics (admin tokens), in Prometheus text format written by prometheus-client.

Two kinds of figures: those read from the database at each scrape (a custom collector: the
outbox and the relay per configured sink, the 1C exchange), which every process sees alike;
and the API's own counters (api/metrics_middleware.py), summed over the worker processes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from ...config import Settings
from ...db import relay, stock_ops, watch
from ...domain.types import Role
from ...services.context import utcnow
from ..decimal_json import DecimalRoute
from ..deps import Auth, Db
from ..metrics_middleware import ApiMetrics
from ..openapi import refusals

router = APIRouter(tags=["health"], route_class=DecimalRoute)
Backlog = relay.SinkBacklog


@dataclass(frozen=True)
class DatabaseFigures:
    """What the database says at one scrape; collected as Prometheus metric families."""

    now: datetime
    unsequenced: int
    sinks: Sequence[relay.SinkBacklog]
    exchange_success: dict[str, datetime] | None  # None: the exchange is switched off
    oldest_unconfirmed: datetime | None
    negative_levels: int = 0
    inboxes: dict[tuple[str, str], int] | None = None  # (channel, state): events

    def collect(self) -> Iterable[Metric]:
        yield GaugeMetricFamily(
            "ordersync_outbox_unsequenced",
            "Committed events the relay has not ordered yet.",
            value=self.unsequenced,
        )
        yield GaugeMetricFamily(
            "ordersync_stock_negative_levels",
            "Stock levels below zero (a till sold more than the hub knew of), until a receipt,"
            " transfer or count settles them.",
            value=self.negative_levels,
        )
        if self.inboxes is not None:
            pending = GaugeMetricFamily(
                "ordersync_inbound_events_pending",
                "Events of the Bitrix site (bitrix) and till documents of the Evotor cloud"
                " (evotor) waiting to be applied.",
                labels=["channel"],
            )
            # Kept for a person and never taken back: a count that only grows, so alert on
            # its increase.
            unapplied = CounterMetricFamily(
                "ordersync_inbound_events_unapplied",
                "Inbound events refused when applied (failed) or unreadable (rejected, Evotor),"
                " since the hub began; each waits for a person on the console.",
                labels=["channel", "state"],
            )
            for (channel, state), count in sorted(self.inboxes.items()):
                if state == "pending":
                    pending.add_metric([channel], count)
                else:
                    unapplied.add_metric([channel, state], count)
            yield pending
            yield unapplied
        yield from self._relay()
        yield from self._exchange()

    def _relay(self) -> Iterable[Metric]:
        def per_sink(
            family: GaugeMetricFamily | CounterMetricFamily, value: Callable[[Backlog], float]
        ) -> None:
            for s in self.sinks:
                family.add_metric([s.sink], float(value(s)))

        gauges: list[tuple[str, str, Callable[[Backlog], float]]] = [
            ("backlog", "Events waiting for delivery, per sink.", lambda s: s.pending),
            ("oldest_pending_seconds", "Age of the oldest waiting event, per sink.",
             lambda s: s.oldest_seconds),
            ("dead_letters", "Events a sink refused too often, per sink.", lambda s: s.dead),
            ("failing_lanes", "Lanes whose last delivery failed and that are being retried"
             " (the sink is down, or refused an event).", lambda s: s.failing_lanes),
        ]  # fmt: skip
        for name, text, value in gauges:
            family = GaugeMetricFamily(f"ordersync_relay_{name}", text, labels=["sink"])
            per_sink(family, value)
            yield family
        last = GaugeMetricFamily(
            "ordersync_relay_last_success_timestamp_seconds",
            "When a delivery to the sink last succeeded (Unix time; absent if never).",
            labels=["sink"],
        )
        since = GaugeMetricFamily(
            "ordersync_relay_seconds_since_last_success",
            "Seconds since a delivery to the sink last succeeded (absent if never).",
            labels=["sink"],
        )
        for s in self.sinks:
            if s.last_success is not None:
                last.add_metric([s.sink], s.last_success.timestamp())
                since.add_metric([s.sink], max((self.now - s.last_success).total_seconds(), 0))
        yield last
        yield since
        attempts = CounterMetricFamily(
            "ordersync_relay_attempts", "Deliveries tried (batches), per sink.", labels=["sink"]
        )
        per_sink(attempts, lambda s: s.counters["batches_total"] + s.counters["failures_total"])
        yield attempts
        failures = CounterMetricFamily(
            "ordersync_relay_failures", "Failed deliveries (batches), per sink.", labels=["sink"]
        )
        per_sink(failures, lambda s: s.counters["failures_total"])
        yield failures
        latency = HistogramMetricFamily(
            "ordersync_relay_delivery_seconds",
            "From an event's commit to the sink's acknowledgement.",
            labels=["sink"],
        )
        for s in self.sinks:
            buckets = [
                (f"{le:g}", s.counters[column])
                for le, column in zip(relay.LATENCY_BUCKETS, relay.BUCKET_COLUMNS, strict=True)
            ]
            buckets.append(("+Inf", s.counters["delivered_total"]))
            latency.add_metric([s.sink], buckets, s.counters["latency_sum"])
        yield latency

    def _exchange(self) -> Iterable[Metric]:
        if self.exchange_success is None:
            return
        last = GaugeMetricFamily(
            "ordersync_1c_exchange_last_success_timestamp_seconds",
            "When the 1C exchange last succeeded, per type: catalog (a file applied in full),"
            " sale (1C confirmed a query, or its order changes were applied); absent when"
            " not within exchange.session_hours.",
            labels=["type"],
        )
        for type_, at in sorted(self.exchange_success.items()):
            last.add_metric([type_], at.timestamp())
        yield last
        age = 0.0
        if self.oldest_unconfirmed is not None:
            age = max((self.now - self.oldest_unconfirmed).total_seconds(), 0.0)
        yield GaugeMetricFamily(
            "ordersync_1c_oldest_unconfirmed_order_seconds",
            "How long the oldest order change of exchange.export_channels has waited for 1C"
            " to confirm receiving it (0 when none waits).",
            value=age,
        )


class _Exposition:
    def __init__(self, *collectors: Collector | DatabaseFigures) -> None:
        self.collectors = collectors

    def collect(self) -> Iterable[Metric]:
        for collector in self.collectors:
            yield from collector.collect()


async def database_figures(db: Db, settings: Settings) -> DatabaseFigures:
    now = utcnow()
    exchange = settings.exchange
    async with db.uow_read() as uow:
        unsequenced = await relay.unsequenced(uow.conn)
        negative = await stock_ops.negative_levels(uow.conn)
        inboxes = await watch.inbox_states(uow.conn)
        sinks = await relay.backlog(uow.conn, list(settings.sinks), now)
        success = oldest = None
        if exchange.enabled:
            success = await watch.last_exchange_success(uow.conn)
            oldest = await watch.oldest_unconfirmed_order(uow.conn, exchange.export_channels)
    return DatabaseFigures(now, unsequenced, sinks, success, oldest, negative, inboxes)


@router.get(
    "/metrics",
    summary="Prometheus metrics: outbox and relay per sink, the 1C exchange, HTTP requests",
    response_class=PlainTextResponse,
    responses=refusals(403),
)
async def metrics(request: Request, principal: Auth, db: Db) -> Response:
    principal.require(Role.ADMIN)
    api: ApiMetrics = request.app.state.api_metrics
    settings = api.settings
    figures = await database_figures(db, settings)
    body = generate_latest(_Exposition(figures, api.collector()))
    return Response(body, media_type=CONTENT_TYPE_PLAIN_0_0_4)
