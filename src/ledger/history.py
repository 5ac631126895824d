"""Reading an aggregate's past from the log: its state at a moment, its changes as rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from ledger.store import LedgerStore

ENVELOPE = frozenset({"originator_id", "originator_version", "timestamp", "originator_topic",
                      "actor_id", "actor_role", "request_id"})


def state_at(store: LedgerStore, aggregate_id: UUID, when: datetime | None) -> Any | None:
    """The aggregate as it stood at `when` (latest if None), replayed from its events."""
    if when is None:
        return store.find(aggregate_id)
    aggregate = None
    for event in store.events_of(aggregate_id):
        if event.timestamp > when:
            break
        aggregate = event.mutate(aggregate)
    return aggregate


def change_rows(events: Any) -> list[dict[str, Any]]:
    """One row per event, oldest first: what changed, when, and who did it."""
    return [{"version": e.originator_version, "event": type(e).__qualname__.split(".")[-1],
             "time": e.timestamp, "actor_id": e.actor_id, "actor_role": e.actor_role,
             "request_id": e.request_id,
             "changes": {k: v for k, v in vars(e).items() if k not in ENVELOPE}}
            for e in events]
