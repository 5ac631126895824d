"""Turning command outcomes into HTTP responses."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from fastapi.responses import JSONResponse

from api.deps import json_ready
from ledger.credits import Receipt
from ledger.pipeline import Outcome
from ledger.secrets import SecretBox


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


def sealed_name(field: str) -> str:
    return f"sealed_{field}"


def respond_sealing(status: int, render: Callable[[Any], dict[str, Any]], field: str,
                    box: SecretBox) -> Callable[[Any], tuple[int, dict[str, Any]]]:
    """respond_with() for an answer that carries a secret shown once (a token, a signing
    secret): the stored response an idempotent retry replays holds it sealed, so that
    it never reaches an event in plaintext. reply_opening() opens it for the caller."""
    def respond(result: Any) -> tuple[int, dict[str, Any]]:
        body = render(result)
        plaintext = body.pop(field)
        return status, {**body, sealed_name(field): box.seal(plaintext)}
    return respond


def reply_opening(outcome: Outcome[Any], field: str, box: SecretBox) -> JSONResponse:
    """reply() to a respond_sealing() outcome: the secret opened, the sealed copy gone."""
    status, body = outcome.value
    opened = {k: v for k, v in body.items() if k != sealed_name(field)}
    opened[field] = box.open(body[sealed_name(field)])
    return reply(replace(outcome, value=(status, opened)))
