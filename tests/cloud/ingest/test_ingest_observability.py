"""Observability of ingestion. Traces: one telemetry message's spans — the vehicle's
producer span, the worker's receive, decode, lake write, twin update and commit — linked
into one picture through the trace context in the signed envelope header. Metrics: what a
worker's Prometheus instruments count."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from ingest_helpers import SOC, Fleet, wall_clock_ns
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from drivetrain.cloud.infra import Database
from drivetrain.cloud.ingest import IngestPipeline, MemoryLake, MemoryReportedState
from drivetrain.cloud.ingest.worker import IngestWorker
from drivetrain.core import tracing
from drivetrain.core.transport import InProcessTransport, vehicle_topic
from drivetrain.core.wire import samples_table, seal_telemetry


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use_tracer_provider(provider)
    yield exporter
    tracing.use_tracer_provider(None)
    provider.shutdown()


def _message(fleet: Fleet, traceparent: str | None) -> bytes:
    now = wall_clock_ns()
    table = samples_table([SOC], [0, 0], [now, now + 1], [50.0, 51.0], None)
    return seal_telemetry(fleet.vin("eu1"), table, key=fleet.key("eu1"), seq=1,
                          traceparent=traceparent)


def _ingest(database: Database, payload: bytes, topic: str) -> IngestWorker:
    with InProcessTransport() as bus:
        worker = IngestWorker(bus, IngestPipeline(database, MemoryLake(), MemoryReportedState()),
                              max_batch_messages=4, max_delay_ms=10).start()
        bus.publish(topic, payload)
        bus.drain(10)
        assert worker.wait_idle(30)
        worker.stop()
    return worker


def _by_name(finished: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    return {s.name: s for s in finished}


def test_one_messages_spans_are_linked_from_vehicle_to_lake_and_twin(
    database: Database, fleet: Fleet, spans: InMemorySpanExporter
) -> None:
    with tracing.span("vehicle.send", kind="producer") as producer:
        payload = _message(fleet, tracing.current_traceparent())
    assert producer is not None
    worker = _ingest(database, payload, vehicle_topic(fleet.vin("eu1"), "telemetry"))
    assert worker.stats().samples_accepted == 2

    named = _by_name(spans.get_finished_spans())
    path = ["ingest.receive", "ingest.process", "ingest.decode", "lake.write", "twins.update",
            "ingest.commit"]
    assert set(path) <= set(named), sorted(named)
    receive = named["ingest.receive"]
    assert receive.kind == SpanKind.CONSUMER
    assert receive.attributes is not None
    assert receive.attributes["messaging.batch.message_count"] == 1
    # every step of the data path is in the receive span's trace, under it
    trace_id = receive.context.trace_id
    assert {named[n].context.trace_id for n in path} == {trace_id}
    process = named["ingest.process"]
    assert process.parent is not None and process.parent.span_id == receive.context.span_id
    for step in ("ingest.decode", "lake.write", "twins.update", "ingest.commit"):
        parent = named[step].parent
        assert parent is not None and parent.span_id == process.context.span_id, step
    assert named["lake.write"].attributes == {"drivetrain.region": "EU", "drivetrain.lake.rows": 2}
    # ... and the batch links back to the vehicle's producer span through the envelope
    produced = producer.get_span_context()
    linked = [(link.context.trace_id, link.context.span_id) for link in process.links]
    assert linked == [(produced.trace_id, produced.span_id)]


def test_a_vehicles_malformed_trace_context_is_ignored_not_fatal(
    database: Database, fleet: Fleet, spans: InMemorySpanExporter
) -> None:
    payload = _message(fleet, "00-" + "0" * 32 + "-" + "0" * 16 + "-01")  # all-zero ids
    worker = _ingest(database, payload, vehicle_topic(fleet.vin("eu1"), "telemetry"))
    assert worker.stats().samples_accepted == 2
    assert _by_name(spans.get_finished_spans())["ingest.process"].links == ()
    assert tracing.span_context_of("not-a-traceparent") is None
    assert tracing.span_context_of(12) is None  # type: ignore[arg-type]


def test_without_opentelemetry_tracing_is_a_no_op(
    database: Database, fleet: Fleet, spans: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tracing, "AVAILABLE", False)
    with tracing.span("vehicle.send") as nothing:
        assert nothing is None and tracing.current_traceparent() is None
    worker = _ingest(database, _message(fleet, None),
                     vehicle_topic(fleet.vin("eu1"), "telemetry"))
    assert worker.stats().samples_accepted == 2
    assert spans.get_finished_spans() == ()
    assert tracing.configure_tracing("drivetrain", {"OTEL_EXPORTER_OTLP_ENDPOINT": "x"}) is False


def test_a_workers_metrics_count_outcomes_reasons_and_lag(
    database: Database, fleet: Fleet
) -> None:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from drivetrain.cloud.ingest.metrics import IngestMetrics

    metrics = IngestMetrics(CollectorRegistry())
    topic = vehicle_topic(fleet.vin("eu1"), "telemetry")
    now = wall_clock_ns()
    table = samples_table([SOC], [0, 0], [now, now + 1], [50.0, 150.0], None)  # 150: out of range
    good = seal_telemetry(fleet.vin("eu1"), table, key=fleet.key("eu1"), seq=1)
    with InProcessTransport() as bus:
        worker = IngestWorker(bus, IngestPipeline(database, MemoryLake(), MemoryReportedState()),
                              max_batch_messages=4, max_delay_ms=10, metrics=metrics).start()
        for payload in (good, good, b"garbage"):  # the second is a re-delivery
            bus.publish(topic, payload)
        bus.drain(10)
        assert worker.wait_idle(30)
        worker.stop()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(
                   generate_latest(metrics.registry).decode())
               for s in family.samples}
    assert samples[("drivetrain_ingest_messages_total", (("status", "stored"),))] == 1
    assert samples[("drivetrain_ingest_messages_total", (("status", "duplicate"),))] == 1
    assert samples[("drivetrain_ingest_messages_total", (("status", "refused"),))] == 1
    assert samples[("drivetrain_ingest_samples_total", (("outcome", "accepted"),))] == 1
    assert samples[("drivetrain_ingest_messages_refused_total", (("reason", "malformed"),))] == 1
    assert samples[("drivetrain_ingest_samples_refused_total", (("reason", "out_of_range"),))] == 1
    assert samples[("drivetrain_ingest_lag_seconds_count", ())] == 3
    assert 0 < samples[("drivetrain_ingest_lag_seconds_sum", ())] < 30
    assert samples[("drivetrain_ingest_pending_messages", ())] == 0


def test_traces_are_exported_only_when_an_endpoint_is_configured() -> None:
    assert tracing.configure_tracing("drivetrain", {}) is False
    assert tracing.configure_tracing("drivetrain", {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true",
    }) is False
