"""The published OpenAPI document says what the API really does: every route has a
hand-written summary and a typed success response, every limit its maximum, every error the
RFC 9457 problem body the API really sends; and schemathesis checks live responses against
the document, operation by operation."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

from drivetrain.api import create_app
from drivetrain.api.openapi import Problem
from drivetrain.core.settings import load_settings

#: Parameters and body fields that cap a result; each must document its maximum.
LIMIT_NAMES = {"limit", "max_rows", "max_events"}
#: Schemathesis examples per operation: every operation is called, a few times, to keep this
#: fast (120-odd operations); the per-domain API tests and the out-of-range fuzz tests
#: (test_api_out_of_range.py) go deeper on each route.
EXAMPLES_PER_OPERATION = 2
#: Operations schemathesis leaves out, each with the reason and the test that covers it.
NOT_FUZZED = {
    ("GET", "/v1/twins/changes"): "an event stream open until its timeout; covered by "
    "tests/api/test_twins_api.py::test_change_stream_sends_only_the_selected_twins_changes",
}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    """The API on SQLite (the fuzzing needs one engine, not both), one for the module: the
    document is the same for every test, and building the app costs seconds."""
    settings = load_settings(data_dir=tmp_path_factory.mktemp("contract") / "drivetrain")
    application = create_app(settings)
    yield application


@pytest.fixture(scope="module")
def spec(app: FastAPI) -> dict[str, Any]:
    with TestClient(app) as client:
        document = client.get("/openapi.json").json()
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def token(app: FastAPI) -> str:
    bootstrap = app.state.drivetrain.bootstrap
    with TestClient(app) as client:
        response = client.post("/v1/auth/token", data={
            "grant_type": "client_credentials", "client_id": bootstrap.client_id,
            "client_secret": bootstrap.client_secret,
        })
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def _operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            yield method.upper(), path, operation


def test_every_route_has_a_hand_written_summary() -> None:
    from drivetrain.api.routers import ROUTERS

    routes = [(prefix, r) for prefix, router in ROUTERS for r in router.routes
              if isinstance(r, APIRoute) and r.include_in_schema]
    assert len(routes) >= 30
    missing = [f"{sorted(r.methods)} {prefix}{r.path}" for prefix, r in routes if not r.summary]
    assert missing == [], "give these routes a summary= (FastAPI would derive one from the "\
        f"function name): {missing}"


def _typed(schema: dict[str, Any]) -> bool:
    if "$ref" in schema:
        return True
    if schema.get("type") == "array":
        return _typed(schema.get("items", {}))
    if "anyOf" in schema or "oneOf" in schema:
        return all(_typed(s) for s in schema.get("anyOf", schema.get("oneOf", [])))
    return schema.get("type") in ("object", "integer", "number", "boolean") or (
        schema.get("type") == "string" and ("format" in schema or "contentMediaType" in schema))


def test_every_success_response_has_a_typed_schema(spec: dict[str, Any]) -> None:
    untyped = []
    for method, path, operation in _operations(spec):
        for status, response in operation["responses"].items():
            if not status.startswith("2"):
                continue
            for media, content in response.get("content", {}).items():
                if not _typed(content.get("schema") or {}):
                    untyped.append(f"{method} {path} {status} {media}: {content.get('schema')}")
    assert untyped == []


def _maximum(schema: dict[str, Any]) -> object:
    """The schema's maximum, also inside ``anyOf`` (an optional parameter's)."""
    if "maximum" in schema:
        return schema["maximum"]
    found = [_maximum(s) for s in schema.get("anyOf", []) if s.get("type") != "null"]
    return found[0] if found and all(f is not None for f in found) else None


def test_every_limit_documents_its_maximum(spec: dict[str, Any]) -> None:
    unbounded = [
        f"{method} {path}: {p['name']}"
        for method, path, operation in _operations(spec)
        for p in operation.get("parameters", [])
        if p["name"] in LIMIT_NAMES and _maximum(p["schema"]) is None
    ]
    for name, schema in spec["components"]["schemas"].items():
        for field, definition in schema.get("properties", {}).items():
            if field in LIMIT_NAMES and _maximum(definition) is None:
                unbounded.append(f"{name}.{field}")
    assert unbounded == []


def test_every_integer_a_request_carries_documents_its_range(spec: dict[str, Any]) -> None:
    """An id or offset beyond what the database stores is refused as bad input (422), and the
    document says where the range ends."""
    unbounded = [
        f"{method} {path}: {p['name']}"
        for method, path, operation in _operations(spec)
        for p in operation.get("parameters", [])
        if (p["schema"].get("type") == "integer" or any(
            s.get("type") == "integer" for s in p["schema"].get("anyOf", [])))
        and _maximum(p["schema"]) is None
    ]
    assert unbounded == []


def test_every_422_documents_the_problem_body_with_an_example(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "Problem" in schemas
    for method, path, operation in _operations(spec):
        content = operation["responses"]["422"]["content"]
        assert list(content) == ["application/problem+json"], (method, path)
        example = Problem.model_validate(content["application/problem+json"]["example"])
        assert example.status == 422 and example.instance == path and example.errors
        default = operation["responses"]["default"]["content"]["application/problem+json"]
        assert default["schema"] == {"$ref": "#/components/schemas/Problem"}


def test_a_real_422_is_the_documented_body(
    app: FastAPI, spec: dict[str, Any], token: str
) -> None:
    documented = spec["paths"]["/v1/audit"]["get"]["responses"]["422"]["content"][
        "application/problem+json"]["example"]
    field = documented["errors"][0]["field"]
    top = int(re.search(r"less than or equal to (\d+)", documented["detail"]).group(1))  # type: ignore[union-attr]
    with TestClient(app) as client:  # the request the example describes
        response = client.get("/v1/audit", params={field.removeprefix("query."): top + 1},
                              headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    Problem.model_validate(body)
    assert set(body) == set(documented)
    assert {k: body[k] for k in ("type", "title", "status", "instance")} == \
        {k: documented[k] for k in ("type", "title", "status", "instance")}
    assert body["errors"][0]["field"] == field
    assert body["detail"] == documented["detail"]  # the example is the API's own wording


def test_live_responses_conform_to_the_document(app: FastAPI, token: str) -> None:
    from schemathesis import checks

    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    # Header values must be ASCII on the wire; NUL bytes are refused by the HTTP client.
    schema.config.generation.update(codec="ascii", allow_x00=False,
                                    max_examples=EXAMPLES_PER_OPERATION,
                                    modes=list(schemathesis.GenerationMode))
    conformance = [checks.not_a_server_error, checks.status_code_conformance,
                   checks.content_type_conformance, checks.response_schema_conformance]
    headers = {"Authorization": f"Bearer {token}"}
    failures: dict[str, str] = {}
    fuzzed = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in NOT_FUZZED:
            continue
        fuzzed += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def call(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=headers, checks=conformance)

        try:
            call()
        except BaseException as e:
            if isinstance(e, KeyboardInterrupt):
                raise
            failures[f"{operation.method.upper()} {operation.path}"] = str(e)[:2000]
    assert fuzzed >= 30
    assert failures == {}
