"""Reads the dashboard needs beside the contract's: who the caller is, every account's
balance, ordered (top spenders, accounts near zero, credits held), and the recent
metered provider calls."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from starlette.concurrency import run_in_threadpool

from api.deps import Caller, LedgerDep, authorize, json_ready
from api.reads import ProjectionsDep, fresh
from ledger.call_log import recent_calls
from projections.balances.view import BALANCES, Balance
from projections.base import where

router = APIRouter(tags=["dashboard"])

# order= -> SQL of the balances view (a closed list: nothing from the request reaches SQL)
ORDERS = {"available": "balance - held", "balance": "balance", "held": "held",
          "used": "used", "purchased": "purchased", "account": "account_id"}


@router.get("/auth/me")
async def who_am_i(caller: Annotated[Caller, Depends(authorize("auth.me"))]) -> dict[str, Any]:
    """The calling key: its id, role and the account (and user) it is bound to."""
    p = caller.principal
    return {"key_id": p.key_id, "role": p.role.value, "account_id": p.account_id,
            "user_id": p.user_id}


@router.get("/balances")
def list_balances(
    projections: ProjectionsDep,
    caller: Annotated[Caller, Depends(authorize("balances.list"))],
    position: Annotated[int | None, Depends(fresh("balances"))],
    order: Literal["available", "balance", "held", "used", "purchased", "account"] = "account",
    direction: Literal["asc", "desc"] = "asc",
    below: Annotated[int | None, Query(description="only accounts with fewer available "
                                       "credits than this")] = None,
    held: Annotated[bool, Query(description="only accounts with credits on hold")] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Accounts from the balances view: balance, held (`reserved`), available and lifetime
    figures, in `order` (available = balance - held)."""
    clause, params = where((f"{ORDERS['available']} < ?", below),
                           ("held > ?", 0 if held else None))
    rows = projections.balances.select(
        f"SELECT * FROM {{proj_balances}}{clause} "  # noqa: S608 (closed list, see ORDERS)
        f"ORDER BY {ORDERS[order]} {direction.upper()}, account_id LIMIT ?",
        [*params, limit], BALANCES.kinds())
    data = [Balance(**row).as_dict() for row in rows]
    return {"data": json_ready(data), "count": len(data), "position": position}


@router.get("/calls")
async def list_calls(
    ledger: LedgerDep, caller: Annotated[Caller, Depends(authorize("calls.read"))],
    status: Literal["requested", "succeeded", "failed", "abandoned"] | None = None,
    account_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """The latest metered provider calls (`/ai/text`, `/ai/images`), newest first: status,
    provider, model, latency, credits and provider cost, or the failure's class and HTTP
    status. Read from the log's recent part (see ledger/call_log.py)."""
    rows = await run_in_threadpool(recent_calls, ledger.store, limit=limit, status=status,
                                   account_id=account_id)
    return {"data": json_ready(rows), "count": len(rows)}
