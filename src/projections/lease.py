"""Who keeps the views: one runner per database, the others stand by.

Several processes may want to run the projections (`ledger serve --workers 2`, a
worker beside an API that also runs them). Two runners would stay correct (a view
refuses a batch it is not at), but they would trip over each other. So a runner first
takes a lease: on PostgreSQL a session advisory lock named after the schema, held by a
connection for as long as it runs; on SQLite an exclusive lock on a file beside the
database. The lease ends with the process, however it ends.
"""

from __future__ import annotations

import fcntl
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path
from typing import Any

import psycopg
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

from ledger.domain.base import utcnow
from ledger.store import LedgerStore

log = logging.getLogger(__name__)

Alive = Callable[[], bool]


@contextmanager
def file_lease(path: Path | None) -> Iterator[Alive | None]:
    """An exclusive lock on `path` (None: an in-memory database, one process): yields
    a liveness check if taken, None if another process holds it."""
    if path is None:
        yield lambda: True
        return
    with path.open("a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield None
            return
        try:
            yield lambda: True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextmanager
def advisory_lease(datastore: PostgresDatastore, check_every_s: float = 1.0, *,
                   worker: str = "projections") -> Iterator[Alive | None]:
    """A session advisory lock per schema and kind of worker ("projections",
    "webhooks"), on a connection kept for the lease."""
    name = f"ledger-{worker}:{datastore.schema}"
    with datastore.get_connection() as conn:
        row: Any = conn.execute("SELECT pg_try_advisory_lock(hashtext(%s)) AS taken",
                                [name]).fetchone()
        if not row["taken"]:
            yield None
            return
        checked = time.monotonic()

        def alive() -> bool:
            nonlocal checked
            if time.monotonic() - checked < check_every_s:
                return True
            checked = time.monotonic()
            try:
                conn.execute("SELECT 1")
            except psycopg.Error:
                return False
            return True

        try:
            yield alive
        finally:
            with suppress(psycopg.Error):  # a broken connection has let go of it already
                conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", [name])


def lease_of(store: LedgerStore, worker: str) -> Callable[[], AbstractContextManager[Alive | None]]:
    """The lease one `worker` ("projections", "webhooks") holds per database: an advisory
    lock on PostgreSQL, a lock file beside the SQLite file (none in memory)."""
    recorder = store.recorder
    if isinstance(recorder, PostgresApplicationRecorder):
        pg = recorder.datastore
        return lambda: advisory_lease(pg, worker=worker)
    pool = recorder.datastore.pool  # type: ignore[attr-defined]
    lock = None if pool.is_sqlite_memory_mode else Path(f"{pool.db_name}.{worker}.lock")
    return lambda: file_lease(lock)


class LeasedWorker(ABC):
    """A background thread that works while this process holds the worker's lease (one
    worker per database leads, the others stand by) and backs off and retries when the
    database goes away."""

    worker: str  # names the thread, the lease and the log lines
    retry_s: tuple[float, float] = (0.2, 2.0)  # first and longest wait after a failure
    standby_s = 2.0  # how often a standing-by worker tries to take over

    def __init__(self, store: LedgerStore) -> None:
        self._lease = lease_of(store, self.worker)
        self.state = "stopped"  # "running" (this process leads) | "standby"
        self.last_error: str | None = None  # the latest failure, with its time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._delay = self.retry_s[0]

    @abstractmethod
    def lead(self, stop: threading.Event, alive: Callable[[], bool]) -> None:
        """Work until `stop` is set or `alive()` is false (the lease was lost)."""

    def recovered(self) -> None:
        """The work went through: the next failure waits the shortest time again."""
        self._delay = self.retry_s[0]

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, args=(self._stop,),
                                        name=self.worker, daemon=True)
        self._thread.start()

    def interrupt(self) -> None:  # noqa: B027 (a hook: most workers wait on `stop` alone)
        """Wake `lead` up when it waits for something other than `stop`."""

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.interrupt()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def run(self, stop: threading.Event) -> None:
        """Lead, or stand by, until `stop` is set."""
        self.recovered()
        while not stop.is_set():
            try:
                with self._lease() as alive:
                    if alive is None:
                        self.state = "standby"
                        stop.wait(self.standby_s)
                        continue
                    self.state = "running"
                    self.lead(stop, alive)
                self.recovered()
            except Exception as exc:  # the database went away, say: retry, keep serving
                self.last_error = f"{utcnow().isoformat()} {type(exc).__name__}: {exc}"
                log.warning("%s: %s: %s; retrying in %.1fs", self.worker,
                            type(exc).__name__, exc, self._delay)
                stop.wait(self._delay)
                self._delay = min(self._delay * 2, self.retry_s[1])
            finally:
                self.state = "stopped"
