"""/usage: the usage log (the seed's CreditUsageLog), one row per charge or refund."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from api.deps import Caller, authorize, json_ready
from api.reads import (
    JSON_OR_CSV,
    MAX_POSITION,
    ProjectionsDep,
    csv_response,
    fresh,
    parse_time,
    wants_csv,
)
from projections.usage.view import CSV_COLUMNS, public_row

router = APIRouter(tags=["usage"])
Format = Literal["json", "csv"]


@router.get("/usage", response_model=None, responses=JSON_OR_CSV)
def get_usage(
    request: Request, projections: ProjectionsDep,
    caller: Annotated[Caller, Depends(authorize("usage.read"))],
    position: Annotated[int | None, Depends(fresh("usage"))],
    account_id: str | None = None, operation: str | None = None,
    model_id: str | None = None, provider: str | None = None,
    kind: Literal["charge", "refund"] | None = None,
    from_: Annotated[str | None, Query(alias="from", description="RFC 3339 or date")] = None,
    to: Annotated[str | None, Query(description="RFC 3339 or date, exclusive")] = None,
    before: Annotated[int | None, Query(ge=1, le=MAX_POSITION,
                                        description="page: the next_before")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    format: Format | None = None,
) -> dict[str, Any] | Response:
    """Charges (credits used, credit price, revenue, provider cost, tokens or images) and
    refunds (negative credits and revenue, at the refund's time), newest first. Keys
    bound to an account see that account only. CSV with `Accept: text/csv` or
    `?format=csv`."""
    rows, next_before = projections.usage.page(
        account_id=caller.principal.account_id or account_id, operation=operation,
        model_id=model_id, provider=provider, kind=kind, since=parse_time(from_, "from"),
        until=parse_time(to, "to"), before=before, limit=limit)
    rows = [public_row(r) for r in rows]
    if wants_csv(request, format):
        return csv_response(CSV_COLUMNS, rows, "usage.csv")
    return {"data": json_ready(rows), "count": len(rows), "next_before": next_before,
            "position": position}
