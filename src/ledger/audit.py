"""The audit log: the stored events as an auditor reads them, secrets kept sealed.

Every event of the ledger names its actor (key id and role), the request and the time
(ledger.domain.base). Here each is decoded with the store's own mapper (upcasting
included) and shown with its position in the log; values are rendered exactly as stored
(decimals unrounded, times RFC 3339 UTC).

Provider API keys reach events only sealed (ledger.secrets), and API keys only as a hash
of their token. Even so, any field whose name ends in ``api_key``, ``_secret`` or
``_sha256``, and any sealed value, is masked here, at any depth.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Notification

from ledger.domain.settings import SEALED_PREFIX
from ledger.recorders import chained
from ledger.store import LedgerStore

MASK = "****"
PAGE = 500  # events read at a time by a stream
SEALED_NAME = re.compile(r"(api_key|_secret|_sha256)$", re.IGNORECASE)
ENVELOPE = ("originator_id", "originator_version", "timestamp", "actor_id", "actor_role",
            "request_id")


def plain(value: Any, name: str = "") -> Any:
    """A decoded value as JSON, masked if its name or its content says it is secret."""
    if SEALED_NAME.search(name) and value is not None:
        return MASK
    if isinstance(value, str):
        return MASK if value.startswith(SEALED_PREFIX) else value
    if isinstance(value, dict):
        return {str(k): plain(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else value
        return [plain(v) for v in items]
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, Enum):
        return plain(value.value)
    if isinstance(value, Decimal | UUID):
        return str(value)
    return value


@dataclass(frozen=True)
class AuditEvent:
    position: int  # the notification id: the event's place in the log
    topic: str
    originator_id: str
    originator_version: int
    timestamp: datetime
    actor_id: str
    actor_role: str
    request_id: str
    fields: dict[str, Any]  # the event's own fields, JSON-ready and masked

    def as_dict(self) -> dict[str, Any]:
        return {"position": self.position, "topic": self.topic,
                "originator_id": self.originator_id,
                "originator_version": self.originator_version,
                "timestamp": plain(self.timestamp), "actor_id": self.actor_id,
                "actor_role": self.actor_role, "request_id": self.request_id,
                "fields": self.fields}


class AuditLog:
    def __init__(self, store: LedgerStore) -> None:
        self.store = store

    def events(self, after: int = 0, limit: int = 100) -> list[AuditEvent]:
        """The log in order from position `after` (exclusive)."""
        return [self._public(n) for n in self.store.recorder.select_notifications(
            after, limit, inclusive_of_start=False)]

    def history(self, aggregate_id: UUID, after_version: int = 0,
                limit: int = 100) -> list[AuditEvent]:
        """One aggregate's events from `after_version` (exclusive), oldest first."""
        return [self._public(n) for n in chained(self.store.recorder).select_history(
            aggregate_id, after_version, limit)]

    def stream(self, after: int = 0, upto: int | None = None,
               limit: int | None = None) -> Iterator[AuditEvent]:
        """The log in order from position `after` (exclusive) to `upto` (inclusive), at
        most `limit` events, read a page at a time (for an export of any length)."""
        def page(start: int, size: int) -> Sequence[Notification]:
            return self.store.recorder.select_notifications(start, size, stop=upto,
                                                            inclusive_of_start=False)
        yield from self._paged(page, after, limit, lambda n: n.id)

    def stream_history(self, aggregate_id: UUID, after_version: int = 0,
                       limit: int | None = None) -> Iterator[AuditEvent]:
        """One aggregate's events from `after_version` (exclusive), a page at a time."""
        recorder = chained(self.store.recorder)

        def page(start: int, size: int) -> Sequence[Notification]:
            return recorder.select_history(aggregate_id, start, size)
        yield from self._paged(page, after_version, limit, lambda n: n.originator_version)

    def _paged(self, page: Callable[[int, int], Sequence[Notification]], start: int,
               limit: int | None, cursor: Callable[[Notification], int]
               ) -> Iterator[AuditEvent]:
        left = limit
        while left is None or left > 0:
            size = PAGE if left is None else min(PAGE, left)
            rows = page(start, size)
            for n in rows:
                yield self._public(n)
            if len(rows) < size:
                return
            start = cursor(rows[-1])
            if left is not None:
                left -= len(rows)

    def _public(self, n: Notification) -> AuditEvent:
        event = self.store.mapper.to_domain_event(n)
        values = vars(event)
        return AuditEvent(
            position=n.id, topic=n.topic, originator_id=str(n.originator_id),
            originator_version=n.originator_version, timestamp=values["timestamp"],
            actor_id=values.get("actor_id", ""), actor_role=values.get("actor_role", ""),
            request_id=values.get("request_id", ""),
            fields={k: plain(v, k) for k, v in values.items() if k not in ENVELOPE})
