"""The published OpenAPI document, made to say what the API really does.

FastAPI's generated document describes its own validation error (``HTTPValidationError``,
``application/json``) for every route; this API answers every error with an RFC 9457 problem
document (``application/problem+json``, see ``cloud.infra.http.problems``). ``openapi_for``
rewrites the generated document once, for every route of every domain:

- the 422 response of each operation carries the :class:`Problem` schema and an example of
  the body a bad request to that operation gets, naming one of its own parameters;
- a ``default`` response documents the other error statuses (401, 403, 404, 409, 503 ...)
  with the same schema;
- FastAPI's validation-error schemas leave the components.

``tests/api/test_api_openapi_contract.py`` checks the document against live responses
(schemathesis) and holds every route to hand-written summaries, typed 200 responses and a
documented maximum for each ``limit``.
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field

from drivetrain.cloud.infra.http.problems import PROBLEM_JSON

_REF_TEMPLATE: Final = "#/components/schemas/{model}"
_FASTAPI_VALIDATION_SCHEMAS: Final = ("HTTPValidationError", "ValidationError")


class FieldProblem(BaseModel):
    """One invalid part of a request."""

    field: str = Field(description="Where: location and name, e.g. query.limit or body.values.")
    message: str = Field(description="What was expected, with the value received.")


class Problem(BaseModel):
    """An RFC 9457 problem document: every error response of this API."""

    type: str = Field(description="URN naming the kind of error, e.g. "
                      "urn:drivetrain:error:NotFoundError.")
    title: str = Field(description="Short summary of the kind of error.")
    status: int = Field(description="The HTTP status code.")
    detail: str = Field(description="What went wrong with this request, quoting the bad value.")
    instance: str = Field(description="The path of the request.")
    request_id: str | None = Field(
        description="The request's id (X-Request-ID); quote it when reporting a problem."
    )
    errors: list[FieldProblem] | None = Field(
        None, description="Validation errors only: each invalid field."
    )


def _example_field(operation: dict[str, Any]) -> tuple[str, str]:
    """A parameter of ``operation`` to show in its 422 example, with a message of the kind
    the API gives for it."""
    query = [p for p in operation.get("parameters", []) if p.get("in") == "query"]
    for parameter in query:
        top = parameter.get("schema", {}).get("maximum")
        if isinstance(top, int):
            return (f"query.{parameter['name']}",
                    f"Input should be less than or equal to {top} (got '{top + 1}')")
    for parameter in query:
        if parameter.get("required"):
            return f"query.{parameter['name']}", "Field required"
    if "requestBody" in operation:
        return "body", "Field required"
    for parameter in operation.get("parameters", []):
        return f"{parameter.get('in', 'query')}.{parameter['name']}", "Field required"
    return "query", "Extra inputs are not permitted"


def _validation_example(path: str, operation: dict[str, Any]) -> dict[str, Any]:
    field, message = _example_field(operation)
    return {
        "type": "urn:drivetrain:error:RequestValidationError",
        "title": "Bad input",
        "status": 422,
        "detail": f"request validation failed: {field}: {message}",
        "instance": path,
        "request_id": "5b0e7c1f2a9d4e6b8c3a1f0d2e4b6a8c",
        "errors": [{"field": field, "message": message}],
    }


def _problem_content(example: dict[str, Any] | None = None) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": {"$ref": _REF_TEMPLATE.format(model="Problem")}}
    if example is not None:
        media["example"] = example
    return {PROBLEM_JSON: media}


def describe_errors(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with problem-document error responses on every operation (in place)."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name in _FASTAPI_VALIDATION_SCHEMAS:
        schemas.pop(name, None)
    for model in (FieldProblem, Problem):
        schemas[model.__name__] = model.model_json_schema(ref_template=_REF_TEMPLATE)
    for path, operations in document.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            responses["422"] = {
                "description": "Bad input: a parameter or the body is invalid (each field "
                "named in `errors`), or a value the domain refuses.",
                "content": _problem_content(_validation_example(path, operation)),
            }
            responses.setdefault("default", {
                "description": "Any other error (401 without a valid token, 403 without the "
                "scope or tenant, 404, 409, 503 ...), as an RFC 9457 problem document.",
                "content": _problem_content(),
            })
    return document


def openapi_for(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document (built once, then cached on the app)."""
    if app.openapi_schema is None:
        document = get_openapi(
            title=app.title, version=app.version, openapi_version=app.openapi_version,
            summary=app.summary, description=app.description, routes=app.routes,
            tags=app.openapi_tags, servers=app.servers,
        )
        app.openapi_schema = describe_errors(document)
    return app.openapi_schema


def install_openapi(app: FastAPI) -> None:
    """Serve :func:`openapi_for`'s document at the app's OpenAPI URL."""
    app.openapi = lambda: openapi_for(app)  # type: ignore[method-assign]
