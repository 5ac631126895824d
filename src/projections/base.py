"""Views and projections: the eventsourcing library's projection machinery, batched.

A *view* is a `TrackingRecorder` (`eventsourcing.persistence`): its rows and the position
of the last event it applied are written in one transaction, so an event is applied
exactly once. The library's `Projection.process_event(event, tracking)` works as is (an
already applied notification id is refused with `IntegrityError`); the runner uses the
batched form `view.apply(changes, after=p, to=q)`, which commits the events (p, q] only if
the view is still at p, so neither a redelivery nor a second runner applies anything twice.

A *projection* turns events into `Changes`; it never writes itself. What it needs from
earlier in the log (which account an aggregate is, what a refunded charge or a drawn
lot was) it reads from the log through `LogLookup`, never from another view, so each view
can be dropped and rebuilt alone.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar, TypeVar
from uuid import UUID

from eventsourcing.persistence import Tracking, TrackingRecorder
from eventsourcing.projection import Projection
from eventsourcing.utils import get_topic

from ledger.config import APPLICATION_NAME
from ledger.domain.credits import CreditAccount
from ledger.store import LedgerStore
from projections.tables import Changes, Kind, Row, Table

APPLICATION = APPLICATION_NAME  # the followed application's name in tracking records


@dataclass(frozen=True)
class Snapshot:
    """A view's rows, read in one transaction with the position they reflect."""

    position: int
    tables: dict[str, list[Row]]


class LedgerView(TrackingRecorder, ABC):
    """A read model of the ledger's log, kept in the ledger's own database."""

    name: ClassVar[str]  # the projection's name: "balances"
    tables: ClassVar[tuple[Table, ...]]

    @property
    def tracking_table(self) -> str:
        return f"proj_{self.name}_tracking"

    def position(self) -> int:
        """Notification id of the last event applied (0: none)."""
        return self.max_tracking_id(APPLICATION) or 0

    @abstractmethod
    def apply(self, changes: Changes, *, after: int | None, to: int) -> None:
        """Write `changes` and move the position to `to`, in one transaction.

        With `after`, the view must still be at `after` (the batch holds the events
        after it); otherwise, as in the library, `to` must lie beyond the position.
        Raises IntegrityError, and writes nothing, when that does not hold.
        """

    rebuilding = False  # True on the views a rebuild writes, while it holds rebuild_lock()

    @contextmanager
    def rebuild_lock(self) -> Iterator[None]:
        """Held by a rebuild from its reset to its last page, so that a projector running
        beside it does not write the same views meanwhile (PostgreSQL; on SQLite the
        database's write lock already serializes them)."""
        yield

    @abstractmethod
    def reset(self) -> None:
        """Drop the view's tables and position and create them empty (before a rebuild)."""

    @abstractmethod
    def snapshot(self) -> Snapshot:
        """Every row of every table, with the position, from one consistent read."""

    @abstractmethod
    def select(self, sql: str, params: Sequence[Any], kinds: dict[str, Kind]) -> list[Row]:
        """Rows of a read query in portable SQL: `{proj_x}` names a table, `?` a parameter.

        Parameters are given as Python values, and the columns named in `kinds` come
        back as Python values (Decimal, datetime, ...).
        """

    @abstractmethod
    def param(self, kind: Kind, value: Any) -> Any:
        """A Python value as a parameter compared with a column of `kind`."""

    @abstractmethod
    def day(self, column: str) -> str:
        """SQL for the UTC day of a time column, as text 'YYYY-MM-DD'."""

    @abstractmethod
    def month(self, column: str) -> str:
        """SQL for the UTC month of a time column, as text 'YYYY-MM'."""

    @abstractmethod
    def sum_of(self, kind: Kind, column: str) -> str:
        """SQL for the exact sum of a column (never through a float)."""


TView = TypeVar("TView", bound=LedgerView)


def topics_of(*classes: type[Any]) -> tuple[str, ...]:
    return tuple(get_topic(c) for c in classes)


CREDIT_EVENTS: tuple[type[Any], ...] = (
    CreditAccount.Opened, CreditAccount.CreditsPurchased, CreditAccount.CreditsGranted,
    CreditAccount.CreditsReserved, CreditAccount.CreditsDeducted,
    CreditAccount.ReservationCaptured, CreditAccount.ReservationReleased,
    CreditAccount.CreditsRefunded, CreditAccount.CreditsAdjusted, CreditAccount.LotExpired,
)


class LedgerProjection(Projection[TView], ABC):
    """Turns the log's events into changes of one view."""

    name: str = ""
    topics: tuple[str, ...] = ()

    def __init__(self, view: TView, log: LogLookup) -> None:
        super().__init__(view)
        self.log = log

    def changes(self, items: Iterable[tuple[int, Any]]) -> Changes:
        """What the events (with their notification ids, in log order) do to the view."""
        changes = Changes()
        project = self.project  # once: a singledispatchmethod builds a wrapper per access
        for position, event in items:
            project(event, position, changes)
        return changes

    @abstractmethod
    def project(self, event: Any, position: int, changes: Changes) -> None:
        """Add to `changes` what one event does to the view (nothing for other events)."""

    def process_event(self, domain_event: Any, tracking: Tracking) -> None:  # type: ignore[override]
        """The library's entry point: one event, applied once (IntegrityError if again)."""
        self.view.apply(self.changes([(tracking.notification_id, domain_event)]),
                        after=None, to=tracking.notification_id)


class LogLookup:
    """Facts from earlier in the log, cached: an aggregate's account id, an event by version.

    Events never change, so neither do the answers: a cache needs no invalidation, and
    any thread may fill it (the same answer twice at worst). Its size is bounded by
    dropping the oldest entries.
    """

    def __init__(self, store: LedgerStore, size: int = 100_000) -> None:
        self.store = store
        self.size = size
        self._accounts: dict[UUID, str] = {}
        self._events: dict[tuple[UUID, int], Any] = {}

    def account_id(self, originator_id: UUID) -> str:
        """The account a credit account aggregate belongs to (from its Opened event)."""
        account = self._accounts.get(originator_id)
        if account is None:
            opened = self.event(originator_id, 1)
            account = str(opened.account_id)
            self._put(self._accounts, originator_id, account)
        return account

    def event(self, originator_id: UUID, version: int) -> Any:
        key = (originator_id, version)
        event = self._events.get(key)
        if event is None:
            found = self.store.events_of(originator_id, gt=version - 1, lte=version)
            if not found:
                raise LookupError(f"no event {version} of aggregate {originator_id}")
            event = found[0]
            self._put(self._events, key, event)
        return event

    def charge(self, originator_id: UUID, charge_id: str) -> Any:
        """The Charged event of a charge id ("chg-42" is version 42 of the account)."""
        charge = self.event(originator_id, version_of(charge_id))
        if not isinstance(charge, CreditAccount.Charged):
            raise LookupError(f"{charge_id} of {originator_id} is not a charge")
        return charge

    def lot_price(self, originator_id: UUID, lot_id: str) -> Decimal | None:
        """What a lot's credits were paid each; None for granted or adjusted credits."""
        created = self.event(originator_id, version_of(lot_id))
        if isinstance(created, CreditAccount.CreditsPurchased):
            price: Decimal = created.price_per_credit_usd
            return price
        return None

    def note(self, event: Any) -> None:
        """Remember what an event tells about later ones (an account's id)."""
        if isinstance(event, CreditAccount.Opened):
            self._put(self._accounts, event.originator_id, event.account_id)

    def _put(self, cache: dict[Any, Any], key: Any, value: Any) -> None:
        if len(cache) >= self.size:
            for old in list(cache)[: self.size // 10]:
                cache.pop(old, None)
        cache[key] = value


def where(*conditions: tuple[str, Any]) -> tuple[str, list[Any]]:
    """A WHERE clause of the conditions ("time >= ?", value) whose value is not None."""
    given = [(sql, value) for sql, value in conditions if value is not None]
    if not given:
        return "", []
    return " WHERE " + " AND ".join(sql for sql, _ in given), [v for _, v in given]


def version_of(entity_id: str) -> int:
    """The version of the event that created a lot, charge or hold ("chg-42" -> 42)."""
    _, _, number = entity_id.rpartition("-")
    return int(number)
