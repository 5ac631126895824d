"""Keeping views up to date with the log: catch up, then follow.

The runner reads notifications in log order, decodes the events some view wants (once,
for every view) and applies each view's changes with `view.apply(changes, after=p, to=q)`:
one transaction per view and batch, committed only if the view is still at p. A batch
moves every view to its last notification, also when none of its events concerns the
view, so that a reader waiting for position q is answered.

Following the log:

* PostgreSQL: the library's subscription (`recorder.subscribe()`, LISTEN/NOTIFY and
  pulls) feeds a queue; the runner takes what has arrived as one batch, so under load
  batches grow and the views keep up with one transaction per batch, not per event.
* SQLite, which cannot be subscribed to: the runner pulls `select_notifications()`
  after its position every `poll_s` seconds.

If a view was moved by someone else (a rebuild, a second runner), its transaction is
refused (IntegrityError); the runner re-reads every position and goes on from there.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Generator, Iterable, Sequence
from contextlib import closing
from queue import Empty, Full, Queue
from typing import Any

from eventsourcing.persistence import IntegrityError, Notification, Subscription
from eventsourcing.postgres import PostgresApplicationRecorder

from ledger.store import LedgerStore
from projections.base import LedgerProjection

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (position reached, head)
Batches = Generator[list[Notification], None, None]


class Runner:
    def __init__(self, store: LedgerStore, projections: Sequence[LedgerProjection[Any]], *,
                 page_size: int = 1000) -> None:
        self.store = store
        self.projections = list(projections)
        self.page_size = page_size
        self.topics = frozenset(t for p in self.projections for t in p.topics)
        self._topics = {p.name: frozenset(p.topics) for p in self.projections}
        self.positions: dict[str, int] = {}
        self.advanced = threading.Condition()
        self._subscription: Subscription[Any] | None = None
        self.refresh()

    def refresh(self) -> None:
        """Read every view's position from its table."""
        positions = {p.name: p.view.position() for p in self.projections}
        with self.advanced:
            self.positions = positions

    @property
    def low(self) -> int:
        """The lowest position: where reading the log resumes."""
        return min(self.positions.values(), default=0)

    def process(self, notifications: Sequence[Notification]) -> None:
        """Apply notifications that follow each other in the log to the views behind them."""
        last = notifications[-1].id
        mapper = self.store.mapper
        events = [(n.id, n.topic, mapper.to_domain_event(n)) for n in notifications
                  if n.topic in self.topics]
        for p in self.projections:
            at = self.positions[p.name]
            if last <= at:
                continue
            topics = self._topics[p.name]
            p.view.apply(p.changes((i, e) for i, t, e in events if i > at and t in topics),
                         after=at, to=last)
            self._advanced(p.name, last)

    def _advanced(self, name: str, position: int) -> None:
        with self.advanced:
            self.positions[name] = position
            self.advanced.notify_all()

    def catch_up(self, *, until: int | None = None, progress: Progress | None = None) -> int:
        """Apply every event up to `until` (the head by default); how many were read."""
        head = self.store.head() if until is None else until
        count = 0
        while (start := self.low) < head:
            page = self.store.recorder.select_notifications(
                start, self.page_size, stop=head, inclusive_of_start=False)
            if not page:
                break
            try:
                self.process(page)
            except IntegrityError:
                if not self._moved():
                    raise
                continue
            count += len(page)
            if progress is not None:
                progress(page[-1].id, head)
        return count

    def follow(self, stop: threading.Event, *, poll_s: float = 0.02,
               alive: Callable[[], bool] = lambda: True) -> None:
        """Apply events as they are recorded, until `stop` is set or `alive()` is false."""
        while not stop.is_set() and alive():
            self.refresh()
            source = (self._subscribed if isinstance(self.store.recorder,
                                                     PostgresApplicationRecorder)
                      else self._polled)
            with closing(source(self.low, stop, poll_s)) as batches:
                try:
                    for batch in batches:
                        if batch:
                            self.process(batch)
                        if stop.is_set() or not alive():
                            return
                except IntegrityError:
                    if not self._moved():
                        raise

    def _moved(self) -> bool:
        """After a refused batch: did someone else move a view (a rebuild, another
        runner)? Then go on from the positions now. If not, the refusal was something
        else (a duplicate row?), and the caller raises it."""
        before = dict(self.positions)
        self.refresh()
        if self.positions == before:
            return False
        log.info("a view moved under the runner; resuming from the views' positions")
        return True

    def interrupt(self) -> None:
        """End the current subscription now (follow() returns once `stop` is set)."""
        subscription = self._subscription
        if subscription is not None:
            subscription.stop()

    def wait(self, position: int, names: Iterable[str], timeout: float) -> bool:
        """Block until the named views have reached `position` (False on timeout)."""
        wanted = tuple(names)
        with self.advanced:
            return self.advanced.wait_for(
                lambda: all(self.positions.get(n, 0) >= position for n in wanted), timeout)

    # -- sources of batches: lists of notifications, [] when idle ------------------------

    def _polled(self, start: int, stop: threading.Event,
                poll_s: float) -> Batches:
        while not stop.is_set():
            page = list(self.store.recorder.select_notifications(
                start, self.page_size, inclusive_of_start=False))
            if page:
                start = page[-1].id
            yield page
            if len(page) < self.page_size:
                stop.wait(poll_s)

    def _subscribed(self, start: int, stop: threading.Event,
                    poll_s: float) -> Batches:
        queue: Queue[Notification | BaseException | None] = Queue(maxsize=4 * self.page_size)
        done = threading.Event()
        with self.store.recorder.subscribe(gt=start) as subscription:
            self._subscription = subscription
            feeder = threading.Thread(target=_feed, args=(subscription, queue, done),
                                      name="projections-feed", daemon=True)
            feeder.start()
            try:
                while not stop.is_set():
                    try:
                        batch = [queue.get(timeout=0.25)]
                    except Empty:
                        yield []
                        continue
                    while len(batch) < self.page_size:
                        try:
                            batch.append(queue.get_nowait())
                        except Empty:
                            break
                    notifications = [n for n in batch if isinstance(n, Notification)]
                    if notifications:
                        yield notifications
                    if len(notifications) < len(batch) and not stop.is_set():
                        end = next(n for n in batch if not isinstance(n, Notification))
                        raise end or ConnectionError("the log's subscription ended")
            finally:
                self._subscription = None
                done.set()
                subscription.stop()
                feeder.join()


def _feed(subscription: Subscription[Any], queue: Queue[Notification | BaseException | None],
          done: threading.Event) -> None:
    """Move the subscription's notifications to the queue; then its end (None or error)."""
    def put(item: Notification | BaseException | None) -> bool:
        while not done.is_set():
            try:
                queue.put(item, timeout=0.1)
                return True
            except Full:
                continue
        return False

    end: BaseException | None = None
    try:
        for notification in subscription:
            if not put(notification):
                return
    except Exception as exc:  # the subscription failed: the runner raises it
        end = exc
    put(end)
