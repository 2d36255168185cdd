"""OpenAPI 3.1 published, docs served, health reported without authentication."""

from __future__ import annotations

from fastapi.testclient import TestClient

from drivetrain.cloud.infra import Database


def test_openapi_is_3_1_and_documents_the_client_credentials_flow(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.1")
    scheme = spec["components"]["securitySchemes"]["OAuth2ClientCredentials"]
    flow = scheme["flows"]["clientCredentials"]
    assert flow["tokenUrl"] == "/v1/auth/token"
    assert "audit:read" in flow["scopes"]
    audit = spec["paths"]["/v1/audit"]["get"]
    assert audit["security"] == [{"OAuth2ClientCredentials": ["audit:read"]}]
    assert "security" not in spec["paths"]["/healthz"]["get"]


def test_interactive_docs_are_served(client: TestClient) -> None:
    response = client.get("/docs")
    assert response.status_code == 200 and "swagger" in response.text.lower()


def test_health_reports_the_database_and_its_revisions(
    client: TestClient, database: Database
) -> None:
    body = client.get("/healthz").json()
    assert body["status"] == "ok"
    assert body["database"]["dialect"] == database.dialect
    assert body["database"]["revisions"] == list(database.head_revisions())


def test_health_is_503_when_the_database_is_down(client: TestClient, database: Database) -> None:
    database.engine.dispose()
    broken = Database("postgresql+psycopg://x:y@127.0.0.1:1/none?connect_timeout=1")
    client.app.state.drivetrain = type(client.app.state.drivetrain)(  # type: ignore[attr-defined]
        settings=client.app.state.drivetrain.settings,  # type: ignore[attr-defined]
        database=broken,
        token_key=client.app.state.drivetrain.token_key,  # type: ignore[attr-defined]
    )
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["status"] == "degraded"
    broken.dispose()


def test_health_of_a_down_database_names_no_host_or_account(
    client: TestClient, database: Database
) -> None:
    broken = Database("postgresql+psycopg://dbuser:dbpass@127.0.0.1:1/secretdb?connect_timeout=1")
    client.app.state.drivetrain = type(client.app.state.drivetrain)(  # type: ignore[attr-defined]
        settings=client.app.state.drivetrain.settings,  # type: ignore[attr-defined]
        database=broken,
        token_key=client.app.state.drivetrain.token_key,  # type: ignore[attr-defined]
    )
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["database"]["detail"] == "unavailable"
    for secret in ("dbuser", "dbpass", "secretdb", "127.0.0.1"):
        assert secret not in response.text
    broken.dispose()
