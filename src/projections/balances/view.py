"""The balances view: one row per credit account, current and lifetime figures.

    balance = purchased + granted + refunded + adjusted - used - expired
    available = balance - held
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

from projections.base import LedgerView
from projections.tables import Column, Table

BALANCES = Table("proj_balances", (
    Column("account_id", "text", "key"),
    Column("balance", "int", "sum"),
    Column("held", "int", "sum"),
    Column("purchased", "int", "sum"),
    Column("granted", "int", "sum"),
    Column("used", "int", "sum"),
    Column("refunded", "int", "sum"),
    Column("expired", "int", "sum"),
    Column("adjusted", "int", "sum"),
    Column("purchased_usd", "money", "sum"),
    Column("version", "int", "latest"),
    Column("position", "int", "latest"),
    Column("updated_at", "time", "latest"),
))


@dataclass(frozen=True)
class Balance:
    account_id: str
    balance: int
    held: int
    purchased: int
    granted: int
    used: int
    refunded: int
    expired: int
    adjusted: int
    purchased_usd: Decimal
    version: int
    position: int
    updated_at: datetime

    @property
    def available(self) -> int:
        return self.balance - self.held

    def as_dict(self) -> dict[str, Any]:
        return {"account_id": self.account_id, "balance": self.balance,
                "reserved": self.held, "available": self.available,
                "purchased": self.purchased, "granted": self.granted, "used": self.used,
                "refunded": self.refunded, "expired": self.expired,
                "adjusted": self.adjusted, "purchased_usd": self.purchased_usd,
                "updated_at": self.updated_at}


class BalancesView(LedgerView):
    name: ClassVar[str] = "balances"
    tables = (BALANCES,)

    def get(self, account_id: str) -> Balance | None:
        rows = self.select("SELECT * FROM {proj_balances} WHERE account_id = ?",
                           [account_id], BALANCES.kinds())
        return Balance(**rows[0]) if rows else None
