"""Reads served by the projections: how fresh they are, time filters, CSV.

Read your own writes: a command's response carries `position`, the log position of its
last event. A read given `?min_position=N` waits (at most LEDGER_PROJECTIONS_WAIT_S,
2 s by default) until the views it reads have applied the log up to N, and answers 503
(Retry-After) if they have not. The credit balance and history, which callers expect
to reflect every acknowledged command, wait for the log's head at the time of the
request when no position is given.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from api.problems import Problem
from projections.export import csv_text
from projections.service import Projections


async def get_projections(request: Request) -> Projections:
    projections: Projections = request.app.state.projections
    return projections


ProjectionsDep = Annotated[Projections, Depends(get_projections)]
JSON_OR_CSV: dict[int | str, dict[str, Any]] = {
    200: {"description": "JSON, or CSV (`?format=csv` or `Accept: text/csv`)",
          "content": {"application/json": {}, "text/csv": {"schema": {"type": "string"}}}}}
MAX_POSITION = 2**63 - 1  # positions and versions are BIGINT in the store: larger is 422
MinPosition = Annotated[int | None, Query(
    ge=0, description="wait (at most a few seconds) until the views have applied the log "
                      "up to this position: the `position` a command answered")]


def read_at(projections: Projections, min_position: int | None, views: Sequence[str],
            *, default_head: bool = False) -> int | None:
    """Wait until `views` have reached `min_position` (or, with `default_head`, the log's
    head now); the position the read reflects at least. 503 if they do not in time."""
    target = projections.head() if min_position is None and default_head else min_position
    if target is None:
        return None
    if not projections.wait(target, views):
        head = projections.head()
        if target > head:
            raise Problem(422, "Validation failed",
                          f"min_position {target} is beyond the log's head ({head})",
                          errors=[{"field": "min_position", "message": "beyond the head"}])
        raise Problem(503, "Projections behind",
                      f"the views {', '.join(views)} have not reached position {target} yet",
                      headers={"Retry-After": "1"})
    return target


def fresh(*views: str, default_head: bool = False) -> Callable[..., Awaitable[int | None]]:
    """A dependency: `read_at()` for the views a route reads, from its ?min_position."""
    async def dependency(projections: ProjectionsDep,
                         min_position: MinPosition = None) -> int | None:
        if min_position is None and not default_head:
            return None
        return await run_in_threadpool(read_at, projections, min_position, views,
                                       default_head=default_head)

    dependency.__name__ = f"fresh_{'_'.join(views)}"
    return dependency


def parse_time(value: str | None, field: str) -> datetime | None:
    """A time filter: RFC 3339, or a date (its midnight); UTC when no offset is given."""
    if value is None or value == "":
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise Problem(422, "Validation failed", f"{field} is not a time",
                      errors=[{"field": field, "message": "use RFC 3339 or YYYY-MM-DD"}]
                      ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def wants_csv(request: Request, format: str | None) -> bool:
    if format is not None:
        return format == "csv"
    return "text/csv" in request.headers.get("accept", "")


def csv_response(columns: Sequence[str], rows: Sequence[dict[str, Any]],
                 filename: str) -> Response:
    return Response(csv_text(columns, rows), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})
