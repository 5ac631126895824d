"""What every aggregate of the ledger shares: who did it, under which request."""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from eventsourcing.domain import Aggregate

# Namespace of the deterministic aggregate ids (uuid5 over a natural key).
LEDGER_NAMESPACE = uuid.UUID("6f1c3a52-8a1e-4f53-9d63-2f0d3c1b7e10")


def natural_id(kind: str, *key: str) -> uuid.UUID:
    """A deterministic aggregate id from a natural key, e.g. ("credit-account", "acme")."""
    return uuid.uuid5(LEDGER_NAMESPACE, "|".join((kind, *key)))


# The ledger's clock: the wall clock, unless `recorded_at()` fixed it for a context.
_FIXED_NOW: ContextVar[datetime | None] = ContextVar("ledger_fixed_now", default=None)


def utcnow() -> datetime:
    fixed = _FIXED_NOW.get()
    return datetime.now(UTC) if fixed is None else fixed


@contextmanager
def recorded_at(when: datetime) -> Iterator[None]:
    """Commands run in this context decide at `when` and their events carry it as their
    timestamp. For backfilled data only (`ledger demo` spreads a month of usage with it):
    the write pipeline runs each command in the context it was submitted from, so the
    time reaches the writer thread. Record an aggregate's commands in time order."""
    if when.tzinfo is None:
        raise ValueError("recorded_at() needs an aware datetime")
    token = _FIXED_NOW.set(when.astimezone(UTC))
    try:
        yield
    finally:
        _FIXED_NOW.reset(token)


class _RequestIds:
    """Request ids: a random prefix per process and a counter, 32 hex digits like a
    uuid4's, unique across processes without a system call per request."""

    def __init__(self) -> None:
        self.reset()
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        self.prefix = uuid.uuid4().hex[:16]
        self.counter = itertools.count(1)

    def __call__(self) -> str:
        return f"{self.prefix}{next(self.counter):016x}"


new_request_id = _RequestIds()


@dataclass(frozen=True)
class Actor:
    """Who issues a command: an API key (id and role), or the system itself, and the
    unit of work it belongs to. An HTTP request names its own request id; any other
    actor (the CLI, a seed, a sweeper) gets a fresh one when it is created, so that every
    event names a request an auditor can group it by."""

    id: str
    role: str
    request_id: str = field(default_factory=new_request_id)

    def __post_init__(self) -> None:
        if not self.id or not self.role:
            raise ValueError("an actor needs an id and a role")
        if not self.request_id:
            object.__setattr__(self, "request_id", new_request_id())


SYSTEM = Actor(id="system", role="system")  # this process's own work (its seed)


class LedgerAggregate(Aggregate):
    """Base aggregate whose every event names its actor and request."""

    class Event(Aggregate.Event):
        actor_id: str
        actor_role: str
        request_id: str

        @staticmethod
        def create_timestamp() -> datetime:
            return utcnow()  # the ledger's clock (see recorded_at)

    class Created(Event, Aggregate.Created):
        pass

    def _record(self, event_class: type[Any], actor: Actor, **kwargs: Any) -> None:
        self.trigger_event(
            event_class,
            actor_id=actor.id,
            actor_role=actor.role,
            request_id=actor.request_id,
            **kwargs,
        )

    @classmethod
    def _open(cls, event_class: type[Any], actor: Actor, **kwargs: Any) -> Any:
        return cls._create(
            event_class,
            actor_id=actor.id,
            actor_role=actor.role,
            request_id=actor.request_id,
            **kwargs,
        )
