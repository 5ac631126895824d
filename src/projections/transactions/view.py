"""The credit transactions view: each account's credit history, newest first.

A row is `ledger.credits.transaction_row(event)` with the account and the event's
position in the log: one typed column per field (empty where the event has none), so
that an auditor can query them in SQL; fields the table does not know yet are kept in
`details` (JSON).
"""

from __future__ import annotations

from typing import Any, ClassVar

from projections.base import LedgerView, where
from projections.tables import Column, Table

TRANSACTIONS = Table("proj_transactions", (
    Column("account_id", "text", "key"),
    Column("version", "int", "key"),
    Column("position", "int"),
    Column("type", "text"),
    Column("credits", "int"),
    Column("balance_delta", "int"),
    Column("reserved_delta", "int"),
    Column("time", "time"),
    Column("actor_id", "text"),
    Column("actor_role", "text"),
    *(Column(name, "text", nullable=True) for name in (
        "lot_id", "charge_id", "reservation_id", "refund_id", "adjustment_id", "operation",
        "reason", "payment_ref", "model_id", "provider")),
    *(Column(name, "money", nullable=True) for name in (
        "amount_usd", "revenue_usd", "price_per_credit_usd", "cost_usd")),
    Column("expires_at", "time", nullable=True),
    Column("draws", "json", nullable=True),
    Column("details", "json", nullable=True),
))
KNOWN = frozenset(TRANSACTIONS.names) | {"transaction_id"}


def stored_row(account_id: str, position: int, tx: dict[str, Any]) -> dict[str, Any]:
    """A `transaction_row` as the view stores it."""
    extra = {k: v for k, v in tx.items() if k not in KNOWN}
    return {**tx, "account_id": account_id, "position": position, "details": extra or None}


def public_row(stored: dict[str, Any]) -> dict[str, Any]:
    """The stored row as `transaction_row` gave it, with its position in the log."""
    row = {"transaction_id": f"{stored['type']}:{stored['version']}",
           **{k: v for k, v in stored.items()
              if v is not None and k not in ("account_id", "details")}}
    return {**row, **(stored["details"] or {})}


class TransactionsView(LedgerView):
    name: ClassVar[str] = "transactions"
    tables = (TRANSACTIONS,)

    def page(self, account_id: str, *, limit: int = 50,
             before: int | None = None) -> tuple[list[dict[str, Any]], int | None]:
        """Up to `limit` transactions older than version `before`, newest first, and
        the `before` of the next page (None on the last)."""
        clause, params = where(("account_id = ?", account_id), ("version < ?", before))
        rows = self.select(f"SELECT * FROM {{proj_transactions}}{clause} "  # noqa: S608
                           "ORDER BY version DESC LIMIT ?", [*params, limit],
                           TRANSACTIONS.kinds())
        next_before = rows[-1]["version"] if len(rows) == limit else None
        return [public_row(r) for r in rows], next_before
