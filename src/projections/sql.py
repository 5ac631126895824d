"""A view in SQL, for any backend: DDL, batched writes, snapshots and reads.

The statements are generated from the tables' description; what differs between SQLite
and PostgreSQL (types, placeholders, how money is added, how a day is cut) is asked of
the backend class (`projections.sqlite.SQLiteView`, `projections.postgres.PostgresView`).

Statements are assembled from table and column names declared in code, never from
input; values always travel as parameters (hence the `noqa: S608` waivers).
"""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from decimal import Decimal
from typing import Any

from eventsourcing.persistence import IntegrityError, Tracking

from projections.base import APPLICATION, LedgerView, Snapshot
from projections.tables import Changes, Kind, Row, Table


class SQLView(LedgerView):
    placeholder = "?"

    # -- what a backend provides ----------------------------------------------------------

    @abstractmethod
    def qualify(self, name: str) -> str:
        """A table's name as written in statements."""

    @abstractmethod
    def column_type(self, kind: Kind) -> str: ...

    @abstractmethod
    def to_db(self, kind: Kind, value: Any) -> Any: ...

    @abstractmethod
    def converts(self, kind: Kind) -> bool:
        """Whether values of `kind` need to_db() (an identity otherwise)."""

    @abstractmethod
    def from_db(self, kind: Kind, value: Any) -> Any: ...

    @abstractmethod
    def add_money(self, current: str, delta: str) -> str:
        """SQL adding two money columns exactly."""

    @abstractmethod
    def _insert_tracking(self, c: Any, tracking: Tracking) -> None:
        """The library's single-row tracking upsert (refuses a position not beyond)."""

    @abstractmethod
    def writing(self) -> AbstractContextManager[Any]:
        """A write transaction's cursor."""

    @abstractmethod
    def reading(self) -> AbstractContextManager[Any]:
        """A read-only transaction's cursor that sees one snapshot of the database."""

    # -- statements -----------------------------------------------------------------------

    def sql(self, template: str) -> str:
        """Portable SQL: `{proj_x}` names a table of this view, `?` a parameter."""
        names = {t.name: self.qualify(t.name) for t in self.tables}
        names["tracking"] = self.qualify(self.tracking_table)
        statement = template.format_map(names)
        return statement if self.placeholder == "?" else statement.replace("?", self.placeholder)

    def view_ddl(self) -> list[str]:
        statements = []
        for t in self.tables:
            cols = ", ".join(f"{c.name} {self.column_type(c.kind)}"
                             f"{'' if c.nullable else ' NOT NULL'}" for c in t.columns)
            statements.append(f"CREATE TABLE IF NOT EXISTS {self.qualify(t.name)} "
                              f"({cols}, PRIMARY KEY ({', '.join(t.key)}))")
            statements += [
                f"CREATE INDEX IF NOT EXISTS {t.name}_{'_'.join(ix)} "
                f"ON {self.qualify(t.name)} ({', '.join(ix)})" for ix in t.indexes]
        return statements

    def _insert_sql(self, t: Table) -> str:
        marks = ", ".join("?" for _ in t.columns)
        return self.sql(f"INSERT INTO {{{t.name}}} AS cur ({', '.join(t.names)}) "  # noqa: S608
                        f"VALUES ({marks})")

    def _upsert_sql(self, t: Table) -> str:
        """Insert the row, or add its sums to the row of its key and take its latest."""
        sets = [f"{c.name} = " + (self.add_money(f"cur.{c.name}", f"excluded.{c.name}")
                                  if c.kind == "money" else f"cur.{c.name} + excluded.{c.name}")
                for c in t.sums]
        sets += [f"{name} = excluded.{name}" for name in t.latest]
        return (f"{self._insert_sql(t)} ON CONFLICT ({', '.join(t.key)}) "
                f"DO UPDATE SET {', '.join(sets)}")

    def _params(self, t: Table, rows: list[Row]) -> list[list[Any]]:
        names = t.names
        converted = [(i, c.kind) for i, c in enumerate(t.columns) if self.converts(c.kind)]
        params = []
        for row in rows:
            values = list(map(row.get, names))
            for i, kind in converted:
                values[i] = self.to_db(kind, values[i])
            params.append(values)
        return params

    def insert_rows(self, c: Any, t: Table, params: list[list[Any]]) -> None:
        c.executemany(self._insert_sql(t), params)

    # -- the view contract ----------------------------------------------------------------

    def apply(self, changes: Changes, *, after: int | None, to: int) -> None:
        with self.writing() as c:
            self._advance(c, after, to)
            for t in self.tables:
                if t.accumulates:
                    sums = list(changes.sums.get(t.name, {}).values())
                    if sums:
                        c.executemany(self._upsert_sql(t), self._params(t, sums))
                elif rows := changes.inserts.get(t.name):
                    self.insert_rows(c, t, self._params(t, rows))

    def _advance(self, c: Any, after: int | None, to: int) -> None:
        if after is None:
            self._insert_tracking(c, Tracking(APPLICATION, to))
            return
        c.execute(self.sql("UPDATE {tracking} SET notification_id = ? "
                           "WHERE application_name = ? AND notification_id = ? "
                           "RETURNING notification_id"), [to, APPLICATION, after])
        if c.fetchone() is not None:
            return
        if after == 0:  # a fresh view; a concurrent runner's insert makes this one fail
            c.execute(self.sql("INSERT INTO {tracking} VALUES (?, ?)"), [APPLICATION, to])
            return
        raise IntegrityError(f"view {self.name} is no longer at position {after}")

    def reset(self) -> None:
        with self.writing() as c:
            # The tracking row first: a running projector takes it before the tables
            # (see apply), so the same order here cannot deadlock with it; it then finds
            # its position gone and refreshes.
            c.execute(self.sql("DELETE FROM {tracking} WHERE application_name = ?"),
                      [APPLICATION])
            for t in self.tables:
                c.execute(f"DROP TABLE IF EXISTS {self.qualify(t.name)}")
            for statement in self.view_ddl():
                c.execute(statement)

    def snapshot(self) -> Snapshot:
        with self.reading() as c:
            c.execute(self.sql("SELECT notification_id FROM {tracking} "
                               "WHERE application_name = ?"), [APPLICATION])
            found = c.fetchone()
            position = int(_first(found)) if found is not None else 0
            tables = {}
            for t in self.tables:
                c.execute(self.sql(f"SELECT {', '.join(t.names)} FROM {{{t.name}}} "  # noqa: S608
                                   f"ORDER BY {', '.join(t.key)}"))
                tables[t.name] = self._decode(c, t.kinds())
        return Snapshot(position, tables)

    def select(self, sql: str, params: Sequence[Any], kinds: dict[str, Kind]) -> list[Row]:
        with self.reading() as c:
            c.execute(self.sql(sql), list(params))
            return self._decode(c, kinds)

    def param(self, kind: Kind, value: Any) -> Any:
        """A query parameter compared with a column of `kind`."""
        return self.to_db(kind, value)

    def _decode(self, c: Any, kinds: dict[str, Kind]) -> list[Row]:
        rows = []
        for found in c.fetchall():
            row = dict(found)
            for name, kind in kinds.items():
                if name in row:
                    row[name] = self.from_db(kind, row[name])
            rows.append(row)
        return rows


def _first(row: Any) -> Any:
    return row[0] if not isinstance(row, dict) else next(iter(row.values()))


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def json_dumps(value: Any) -> str:
    """JSON of a view's column: Decimals and datetimes as strings."""
    return json.dumps(value, default=_plain, separators=(",", ":"))
