"""/auth/keys: bearer tokens for roles."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from api.deps import Caller, IdempotencyDep, LedgerDep, authorize, json_ready
from api.problems import Problem
from api.replies import reply_opening, respond_sealing
from api.schemas import KeyCreate, KeyPublic
from ledger.domain.base import utcnow
from ledger.domain.keys import Role
from ledger.keys import IssuedKey
from ledger.secrets import SecretBox

router = APIRouter(prefix="/auth/keys", tags=["auth"])


def _key_body(k: IssuedKey) -> dict[str, Any]:
    body: dict[str, Any] = json_ready({
        "key_id": k.key_id, "token": k.token, "role": k.principal.role.value,
        "account_id": k.principal.account_id, "user_id": k.principal.user_id,
        "expires_at": k.expires_at})
    return body


@router.post("", status_code=201, responses={201: {"model": KeyPublic}})
def post_key(body: KeyCreate, ledger: LedgerDep,
             caller: Annotated[Caller, Depends(authorize("keys.issue"))],
             idem: IdempotencyDep) -> JSONResponse:
    """Issue a token `{role, account_id?, user_id?}`; the token is shown only here.

    An account_admin may issue `user` and `account_admin` keys of its own account."""
    p = caller.principal
    if p.role is Role.ACCOUNT_ADMIN:
        if body.role not in (Role.USER, Role.ACCOUNT_ADMIN):
            raise Problem(403, "Forbidden", "an account_admin may issue only user and "
                          "account_admin keys")
        if body.account_id not in (None, p.account_id):
            raise Problem(404, "Not found", "no such account")
    account_id = p.account_id if p.role is Role.ACCOUNT_ADMIN else body.account_id
    box = SecretBox.from_settings(ledger.settings)
    return reply_opening(ledger.keys.issue(
        body.role, caller.actor, account_id=account_id, user_id=body.user_id,
        expires_at=body.expires_at, label=body.label, idem=idem,
        respond=respond_sealing(201, _key_body, "token", box)), "token", box)


@router.get("")
def list_keys(ledger: LedgerDep, caller: Annotated[Caller, Depends(authorize("keys.list"))],
              account_id: str | None = None,
              status: Literal["active", "revoked", "expired"] | None = None
              ) -> dict[str, Any]:
    """Every key issued, oldest first, with its status (`active`, `revoked`, `expired`),
    who issued and revoked it, and when; never a token or its hash. An account_admin
    sees its own account's keys."""
    now = utcnow()
    rows = [{**asdict(k), "status": k.status(now)}
            for k in ledger.keys.issued(caller.principal.account_id or account_id)]
    rows = [r for r in rows if status in (None, r["status"])]
    return {"data": json_ready(rows), "count": len(rows)}


@router.delete("/{key_id}", status_code=200)
def delete_key(key_id: str, ledger: LedgerDep,
               caller: Annotated[Caller, Depends(authorize("keys.revoke"))]) -> dict[str, Any]:
    """Revoke a key (an account_admin: a key of its own account); every process stops
    accepting it within two seconds. 409 if it already is."""
    outcome = ledger.keys.revoke(key_id, "revoked through the API", caller.actor,
                                 account_id=caller.principal.account_id)
    return {"key_id": key_id, "revoked": True, "position": outcome.position}
