"""Webhook subscriptions: platform-wide (/webhooks) or of one account
(/accounts/{account_id}/webhooks), and their deliveries.

The secret that signs the deliveries is answered once, in the creation's response (also
to an idempotent retry of it); it is stored sealed and never shown again.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from api.deps import Caller, IdempotencyDep, LedgerDep, authorize, json_ready
from api.problems import Problem
from api.replies import reply_opening, respond_sealing
from api.schemas import WebhookCreate, WebhookPublic
from ledger.domain.webhooks import WebhookSubscription
from ledger.service import Ledger
from ledger.webhooks import PLATFORM, info_of
from projections.webhooks.worker import WebhookWorker

router = APIRouter(tags=["webhooks"])
ACCOUNT = "/accounts/{account_id}/webhooks"
CREATED: dict[int | str, dict[str, Any]] = {201: {"model": WebhookPublic}}


def _create(ledger: Ledger, account_id: str | None, body: WebhookCreate, caller: Caller,
            idem: Any) -> JSONResponse:
    box = ledger.webhooks.box

    def created(sub: WebhookSubscription) -> dict[str, Any]:
        opened: dict[str, Any] = json_ready({**info_of(sub).public(),
                                             "secret": box.open(sub.secret)})
        return opened
    return reply_opening(ledger.webhooks.subscribe(
        account_id, body.url, list(body.event_types), caller.actor, secret=body.secret,
        low_balance_threshold=body.low_balance_threshold,
        lot_expiring_days=body.lot_expiring_days, description=body.description, idem=idem,
        respond=respond_sealing(201, created, "secret", box)), "secret", box)


def _listing(ledger: Ledger, account_id: Any, include_deleted: bool) -> dict[str, Any]:
    rows = [s.public() for s in ledger.webhooks.subscriptions(
        account_id, include_deleted=include_deleted)]
    return {"data": json_ready(rows), "count": len(rows)}


def _deliveries(request: Request, ledger: Ledger, subscription_id: str,
                account_id: Any, limit: int) -> dict[str, Any]:
    sub = ledger.webhooks.subscription(subscription_id)
    owner = None if account_id is PLATFORM else account_id
    if sub is None or (account_id is not None and sub.account_id != owner):
        raise Problem(404, "Not found", f"no webhook subscription {subscription_id!r}")
    worker: WebhookWorker = request.app.state.webhooks
    rows = worker.view.deliveries(subscription_id=subscription_id, limit=limit)
    fields = ("delivery_id", "event_type", "account_id", "status", "attempts",
              "next_attempt_at", "last_error", "http_status", "created_at", "updated_at",
              "payload")
    return {"data": json_ready([{k: r.get(k) for k in fields} for r in rows]),
            "count": len(rows)}


Limit = Annotated[int, Query(ge=1, le=500)]

# -- platform-wide ---------------------------------------------------------------------


@router.post("/webhooks", status_code=201, responses=CREATED)
def post_platform_webhook(body: WebhookCreate, ledger: LedgerDep, idem: IdempotencyDep,
                          caller: Annotated[Caller, Depends(
                              authorize("webhooks.platform.write"))]) -> JSONResponse:
    """Subscribe to what happens on every account. 422 on a bad field (an unknown event
    type, low_balance without a threshold, lot_expiring without days)."""
    return _create(ledger, None, body, caller, idem)


@router.get("/webhooks")
def list_platform_webhooks(ledger: LedgerDep,
                           caller: Annotated[Caller, Depends(
                               authorize("webhooks.platform.read"))],
                           account_id: str | None = None,
                           include_deleted: bool = False) -> dict[str, Any]:
    """Every subscription (of one account with `account_id`), oldest first; never a
    secret."""
    return _listing(ledger, account_id, include_deleted)


@router.delete("/webhooks/{subscription_id}")
def delete_platform_webhook(subscription_id: str, ledger: LedgerDep,
                            caller: Annotated[Caller, Depends(
                                authorize("webhooks.platform.write"))]) -> dict[str, Any]:
    """Delete any subscription: nothing more is sent to it. 409 if it already is."""
    outcome = ledger.webhooks.unsubscribe(subscription_id, caller.actor)
    return {"subscription_id": subscription_id, "deleted": True,
            "position": outcome.position}


@router.get("/webhooks/{subscription_id}/deliveries")
def list_platform_deliveries(subscription_id: str, request: Request, ledger: LedgerDep,
                             caller: Annotated[Caller, Depends(
                                 authorize("webhooks.platform.read"))],
                             limit: Limit = 100) -> dict[str, Any]:
    """A subscription's deliveries, newest first: status (detected, scheduled, retrying,
    delivered, gave_up), attempts, the last error, the payload sent."""
    return _deliveries(request, ledger, subscription_id, None, limit)


# -- one account ---------------------------------------------------------------------------


@router.post(ACCOUNT, status_code=201, responses=CREATED)
def post_account_webhook(account_id: str, body: WebhookCreate, ledger: LedgerDep,
                         idem: IdempotencyDep,
                         caller: Annotated[Caller, Depends(
                             authorize("webhooks.account.write"))]) -> JSONResponse:
    """Subscribe to what happens on this account."""
    return _create(ledger, account_id, body, caller, idem)


@router.get(ACCOUNT)
def list_account_webhooks(account_id: str, ledger: LedgerDep,
                          caller: Annotated[Caller, Depends(
                              authorize("webhooks.account.read"))],
                          include_deleted: bool = False) -> dict[str, Any]:
    """The account's own subscriptions (not the platform-wide ones); never a secret."""
    return _listing(ledger, account_id, include_deleted)


@router.delete(ACCOUNT + "/{subscription_id}")
def delete_account_webhook(account_id: str, subscription_id: str, ledger: LedgerDep,
                           caller: Annotated[Caller, Depends(
                               authorize("webhooks.account.write"))]) -> dict[str, Any]:
    """Delete one of the account's subscriptions (another's is not found)."""
    outcome = ledger.webhooks.unsubscribe(subscription_id, caller.actor,
                                          account_id=account_id)
    return {"subscription_id": subscription_id, "deleted": True,
            "position": outcome.position}


@router.get(ACCOUNT + "/{subscription_id}/deliveries")
def list_account_deliveries(account_id: str, subscription_id: str, request: Request,
                            ledger: LedgerDep,
                            caller: Annotated[Caller, Depends(
                                authorize("webhooks.account.read"))],
                            limit: Limit = 100) -> dict[str, Any]:
    """The deliveries of one of the account's subscriptions, newest first."""
    return _deliveries(request, ledger, subscription_id, account_id, limit)
