"""create_app(): the HTTP edge. It translates HTTP into commands and queries, nothing more."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import dashboard, problems
from api.problems import Problem, problem_response
from api.routes import ai as ai_routes
from api.routes import audit, costs, credits, dashboard_data, keys, models, reports, usage
from api.routes import projections as projection_routes
from api.routes import settings as settings_routes
from api.routes import webhooks as webhook_routes
from ledger.config import Settings
from ledger.domain.base import new_request_id
from ledger.service import Ledger
from projections.service import Projections
from projections.webhooks.worker import WebhookWorker

log = logging.getLogger(__name__)
API = "/api/v1"


class BodyLimit:
    """Refuse bodies over `limit` bytes with 413, whether or not Content-Length is sent."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_big = Problem(413, "Payload too large", f"the body exceeds {self.limit} bytes")
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await problem_response(too_big)(scope, receive, send)
                return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise Problem(413, "Payload too large",
                                  f"the body exceeds {self.limit} bytes")
            return message

        await self.app(scope, limited, send)


class RequestId:
    """Every request gets an id (the caller's X-Request-Id, or a new one), which is
    recorded on the events it causes and echoed in the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope.get("headers", []) if k == b"x-request-id"), b"")
        rid = given.decode("latin-1")[:64] or new_request_id()
        scope.setdefault("state", {})["request_id"] = rid

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []),
                                      (b"x-request-id", rid.encode("latin-1"))]
            await send(message)

        await self.app(scope, receive, send_with_id)


class StripTrailingSlash:
    """`/x/` and `/x` are the same resource, answered without a redirect."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if len(path) > 1 and path.endswith("/"):
                scope = {**scope, "path": path.rstrip("/") or "/"}
        await self.app(scope, receive, send)


def create_app(settings: Settings | None = None, ledger: Ledger | None = None) -> FastAPI:
    settings = settings or Settings()
    owned = ledger is None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.run_projections:  # keep the read models up to date in this process
            app.state.projections.start()
        app.state.ledger.sweeper.start(settings.sweep_interval_s)  # release expired holds
        if settings.run_webhooks:  # detect occurrences, deliver and retry webhooks
            app.state.webhooks.start()
        yield
        app.state.webhooks.close()
        app.state.ledger.sweeper.stop()
        app.state.projections.stop()
        if owned:
            app.state.ledger.close()

    app = FastAPI(
        title="Credit ledger and AI settings",
        version="0.1.0",
        lifespan=lifespan,
        redirect_slashes=False,
        description="Event-sourced credits, settings and metered AI calls. Errors are "
                    "application/problem+json (RFC 9457).",
    )
    app.state.ledger = ledger or Ledger(settings)
    app.state.settings = settings
    app.state.projections = Projections(app.state.ledger.store, settings)
    app.state.webhooks = WebhookWorker(app.state.ledger, settings)
    problems.install(app)
    problems.document(app)  # errors in the OpenAPI document: problem+json

    app.add_middleware(RequestId)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(StripTrailingSlash)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, Any]:
        """Ready: the event store answers (503 problem+json otherwise)."""
        ledger_: Ledger = app.state.ledger
        return {"status": "ok", "position": ledger_.store.head()}

    @app.get("/livez", tags=["health"])
    def livez() -> dict[str, str]:
        """Alive: answers without touching the database."""
        return {"status": "ok"}

    for module in (keys, credits, costs, models, settings_routes):
        app.include_router(module.router, prefix=API)
    for module in (usage, reports, projection_routes, dashboard_data):
        app.include_router(module.router, prefix=API)
    app.include_router(audit.router, prefix=API)
    app.include_router(ai_routes.router, prefix=API)
    app.include_router(webhook_routes.router, prefix=API)
    dashboard.install(app)  # /dashboard: static pages over this API
    return app
