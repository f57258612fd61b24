"""Prometheus metrics of one server: HTTP requests, and the store and projections read at
scrape time (``GET /metrics``)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from cronica.errors import CronicaError
from cronica.projections import projection_status
from cronica.readmodels.base import ReadModelDatabase
from cronica.relay import relay_status
from cronica.store.base import EventStore

log = logging.getLogger("cronica.server")

_STATES = ("catching_up", "live", "stopped", "failed")


class Metrics:
    """The registry behind ``/metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "cronica_http_requests",
            "HTTP requests answered, by method, route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "cronica_http_request_seconds",
            "Time to answer an HTTP request, by method and route",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def watch(self, source: Callable[[], tuple[EventStore, ReadModelDatabase] | None]) -> None:
        """Report the store's head and each projection's position, lag and state, read from
        ``source()`` at every scrape (None: the service is not running yet)."""
        self.registry.register(_StoreCollector(source))


class _StoreCollector(Collector):
    def __init__(self, source: Callable[[], tuple[EventStore, ReadModelDatabase] | None]) -> None:
        self._source = source

    def collect(self) -> Iterator[GaugeMetricFamily]:
        found = self._source()
        if found is None:
            return
        store, read_models = found
        head = GaugeMetricFamily("cronica_store_head_position", "The log's last position")
        position = GaugeMetricFamily(
            "cronica_projection_position", "A projection's checkpoint", labels=["projection"]
        )
        lag = GaugeMetricFamily(
            "cronica_projection_lag_events",
            "Events in the log that a projection has not applied",
            labels=["projection"],
        )
        lag_seconds = GaugeMetricFamily(
            "cronica_projection_lag_seconds",
            "Age of the oldest event a projection has not applied",
            labels=["projection"],
        )
        state = GaugeMetricFamily(
            "cronica_projection_state",
            "1 for the projection's state",
            labels=["projection", "state"],
        )
        relay_lag = GaugeMetricFamily(
            "cronica_relay_lag_events",
            "Events in the log that a relay has not published to its bus",
            labels=["bus"],
        )
        try:
            head.add_metric([], store.head_position())
            for relay in relay_status(store, read_models):
                relay_lag.add_metric([relay.name], relay.lag_events)
            for s in projection_status(store, read_models):
                position.add_metric([s.name], s.position)
                lag.add_metric([s.name], s.lag_events)
                lag_seconds.add_metric([s.name], s.lag_seconds)
                for name in _STATES:
                    state.add_metric([s.name, name], 1.0 if s.state == name else 0.0)
        except CronicaError as exc:  # a scrape must not fail because the store is down
            log.warning("metrics: could not read the store: %s", exc)
            return
        yield from (head, position, lag, lag_seconds, state, relay_lag)
