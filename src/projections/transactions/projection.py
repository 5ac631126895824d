"""Credit events -> credit transactions: one row per event that moves credits."""

from __future__ import annotations

from typing import Any

from ledger.credits import transaction_row
from projections.base import CREDIT_EVENTS, LedgerProjection, topics_of
from projections.tables import Changes
from projections.transactions.view import TRANSACTIONS, TransactionsView, stored_row


class TransactionsProjection(LedgerProjection[TransactionsView]):
    name = "transactions"
    topics = topics_of(*CREDIT_EVENTS)

    def project(self, event: Any, position: int, changes: Changes) -> None:
        if not isinstance(event, CREDIT_EVENTS):
            return
        self.log.note(event)
        tx = transaction_row(event)
        if tx is not None:
            changes.insert(TRANSACTIONS, stored_row(
                self.log.account_id(event.originator_id), position, tx))
