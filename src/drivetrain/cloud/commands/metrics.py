"""Prometheus metrics of a dispatcher (``drivetrain worker dispatch --metrics-port``): its
counters since it started, read at scrape time. docs/deploy.md lists the names."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from drivetrain.cloud.commands.dispatcher import DispatcherStats


class DispatcherCollector(Collector):
    """``stats()`` (None: not dispatching yet) as ``drivetrain_dispatch_*`` counters."""

    def __init__(self, stats: Callable[[], DispatcherStats | None]) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        stats = self.stats() or DispatcherStats()
        for name, value, text in (
            ("rounds", stats.rounds, "Dispatcher rounds run."),
            ("messages_sent", stats.sent, "Signed messages sent to vehicles."),
            ("succeeded", stats.succeeded, "Deliveries the vehicles acknowledged as done."),
            ("failed", stats.failed, "Deliveries that failed or timed out."),
            ("refused_acks", stats.refused_acks,
             "Acknowledgements refused (unknown, stale or not the vehicle's)."),
            ("errors", stats.errors, "Rounds that failed (retried)."),
        ):
            yield CounterMetricFamily(f"drivetrain_dispatch_{name}", text, value=value)
