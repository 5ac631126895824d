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
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import psycopg
from eventsourcing.postgres import PostgresDatastore

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
