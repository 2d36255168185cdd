"""Prometheus instruments of one ingest worker (``drivetrain worker ingest --metrics-port``).

Counts come from two places: the worker's own counters (:class:`WorkerStats`), read at scrape
time so nothing is counted twice, and what each committed micro-batch reports — the refusal
reasons and the ingest lag, which the worker's counters do not keep. Every name starts
``drivetrain_ingest_``; the list, with their meaning, is in docs/deploy.md.

The *ingest lag* of a message is the time from its receipt by the worker to its
acknowledgement, which the worker sends only after the lake append and the state-database
commit: queueing in the bounded inbox, waiting for the micro-batch to fill, and processing.
A worker that falls behind shows it as this growing (and as ``pending_messages`` at the
inbox's bound), before the broker's queues overflow.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Final

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from drivetrain.cloud.ingest.results import IngestReport

if TYPE_CHECKING:
    from drivetrain.cloud.ingest.worker import IngestWorker

#: Lag buckets, seconds: a micro-batch waits up to max_delay_ms (200 ms by default); a worker
#: retrying an unavailable database holds its batch for minutes.
LAG_BUCKETS_S: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                        300.0)


class IngestMetrics:
    """The instruments, registered in ``registry`` (a worker's own, or the default one)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.lag_seconds = Histogram(
            "drivetrain_ingest_lag_seconds",
            "Time from a message's receipt by the worker to its acknowledgement after commit.",
            buckets=LAG_BUCKETS_S, registry=registry,
        )
        self.messages_refused = Counter(
            "drivetrain_ingest_messages_refused",
            "Messages dead-lettered as a whole, by reason (malformed, bad_signature, ...).",
            ["reason"], registry=registry,
        )
        self.samples_refused = Counter(
            "drivetrain_ingest_samples_refused",
            "Samples (or events) dead-lettered, by reason (unknown_path, out_of_range, ...).",
            ["reason"], registry=registry,
        )
        self._watched: _WorkerCollector | None = None

    def watch(self, worker: IngestWorker) -> None:
        """Expose ``worker``'s counters (read at each scrape); one worker per instance."""
        if self._watched is not None:
            raise ValueError("these metrics already watch a worker")
        self._watched = _WorkerCollector(worker)
        self.registry.register(self._watched)

    def committed(self, reports: Sequence[IngestReport], lags_s: Sequence[float]) -> None:
        """Record a committed micro-batch: its reports and each message's lag, seconds."""
        for lag in lags_s:
            self.lag_seconds.observe(lag)
        for report in reports:
            for result in report.results:
                if result.status == "refused" and result.reason:
                    self.messages_refused.labels(result.reason).inc()
                for reason, count in result.refused.items():
                    self.samples_refused.labels(reason).inc(count)


class _WorkerCollector(Collector):
    """The worker's :class:`WorkerStats` as Prometheus metrics, read at scrape time."""

    def __init__(self, worker: IngestWorker) -> None:
        self.worker = worker

    def collect(self) -> Iterator[Metric]:
        stats = self.worker.stats()
        messages = CounterMetricFamily(
            "drivetrain_ingest_messages",
            "Messages acknowledged after commit, by what became of them.",
            labels=["status"],
        )
        refused = stats.messages_refused
        messages.add_metric(["stored"], stats.acknowledged - refused - stats.duplicates)
        messages.add_metric(["duplicate"], stats.duplicates)
        messages.add_metric(["refused"], refused)
        yield messages
        samples = CounterMetricFamily(
            "drivetrain_ingest_samples", "Samples (signal values) by outcome.", labels=["outcome"]
        )
        samples.add_metric(["accepted"], stats.samples_accepted)
        samples.add_metric(["refused"], stats.samples_refused)
        samples.add_metric(["not_consented"], stats.samples_not_consented)
        yield samples
        yield CounterMetricFamily(
            "drivetrain_ingest_received", "Messages handed to the worker by the broker.",
            value=stats.received,
        )
        yield CounterMetricFamily(
            "drivetrain_ingest_micro_batches", "Micro-batches committed.",
            value=stats.micro_batches,
        )
        yield CounterMetricFamily(
            "drivetrain_ingest_batch_failures",
            "Micro-batch attempts that failed (retried, or their poison message set aside).",
            value=stats.failures,
        )
        yield CounterMetricFamily(
            "drivetrain_ingest_dead_letters_not_kept",
            "Dead letters past the per-vehicle rate limit: counted, not stored.",
            value=stats.dead_letters_not_kept,
        )
        yield GaugeMetricFamily(
            "drivetrain_ingest_pending_messages",
            "Messages received and not yet acknowledged (in the inbox or the batch in hand).",
            value=stats.pending,
        )
        yield GaugeMetricFamily(
            "drivetrain_ingest_last_batch_seconds",
            "Wall time of the last committed micro-batch.",
            value=stats.last_batch_ms / 1000.0,
        )
