"""Turning command outcomes into HTTP responses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.responses import JSONResponse

from api.deps import json_ready
from ledger.credits import Receipt
from ledger.pipeline import Outcome


def receipt_body(r: Receipt) -> dict[str, Any]:
    body: dict[str, Any] = {
        "account_id": r.account_id,
        "id": r.id,
        "credits": r.credits,
        "balance": r.balance,
        "reserved": r.held,
        "available": r.available,
    }
    if r.extra:
        body.update(r.extra)
    return json_ready(body)  # type: ignore[no-any-return]


def respond_with(status: int, render: Callable[[Any], dict[str, Any]] = receipt_body,
                 ) -> Callable[[Any], tuple[int, dict[str, Any]]]:
    """What a command's result becomes: the (status, body) an idempotent retry replays."""
    def respond(result: Any) -> tuple[int, dict[str, Any]]:
        return status, render(result)
    return respond


def reply(outcome: Outcome[Any]) -> JSONResponse:
    status, body = outcome.value
    headers = {"X-Ledger-Position": str(outcome.position)}
    if outcome.replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse({**body, "position": outcome.position}, status_code=status,
                        headers=headers)


def reply_versioned(outcome: Outcome[Any]) -> JSONResponse:
    """reply() with the resource's version as its ETag (a later If-Match sends it back)."""
    response = reply(outcome)
    response.headers["ETag"] = f'"{outcome.value[1]["version"]}"'
    return response
