"""The event store: one eventsourcing Application holding every aggregate of the service.

One log for everything (credits, settings, models, keys, provider calls, idempotency
records) means one notification sequence for projections and auditors, and one
transaction for a command that touches several aggregates (an AI call and the credits
it holds are saved together).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from types import MethodType
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Snapshot
from eventsourcing.persistence import JSONTranscoder, Recording, StoredEvent, Transcoding
from eventsourcing.postgres import PostgresAggregateRecorder, PostgresApplicationRecorder
from psycopg.sql import SQL, Identifier

from ledger.chain import ChainKeys
from ledger.config import APPLICATION_NAME, Settings
from ledger.recorders import chained, fail_fast


class TupleAsList(Transcoding):
    type = tuple
    name = "tuple"

    def encode(self, obj: tuple[Any, ...]) -> list[Any]:
        return list(obj)

    def decode(self, data: list[Any]) -> tuple[Any, ...]:
        return tuple(data)


class LedgerStore(Application[UUID]):
    name = APPLICATION_NAME

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        super().__init__(env=settings.eventsourcing_env())
        if isinstance(self.recorder, PostgresApplicationRecorder):
            # libpq's own timeout as well: the pool's attempts to reconnect to a host that
            # does not answer give up too (a request waits at most the pool's timeout)
            kwargs = self.recorder.datastore.pool.kwargs  # the library gives a dict
            if isinstance(kwargs, dict):
                kwargs["connect_timeout"] = settings.postgres_connect_timeout_s
            snapshots = self.snapshots.recorder if self.snapshots is not None else None
            if isinstance(snapshots, PostgresAggregateRecorder):
                # the snapshot recorder's class is not configurable: its two calls fail
                # fast like the events' (ledger.recorders.fail_fast)
                for name in ("insert_events", "select_events"):
                    method = fail_fast(getattr(PostgresAggregateRecorder, name))
                    setattr(snapshots, name, MethodType(method, snapshots))
        chained(self.recorder).seal_with(ChainKeys.from_settings(settings))  # audit chain

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(TupleAsList())

    def load(self, aggregate_id: UUID) -> Any:
        """The aggregate at its latest version (from its latest snapshot on)."""
        return self.repository.get(aggregate_id)

    def find(self, aggregate_id: UUID) -> Any | None:
        try:
            return self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None

    def record(self, *aggregates: Any) -> list[Recording[UUID]]:
        """Save the pending events of the given aggregates in one transaction."""
        return self.save(*aggregates)

    def snapshot(self, aggregates: Iterable[Any]) -> None:
        if self.snapshots is None:
            return
        self.snapshots.put([Snapshot.take(a) for a in aggregates])

    def events_of(self, aggregate_id: UUID, *, gt: int | None = None,
                  lte: int | None = None) -> Sequence[Any]:
        return list(self.events.get(aggregate_id, gt=gt, lte=lte))

    def head(self) -> int:
        return self.recorder.max_notification_id() or 0

    # -- serialized writes (PostgreSQL) ------------------------------------------------

    @property
    def serializes_writes(self) -> bool:
        """True on PostgreSQL, where every insert takes the events table's EXCLUSIVE
        lock (that lock keeps notification ids committing in order)."""
        return isinstance(self.recorder, PostgresApplicationRecorder)

    @contextmanager
    def locked_write(self) -> Iterator[LockedWrite]:
        """A transaction that holds the events table lock from its start.

        Nobody else can insert events meanwhile, so aggregates brought up to date inside
        it cannot fall behind before the commit: commands run here never conflict with
        another process, whatever that process has cached.
        """
        recorder = self.recorder
        assert isinstance(recorder, PostgresApplicationRecorder)
        failure: BaseException | None = None
        # Pipeline mode: the lock, the catch-up query and, later, the inserts travel in
        # as few round trips as possible. An error is raised only once the pipeline has
        # been left (psycopg warns otherwise), after a rollback, and inside
        # get_connection(), which turns psycopg's errors into the library's.
        with recorder.datastore.get_connection() as conn:
            try:
                with conn.pipeline() as pipeline, conn.transaction(), conn.cursor() as curs:
                    try:
                        recorder._lock_table(curs)
                        yield LockedWrite(self, recorder, curs, pipeline)
                    except BaseException as exc:
                        failure = exc
                        raise psycopg.Rollback() from None
            except psycopg.Rollback:
                # A transaction on a broken connection (the server went away) cannot
                # roll back, and psycopg lets our Rollback through: the failure below
                # is what happened.
                if failure is None:
                    raise
            if failure is not None:
                raise failure


class LockedWrite:
    def __init__(self, store: LedgerStore, recorder: PostgresApplicationRecorder,
                 curs: Any, pipeline: Any) -> None:
        self.store = store
        self.recorder = recorder
        self.curs = curs
        self.pipeline = pipeline

    def newer_events(self, versions: dict[UUID, int]) -> list[Any]:
        """Events stored after the given versions of the given aggregates, in order."""
        if not versions:
            return []
        statement = SQL(
            "SELECT e.originator_id, e.originator_version, e.topic, e.state "
            "FROM unnest(%s::uuid[], %s::int8[]) AS v(id, ver) "
            "CROSS JOIN LATERAL (SELECT * FROM {schema}.{table} "
            "  WHERE originator_id = v.id AND originator_version > v.ver "
            "  ORDER BY originator_version) e"
        ).format(schema=Identifier(self.recorder.datastore.schema),
                 table=Identifier(self.recorder.events_table_name))
        self.curs.execute(statement, (list(versions), list(versions.values())))
        return [
            self.store.mapper.to_domain_event(StoredEvent(
                originator_id=row["originator_id"], originator_version=row["originator_version"],
                topic=row["topic"], state=bytes(row["state"])))
            for row in self.curs.fetchall()
        ]

    def insert(self, aggregates: Iterable[Any]) -> list[int]:
        """Insert the aggregates' pending events; their notification ids."""
        events = [e for agg in aggregates for e in agg.collect_events()]
        if not events:
            return []
        stored = [self.store.mapper.to_stored_event(e) for e in events]
        self.recorder._insert_events(self.curs, stored)
        self.recorder._insert_stored_events(self.curs, stored)
        self.pipeline.sync()  # a uniqueness violation (a stale write) surfaces here
        return list(self.recorder._fetch_ids_after_insert_events(self.curs, stored) or [])
