"""/audit: the whole log in order, one aggregate's history, and verification (the audit
chain, and every projection against a replay of the log). Readable by platform_admin and
auditor keys; secrets stay masked (ledger.audit)."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from api.deps import Caller, LedgerDep, authorize, json_ready
from api.problems import Problem
from api.reads import ProjectionsDep
from ledger.audit import AuditEvent, AuditLog
from ledger.integrity import parse_anchor, verify_chain
from projections.verify import verify

router = APIRouter(prefix="/audit", tags=["audit"])
Reader = Annotated[Caller, Depends(authorize("audit.read"))]
Limit = Annotated[int, Query(ge=1, le=10_000)]
Format = Literal["json", "jsonl"]
NDJSON = "application/x-ndjson"


def _page(request: Request, format: Format | None, events: list[AuditEvent],
          cursor: str, next_value: int, extra: dict[str, Any]) -> dict[str, Any] | Response:
    """A page as JSON, or as JSON lines (`Accept: application/x-ndjson` or
    `?format=jsonl`) with the cursor in a header."""
    rows = [e.as_dict() for e in events]
    lines = format == "jsonl" if format else NDJSON in request.headers.get("accept", "")
    if lines:
        header = "X-" + cursor.title().replace("_", "-")
        return Response("".join(json.dumps(r) + "\n" for r in rows), media_type=NDJSON,
                        headers={header: str(next_value)})
    return {"data": rows, "count": len(rows), cursor: next_value, **extra}


@router.get("/events", response_model=None)
def audit_events(request: Request, ledger: LedgerDep, caller: Reader,
                 after: Annotated[int, Query(ge=0, description="a position (exclusive): "
                                                   "the previous page's next_after")] = 0,
                 limit: Limit = 100, format: Format | None = None
                 ) -> dict[str, Any] | Response:
    """Every stored event in log order, from position `after`: topic, aggregate and
    version, position, time, actor (key id and role), request id and the event's own
    fields, decoded. `next_after` continues (also when the page is short: the log
    grows); `head` is the log's last position. JSON lines carry it as `X-Next-After`."""
    events = AuditLog(ledger.store).events(after, limit)
    return _page(request, format, events, "next_after",
                 events[-1].position if events else after, {"head": ledger.store.head()})


@router.get("/aggregates/{aggregate_id}/events", response_model=None)
def audit_aggregate(request: Request, aggregate_id: UUID, ledger: LedgerDep, caller: Reader,
                    after_version: Annotated[int, Query(ge=0)] = 0, limit: Limit = 100,
                    format: Format | None = None) -> dict[str, Any] | Response:
    """One aggregate's events, oldest first, with their positions in the log; 404 for an
    aggregate that has none."""
    events = AuditLog(ledger.store).history(aggregate_id, after_version, limit)
    if not events and after_version == 0:
        raise Problem(404, "Not found", f"no events of aggregate {aggregate_id}")
    return _page(request, format, events, "next_after_version",
                 events[-1].originator_version if events else after_version,
                 {"aggregate_id": str(aggregate_id)})


@router.get("/verify")
def audit_verify(ledger: LedgerDep, projections: ProjectionsDep, caller: Reader,
                 limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
                 anchor: Annotated[list[str] | None, Query(
                     description="`<notification id>:<hash>` of a link recorded earlier "
                                 "(a `chain.head`): it must still be there")] = None,
                 ) -> dict[str, Any]:
    """Recompute the audit chain (`chain`: each edited, moved, deleted or inserted row,
    located), and replay the log apart from the views and compare: every row of every
    view, each account's balance as the credit account aggregate gives it, the usage and
    revenue totals straight from the charge and refund events. `ok` when neither finds
    a difference; the first `limit` of each otherwise."""
    try:
        anchors = [parse_anchor(a) for a in anchor or ()]
    except ValueError as exc:
        raise Problem(422, "Validation failed", str(exc),
                      errors=[{"field": "anchor", "message": str(exc)}]) from None
    chain = verify_chain(ledger.store, anchors=anchors)
    result = verify(projections)
    return {"ok": chain.ok and result.ok, "positions": result.positions,
            "events": result.events, "seconds": round(result.seconds, 3),
            "count": len(result.differences),
            "differences": json_ready([
                {"view": d.view, "key": d.key, "field": d.field, "expected": d.expected,
                 "found": d.found} for d in result.differences[:limit]]),
            "chain": chain.as_dict(limit)}
