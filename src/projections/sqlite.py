"""Views in the SQLite database of the event store.

Money is stored as exact decimal text and added up by two SQL functions registered on
each connection (`dec_add`, `dec_sum`) that use Python's Decimal: SQLite's own
arithmetic would go through floats. Times are ISO 8601 UTC text of fixed width, so that
they compare and sort as text.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from eventsourcing.sqlite import SQLiteCursor, SQLiteDatastore, SQLiteTrackingRecorder

from projections.sql import SQLView, json_dumps
from projections.tables import EXACT, Kind

TYPES: dict[Kind, str] = {"int": "INTEGER", "money": "TEXT", "text": "TEXT", "time": "TEXT",
                          "json": "TEXT"}


def sqlite_time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _dec_add(a: str, b: str) -> str:
    return str(EXACT.add(Decimal(a), Decimal(b)))


class _DecSum:
    def __init__(self) -> None:
        self.total = Decimal(0)

    def step(self, value: str | None) -> None:
        if value is not None:
            self.total = EXACT.add(self.total, Decimal(value))

    def finalize(self) -> str:
        return str(self.total)


def _with_decimals(c: SQLiteCursor) -> SQLiteCursor:
    conn: sqlite3.Connection = c.sqlite_cursor.connection
    conn.create_function("dec_add", 2, _dec_add, deterministic=True)
    conn.create_aggregate("dec_sum", 1, _DecSum)  # type: ignore[arg-type]
    return c


class SQLiteView(SQLiteTrackingRecorder, SQLView):
    """Base of the SQLite views: a tracking recorder with its own tracking table."""

    def __init__(self, datastore: SQLiteDatastore) -> None:
        if not datastore.single_row_tracking:
            raise ValueError("views need single-row tracking")
        super().__init__(datastore)
        t = self.tracking_table
        # The library's statements name the table "tracking": one per database. Each
        # view has its own, so that one view can be dropped and rebuilt alone.
        self.insert_tracking_statement = (
            f"INSERT INTO {t} VALUES (:application_name, :notification_id) "  # noqa: S608
            "ON CONFLICT (application_name) DO UPDATE SET notification_id = :notification_id "
            f"WHERE {t}.notification_id < :notification_id RETURNING notification_id")
        self.select_max_tracking_id_statement = (
            f"SELECT MAX(notification_id) FROM {t} WHERE application_name=?")  # noqa: S608

    def construct_create_table_statements(self) -> list[str]:
        return [*self.view_ddl(),
                f"CREATE TABLE IF NOT EXISTS {self.tracking_table} (application_name TEXT, "
                "notification_id INTEGER, PRIMARY KEY (application_name)) WITHOUT ROWID"]

    def qualify(self, name: str) -> str:
        return name

    def column_type(self, kind: Kind) -> str:
        return TYPES[kind]

    def converts(self, kind: Kind) -> bool:
        return kind in ("money", "time", "json")

    def to_db(self, kind: Kind, value: Any) -> Any:
        if value is None:
            return None
        if kind == "money":
            return str(value)
        if kind == "time":
            return sqlite_time(value)
        if kind == "json":
            return json_dumps(value)
        return value

    def from_db(self, kind: Kind, value: Any) -> Any:
        if value is None:
            return None
        if kind == "money":
            return Decimal(value)
        if kind == "time":
            return datetime.fromisoformat(value)
        if kind == "json":
            return json.loads(value)
        if kind == "int":
            return int(value)
        return value

    def add_money(self, current: str, delta: str) -> str:
        return f"dec_add({current}, {delta})"

    def sum_of(self, kind: Kind, column: str) -> str:
        # no rows: sqlite3 never instantiates the aggregate and answers NULL (like SUM)
        return (f"COALESCE(dec_sum({column}), '0')" if kind == "money"
                else f"COALESCE(SUM({column}), 0)")

    def day(self, column: str) -> str:
        return f"substr({column}, 1, 10)"

    def month(self, column: str) -> str:
        return f"substr({column}, 1, 7)"

    @contextmanager
    def writing(self) -> Iterator[SQLiteCursor]:
        with self.datastore.transaction(commit=True) as c:
            yield _with_decimals(c)

    @contextmanager
    def reading(self) -> Iterator[SQLiteCursor]:
        with self.datastore.transaction(commit=False) as c:
            yield _with_decimals(c)
