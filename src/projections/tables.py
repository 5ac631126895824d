"""What a view stores, described once for every backend, and what a batch of events does to it.

A view is a few tables of two kinds:

* append-only tables (`Table.accumulates` is false): each event adds rows (the credit
  history, the usage log);
* summing tables: each event adds amounts to the row of its key (a balance, a revenue
  bucket); columns are keys, sums (added up) or latest values (the newest wins).

A projection turns events into a `Changes` (pure: no I/O but reading the log); a view
applies it in one transaction together with its tracking position. Because sums of a
batch are merged before they reach the database, a batch of a thousand deductions on
one account is one upsert.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Context, Decimal
from functools import cached_property
from typing import Any, Literal

Kind = Literal["int", "money", "text", "time", "json"]
Row = dict[str, Any]
Role = Literal["key", "value", "sum", "latest"]

# Sums of money are exact: wide enough for any total of 18-decimal amounts.
EXACT = Context(prec=60)
PICO = Decimal("1e-12")


def usd(credits: int, price: Decimal) -> Decimal:
    """Credits at a price, to the pico-dollar (a lot's price may not terminate: 10/3)."""
    return (Decimal(credits) * price).quantize(PICO, rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    role: Role = "value"
    nullable: bool = False


@dataclass(frozen=True)
class Table:
    name: str  # prefixed: proj_<view>
    columns: tuple[Column, ...]
    indexes: tuple[tuple[str, ...], ...] = ()

    @cached_property
    def key(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.role == "key")

    @cached_property
    def sums(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.role == "sum")

    @cached_property
    def latest(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.role == "latest")

    @cached_property
    def accumulates(self) -> bool:
        return bool(self.sums)

    @cached_property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def kinds(self) -> dict[str, Kind]:
        return {c.name: c.kind for c in self.columns}

    def key_of(self, row: dict[str, Any]) -> tuple[Any, ...]:
        return tuple([row[k] for k in self.key])

    @cached_property
    def money_sums(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.sums if c.kind == "money")

    @cached_property
    def int_sums(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.sums if c.kind != "money")

    @cached_property
    def zero(self) -> dict[str, Any]:
        return {c.name: Decimal(0) if c.kind == "money" else 0 for c in self.sums}

    def row(self, **values: Any) -> dict[str, Any]:
        """A row of a summing table: the sums not given are zero."""
        return {**self.zero, **values}


def merge_sums(table: Table, into: dict[str, Any], row: dict[str, Any]) -> None:
    """Add `row`'s sums to `into` and take its latest values."""
    for name in table.money_sums:
        if delta := row[name]:
            into[name] = EXACT.add(into[name], delta)
    for name in table.int_sums:
        if delta := row[name]:
            into[name] += delta
    for name in table.latest:
        into[name] = row[name]


@dataclass
class Changes:
    """Rows to insert and amounts to add, per table, in the order the events came."""

    inserts: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    sums: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = field(
        default_factory=lambda: defaultdict(dict))

    def insert(self, table: Table, row: dict[str, Any]) -> None:
        self.inserts[table.name].append(row)

    def add(self, table: Table, row: dict[str, Any]) -> None:
        """Add the row's sums to the row of its key (the row itself if it is the first
        of its key: it is the changes' from then on)."""
        rows = self.sums[table.name]
        key = table.key_of(row)
        current = rows.get(key)
        if current is None:
            rows[key] = row
        else:
            merge_sums(table, current, row)

    def __len__(self) -> int:
        return sum(map(len, self.inserts.values())) + sum(map(len, self.sums.values()))
