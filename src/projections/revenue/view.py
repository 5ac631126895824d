"""The revenue view: credits, revenue, provider cost and margin per hour and dimension.

One row per (UTC hour, account, operation, model, provider) adds up what happened in
that hour; a report sums rows over a range of whole hours, grouped by any of hour, day,
month, account, operation, model, provider.

* revenue_usd: list revenue, the credits charged at the credit price each charge
  recorded (credits x price per credit), net of refunds; refunded_usd is what refunds
  took back (booked when the refund happens, at the refunded charge's price).
* credits_used: credits charged net of refunds; credits_refunded the refunds.
* cost_usd: what the providers cost the platform (a refund does not give that back).
* margin_usd = revenue - cost; margin_pct = margin / revenue; markup_pct = margin / cost.
* recognized_revenue_usd: the same credits valued at what their lots were paid (drawn
  from purchased lots); promotional_credits: credits drawn from granted or adjusted lots.
* breakage_credits / breakage_usd: credits that expired unused, and what the paid ones
  among them were paid (account rows without operation, model or provider).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from ledger.domain.pricing import ratio_pct
from projections.base import LedgerView, where
from projections.tables import Column, Kind, Table, merge_sums

REVENUE = Table("proj_revenue", (
    Column("hour", "time", "key"),
    Column("account_id", "text", "key"),
    Column("operation", "text", "key"),  # "" for breakage
    Column("model_id", "text", "key"),  # "" when the charge named none
    Column("provider", "text", "key"),
    Column("charges", "int", "sum"),
    Column("credits_used", "int", "sum"),
    Column("credits_refunded", "int", "sum"),
    Column("revenue_usd", "money", "sum"),
    Column("refunded_usd", "money", "sum"),
    Column("cost_usd", "money", "sum"),
    Column("recognized_revenue_usd", "money", "sum"),
    Column("promotional_credits", "int", "sum"),
    Column("breakage_credits", "int", "sum"),
    Column("breakage_usd", "money", "sum"),
))

# group_by name -> the column it reads (day and month are cut from the hour)
DIMENSIONS = {"hour": "hour", "day": "hour", "month": "hour", "account": "account_id",
              "operation": "operation", "model": "model_id", "provider": "provider"}
FIGURES = ("charges", "credits_used", "credits_refunded", "revenue_usd", "refunded_usd",
           "cost_usd", "margin_usd", "margin_pct", "markup_pct", "recognized_revenue_usd",
           "promotional_credits", "breakage_credits", "breakage_usd")


def with_margins(sums: dict[str, Any]) -> dict[str, Any]:
    """The figures of a report row: the sums, and the margin derived from them.
    Percentages are strings with two decimals ("60.00"), None when undefined."""
    margin = sums["revenue_usd"] - sums["cost_usd"]
    margin_pct = ratio_pct(margin, sums["revenue_usd"])
    markup_pct = ratio_pct(margin, sums["cost_usd"])
    figures = {**sums, "margin_usd": margin,
               "margin_pct": None if margin_pct is None else str(margin_pct),
               "markup_pct": None if markup_pct is None else str(markup_pct)}
    return {name: figures[name] for name in FIGURES}


@dataclass(frozen=True)
class Report:
    group_by: tuple[str, ...]
    rows: list[dict[str, Any]]  # the group's dimensions, then FIGURES
    total: dict[str, Any]

    @property
    def columns(self) -> tuple[str, ...]:
        return (*self.group_by, *FIGURES)


class RevenueView(LedgerView):
    name: ClassVar[str] = "revenue"
    tables = (REVENUE,)

    def report(self, *, since: datetime | None = None, until: datetime | None = None,
               group_by: Sequence[str] = (), account_id: str | None = None,
               operation: str | None = None, model_id: str | None = None,
               provider: str | None = None) -> Report:
        """Sums over the hours `since` <= hour < `until` (both whole UTC hours)."""
        unknown = [g for g in group_by if g not in DIMENSIONS]
        if unknown:
            raise ValueError(f"cannot group by {', '.join(unknown)}")
        groups = tuple(dict.fromkeys(group_by))
        cut = {"day": self.day, "month": self.month}
        dims = [cut[g](DIMENSIONS[g]) if g in cut else DIMENSIONS[g] for g in groups]
        sums = [f"{self.sum_of(c.kind, c.name)} AS {c.name}" for c in REVENUE.sums]
        clause, params = where(
            ("hour >= ?", self.param("time", since)), ("hour < ?", self.param("time", until)),
            ("account_id = ?", account_id), ("operation = ?", operation),
            ("model_id = ?", model_id), ("provider = ?", provider))
        positions = ", ".join(str(i + 1) for i in range(len(dims)))
        grouping = f" GROUP BY {positions} ORDER BY {positions}" if dims else ""
        selected = [f"{d} AS {g}" for d, g in zip(dims, groups, strict=True)] + sums
        kinds: dict[str, Kind] = {c.name: c.kind for c in REVENUE.sums}
        if "hour" in groups:
            kinds["hour"] = "time"
        rows = self.select(f"SELECT {', '.join(selected)} FROM {{proj_revenue}}{clause}"  # noqa: S608
                           f"{grouping}", params, kinds)
        total = REVENUE.row()
        for row in rows:
            merge_sums(REVENUE, total, row)
        return Report(groups, [{**{g: row[g] or None for g in groups}, **with_margins(row)}
                               for row in rows], with_margins(total))
