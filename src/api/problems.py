"""RFC 9457 problem details: the one error format of the API."""

from __future__ import annotations

import json
import logging
from typing import Any

from eventsourcing.persistence import PersistenceError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ledger.ai import ProviderCallFailed, ProviderNotConfigured
from ledger.domain.errors import (
    Conflict,
    DomainError,
    InsufficientCredits,
    InvalidCommand,
    NotFound,
)

log = logging.getLogger(__name__)

PROBLEM = "application/problem+json"
TYPE_BASE = "https://ledger.example/problems/"


class Problem(Exception):
    def __init__(self, status: int, title: str, detail: str = "", *,
                 errors: list[dict[str, Any]] | None = None, kind: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = errors
        self.kind = kind or title.lower().replace(" ", "-")
        self.headers = headers


def problem_response(p: Problem, instance: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"type": TYPE_BASE + p.kind, "title": p.title, "status": p.status,
                            "detail": p.detail}
    if instance:
        body["instance"] = instance
    if p.errors:
        body["errors"] = p.errors
    return JSONResponse(body, status_code=p.status, media_type=PROBLEM, headers=p.headers)


def _status_of(exc: DomainError) -> int:
    if isinstance(exc, InsufficientCredits):
        return 402
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, Conflict):
        return 409
    if isinstance(exc, InvalidCommand):
        return 422
    return 400


def domain_problem(exc: DomainError) -> Problem:
    errors = [{"field": exc.field, "message": exc.detail}] if exc.field else None
    p = Problem(_status_of(exc), exc.title, exc.detail, errors=errors)
    if isinstance(exc, InsufficientCredits):
        p.errors = [{"field": "credits", "message": exc.detail, "required": exc.required,
                     "available": exc.available}]
    return p


def _loc(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(x) for x in loc if x not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc, request.url.path)

    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> JSONResponse:
        return problem_response(domain_problem(exc), request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errs = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errs):
            return problem_response(
                Problem(400, "Malformed request", "the body is not valid JSON",
                        errors=[{"field": "body", "message": "invalid JSON"}]),
                request.url.path)
        errors = [{"field": _loc(e.get("loc", ())), "message": e.get("msg", ""),
                   "type": e.get("type", "")} for e in errs]
        fields = ", ".join(sorted({e["field"] for e in errors}))
        return problem_response(
            Problem(422, "Validation failed", f"invalid field(s): {fields}", errors=errors),
            request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        titles = {400: "Malformed request", 401: "Unauthorized", 403: "Forbidden",
                  404: "Not found",
                  405: "Method not allowed", 413: "Payload too large"}
        headers = dict(exc.headers) if exc.headers else None
        return problem_response(
            Problem(exc.status_code, titles.get(exc.status_code, "Error"), str(exc.detail),
                    headers=headers), request.url.path)

    @app.exception_handler(PersistenceError)
    async def _db(request: Request, exc: PersistenceError) -> JSONResponse:
        log.error("event store unavailable: %s", type(exc).__name__)
        return problem_response(
            Problem(503, "Service unavailable", "the event store cannot be reached; retry",
                    headers={"Retry-After": "1"}), request.url.path)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Starlette logs the exception with its traceback; the caller sees no trace of it.
        return problem_response(
            Problem(500, "Internal error", "an unexpected error; it has been logged"),
            request.url.path)

    @app.exception_handler(ProviderCallFailed)
    async def _provider_failed(request: Request, exc: ProviderCallFailed) -> JSONResponse:
        # The hold was released and the failure recorded: nothing was charged.
        error = exc.error
        response = problem_response(
            Problem(error.http_status, "Provider failure", f"{error.provider} failed "
                    f"({error.kind}): {error.detail}; nothing was charged",
                    kind="provider-failure"), request.url.path)
        body = json.loads(bytes(response.body))
        body.update(provider=error.provider, failure_kind=error.kind, call_id=exc.call_id,
                    position=exc.position)
        return JSONResponse(body, status_code=error.http_status, media_type=PROBLEM)

    @app.exception_handler(ProviderNotConfigured)
    async def _not_configured(request: Request, exc: ProviderNotConfigured) -> JSONResponse:
        return problem_response(
            Problem(503, "Provider not configured", f"{exc}; nothing was held",
                    kind="provider-not-configured"), request.url.path)

    @app.exception_handler(TimeoutError)
    async def _timeout(request: Request, exc: TimeoutError) -> JSONResponse:
        return problem_response(
            Problem(503, "Service unavailable", "the command was not confirmed in time; "
                    "retry with the same Idempotency-Key", headers={"Retry-After": "1"}),
            request.url.path)


PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details: the one error format of the API.",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {"type": "object", "required": ["field", "message"],
                      "properties": {"field": {"type": "string"},
                                     "message": {"type": "string"}}},
        },
    },
}


def document(app: FastAPI) -> None:
    """Describe every operation's errors in the OpenAPI document as they are sent:
    `application/problem+json` (FastAPI documents its own `{"detail": [...]}` 422)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()  # cached by FastAPI: the changes below are made once
        _describe_problems(schema)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _describe_problems(schema: dict[str, Any]) -> None:
    ref = {"$ref": "#/components/schemas/Problem"}
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            if "422" in responses:
                responses["422"] = {"description": "Validation failed",
                                    "content": {PROBLEM: {"schema": ref}}}
            responses.setdefault("default", {
                "description": "An error (400 malformed, 401, 403, 404, 409, 402, 413, "
                               "422, 503 ...): problem details",
                "content": {PROBLEM: {"schema": ref}}})
    for name in ("HTTPValidationError", "ValidationError"):  # unused now: dropped
        elsewhere = ({k: v for k, v in schema.items() if k != "components"},
                     {k: v for k, v in schemas.items() if k != name})
        if f'"#/components/schemas/{name}"' not in json.dumps(elsewhere):
            schemas.pop(name, None)
