"""The server's metrics in Prometheus's text format (prometheus_client, one registry per app).

Counters the service keeps as plain integers (`Counts`) are read at scrape time, so a step costs
no metric call beyond the two histograms: streams per batched step, and a step request's time.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .service import StreamService

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
LATENCY_BUCKETS = (1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 1.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    def __init__(self, service: StreamService) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "rnnkit_serve_requests",
            "HTTP requests and WebSocket messages answered, by route and status",
            ["route", "status"],
            registry=self.registry,
        )
        self.batch = Histogram(
            "rnnkit_serve_batch_streams",
            "streams stepped together in one batched step",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.latency = Histogram(
            "rnnkit_serve_step_seconds",
            "time from a step request's inputs read to its outputs ready",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_CountsCollector(service))
        service.on_round = self.batch.observe

    def text(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


class _CountsCollector:
    """The service's own counters and the number of streams in memory, at scrape time."""

    HELP = {
        "steps": "steps of streams taken",
        "rounds": "batched steps run",
        "opened": "streams opened",
        "closed": "streams closed",
        "saved": "stream states written to the store",
        "resumed": "streams resumed from the store",
        "evicted": "idle streams saved and dropped from memory",
    }

    def __init__(self, service: StreamService) -> None:
        self.service = service

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        counts = self.service.counts
        for name, text in self.HELP.items():
            yield CounterMetricFamily(f"rnnkit_serve_{name}", text, value=getattr(counts, name))
        yield GaugeMetricFamily(
            "rnnkit_serve_streams", "streams held in memory", value=len(self.service.last_used)
        )
