"""The event store's recorders: the library's, plus the audit chain (see ledger.chain).

Each transaction that stores events also stores their links, in ONE extra statement
(an executemany of small rows) inside the same transaction:

* SQLite: after the events are inserted, the write transaction holds the database's
  write lock; the chain's head is read and the links inserted under it.
* PostgreSQL: the insert runs under the events table's EXCLUSIVE lock, which makes
  notification ids commit in order. The chain's head is read in the same pipeline as
  the insert (no extra round trip); the links travel with the commit.

They are selected through the library's APPLICATION_RECORDER_TOPIC (see
Settings.eventsourcing_env) and refuse to store an event until LedgerStore has given them
the chain keys.
"""

from __future__ import annotations

import sqlite3
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from functools import wraps
from typing import Any, TypeVar
from uuid import UUID
from weakref import WeakKeyDictionary

from eventsourcing.persistence import (
    ApplicationRecorder,
    DataError,
    InterfaceError,
    Notification,
    OperationalError,
    ProgrammingError,
    StoredEvent,
)
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor, SQLiteDatastore
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier
from psycopg_pool import PoolTimeout

from ledger.chain import GENESIS, ChainKeys, Link

F = TypeVar("F", bound=Callable[..., Any])
ATTEMPTS = 3


def fail_fast(method: F) -> F:
    """The library's PostgreSQL recorder method without its retry loop of 10 attempts,
    each of which may wait the pool's whole timeout when the database is unreachable
    (a request would hang for minutes). Instead: a broken pooled connection (after a
    restart, say) is tried again at once, at most ATTEMPTS times, and the pool's own
    timeout ends it, so a request waits at most about that timeout, then answers 503."""
    inner: Callable[..., Any] = getattr(method, "__wrapped__", method)

    @wraps(inner)
    def call(*args: Any, **kwargs: Any) -> Any:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return inner(*args, **kwargs)
            except (InterfaceError, OperationalError) as exc:
                if attempt == ATTEMPTS or isinstance(exc.__cause__, PoolTimeout):
                    raise
                time.sleep(0.01 * attempt)
        raise AssertionError("unreachable")

    return call  # type: ignore[return-value]


class ChainConflict(DataError):
    """A link already exists at a new event's notification id: the chain table holds rows
    the ledger did not write (or an events row was deleted and its id reused)."""


def chain_table_for(events_table_name: str) -> str:
    return events_table_name.removesuffix("_events") + "_chain"


class Chained(ABC):
    """What both recorders add to the library's: sealing, and reading the chain."""

    chain_table_name: str
    keys: ChainKeys | None = None

    def seal_with(self, keys: ChainKeys) -> None:
        self.keys = keys

    def _links(self, previous: bytes | None, notification_ids: Sequence[int] | None,
               stored_events: Sequence[StoredEvent]) -> list[Link]:
        if self.keys is None:
            raise ProgrammingError("the recorder has no chain key (LedgerStore gives it one)")
        assert notification_ids is not None
        return self.keys.current.chain(GENESIS if previous is None else bytes(previous),
                                       notification_ids, stored_events)

    @abstractmethod
    def chain_heads(self) -> tuple[int, int]:
        """The last notification id of the events and of the chain (0 when empty), read
        together."""

    @abstractmethod
    def select_links(self, after: int, stop: int, limit: int) -> list[Link]:
        """Links with after < notification_id <= stop, in order."""

    @abstractmethod
    def select_history(self, originator_id: UUID, after_version: int,
                       limit: int) -> list[Notification]:
        """One aggregate's events with their notification ids, in version order."""


def chained(recorder: ApplicationRecorder) -> Chained:
    if not isinstance(recorder, Chained):
        raise ProgrammingError(f"{type(recorder).__name__} keeps no audit chain "
                               "(set APPLICATION_RECORDER_TOPIC, see ledger.config)")
    return recorder


class SQLiteLedgerRecorder(Chained, SQLiteApplicationRecorder):
    def __init__(self, datastore: SQLiteDatastore,
                 events_table_name: str = "stored_events") -> None:
        self.chain_table_name = chain_table_for(events_table_name)
        super().__init__(datastore, events_table_name)
        names = {"chain": self.chain_table_name, "events": self.events_table_name}

        def sql(text: str) -> str:  # table names come from the library, not from input
            return text.format(**names)

        self.insert_links_statement = sql("INSERT INTO {chain} VALUES (?,?,?,?,?,?)")
        self.chain_head_statement = sql(
            "SELECT hash FROM {chain} ORDER BY notification_id DESC LIMIT 1")
        self.chain_heads_statement = sql("SELECT (SELECT MAX(rowid) FROM {events}), "
                                         "(SELECT MAX(notification_id) FROM {chain})")
        self.select_links_statement = sql(
            "SELECT * FROM {chain} WHERE notification_id > ? AND notification_id <= ? "
            "ORDER BY notification_id LIMIT ?")
        self.select_history_statement = sql(
            "SELECT rowid, * FROM {events} WHERE originator_id = ? "
            "AND originator_version > ? ORDER BY originator_version LIMIT ?")

    def construct_create_table_statements(self) -> list[str]:
        return [*super().construct_create_table_statements(),
                f"CREATE TABLE IF NOT EXISTS {self.chain_table_name} ("
                "notification_id INTEGER PRIMARY KEY, originator_id TEXT NOT NULL, "
                "originator_version INTEGER NOT NULL, key_id TEXT NOT NULL, "
                "seal BLOB NOT NULL, hash BLOB NOT NULL)"]

    @staticmethod
    def _id(originator_id: UUID | str) -> str:
        return originator_id.hex if isinstance(originator_id, UUID) else originator_id

    def _insert_events(self, c: SQLiteCursor, stored_events: Sequence[StoredEvent],
                       **kwargs: Any) -> Sequence[int] | None:
        ids = super()._insert_events(c, stored_events, **kwargs)
        # The insert above took the write lock: nobody can extend the chain meanwhile.
        c.execute(self.chain_head_statement)
        head = c.fetchone()
        links = self._links(None if head is None else head["hash"], ids, stored_events)
        try:
            c.executemany(self.insert_links_statement, [
                (k.notification_id, self._id(k.originator_id), k.originator_version,
                 k.key_id, k.seal, k.hash) for k in links])
        except sqlite3.IntegrityError as exc:
            raise ChainConflict(str(exc)) from None
        return ids

    def chain_heads(self) -> tuple[int, int]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(self.chain_heads_statement)
            events, links = c.fetchone()
        return events or 0, links or 0

    def select_links(self, after: int, stop: int, limit: int) -> list[Link]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(self.select_links_statement, (after, stop, limit))
            return [Link(r["notification_id"], self.convert_originator_id(r["originator_id"]),
                         r["originator_version"], r["key_id"], r["seal"], r["hash"])
                    for r in c.fetchall()]

    def select_history(self, originator_id: UUID, after_version: int,
                       limit: int) -> list[Notification]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(self.select_history_statement,
                      (self._id(originator_id), after_version, limit))
            return [Notification(id=r["rowid"], originator_id=originator_id,
                                 originator_version=r["originator_version"], topic=r["topic"],
                                 state=r["state"]) for r in c.fetchall()]


class PostgresLedgerRecorder(Chained, PostgresApplicationRecorder):
    insert_events = fail_fast(PostgresApplicationRecorder.insert_events)
    select_events = fail_fast(PostgresApplicationRecorder.select_events)
    select_notifications = fail_fast(PostgresApplicationRecorder.select_notifications)
    max_notification_id = fail_fast(PostgresApplicationRecorder.max_notification_id)

    def __init__(self, datastore: PostgresDatastore, *,
                 events_table_name: str = "stored_events") -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        if datastore.enable_db_functions:
            # The database function inserts events without the table lock and around
            # _insert_stored_events: the chain could neither be ordered nor written.
            raise ProgrammingError("the audit chain needs POSTGRES_ENABLE_DB_FUNCTIONS off")
        self.chain_table_name = chain_table_for(events_table_name)
        self.check_identifier_length(self.chain_table_name)

        def sql(text: str) -> Composed:
            return SQL(text).format(schema=Identifier(datastore.schema),
                                    chain=Identifier(self.chain_table_name),
                                    events=Identifier(self.events_table_name),
                                    id_type=Identifier(datastore.originator_id_type))

        self.sql_create_statements.append(sql(
            "CREATE TABLE IF NOT EXISTS {schema}.{chain} ("
            "notification_id bigint PRIMARY KEY, originator_id {id_type} NOT NULL, "
            "originator_version bigint NOT NULL, key_id text NOT NULL, "
            "seal bytea NOT NULL, hash bytea NOT NULL)"))
        self.insert_links_statement = sql(
            "INSERT INTO {schema}.{chain} VALUES (%s, %s, %s, %s, %s, %s)")
        self.chain_head_statement = sql(
            "SELECT hash FROM {schema}.{chain} ORDER BY notification_id DESC LIMIT 1")
        self.chain_heads_statement = sql(
            "SELECT (SELECT max(notification_id) FROM {schema}.{events}) AS events, "
            "(SELECT max(notification_id) FROM {schema}.{chain}) AS links")
        self.select_links_statement = sql(
            "SELECT * FROM {schema}.{chain} WHERE notification_id > %s "
            "AND notification_id <= %s ORDER BY notification_id LIMIT %s")
        self.select_history_statement = sql(
            "SELECT * FROM {schema}.{events} WHERE originator_id = %s "
            "AND originator_version > %s ORDER BY originator_version LIMIT %s")
        # The cursor that reads the chain's head, per inserting cursor (see below).
        self._heads: WeakKeyDictionary[Cursor[DictRow], Cursor[DictRow]] = (
            WeakKeyDictionary())

    def _insert_stored_events(self, curs: Cursor[DictRow],
                              stored_events: Sequence[StoredEvent], **kwargs: Any) -> None:
        super()._insert_stored_events(curs, stored_events, **kwargs)  # lock, notify, insert
        # Queued behind the lock and the insert in the same pipeline: its answer comes
        # back with theirs, and nobody else can extend the chain before our commit.
        head = curs.connection.cursor()
        head.execute(self.chain_head_statement, prepare=True)
        self._heads[curs] = head

    def _fetch_ids_after_insert_events(self, curs: Cursor[DictRow],
                                       stored_events: Sequence[StoredEvent],
                                       **kwargs: Any) -> Sequence[int] | None:
        ids = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
        with self._heads.pop(curs) as head:
            row = head.fetchone()
        links = self._links(None if row is None else row["hash"], ids, stored_events)
        curs.executemany(self.insert_links_statement, [
            (k.notification_id, k.originator_id, k.originator_version, k.key_id, k.seal,
             k.hash) for k in links])
        return ids

    def _read(self, statement: Composed, params: Sequence[Any]) -> list[DictRow]:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(statement, params, prepare=True)
            return curs.fetchall()

    def chain_heads(self) -> tuple[int, int]:
        row = self._read(self.chain_heads_statement, ())[0]
        return row["events"] or 0, row["links"] or 0

    def select_links(self, after: int, stop: int, limit: int) -> list[Link]:
        return [Link(r["notification_id"], r["originator_id"], r["originator_version"],
                     r["key_id"], bytes(r["seal"]), bytes(r["hash"]))
                for r in self._read(self.select_links_statement, (after, stop, limit))]

    def select_history(self, originator_id: UUID, after_version: int,
                       limit: int) -> list[Notification]:
        return [Notification(id=r["notification_id"], originator_id=r["originator_id"],
                             originator_version=r["originator_version"], topic=r["topic"],
                             state=bytes(r["state"]))
                for r in self._read(self.select_history_statement,
                                    (originator_id, after_version, limit))]
