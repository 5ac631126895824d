"""Credit events -> balances: each event's effect as `transaction_row` describes it."""

from __future__ import annotations

from typing import Any

from ledger.credits import transaction_row
from projections.balances.view import BALANCES, BalancesView
from projections.base import CREDIT_EVENTS, LedgerProjection, topics_of
from projections.tables import Changes

# Which lifetime figure each kind of credit transaction adds to.
LIFETIME = {"purchase": "purchased", "grant": "granted", "deduction": "used",
            "capture": "used", "refund": "refunded", "adjustment": "adjusted",
            "expiry": "expired"}


class BalancesProjection(LedgerProjection[BalancesView]):
    name = "balances"
    topics = topics_of(*CREDIT_EVENTS)

    def project(self, event: Any, position: int, changes: Changes) -> None:
        if not isinstance(event, CREDIT_EVENTS):
            return
        self.log.note(event)
        row: dict[str, Any] = BALANCES.row(
            account_id=self.log.account_id(event.originator_id),
            version=event.originator_version, position=position, updated_at=event.timestamp)
        tx = transaction_row(event)
        if tx is not None:
            row["balance"] = tx["balance_delta"]
            row["held"] = tx["reserved_delta"]
            if tx["type"] in LIFETIME:
                row[LIFETIME[tx["type"]]] = tx["credits"]
            if tx["type"] == "purchase":
                row["purchased_usd"] = event.amount_usd
        changes.add(BALANCES, row)
