"""Recent metered provider calls, read from the tail of the log.

No view keeps provider calls, so this reads the ProviderCall events of the last part of
the log (newest first, a window at a time) and folds each call's request and outcome
into one row. The scan is bounded (`max_scan` notifications): a call requested before
that appears without its request and is left out, so this answers "what happened
lately", not "every call ever" (the audit log does that).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.utils import get_topic

from ledger.domain.calls import ProviderCall
from ledger.store import LedgerStore

TOPICS = tuple(get_topic(c) for c in (ProviderCall.Requested, ProviderCall.Succeeded,
                                      ProviderCall.Failed, ProviderCall.Abandoned))
OUTCOME_FIELDS = ("charge_id", "credits", "input_tokens", "output_tokens", "images",
                  "usage_reported", "cost_usd", "latency_ms", "error_kind", "detail",
                  "http_status", "reason")


def _requested(event: Any) -> dict[str, Any]:
    return {"call_id": event.call_id, "status": "requested", "time": event.timestamp,
            "account_id": event.account_id, "user_id": event.user_id, "kind": event.kind,
            "operation": event.operation, "provider": event.provider,
            "model_id": event.model_id, "held_credits": event.held_credits,
            "settled_at": None, **dict.fromkeys(OUTCOME_FIELDS)}


def _outcome(event: Any) -> dict[str, Any]:
    status = {ProviderCall.Succeeded: "succeeded", ProviderCall.Failed: "failed",
              ProviderCall.Abandoned: "abandoned"}[type(event)]
    return {"status": status, "settled_at": event.timestamp,
            **{n: getattr(event, n) for n in OUTCOME_FIELDS if hasattr(event, n)}}


def recent_calls(store: LedgerStore, *, limit: int = 50, status: str | None = None,
                 account_id: str | None = None, window: int = 5000,
                 max_scan: int = 200_000) -> list[dict[str, Any]]:
    """The latest `limit` calls (of `status`, of `account_id`), newest request first."""
    requests: dict[UUID, dict[str, Any]] = {}
    outcomes: dict[UUID, dict[str, Any]] = {}
    stop = store.head()
    floor = max(stop - max_scan, 0)
    while stop > floor:
        start = max(stop - window, floor)
        page: Sequence[Any] = store.recorder.select_notifications(
            start, window, stop=stop, topics=TOPICS, inclusive_of_start=False)
        for notification in page:
            event = store.mapper.to_domain_event(notification)
            if isinstance(event, ProviderCall.Requested):
                requests[event.originator_id] = _requested(event)
            else:
                outcomes[event.originator_id] = _outcome(event)
        stop = start
        # calls requested before `start` would all rank below the ones found so far
        if len(_rows(requests, outcomes, status, account_id)) >= limit:
            break
    return _rows(requests, outcomes, status, account_id)[:limit]


def _rows(requests: dict[UUID, dict[str, Any]], outcomes: dict[UUID, dict[str, Any]],
          status: str | None, account_id: str | None) -> list[dict[str, Any]]:
    rows = [{**row, **outcomes.get(key, {})} for key, row in requests.items()]
    rows = [r for r in rows if status in (None, r["status"])
            and account_id in (None, r["account_id"])]
    return sorted(rows, key=lambda r: r["time"], reverse=True)
