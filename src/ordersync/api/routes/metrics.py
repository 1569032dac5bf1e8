"""/metrics: the relay's backlog per sink, in Prometheus text format (admin tokens)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from ...db import relay
from ...domain.types import Role
from ...services.context import utcnow
from ..deps import Auth, Db
from ..openapi import refusals

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    summary="Prometheus metrics: outbox backlog and dead letters per sink",
    response_class=PlainTextResponse,
    responses=refusals(403),
)
async def metrics(principal: Auth, db: Db) -> PlainTextResponse:
    principal.require(Role.ADMIN)
    async with db.uow_read() as uow:
        unsequenced, sinks = await relay.backlog(uow.conn, utcnow())
    lines = [
        "# HELP ordersync_outbox_unsequenced Committed events the relay has not ordered yet.",
        "# TYPE ordersync_outbox_unsequenced gauge",
        f"ordersync_outbox_unsequenced {unsequenced}",
        "# HELP ordersync_relay_backlog Events waiting for delivery, per sink.",
        "# TYPE ordersync_relay_backlog gauge",
        *(f'ordersync_relay_backlog{{sink="{s.sink}"}} {s.pending}' for s in sinks),
        "# HELP ordersync_relay_oldest_pending_seconds Age of the oldest waiting event, per sink.",
        "# TYPE ordersync_relay_oldest_pending_seconds gauge",
        *(
            f'ordersync_relay_oldest_pending_seconds{{sink="{s.sink}"}} {s.oldest_seconds:.3f}'
            for s in sinks
        ),
        "# HELP ordersync_relay_dead_letters Events a sink refused too often, per sink.",
        "# TYPE ordersync_relay_dead_letters gauge",
        *(f'ordersync_relay_dead_letters{{sink="{s.sink}"}} {s.dead}' for s in sinks),
        "# HELP ordersync_relay_attempts_total Deliveries tried (batches), per sink.",
        "# TYPE ordersync_relay_attempts_total counter",
        *(
            f'ordersync_relay_attempts_total{{sink="{s.sink}"}} '
            f"{s.counters['batches_total'] + s.counters['failures_total']:g}"
            for s in sinks
        ),
        "# HELP ordersync_relay_failures_total Failed deliveries (batches), per sink.",
        "# TYPE ordersync_relay_failures_total counter",
        *(
            f'ordersync_relay_failures_total{{sink="{s.sink}"}} {s.counters["failures_total"]:g}'
            for s in sinks
        ),
        "# HELP ordersync_relay_delivery_seconds From an event's commit to the sink's"
        " acknowledgement.",
        "# TYPE ordersync_relay_delivery_seconds histogram",
        *(line for s in sinks for line in _histogram(s)),
    ]
    return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")


def _histogram(sink: relay.SinkBacklog) -> list[str]:
    name, label = "ordersync_relay_delivery_seconds", f'sink="{sink.sink}"'
    count = sink.counters["delivered_total"]
    lines = [
        f'{name}_bucket{{{label},le="{le:g}"}} {sink.counters[column]:g}'
        for le, column in zip(relay.LATENCY_BUCKETS, relay.BUCKET_COLUMNS, strict=True)
    ]
    lines.append(f'{name}_bucket{{{label},le="+Inf"}} {count:g}')
    lines.append(f"{name}_sum{{{label}}} {sink.counters['latency_sum']:.6f}")
    lines.append(f"{name}_count{{{label}}} {count:g}")
    return lines
