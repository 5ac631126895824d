"""Views in the PostgreSQL schema of the event store (Settings.postgres_schema).

Money is NUMERIC (exact), times TIMESTAMPTZ. A view's transaction commits without
waiting for its WAL flush (`synchronous_commit off`): a view is rebuilt from the log,
and after a crash its rows and its position are lost together, so the runner simply
applies those events again.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL
from psycopg.types.json import Jsonb

from ledger.recorders import fail_fast
from projections.sql import SQLView, json_dumps
from projections.tables import Kind, Table

TYPES: dict[Kind, str] = {"int": "BIGINT", "money": "NUMERIC", "text": "TEXT",
                          "time": "TIMESTAMPTZ", "json": "JSONB"}


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


class PostgresView(PostgresTrackingRecorder, SQLView):
    """Base of the PostgreSQL views: a tracking recorder with its own tracking table."""

    placeholder = "%s"
    # no 10 attempts of a whole pool timeout each while the database is unreachable
    insert_tracking = fail_fast(PostgresTrackingRecorder.insert_tracking)
    max_tracking_id = fail_fast(PostgresTrackingRecorder.max_tracking_id)
    has_tracking_id = fail_fast(PostgresTrackingRecorder.has_tracking_id)

    def __init__(self, datastore: PostgresDatastore) -> None:
        super().__init__(datastore, tracking_table_name=self.tracking_table)
        self.sql_create_statements.extend(SQL(s).format() for s in self.view_ddl())

    def qualify(self, name: str) -> str:
        return f"{quote(self.datastore.schema)}.{quote(name)}"

    def column_type(self, kind: Kind) -> str:
        return TYPES[kind]

    def converts(self, kind: Kind) -> bool:
        return kind == "json"

    def insert_rows(self, c: Any, t: Table, params: list[list[Any]]) -> None:
        """COPY: several times faster than INSERTs for a rebuild's pages."""
        with c.copy(f"COPY {self.qualify(t.name)} ({', '.join(t.names)}) FROM STDIN") as copy:
            for values in params:
                copy.write_row(values)

    def to_db(self, kind: Kind, value: Any) -> Any:
        if kind == "json" and value is not None:
            return Jsonb(value, dumps=json_dumps)
        return value

    def from_db(self, kind: Kind, value: Any) -> Any:
        if value is None:
            return None
        if kind == "time":
            return value.astimezone(UTC) if isinstance(value, datetime) else value
        if kind == "int":
            return int(value)
        if kind == "money":
            return Decimal(value)
        return value

    def add_money(self, current: str, delta: str) -> str:
        return f"{current} + {delta}"

    def sum_of(self, kind: Kind, column: str) -> str:
        return f"COALESCE(SUM({column}), 0)"

    def day(self, column: str) -> str:
        return f"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD')"

    def month(self, column: str) -> str:
        return f"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM')"

    @property
    def _rebuild_lock_name(self) -> str:
        return f"{self.datastore.schema}:projections-rebuild"

    @contextmanager
    def writing(self) -> Iterator[Cursor[DictRow]]:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute("SET LOCAL synchronous_commit TO OFF")
            if not self.rebuilding:  # wait while a rebuild resets and replays the views
                curs.execute("SELECT pg_advisory_xact_lock_shared(hashtext(%s))",
                             [self._rebuild_lock_name])
            yield curs

    @contextmanager
    def rebuild_lock(self) -> Iterator[None]:
        with self.datastore.get_connection() as conn:  # a session of its own throughout
            conn.execute("SELECT pg_advisory_lock(hashtext(%s))", [self._rebuild_lock_name])
            conn.commit()  # a session lock outlives the transaction; leave none idle
            try:
                yield
            finally:
                conn.execute("SELECT pg_advisory_unlock(hashtext(%s))",
                             [self._rebuild_lock_name])
                conn.commit()

    @contextmanager
    def reading(self) -> Iterator[Cursor[DictRow]]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield curs
