"""Prometheus metrics, safe under gunicorn and Celery prefork.

Each process role (api, worker) writes to its own folder below METRICS_DIR when that is set
(prometheus-client's multiprocess mode, chosen by the process before it imports this module);
the API's /metrics adds up every role's folder on the host, plus the live queue depth.
"""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily

ENV = "PROMETHEUS_MULTIPROC_DIR"

HTTP_REQUESTS = Counter("triage_http_requests_total", "HTTP requests by route and status",
                        ["route", "method", "status"])
HTTP_LATENCY = Histogram("triage_http_request_seconds", "HTTP request latency by route",
                         ["route", "method"],
                         buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
DECISIONS = Counter("triage_decisions_total", "Engine decisions by action and category",
                    ["action", "category"])
MODERATION_LATENCY = Histogram(
    "triage_moderation_latency_seconds", "From comment submitted to engine decision recorded",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300))
BATCH_SIZES = Histogram("triage_worker_batch_size", "Comments per worker batch",
                        buckets=(1, 2, 5, 10, 20, 50, 100, 200))
ENQUEUE_SIZES = Histogram("triage_enqueue_batch_size",
                          "Comments an API process handed to the queue in one Redis call",
                          buckets=(1, 2, 5, 10, 20, 50, 100, 250))
ENQUEUE_FAILURES = Counter("triage_enqueue_failures_total",
                           "Comments left pending for the sweeper because Redis did not take them")
CONTENT_TYPE = CONTENT_TYPE_LATEST


class QueueDepth:
    """Messages waiting in Redis for the moderation queue, read at scrape time."""

    def __init__(self, redis_url: str, queue: str) -> None:
        self.redis_url, self.queue = redis_url, queue

    def collect(self):  # type: ignore[no-untyped-def]
        import redis

        gauge = GaugeMetricFamily("triage_queue_depth", "Messages waiting in the queue", labels=["queue"])
        try:
            client = redis.Redis.from_url(self.redis_url, socket_timeout=1, socket_connect_timeout=1)
            gauge.add_metric([self.queue], float(client.llen(self.queue)))
        except Exception:  # noqa: BLE001 - a scrape must not fail because Redis is away
            pass
        yield gauge


class AllRoles:
    """Every role's multiprocess files on this host, merged into one set of series."""

    def __init__(self, metrics_dir: str) -> None:
        self.metrics_dir = metrics_dir

    def collect(self):  # type: ignore[no-untyped-def]
        from prometheus_client.multiprocess import MultiProcessCollector

        files = sorted(str(p) for p in Path(self.metrics_dir).glob("*/*.db"))
        return MultiProcessCollector.merge(files, accumulate=True)


def render(metrics_dir: str, redis_url: str, queue: str) -> bytes:
    """The /metrics body."""
    from prometheus_client import REGISTRY

    if metrics_dir and os.environ.get(ENV):
        registry = CollectorRegistry()
        registry.register(AllRoles(metrics_dir))  # type: ignore[arg-type]
        registry.register(QueueDepth(redis_url, queue))  # type: ignore[arg-type]
        return generate_latest(registry)
    # A single process (tests, or development without METRICS_DIR).
    extra = CollectorRegistry()
    extra.register(QueueDepth(redis_url, queue))  # type: ignore[arg-type]
    return generate_latest(REGISTRY) + generate_latest(extra)


def mark_dead(pid: int) -> None:
    """gunicorn child_exit hook: keep a dead worker's counters, drop its live gauges."""
    if os.environ.get(ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
