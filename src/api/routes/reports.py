"""/reports/revenue: credits, revenue, provider cost and margin over a time range."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from api.deps import Caller, authorize, json_ready
from api.problems import Problem
from api.reads import JSON_OR_CSV, ProjectionsDep, csv_response, fresh, parse_time, wants_csv
from projections.revenue.view import DIMENSIONS

router = APIRouter(prefix="/reports", tags=["reports"])


def _hour(value: str | None, field: str) -> datetime | None:
    when = parse_time(value, field)
    if when is not None and (when.minute, when.second, when.microsecond) != (0, 0, 0):
        raise Problem(422, "Validation failed", f"{field} must be a whole hour (UTC)",
                      errors=[{"field": field, "message": "the report is kept per hour"}])
    return when


def _groups(values: list[str]) -> list[str]:
    groups = [g.strip() for value in values for g in value.split(",") if g.strip()]
    unknown = [g for g in groups if g not in DIMENSIONS]
    if unknown:
        raise Problem(422, "Validation failed", f"cannot group by {', '.join(unknown)}",
                      errors=[{"field": "group_by",
                               "message": f"one or more of {', '.join(DIMENSIONS)}"}])
    return groups


@router.get("/revenue", response_model=None, responses=JSON_OR_CSV)
def revenue(
    request: Request, projections: ProjectionsDep,
    caller: Annotated[Caller, Depends(authorize("reports.read"))],
    position: Annotated[int | None, Depends(fresh("revenue"))],
    from_: Annotated[str | None, Query(alias="from", description="a whole UTC hour or a "
                                       "date, inclusive")] = None,
    to: Annotated[str | None, Query(description="a whole UTC hour or a date, exclusive")
                  ] = None,
    group_by: Annotated[list[str] | None, Query(description="comma-separated: hour, day, "
                                                "month, account, operation, model, "
                                                "provider")] = None,
    account_id: str | None = None, operation: str | None = None,
    model_id: str | None = None, provider: str | None = None,
    format: Literal["json", "csv"] | None = None,
) -> dict[str, Any] | Response:
    """Per group: charges, credits_used (net of refunds), credits_refunded, revenue_usd
    (credits x the credit price each charge recorded, net of refunds), refunded_usd,
    cost_usd (provider cost), margin_usd, margin_pct (of revenue), markup_pct (of cost),
    recognized_revenue_usd (credits at what their lots were paid), promotional_credits,
    breakage_credits and breakage_usd; and the total. Exact decimal sums. CSV with
    `Accept: text/csv` or `?format=csv`."""
    groups = _groups(group_by or [])
    since, until = _hour(from_, "from"), _hour(to, "to")
    report = projections.revenue.report(since=since, until=until, group_by=groups,
                                        account_id=account_id, operation=operation,
                                        model_id=model_id, provider=provider)
    if wants_csv(request, format):
        return csv_response(report.columns, report.rows, "revenue.csv")
    return json_ready({"from": since, "to": until, "group_by": list(report.group_by),  # type: ignore[no-any-return]
                       "data": report.rows, "count": len(report.rows),
                       "total": report.total, "position": position})
