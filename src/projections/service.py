"""The read side: the views of the ledger's log, who keeps them, and how fresh they are.

`Projections(store, settings)` builds the views in the event store's own database
(the same SQLite file or PostgreSQL schema), each with its projection. Then either

* `start()` / `stop()`: a background thread keeps them up to date (what `create_app`
  does when `LEDGER_RUN_PROJECTIONS` is true), or
* `run(stop)`: the same loop in the calling thread (`ledger projections run`).

Only one runner per database works at a time (see `projections.lease`); the others
stand by and take over when it goes away.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import IntegrityError
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder

from ledger.config import Settings
from ledger.store import LedgerStore
from projections.balances.postgres import PostgresBalancesView
from projections.balances.projection import BalancesProjection
from projections.balances.sqlite import SQLiteBalancesView
from projections.balances.view import BalancesView
from projections.base import LedgerProjection, LogLookup
from projections.lease import LeasedWorker
from projections.lots.postgres import PostgresLotsView
from projections.lots.projection import LotsProjection
from projections.lots.sqlite import SQLiteLotsView
from projections.lots.view import LotsView
from projections.revenue.postgres import PostgresRevenueView
from projections.revenue.projection import RevenueProjection
from projections.revenue.sqlite import SQLiteRevenueView
from projections.revenue.view import RevenueView
from projections.runner import Progress, Runner
from projections.transactions.postgres import PostgresTransactionsView
from projections.transactions.projection import TransactionsProjection
from projections.transactions.sqlite import SQLiteTransactionsView
from projections.transactions.view import TransactionsView
from projections.usage.postgres import PostgresUsageView
from projections.usage.projection import UsageProjection
from projections.usage.sqlite import SQLiteUsageView
from projections.usage.view import UsageView

log = logging.getLogger(__name__)

REBUILD_PAGE = 5000
NAMES = ("balances", "transactions", "usage", "revenue", "lots")


@dataclass(frozen=True)
class Rebuilt:
    names: tuple[str, ...]
    events: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


class Projections(LeasedWorker):
    worker = "projections"

    def __init__(self, store: LedgerStore, settings: Settings) -> None:
        super().__init__(store)
        self.store = store
        self.settings = settings
        recorder = store.recorder
        if isinstance(recorder, PostgresApplicationRecorder):
            pg = recorder.datastore
            self.balances: BalancesView = PostgresBalancesView(pg)
            self.transactions: TransactionsView = PostgresTransactionsView(pg)
            self.usage: UsageView = PostgresUsageView(pg)
            self.revenue: RevenueView = PostgresRevenueView(pg)
            self.lots: LotsView = PostgresLotsView(pg)
        elif isinstance(recorder, SQLiteApplicationRecorder):
            lite = recorder.datastore
            self.balances = SQLiteBalancesView(lite)
            self.transactions = SQLiteTransactionsView(lite)
            self.usage = SQLiteUsageView(lite)
            self.revenue = SQLiteRevenueView(lite)
            self.lots = SQLiteLotsView(lite)
        else:
            raise TypeError(f"no views for {type(recorder).__name__}")
        self.log = LogLookup(store)
        self.projections: dict[str, LedgerProjection[Any]] = {p.name: p for p in (
            BalancesProjection(self.balances, self.log),
            TransactionsProjection(self.transactions, self.log),
            UsageProjection(self.usage, self.log),
            RevenueProjection(self.revenue, self.log),
            LotsProjection(self.lots, self.log),
        )}
        for p in self.projections.values():
            try:
                p.view.create_table()
            except IntegrityError:  # another process created it at the same moment
                p.view.create_table()
        self.runner = Runner(store, list(self.projections.values()))

    def select(self, names: Iterable[str] = ()) -> list[LedgerProjection[Any]]:
        wanted = list(names) or list(self.projections)
        unknown = [n for n in wanted if n not in self.projections]
        if unknown:
            raise KeyError(f"no projection {', '.join(unknown)} "
                           f"(there are {', '.join(self.projections)})")
        return [self.projections[n] for n in wanted]

    # -- running --------------------------------------------------------------------------

    def interrupt(self) -> None:
        self.runner.interrupt()

    def lead(self, stop: threading.Event, alive: Callable[[], bool]) -> None:
        """Keep the views up to date (Projections.start() runs this in a thread)."""
        self.runner.follow(stop, poll_s=self.settings.projections_poll_s, alive=alive)

    def catch_up(self, progress: Progress | None = None) -> int:
        """Apply what the log holds now, in this thread; how many events were read."""
        self.runner.refresh()
        return self.runner.catch_up(progress=progress)

    def rebuild(self, names: Iterable[str] = (), progress: Progress | None = None) -> Rebuilt:
        """Drop the named views (all by default) and replay the whole log into them."""
        selected = self.select(names)
        if not selected:
            return Rebuilt((), 0, 0.0)
        started = time.perf_counter()
        with selected[0].view.rebuild_lock():
            try:
                for p in selected:
                    p.view.rebuilding = True
                    p.view.reset()
                runner = Runner(self.store, selected, page_size=REBUILD_PAGE)
                events = runner.catch_up(progress=progress)
            finally:
                for p in selected:
                    p.view.rebuilding = False
        self.runner.refresh()
        return Rebuilt(tuple(p.name for p in selected), events,
                       time.perf_counter() - started)

    # -- freshness ------------------------------------------------------------------------

    def head(self) -> int:
        return self.store.head()

    def positions(self) -> dict[str, int]:
        return {name: p.view.position() for name, p in self.projections.items()}

    def wait(self, position: int, names: Iterable[str] = (),
             timeout: float | None = None) -> bool:
        """Block until the named views (all by default) have applied the log up to
        `position`, at most `timeout` seconds (LEDGER_PROJECTIONS_WAIT_S); False if not."""
        wanted = [p.name for p in self.select(names)]
        deadline = time.monotonic() + (self.settings.projections_wait_s if timeout is None
                                       else timeout)
        while True:
            left = deadline - time.monotonic()
            if self.state == "running":  # this process applies them: wait to be told
                if self.runner.wait(position, wanted, max(0.0, min(left, 0.1))):
                    return True
            elif all(self.projections[n].view.position() >= position for n in wanted):
                return True
            elif left > 0:
                time.sleep(min(left, self.settings.projections_poll_s))
            if time.monotonic() >= deadline:
                return False

    def status(self) -> dict[str, Any]:
        head = self.head()
        return {"head": head, "runner": self.state, "last_error": self.last_error,
                "projections": [{"name": name, "position": position,
                                 "lag": max(head - position, 0)}
                                for name, position in self.positions().items()]}
