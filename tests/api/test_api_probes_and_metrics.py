"""The orchestrator's probes (``/livez``, ``/readyz``) and the Prometheus metrics
(``/metrics``): unauthenticated probes that reveal nothing, readiness that names the failed
dependency, and metrics only for the metrics token or loopback scrapers."""

from __future__ import annotations

import random
import time
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from drivetrain.api import create_app
from drivetrain.api.probes import default_readiness
from drivetrain.cloud.commands import DeliveryDraft, add_deliveries
from drivetrain.cloud.fleet import provision_vehicle
from drivetrain.cloud.infra import Database, create_tenant
from drivetrain.cloud.infra.metrics_access import MetricsAccess, MetricsServer, is_loopback
from drivetrain.cloud.ingest import IngestPipeline, MemoryLake, MemoryReportedState, RawMessage
from drivetrain.cloud.ota.flows import open_rollout_job
from drivetrain.cloud.twins import set_desired
from drivetrain.core.crypto import SigningKey
from drivetrain.core.errors import ConfigurationError
from drivetrain.core.settings import Settings
from drivetrain.core.wire import samples_table, seal_telemetry

LOOPBACK = ("127.0.0.1", 40000)
TOKEN = "m" * 40
CHARGE_LIMIT = "Vehicle.Powertrain.TractionBattery.Charging.ChargeLimit"
SOC = "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current"


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_liveness_answers_without_touching_any_dependency(app: FastAPI) -> None:
    app.state.readiness = default_readiness(
        app.state.drivetrain.settings,
        Database("postgresql+psycopg://x:y@127.0.0.1:1/none?connect_timeout=1"))
    with TestClient(app) as client:
        response = client.get("/livez")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readiness_checks_the_database_and_the_lake(client: TestClient, settings: Settings) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ready" and body["failed"] == []
    # the fleet profile's services too, where the settings name them
    services = [("broker", True)] if settings.broker_url else []
    services += [("backbone", True)] if settings.profile == "fleet" else []
    assert [(c["name"], c["ok"]) for c in body["checks"]] == [
        ("database", True), ("lake", True), *services]


def test_readiness_names_each_failed_dependency_and_reveals_nothing(
    tmp_path: Path, database: Database
) -> None:
    not_a_dir = tmp_path / "lake-eu-is-a-file"
    not_a_dir.write_text("")
    unreachable = "postgresql+psycopg://dbuser:dbpass@127.0.0.1:1/none?connect_timeout=1"
    settings = Settings(data_dir=tmp_path / "data", lake_roots={"EU": not_a_dir},
                        broker_url="mqtt://ops:hunter2-secret@127.0.0.1:1", profile="fleet",
                        database_url=unreachable, backbone_url="nats://js:natspw@127.0.0.1:1")
    app = create_app(settings, database)
    app.state.readiness = default_readiness(settings, Database(unreachable))
    with TestClient(app) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not_ready"
    assert body["failed"] == ["database", "lake", "broker", "backbone"]
    assert {c["name"]: c["detail"] for c in body["checks"]} == {
        "database": "unreachable", "lake": "not writable: EU", "broker": "unreachable",
        "backbone": "unreachable"}
    for secret in ("hunter2", "dbpass", "dbuser", "127.0.0.1", str(tmp_path), "ops", "natspw"):
        assert secret not in response.text


def test_metrics_are_refused_to_a_remote_scraper_without_the_token(client: TestClient) -> None:
    response = client.get("/metrics")  # the test client's address is not loopback
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    assert "loopback" in response.json()["detail"]


def test_metrics_are_served_to_loopback_with_request_counts_by_route_template(
    app: FastAPI,
) -> None:
    with TestClient(app, client=LOOPBACK) as client:
        client.get("/livez")
        client.get("/v1/twins/WVWZZZ1JZXW000001")  # unauthenticated: 401, templated route
        client.get("/no/such/path/8d1f")
        response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = _samples(response.text)
    requests = "drivetrain_http_requests_total"
    assert samples[(requests, (("method", "GET"), ("route", "/livez"), ("status", "200")))] == 1
    assert samples[(requests, (("method", "GET"), ("route", "/v1/twins/{vin}"),
                               ("status", "401")))] == 1
    assert samples[(requests, (("method", "GET"), ("route", "unmatched"), ("status", "404")))] == 1
    assert "8d1f" not in response.text and "WVWZZZ" not in response.text
    assert samples[("drivetrain_http_request_duration_seconds_count",
                    (("method", "GET"), ("route", "/livez")))] == 1
    assert samples[("drivetrain_fleet_metrics_up", ())] == 1


def test_the_metrics_token_admits_any_address_and_only_itself(
    settings: Settings, database: Database
) -> None:
    app = create_app(settings.model_copy(update={"metrics_token": SecretStr(TOKEN)}), database)
    with TestClient(app) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Bearer " + "x" * 40}
                          ).status_code == 401
        ok = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200 and "drivetrain_http_requests_total" in ok.text


def test_a_short_metrics_token_is_refused_at_start() -> None:
    with pytest.raises(ConfigurationError, match="at least 32 characters"):
        MetricsAccess("short")
    assert is_loopback("::ffff:127.0.0.1") and is_loopback("::1")
    assert not is_loopback("10.0.0.1") and not is_loopback("testclient")


def test_fleet_metrics_show_dead_letters_convergence_and_ota_progress(
    app: FastAPI, database: Database
) -> None:
    with database.session() as session:
        create_tenant(session, "acme", actor="test")
        vehicle, credentials = provision_vehicle(
            session, tenant="acme", model="compact-bev", region="EU",
            cloud_key=SigningKey.from_seed(b"c" * 32).verify_key, actor="test",
            rng=random.Random(3))
    vin = vehicle.vin
    with database.session() as session:
        set_desired(session, vin, {CHARGE_LIMIT: 80}, tenant="acme", if_match=None, actor="op")
        job = open_rollout_job(session, tenant="acme", actor="op", campaign="spring-update",
                               image="bms-2.1")
        add_deliveries(session, job, [DeliveryDraft(vin)], tenant="acme")
    now = time.time_ns()
    table = samples_table([SOC], [0, 0], [now, now + 1], [50.0, 51.0], None)
    pipeline = IngestPipeline(database, MemoryLake(), MemoryReportedState())
    pipeline.process([
        RawMessage(f"dt/v1/{vin}/telemetry", b"not an envelope"),
        RawMessage(f"dt/v1/{vin}/telemetry",
                   seal_telemetry(vin, table, key=credentials.signing_key, seq=1)),
    ])

    with TestClient(app, client=LOOPBACK) as client:
        samples = _samples(client.get("/metrics").text)
    assert samples[("drivetrain_dead_letters_open", (("reason", "malformed"),))] == 1
    assert samples[("drivetrain_twin_desired_items",
                    (("status", "pending"), ("tenant", "acme")))] == 1
    assert samples[("drivetrain_ota_rollout_deliveries",
                    (("rollout", "OTA spring-update"), ("state", "queued"),
                     ("tenant", "acme")))] == 1
    assert samples[("drivetrain_ota_rollout_deliveries",
                    (("rollout", "OTA spring-update"), ("state", "succeeded"),
                     ("tenant", "acme")))] == 0
    assert samples[("drivetrain_ingested_messages_total", (("outcome", "accepted"),))] == 1
    assert samples[("drivetrain_ingested_samples_total", (("outcome", "accepted"),))] == 2
    assert samples[("drivetrain_ingested_messages_total", (("outcome", "malformed"),))] == 1
    last = samples[("drivetrain_ingest_last_accepted_timestamp_seconds", ())]
    assert abs(last - now / 1e9) < 120


def test_a_workers_metrics_server_applies_the_same_rule() -> None:
    from prometheus_client import CollectorRegistry, Counter

    registry = CollectorRegistry()
    Counter("drivetrain_example", "An example.", registry=registry).inc()
    with_token = MetricsServer(registry, "127.0.0.1", 0, MetricsAccess(TOKEN)).start()
    loopback_only = MetricsServer(registry, "127.0.0.1", 0, MetricsAccess()).start()
    try:
        url = f"http://127.0.0.1:{with_token.port}/metrics"
        assert httpx.get(url).status_code == 401
        served = httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"})
        assert served.status_code == 200 and "drivetrain_example_total 1.0" in served.text
        assert httpx.get(f"http://127.0.0.1:{with_token.port}/other").status_code == 404
        assert httpx.get(f"http://127.0.0.1:{loopback_only.port}/metrics").status_code == 200
    finally:
        with_token.close()
        loopback_only.close()


def test_each_request_is_a_server_span_continuing_the_callers_trace(app: FastAPI) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind

    from drivetrain.core import tracing

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use_tracer_provider(provider)
    caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    try:
        with TestClient(app) as client:
            client.get("/v1/twins/WVWZZZ1JZXW000001", headers={"traceparent": caller})
    finally:
        tracing.use_tracer_provider(None)
        provider.shutdown()
    [span] = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.SERVER]
    assert span.name == "GET /v1/twins/{vin}"
    assert span.context.trace_id == 0x4BF92F3577B34DA6A3CE929D0E0E4736
    assert span.parent is not None and span.parent.span_id == 0x00F067AA0BA902B7
    assert span.attributes is not None and span.attributes["http.response.status_code"] == 401


def test_a_dispatchers_counters_are_exposed_before_and_after_it_starts() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from drivetrain.cloud.commands import DispatcherStats
    from drivetrain.cloud.commands.metrics import DispatcherCollector

    current: list[DispatcherStats] = []
    registry = CollectorRegistry()
    registry.register(DispatcherCollector(lambda: current[0] if current else None))
    before = _samples(generate_latest(registry).decode())
    assert before[("drivetrain_dispatch_rounds_total", ())] == 0
    current.append(DispatcherStats(rounds=7, sent=5, succeeded=3, failed=1, refused_acks=2))
    after = _samples(generate_latest(registry).decode())
    assert after[("drivetrain_dispatch_rounds_total", ())] == 7
    assert after[("drivetrain_dispatch_messages_sent_total", ())] == 5
    assert after[("drivetrain_dispatch_refused_acks_total", ())] == 2
