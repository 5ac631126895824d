"""RFC 9457 problem details: the one error format of the API."""

from __future__ import annotations

import logging
from typing import Any

from eventsourcing.persistence import PersistenceError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

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
        titles = {401: "Unauthorized", 403: "Forbidden", 404: "Not found",
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

    @app.exception_handler(TimeoutError)
    async def _timeout(request: Request, exc: TimeoutError) -> JSONResponse:
        return problem_response(
            Problem(503, "Service unavailable", "the command was not confirmed in time; "
                    "retry with the same Idempotency-Key", headers={"Retry-After": "1"}),
            request.url.path)
