"""One mapping from the error tree to HTTP statuses, as RFC 9457 problem details."""

from __future__ import annotations

import pytest
from fastapi import APIRouter, FastAPI, Query
from fastapi.testclient import TestClient

from drivetrain.cloud.infra.http.context import RequestIdMiddleware
from drivetrain.cloud.infra.http.problems import install_error_handlers
from drivetrain.core import errors

CASES: list[tuple[type[errors.DrivetrainError], int]] = [
    (errors.BadInputError, 422),
    (errors.UnknownSignalError, 422),
    (errors.VerificationError, 422),
    (errors.SignatureError, 422),
    (errors.AuthenticationError, 401),
    (errors.PermissionDeniedError, 403),
    (errors.AuthError, 403),
    (errors.NotFoundError, 404),
    (errors.ConflictError, 409),
    (errors.VersionConflictError, 409),
    (errors.StorageError, 503),
    (errors.TransportError, 503),
    (errors.ConfigurationError, 500),
]


def _app() -> FastAPI:
    app = FastAPI()
    router = APIRouter()

    @router.get("/raise/{name}")
    def raise_error(name: str) -> None:
        raise getattr(errors, name)(f"the specific reason for {name}: value 'x'")

    @router.get("/crash")
    def crash() -> None:
        raise KeyError("internal detail")

    @router.get("/typed")
    def typed(count: int = Query(ge=1)) -> int:
        return count

    app.include_router(router)
    install_error_handlers(app)
    app.add_middleware(RequestIdMiddleware)
    return app


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(_app(), raise_server_exceptions=False)


@pytest.mark.parametrize(("error", "status"), CASES, ids=[c[0].__name__ for c in CASES])
def test_each_error_maps_to_its_status_with_its_own_message(
    client: TestClient, error: type[errors.DrivetrainError], status: int
) -> None:
    response = client.get(f"/raise/{error.__name__}", headers={"X-Request-ID": "r-42"})
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert body["detail"] == f"the specific reason for {error.__name__}: value 'x'"
    assert body["type"] == f"urn:drivetrain:error:{error.__name__}"
    assert body["request_id"] == "r-42"
    assert body["title"] != "Internal error"


def test_every_error_class_in_the_tree_has_a_non_generic_status() -> None:
    from drivetrain.cloud.infra.http.problems import status_for

    def subclasses(cls: type) -> list[type]:
        return [cls] + [s for c in cls.__subclasses__() for s in subclasses(c)]

    for cls in subclasses(errors.DrivetrainError)[1:]:
        _status, title = status_for(cls("m"))
        assert title != "Drivetrain error", cls


def test_request_validation_error_names_the_field_and_the_value(client: TestClient) -> None:
    response = client.get("/typed?count=zero")
    assert response.status_code == 422
    body = response.json()
    assert body["errors"][0]["field"] == "query.count"
    assert "'zero'" in body["detail"]


def test_unexpected_exception_is_a_500_problem_without_internals(client: TestClient) -> None:
    response = client.get("/crash", headers={"X-Request-ID": "r-crash"})
    assert response.status_code == 500
    body = response.json()
    assert "r-crash" in body["detail"] and "KeyError" in body["detail"]
    assert "internal detail" not in body["detail"]


def test_unknown_route_is_a_404_problem(client: TestClient) -> None:
    response = client.get("/no/such/route")
    assert response.status_code == 404
    assert response.json()["detail"] == "GET /no/such/route: Not Found"
