"""Verification: replay the log apart from the views and list every difference.

Each view is read in one transaction with its position; the log is then replayed up to
that position into memory, and compared with it

1. row by row, column by column: the projection's replay against the stored rows
   (a row altered, lost or added in the database shows here);
2. against figures computed without the projections' code:
   * balance and held of every account, by the credit account aggregate's own replay
     (the write model's `mutate`);
   * the balances' identity: balance = purchased + granted + refunded + adjusted
     - used - expired;
   * the usage log's and the revenue report's totals, summed straight from the charge
     and refund events: charges, credits, revenue, provider cost.

`verify()` returns the differences; none means every view equals a full replay.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from uuid import UUID

from ledger.domain.credits import CreditAccount
from projections.balances.view import BALANCES
from projections.base import CREDIT_EVENTS, Snapshot, topics_of
from projections.revenue.view import REVENUE
from projections.service import Projections
from projections.tables import EXACT, Changes, Table, merge_sums
from projections.usage.view import USAGE

Progress = Callable[[int, int], None]
PAGE = 5000


@dataclass(frozen=True)
class Difference:
    view: str
    key: str  # the row ("account_id=acme") or the figure checked
    field: str | None  # None: the whole row is missing or unexpected
    expected: Any  # what the log gives
    found: Any  # what the view holds

    def __str__(self) -> str:
        where = f"{self.view} {self.key}" + (f" {self.field}" if self.field else "")
        return f"{where}: the log gives {self.expected!r}, the view holds {self.found!r}"


@dataclass
class Verification:
    positions: dict[str, int]
    events: int = 0
    seconds: float = 0.0
    differences: list[Difference] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences

    def differ(self, view: str, key: str, name: str | None, expected: Any,
               found: Any) -> None:
        if expected != found:
            self.differences.append(Difference(view, key, name, expected, found))


class _Memory:
    """A view's tables replayed in memory."""

    def __init__(self, tables: tuple[Table, ...]) -> None:
        self.tables = tables
        self.rows: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {t.name: {}
                                                                      for t in tables}

    def apply(self, changes: Changes) -> None:
        for t in self.tables:
            rows = self.rows[t.name]
            for row in changes.inserts.get(t.name, ()):
                rows[t.key_of(row)] = row
            for key, row in changes.sums.get(t.name, {}).items():
                if key in rows:
                    merge_sums(t, rows[key], row)
                else:
                    rows[key] = row


@dataclass
class _EventTotals:
    """Charge and refund figures summed straight from the events."""

    charges: int = 0
    charged_credits: int = 0
    charged_usd: Decimal = Decimal(0)
    cost_usd: Decimal = Decimal(0)
    refunded_credits: int = 0

    def add(self, event: Any) -> None:
        if isinstance(event, CreditAccount.Charged):
            self.charges += 1
            self.charged_credits += event.credits
            self.charged_usd = EXACT.add(self.charged_usd, event.revenue_usd)
            self.cost_usd = EXACT.add(self.cost_usd, event.cost_usd or 0)
        elif isinstance(event, CreditAccount.CreditsRefunded):
            self.refunded_credits += event.credits


def verify(projections: Projections, progress: Progress | None = None) -> Verification:
    started = time.perf_counter()
    snapshots = {name: p.view.snapshot() for name, p in projections.projections.items()}
    result = Verification({name: s.position for name, s in snapshots.items()})
    memories = {name: _Memory(p.view.tables) for name, p in projections.projections.items()}
    accounts: dict[UUID, Any] = {}  # the write model's replay, up to the balances' position
    totals = {name: _EventTotals() for name in ("usage", "revenue")}
    topics = frozenset(topics_of(*CREDIT_EVENTS))
    upto = max(result.positions.values(), default=0)
    store, start = projections.store, 0
    while start < upto:
        page = store.recorder.select_notifications(start, PAGE, stop=upto,
                                                   inclusive_of_start=False)
        if not page:
            break
        start = page[-1].id
        result.events += len(page)
        events: list[tuple[int, Any]] = [(n.id, store.mapper.to_domain_event(n))
                                         for n in page if n.topic in topics]
        for name, p in projections.projections.items():
            at = snapshots[name].position
            memories[name].apply(p.changes((i, e) for i, e in events if i <= at))
        for i, event in events:
            if i <= snapshots["balances"].position:
                accounts[event.originator_id] = event.mutate(accounts.get(event.originator_id))
            for name, sums in totals.items():
                if i <= snapshots[name].position:
                    sums.add(event)
        if progress is not None:
            progress(start, upto)
    for name, memory in memories.items():
        _compare_rows(result, name, memory, snapshots[name])
    _check_balances(result, snapshots["balances"], accounts)
    _check_usage(result, snapshots["usage"], totals["usage"])
    _check_revenue(result, snapshots["revenue"], totals["revenue"])
    result.seconds = time.perf_counter() - started
    return result


def _label(t: Table, key: tuple[Any, ...]) -> str:
    return " ".join(f"{k}={v.isoformat() if hasattr(v, 'isoformat') else v}"
                    for k, v in zip(t.key, key, strict=True))


def _compare_rows(result: Verification, view: str, memory: _Memory, snap: Snapshot) -> None:
    for t in memory.tables:
        expected = memory.rows[t.name]
        found = {t.key_of(row): row for row in snap.tables[t.name]}
        for key in sorted(expected.keys() | found.keys(), key=repr):
            if key not in found:
                result.differ(view, _label(t, key), None, "a row", None)
            elif key not in expected:
                result.differ(view, _label(t, key), None, None, "a row")
            else:
                for name in t.names:
                    result.differ(view, _label(t, key), name, expected[key].get(name),
                                  found[key].get(name))


def _check_balances(result: Verification, snap: Snapshot, accounts: dict[UUID, Any]) -> None:
    rows = {row["account_id"]: row for row in snap.tables[BALANCES.name]}
    for account in accounts.values():
        row = rows.get(account.account_id, {})
        key = f"account_id={account.account_id} (credit account aggregate)"
        result.differ("balances", key, "balance", account.balance, row.get("balance"))
        result.differ("balances", key, "held", account.held, row.get("held"))
    for account_id, row in rows.items():
        identity = (row["purchased"] + row["granted"] + row["refunded"] + row["adjusted"]
                    - row["used"] - row["expired"])
        result.differ("balances", f"account_id={account_id} (purchased + granted + refunded"
                      " + adjusted - used - expired)", "balance", identity, row["balance"])


def _total(rows: list[dict[str, Any]], name: str) -> int | Decimal:
    values = [row[name] or 0 for row in rows]
    if all(isinstance(v, int) for v in values):
        return sum(values)
    total = Decimal(0)
    for value in values:
        total = EXACT.add(total, value)
    return total


def _check_usage(result: Verification, snap: Snapshot, events: _EventTotals) -> None:
    rows = snap.tables[USAGE.name]
    charges = [row for row in rows if row["kind"] == "charge"]
    key = "total (charge and refund events)"
    result.differ("usage", key, "charges", events.charges, len(charges))
    result.differ("usage", key, "credits_used",
                  events.charged_credits - events.refunded_credits, _total(rows, "credits_used"))
    result.differ("usage", key, "revenue_usd of charges", events.charged_usd,
                  _total(charges, "revenue_usd"))
    result.differ("usage", key, "cost_usd", events.cost_usd, _total(rows, "cost_usd"))


def _check_revenue(result: Verification, snap: Snapshot, events: _EventTotals) -> None:
    rows = snap.tables[REVENUE.name]
    key = "total (charge and refund events)"
    result.differ("revenue", key, "charges", events.charges, _total(rows, "charges"))
    result.differ("revenue", key, "credits_used + credits_refunded", events.charged_credits,
                  _total(rows, "credits_used") + _total(rows, "credits_refunded"))
    result.differ("revenue", key, "credits_refunded", events.refunded_credits,
                  _total(rows, "credits_refunded"))
    result.differ("revenue", key, "revenue_usd + refunded_usd", events.charged_usd,
                  _total(rows, "revenue_usd") + _total(rows, "refunded_usd"))
    result.differ("revenue", key, "cost_usd", events.cost_usd, _total(rows, "cost_usd"))
