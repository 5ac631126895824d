"""The usage log (the seed's CreditUsageLog): one row per charged operation.

A charge (a deduction, or the capture of a hold) is a row with the credits it took, the
credit price and revenue it recorded, and what the provider call cost the platform. A
refund is a row of its own, at the time of the refund, with negative credits and
revenue, no cost (the provider was paid all the same) and the charge it refunds, so
that the sums of the rows over any period are that period's net figures, as in the
revenue report.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from projections.base import LedgerView, where
from projections.tables import Column, Table

USAGE = Table("proj_usage", (
    Column("position", "int", "key"),
    Column("time", "time"),
    Column("kind", "text"),  # "charge" | "refund"
    Column("account_id", "text"),
    Column("charge_id", "text"),
    Column("refund_id", "text", nullable=True),
    Column("reservation_id", "text", nullable=True),
    Column("call_id", "text", nullable=True),
    Column("operation", "text"),
    Column("units", "int"),
    Column("model_id", "text", nullable=True),
    Column("provider", "text", nullable=True),
    Column("credits_used", "int"),
    Column("price_per_credit_usd", "money"),
    Column("revenue_usd", "money"),
    Column("cost_usd", "money", nullable=True),
    Column("input_tokens", "int", nullable=True),
    Column("output_tokens", "int", nullable=True),
    Column("images", "int", nullable=True),
), indexes=(("account_id", "position"), ("time",)))

# As the API shows a row: the contract's names (account, model) beside the commands'
# (account_id, model_id); CSV columns in the order a reader scans them.
CSV_COLUMNS = ("time", "account", "operation", "model", "provider", "kind", "credits_used",
               "price_per_credit_usd", "revenue_usd", "cost_usd", "input_tokens",
               "output_tokens", "images", "units", "charge_id", "refund_id",
               "reservation_id", "call_id", "position")


def public_row(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "account": row["account_id"], "model": row["model_id"]}


class UsageView(LedgerView):
    name: ClassVar[str] = "usage"
    tables = (USAGE,)

    def page(self, *, account_id: str | None = None, operation: str | None = None,
             model_id: str | None = None, provider: str | None = None,
             kind: str | None = None, since: datetime | None = None,
             until: datetime | None = None, before: int | None = None,
             limit: int = 100) -> tuple[list[dict[str, Any]], int | None]:
        """Rows matching every filter given, newest first: `since` <= time < `until`,
        position < `before`. Also the `before` of the next page (None on the last)."""
        clause, params = where(
            ("account_id = ?", account_id), ("operation = ?", operation),
            ("model_id = ?", model_id), ("provider = ?", provider), ("kind = ?", kind),
            ("time >= ?", self.param("time", since)), ("time < ?", self.param("time", until)),
            ("position < ?", before))
        rows = self.select(f"SELECT * FROM {{proj_usage}}{clause} "  # noqa: S608
                           "ORDER BY position DESC LIMIT ?", [*params, limit], USAGE.kinds())
        return rows, rows[-1]["position"] if len(rows) == limit else None
