"""Typed dependencies: the ledger, the caller, idempotency."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.dependencies.models import Dependant

from api.access import POLICY
from api.problems import Problem
from ledger.domain.base import Actor
from ledger.keys import Principal
from ledger.pipeline import IdempotencySpec
from ledger.service import Ledger


async def get_ledger(request: Request) -> Ledger:
    ledger: Ledger = request.app.state.ledger
    return ledger


LedgerDep = Annotated[Ledger, Depends(get_ledger)]


def _unauthorized(detail: str) -> Problem:
    return Problem(401, "Unauthorized", detail, headers={"WWW-Authenticate": "Bearer"})


async def get_principal(request: Request, ledger: LedgerDep,
                  authorization: Annotated[str | None, Header()] = None) -> Principal:
    if not authorization:
        raise _unauthorized("a bearer token is required")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("use 'Authorization: Bearer <token>'")
    principal = ledger.keys.authenticate(token.strip())
    if principal is None:
        raise _unauthorized("the token is unknown, revoked or expired")
    request.state.principal = principal
    return principal


@dataclass(frozen=True)
class Caller:
    """The authenticated caller of one request, allowed to perform its action."""

    principal: Principal
    request_id: str
    action: str

    @property
    def actor(self) -> Actor:
        return self.principal.actor(self.request_id)

    def account(self, requested: str | None) -> str:
        """The account this request acts on: the key's own, or the one asked for."""
        own = self.principal.account_id
        if own is not None:
            if requested is not None and requested != own:
                raise Problem(404, "Not found", "no such account")
            return own
        if requested is None:
            raise Problem(422, "Validation failed", "account_id is required",
                          errors=[{"field": "account_id", "message": "required"}])
        return requested


async def requested_account(request: Request) -> str | None:
    """The account a request names: in its path, its query, or its JSON body (checked
    here, before the body is validated, so that another tenant's account is 404 even in
    a body that is otherwise wrong)."""
    requested = request.path_params.get("account_id") or request.query_params.get(
        "account_id")
    if requested is None and request.method in ("POST", "PUT", "PATCH"):
        try:
            body = json.loads(await request.body() or b"null")
        except ValueError:
            return None  # malformed: the route answers 400
        if isinstance(body, dict) and isinstance(body.get("account_id"), str):
            requested = body["account_id"]
    return requested


def authorize(action: str) -> Callable[..., Awaitable[Caller]]:
    """A dependency that lets the caller through only if POLICY allows `action`."""
    rule = POLICY[action]

    async def dependency(request: Request,
                   principal: Annotated[Principal, Depends(get_principal)]) -> Caller:
        if principal.role not in rule.roles:
            raise Problem(403, "Forbidden",
                          f"role {principal.role.value} may not perform {action}")
        if rule.account_scoped and principal.account_id is not None:
            requested = await requested_account(request)
            if requested is not None and requested != principal.account_id:
                raise Problem(404, "Not found", "no such account")
        return Caller(principal, request.state.request_id, action)

    dependency.__name__ = f"authorize_{action.replace('.', '_')}"
    dependency.action = action  # type: ignore[attr-defined]
    return dependency


def authorized_actions(dependant: Dependant) -> set[str]:
    """The POLICY actions a route's dependencies authorize (at any depth): how the
    role-matrix test maps every route to its rule, and finds a route that has none."""
    found: set[str] = set()
    for sub in dependant.dependencies:
        action = getattr(sub.call, "action", None)
        if isinstance(action, str):
            found.add(action)
        found |= authorized_actions(sub)
    return found


def canonical_json(raw: bytes) -> bytes:
    try:
        return json.dumps(json.loads(raw or b"null"), sort_keys=True,
                          separators=(",", ":")).encode()
    except ValueError:
        return raw


async def get_idempotency(
    request: Request,
    principal: Annotated[Principal, Depends(get_principal)],
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=255)] = None,
) -> IdempotencySpec | None:
    """Idempotency-Key, scoped to the caller's key: same key and body replays."""
    if idempotency_key is None:
        return None
    scope = principal.key_id
    body = await request.body()
    fingerprint = IdempotencySpec.fingerprint_of(request.method, request.url.path.rstrip("/"),
                                                 canonical_json(body))
    return IdempotencySpec(scope=scope, key=idempotency_key, fingerprint=fingerprint)


IdempotencyDep = Annotated[IdempotencySpec | None, Depends(get_idempotency)]


def parse_if_match(value: str | None) -> int | None:
    """If-Match as an aggregate version ("3", W/"3"); None when absent, 400 if malformed."""
    if value is None:
        return None
    v = value.strip().removeprefix("W/").strip('"')
    if not v.isdigit():
        raise Problem(400, "Malformed request", "If-Match must be a version, e.g. \"3\"",
                      errors=[{"field": "If-Match", "message": "not a version"}])
    return int(v)


def get_if_match(if_match: Annotated[str | None, Header()] = None) -> int | None:
    return parse_if_match(if_match)


IfMatchDep = Annotated[int | None, Depends(get_if_match)]


def json_ready(value: Any) -> Any:
    """Decimals as strings, datetimes as RFC 3339: the API's JSON conventions."""
    from datetime import datetime
    from decimal import Decimal

    from ledger.domain.pricing import money

    if isinstance(value, Decimal):
        return money(value)
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    return value
