"""/credit-costs/{operation}: CreditCostConfig, versioned."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Response
from fastapi.responses import JSONResponse
from pydantic import Field, StrictInt

from api.deps import (
    Caller,
    IdempotencyDep,
    LedgerDep,
    authorize,
    json_ready,
    parse_if_match,
)
from api.problems import Problem
from api.replies import reply, respond_with
from api.schemas import Body, Money, PathName
from ledger.domain.costs import CreditCostConfig
from ledger.domain.pricing import Unit

router = APIRouter(prefix="/credit-costs", tags=["credit costs"])

Positive = Annotated[StrictInt, Field(gt=0, le=10**9)]


class CreditCostPut(Body):
    unit: Unit | None = None
    tokens_per_credit: Positive | None = None
    credits_per_unit: Positive | None = None
    min_credits: Annotated[StrictInt, Field(ge=0, le=10**9)] | None = None
    price_per_credit_usd: Money | None = None


def _body(config: CreditCostConfig) -> dict[str, Any]:
    return json_ready(config.as_dict())  # type: ignore[no-any-return]


@router.get("")
def list_costs(ledger: LedgerDep,
               caller: Annotated[Caller, Depends(authorize("costs.read"))]) -> dict[str, Any]:
    from ledger.service import load_data

    rows = [c for op in load_data("credit_costs.json")["operations"]
            if (c := ledger.costs.get(op)) is not None]
    return {"data": [_body(c) for c in rows], "count": len(rows)}


@router.get("/{operation}")
def get_cost(operation: str, ledger: LedgerDep, response: Response,
             caller: Annotated[Caller, Depends(authorize("costs.read"))]) -> dict[str, Any]:
    config = ledger.costs.get(operation)
    if config is None:
        raise Problem(404, "Not found", f"no credit cost for operation {operation!r}")
    response.headers["ETag"] = f'"{config.version}"'
    return _body(config)


@router.put("/{operation}")
def put_cost(operation: PathName, body: CreditCostPut, ledger: LedgerDep,
             caller: Annotated[Caller, Depends(authorize("costs.write"))],
             idem: IdempotencyDep,
             if_match: Annotated[str | None, Header()] = None) -> JSONResponse:
    """Create or change an operation's credit cost (a new version; history kept).
    A stale If-Match is 409."""
    values = body.model_dump(exclude_none=True)
    if ledger.costs.get(operation) is None:
        missing = {"unit", "price_per_credit_usd"} - values.keys()
        if missing:
            raise Problem(422, "Validation failed", "a new operation needs unit and "
                          "price_per_credit_usd",
                          errors=[{"field": f, "message": "required"} for f in sorted(missing)])
        values = {"tokens_per_credit": 1000, "credits_per_unit": 1, "min_credits": 0, **values}
    return reply(ledger.costs.put(operation, values, caller.actor,
                                  if_match=parse_if_match(if_match), idem=idem,
                                  respond=respond_with(200, _body)))


@router.get("/{operation}/history")
def cost_history(operation: str, ledger: LedgerDep,
                 caller: Annotated[Caller, Depends(authorize("costs.read"))]
                 ) -> dict[str, Any]:
    events = ledger.costs.history(operation)
    if not events:
        raise Problem(404, "Not found", f"no credit cost for operation {operation!r}")
    rows = [{"version": e.originator_version, "time": e.timestamp, "actor_id": e.actor_id,
             **{k: getattr(e, k) for k in ("unit", "tokens_per_credit", "credits_per_unit",
                                            "min_credits", "price_per_credit_usd",
                                            "effective_at")}} for e in events]
    return {"data": json_ready(rows), "count": len(rows)}
