"""The lots view: every lot of every account, with what is left of it.

One row per lot (purchase, grant, positive adjustment), keyed by account and lot id:

    remaining = credits - debited + refunded - expired

`debited` counts the credits charges and negative adjustments drew from the lot,
`refunded` what refunds gave back to it, `expired` its breakage. What a lot is (source,
price paid per credit, priority, expiry) is written by the event that created it and
never changes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from ledger.domain.credits import GRANT_SOURCES
from projections.base import LedgerView
from projections.tables import Column, Table

LOTS = Table("proj_lots", (
    Column("account_id", "text", "key"),
    Column("lot_id", "text", "key"),
    # what the lot is: set by the event that created it (nullable only because a batch
    # that merely draws from an existing lot upserts its row without them)
    Column("seq", "int", nullable=True),
    Column("source", "text", nullable=True),
    Column("priority", "int", nullable=True),
    Column("expires_at", "time", nullable=True),
    Column("price_per_credit_usd", "money", nullable=True),
    Column("payment_ref", "text", nullable=True),
    Column("reason", "text", nullable=True),
    Column("created_at", "time", nullable=True),
    Column("credits", "int", "sum"),
    Column("remaining", "int", "sum"),
    Column("debited", "int", "sum"),
    Column("refunded", "int", "sum"),
    Column("expired", "int", "sum"),
    Column("updated_at", "time", "latest"),
    Column("position", "int", "latest"),
), indexes=(("expires_at",),))


def burn_key(lot: dict[str, Any], now: datetime) -> tuple[Any, ...]:
    """The domain's burn order (ledger.domain.credits): expired lots' pledged credits,
    then priority, earliest expiry, granted before purchased, oldest."""
    far = datetime.max.replace(tzinfo=now.tzinfo)
    expires = lot["expires_at"]
    return (not (expires is not None and expires <= now), lot["priority"], expires or far,
            lot["source"] not in GRANT_SOURCES, lot["seq"])


def status_of(lot: dict[str, Any], now: datetime) -> str:
    if lot["remaining"] <= 0:
        return "expired" if lot["expired"] > 0 else "used"
    if lot["expires_at"] is not None and lot["expires_at"] <= now:
        return "expiring"  # due: the next sweep or command records its breakage
    return "open"


class LotsView(LedgerView):
    name: ClassVar[str] = "lots"
    tables = (LOTS,)

    def lots(self, account_id: str, now: datetime, *,
             open_only: bool = True) -> list[dict[str, Any]]:
        """The account's lots in burn order (those with credits left first), each with
        its `status`: open, expiring (past its expiry, not swept yet), used, expired."""
        sql = "SELECT * FROM {proj_lots} WHERE account_id = ?"
        if open_only:
            sql += " AND remaining > 0"
        rows = self.select(sql, [account_id], LOTS.kinds())
        rows.sort(key=lambda r: (r["remaining"] <= 0, burn_key(r, now)))
        return [{**r, "status": status_of(r, now)} for r in rows]

    def accounts_with_due_lots(self, now: datetime) -> list[str]:
        """Accounts with a lot whose expiry has passed and that has credits left."""
        rows = self.select("SELECT DISTINCT account_id FROM {proj_lots} "
                           "WHERE expires_at <= ? AND remaining > 0 ORDER BY account_id",
                           [self.param("time", now)], {})
        return [str(r["account_id"]) for r in rows]

    def expiring(self, since: datetime, until: datetime) -> list[dict[str, Any]]:
        """Lots with credits left that expire after `since` and by `until`."""
        return self.select("SELECT * FROM {proj_lots} WHERE expires_at > ? "
                           "AND expires_at <= ? AND remaining > 0 "
                           "ORDER BY expires_at, account_id, lot_id",
                           [self.param("time", since), self.param("time", until)],
                           LOTS.kinds())
