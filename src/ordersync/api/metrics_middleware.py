"""The API's own metrics, counted in the process that serves the request: HTTP requests by
route template and status with a latency histogram, and orders or sales refused for
insufficient stock.

`serve --workers N` runs N processes, and /metrics is answered by any one of them, so the
counters must add up across them. That is prometheus-client's multiprocess mode: when
PROMETHEUS_MULTIPROC_DIR names a directory (serve sets it to `metrics_dir` and empties it at
start when it runs several workers), every process keeps its values in files there and
/metrics reads them all (MultiProcessCollector). With one process they stay in memory.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI, Request
from prometheus_client import CollectorRegistry, Counter, Histogram, values
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..config import Settings
from ..domain.errors import InsufficientStock, OrdersyncError

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNMATCHED = "unmatched"  # requests no route took: their paths are not labels


def multiprocess() -> bool:
    """True when prometheus-client was loaded in multiprocess mode (PROMETHEUS_MULTIPROC_DIR
    set before it was imported, as serve does for its worker processes)."""
    return values.ValueClass is not values.MutexValue


class ApiMetrics:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings  # what /metrics reads from the database depends on them
        # In multiprocess mode the values live in files, read back by MultiProcessCollector;
        # else in a registry of this app's own (tests build many apps in one process).
        self._registry = None if multiprocess() else CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "ordersync_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=self._registry,
        )
        self.latency = Histogram(
            "ordersync_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self._registry,
        )
        self.insufficient_stock = Counter(
            "ordersync_insufficient_stock_refusals",
            "Orders and till sales refused with insufficient_stock, by route template.",
            ["route"],
            registry=self._registry,
        )

    def collector(self) -> Collector:
        """What /metrics exports of these, summed over every worker process."""
        if self._registry is not None:
            return self._registry
        return _FromFiles()

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)


class _FromFiles:
    def collect(self) -> Iterable[Metric]:
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return registry.collect()


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return str(path) if path else UNMATCHED


class HttpMetricsMiddleware:
    """Times every HTTP request and counts it under its route template (`/orders/{order_id}`,
    never the path itself) and status; a request that failed without an answer is a 500."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            elapsed = time.perf_counter() - started
            self.metrics.observe(scope["method"], route_template(scope), status, elapsed)


def install_metrics(app: FastAPI, settings: Settings) -> ApiMetrics:
    """Counts requests (middleware, outermost when installed last) and insufficient-stock
    refusals (around the handler of OrdersyncError, which install_error_handlers set up)."""
    metrics = ApiMetrics(settings)
    app.state.api_metrics = metrics
    app.add_middleware(HttpMetricsMiddleware, metrics=metrics)
    answer = app.exception_handlers[OrdersyncError]

    async def counted(request: Request, exc: Exception) -> Any:
        if isinstance(exc, InsufficientStock):
            metrics.insufficient_stock.labels(route_template(request.scope)).inc()
        response = answer(request, exc)
        return await response if inspect.isawaitable(response) else response

    app.add_exception_handler(OrdersyncError, counted)
    return metrics
