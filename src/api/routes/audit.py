"""/audit: the whole log in order, one aggregate's history, and verification (the audit
chain, and every projection against a replay of the log). Readable by platform_admin and
auditor keys; secrets stay masked (ledger.audit). The event lists are also JSON lines,
streamed, for an export of the whole log."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse

from api.deps import Caller, LedgerDep, authorize, json_ready
from api.problems import Problem
from api.reads import MAX_POSITION, ProjectionsDep
from ledger.audit import AuditEvent, AuditLog
from ledger.integrity import parse_anchor, verify_chain
from projections.verify import verify

router = APIRouter(prefix="/audit", tags=["audit"])
Reader = Annotated[Caller, Depends(authorize("audit.read"))]
Limit = Annotated[int | None, Query(ge=1, description=(
    "at most this many events (JSON: 100 when not given, at most 10000; JSON lines: "
    "everything when not given)"))]
Format = Literal["json", "jsonl"]
LINES = ("application/x-ndjson", "application/jsonl")
MAX_PAGE = 10_000
EXPORT: dict[int | str, dict[str, Any]] = {200: {
    "description": "a JSON page, or JSON lines (one event a line)",
    "content": {"application/json": {}, LINES[0]: {}, LINES[1]: {}}}}


def _lines_type(request: Request, format: Format | None) -> str | None:
    """The JSON lines media type asked for (`?format=jsonl`, or an Accept of
    application/x-ndjson or application/jsonl), None for a JSON page."""
    if format == "json":
        return None
    accept = request.headers.get("accept", "")
    asked = next((t for t in LINES if t in accept), None)
    return asked or (LINES[0] if format == "jsonl" else None)


def _page_size(limit: int | None) -> int:
    if limit is not None and limit > MAX_PAGE:
        raise Problem(422, "Validation failed", f"a JSON page holds at most {MAX_PAGE} "
                      "events: ask for JSON lines to export more",
                      errors=[{"field": "limit", "message": f"at most {MAX_PAGE}"}])
    return limit or 100


def _stream(events: Iterator[AuditEvent], media_type: str,
            headers: dict[str, str]) -> StreamingResponse:
    """One event a line, written as it is read from the store (a page at a time)."""
    lines = (json.dumps(e.as_dict()).encode() + b"\n" for e in events)
    return StreamingResponse(lines, media_type=media_type, headers=headers)


@router.get("/events", response_model=None, responses=EXPORT)
def audit_events(request: Request, ledger: LedgerDep, caller: Reader,
                 after: Annotated[int, Query(
                     ge=0, le=MAX_POSITION,
                     description="a position (exclusive): the previous page's next_after")
                 ] = 0,
                 limit: Limit = None, format: Format | None = None
                 ) -> dict[str, Any] | Response:
    """Every stored event in log order, from position `after`: topic, aggregate and
    version, position, time, actor (key id and role), request id and the event's own
    fields, decoded; secrets masked. `next_after` continues (also when the page is
    short: the log grows); `head` is the log's last position.

    As JSON lines (`?format=jsonl` or `Accept: application/x-ndjson`) the events are
    streamed up to the log's head when the request arrived (`X-Head`), all of them
    unless `limit` is given; each line carries its `position`, so an export continues
    with `after=` the last line's position."""
    store = AuditLog(ledger.store)
    head = ledger.store.head()
    if media_type := _lines_type(request, format):
        return _stream(store.stream(after, head, limit), media_type, {"X-Head": str(head)})
    events = store.events(after, _page_size(limit))
    rows = [e.as_dict() for e in events]
    return {"data": rows, "count": len(rows),
            "next_after": events[-1].position if events else after, "head": head}


@router.get("/aggregates/{aggregate_id}/events", response_model=None, responses=EXPORT)
def audit_aggregate(request: Request, aggregate_id: UUID, ledger: LedgerDep, caller: Reader,
                    after_version: Annotated[int, Query(ge=0, le=MAX_POSITION)] = 0,
                    limit: Limit = None, format: Format | None = None) -> dict[str, Any] | Response:
    """One aggregate's events, oldest first, with their positions in the log; 404 for an
    aggregate that has none. JSON lines as for /audit/events (continue with
    `after_version=` the last line's `originator_version`)."""
    store = AuditLog(ledger.store)
    media_type = _lines_type(request, format)
    events = store.history(aggregate_id, after_version, 1 if media_type else
                           _page_size(limit))
    if not events and after_version == 0:
        raise Problem(404, "Not found", f"no events of aggregate {aggregate_id}")
    if media_type:
        return _stream(store.stream_history(aggregate_id, after_version, limit), media_type,
                       {})
    rows = [e.as_dict() for e in events]
    return {"data": rows, "count": len(rows),
            "next_after_version": events[-1].originator_version if events else after_version,
            "aggregate_id": str(aggregate_id)}


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
