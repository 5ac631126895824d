"""/accounts/{account_id}/credits/*: the credit ledger's commands and reads."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from api.deps import Caller, IdempotencyDep, LedgerDep, authorize, json_ready
from api.reads import MAX_POSITION, MinPosition, ProjectionsDep, fresh, read_at
from api.replies import reply, respond_with
from api.schemas import (
    AccountId,
    AdjustmentCreate,
    BalancePublic,
    CaptureCreate,
    DeductionCreate,
    GrantCreate,
    Instant,
    PurchaseCreate,
    ReceiptPublic,
    RefundCreate,
    ReleaseCreate,
    ReservationCreate,
)
from ledger.domain.base import utcnow
from ledger.domain.credits import ProviderCharge
from ledger.domain.pricing import Quote, Unit

router = APIRouter(prefix="/accounts/{account_id}/credits", tags=["credits"])

Reader = Annotated[Caller, Depends(authorize("credits.read"))]
Charger = Annotated[Caller, Depends(authorize("credits.charge"))]
CREATED: dict[int | str, dict[str, Any]] = {201: {"model": ReceiptPublic}}


def _cost(body: Any) -> ProviderCharge:
    return ProviderCharge(model_id=body.model_id, provider=body.provider,
                          cost_usd=body.cost_usd, input_tokens=body.input_tokens,
                          output_tokens=body.output_tokens, images=body.images)


@router.get("/balance", response_model=BalancePublic)
def get_balance(account_id: AccountId, ledger: LedgerDep, caller: Reader,
                projections: ProjectionsDep, min_position: MinPosition = None,
                as_of: Annotated[Instant | None, Query()] = None) -> dict[str, Any]:
    """The account's balance now (from the balances view, once it has applied every
    command acknowledged before this request, or `min_position`), with its lifetime
    figures and its lots with credits left (in burn order); or replayed from the
    account's events up to `as_of`."""
    if as_of is None:
        position = read_at(projections, min_position, ["balances", "lots"],
                           default_head=True)
        b = projections.balances.get(account_id)
        body = {"account_id": account_id, "balance": 0, "reserved": 0, "available": 0,
                **(b.as_dict() if b else {}),
                "lots": [_lot(lot) for lot in projections.lots.lots(account_id, utcnow())]}
        return json_ready({**body, "position": position})  # type: ignore[no-any-return]
    r = ledger.credits.snapshot(account_id, as_of)
    balance, held = (0, 0) if r is None else (r.balance, r.held)
    return {"account_id": account_id, "balance": balance, "reserved": held,
            "available": balance - held, "as_of": as_of}


LOT_FIELDS = ("lot_id", "source", "status", "credits", "remaining", "debited", "refunded",
              "expired", "price_per_credit_usd", "priority", "expires_at", "payment_ref",
              "reason", "created_at")


def _lot(row: dict[str, Any]) -> dict[str, Any]:
    return {name: row.get(name) for name in LOT_FIELDS}


@router.get("/lots")
def get_lots(account_id: AccountId, caller: Reader, projections: ProjectionsDep,
             position: Annotated[int | None, Depends(fresh("lots", default_head=True))],
             include: Annotated[Literal["open", "all"], Query(
                 description="open: lots with credits left (default); all: every lot")
             ] = "open") -> dict[str, Any]:
    """The account's credit lots (the lots view) in burn order: source (purchase,
    grant, adjustment), credits, remaining, price paid per credit (purchases), priority,
    expiry, and status (open, expiring: past its expiry and not swept yet, used,
    expired)."""
    rows = projections.lots.lots(account_id, utcnow(), open_only=include == "open")
    return {"data": json_ready([_lot(r) for r in rows]), "count": len(rows),
            "position": position}


@router.post("/purchases", status_code=201, responses=CREATED)
def post_purchase(account_id: AccountId, body: PurchaseCreate, ledger: LedgerDep,
                  caller: Annotated[Caller, Depends(authorize("credits.purchase"))],
                  idem: IdempotencyDep) -> JSONResponse:
    """Credits bought: a lot at the price paid. 422 on bad input."""
    return reply(ledger.credits.purchase(
        account_id, body.credits, body.amount_usd, body.payment_ref, caller.actor,
        expires_at=body.expires_at, priority=body.priority, idem=idem,
        respond=respond_with(201)))


@router.post("/grants", status_code=201, responses=CREATED)
def post_grant(account_id: AccountId, body: GrantCreate, ledger: LedgerDep,
               caller: Annotated[Caller, Depends(authorize("credits.grant"))],
               idem: IdempotencyDep) -> JSONResponse:
    """Free credits, optionally expiring (unused ones leave as breakage)."""
    return reply(ledger.credits.grant(
        account_id, body.credits, body.reason, caller.actor, expires_at=body.expires_at,
        priority=body.priority, idem=idem, respond=respond_with(201)))


@router.post("/adjustments", status_code=201, responses=CREATED)
def post_adjustment(account_id: AccountId, body: AdjustmentCreate, ledger: LedgerDep,
                    caller: Annotated[Caller, Depends(authorize("credits.adjust"))],
                    idem: IdempotencyDep) -> JSONResponse:
    """A signed correction by a platform admin; 402 if it would overdraw."""
    return reply(ledger.credits.adjust(account_id, body.credits, body.reason, caller.actor,
                                       idem=idem, respond=respond_with(201)))


@router.post("/deductions", status_code=201, responses=CREATED)
def post_deduction(account_id: AccountId, body: DeductionCreate, ledger: LedgerDep,
                   caller: Charger, idem: IdempotencyDep) -> JSONResponse:
    """Charge an operation done elsewhere. 402 if the credits are not available,
    404 for an unknown operation."""
    charge = ledger.credits.price(body.operation, units=body.units)
    return reply(ledger.credits.deduct(account_id, charge, _cost(body), caller.actor,
                                       idem=idem, respond=respond_with(201)))


@router.post("/reservations", status_code=201, responses=CREATED)
def post_reservation(account_id: AccountId, body: ReservationCreate, ledger: LedgerDep,
                     caller: Charger, idem: IdempotencyDep) -> JSONResponse:
    """Hold credits before a call (402 if not available); capture or release it later."""
    credits = body.credits
    if credits is None:
        credits = ledger.credits.price(body.operation, units=body.units).credits
    return reply(ledger.credits.reserve(
        account_id, body.operation, credits, caller.actor, expires_in_s=body.expires_in_s,
        idem=idem, respond=respond_with(201)))


@router.post("/reservations/{reservation_id}/capture", status_code=201, responses=CREATED)
def post_capture(account_id: AccountId, reservation_id: str, body: CaptureCreate,
                 ledger: LedgerDep, caller: Charger, idem: IdempotencyDep) -> JSONResponse:
    """Take the actual credits (at most the hold; the rest returns). 404 unknown hold,
    409 already settled or expired, 422 more than held."""
    def price(operation: str) -> Quote:
        if body.credits is not None:
            return ledger.credits.price(operation, credits=body.credits)
        assert body.usage is not None
        rule = ledger.costs.book.rule(operation)
        u = body.usage
        if rule.unit is Unit.TOKENS:
            units = u.units if u.units is not None else (u.input_tokens or 0) + (
                u.output_tokens or 0)
        elif rule.unit is Unit.IMAGE:
            units = u.images if u.images is not None else (u.units or 0)
        else:
            units = u.units if u.units is not None else 1
        return ledger.credits.price(operation, units=units)

    cost = _cost(body)
    if body.usage is not None:
        cost = ProviderCharge(model_id=body.model_id, provider=body.provider,
                              cost_usd=body.cost_usd,
                              input_tokens=body.usage.input_tokens,
                              output_tokens=body.usage.output_tokens,
                              images=body.usage.images)
    return reply(ledger.credits.capture(account_id, reservation_id, price, cost, caller.actor,
                                        idem=idem, respond=respond_with(201)))


@router.post("/reservations/{reservation_id}/release", status_code=200)
def post_release(account_id: AccountId, reservation_id: str, ledger: LedgerDep, caller: Charger,
                 idem: IdempotencyDep, body: ReleaseCreate | None = None) -> JSONResponse:
    """Void a hold: its credits return to available."""
    reason = body.reason if body else "released"
    return reply(ledger.credits.release(account_id, reservation_id, caller.actor,
                                        reason=reason or "released", idem=idem,
                                        respond=respond_with(200)))


@router.post("/refunds", status_code=201, responses=CREATED)
def post_refund(account_id: AccountId, body: RefundCreate, ledger: LedgerDep,
                caller: Annotated[Caller, Depends(authorize("credits.refund"))],
                idem: IdempotencyDep) -> JSONResponse:
    """Give back credits of a charge (all that is left of it by default), never more
    than it took; credits return to the lots that paid."""
    return reply(ledger.credits.refund(account_id, body.charge_id, body.credits, body.reason,
                                       caller.actor, idem=idem, respond=respond_with(201)))


@router.get("/transactions")
def get_transactions(account_id: AccountId, caller: Reader, projections: ProjectionsDep,
                     position: Annotated[int | None, Depends(fresh("transactions",
                                                                   default_head=True))],
                     limit: Annotated[int, Query(ge=1, le=500)] = 50,
                     before: Annotated[int | None, Query(ge=1, le=MAX_POSITION)] = None,
                     ) -> dict[str, Any]:
    """The account's credit history (the transactions view), newest first. Page with
    `before=<next_before>`."""
    rows, next_before = projections.transactions.page(account_id, limit=limit, before=before)
    return {"data": json_ready(rows), "count": len(rows), "next_before": next_before,
            "position": position}

