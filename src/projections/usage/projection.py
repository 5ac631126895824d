"""Charges and refunds -> the usage log."""

from __future__ import annotations

from functools import singledispatchmethod
from typing import Any

from ledger.domain.credits import CreditAccount
from ledger.domain.pricing import revenue_usd
from projections.base import LedgerProjection, topics_of
from projections.tables import Changes
from projections.usage.view import USAGE, UsageView


class UsageProjection(LedgerProjection[UsageView]):
    name = "usage"
    topics = topics_of(CreditAccount.Opened, CreditAccount.CreditsDeducted,
                       CreditAccount.ReservationCaptured, CreditAccount.CreditsRefunded)

    @singledispatchmethod
    def project(self, event: Any, position: int, changes: Changes) -> None:
        self.log.note(event)

    @project.register
    def _charged(self, event: CreditAccount.Charged, position: int, changes: Changes) -> None:
        changes.insert(USAGE, {
            **vars(event),  # the charge's own fields; the columns it lacks stay empty
            "position": position, "time": event.timestamp, "kind": "charge",
            "account_id": self.log.account_id(event.originator_id),
            "credits_used": event.credits})

    @project.register
    def _refunded(self, event: CreditAccount.CreditsRefunded, position: int,
                  changes: Changes) -> None:
        charge = self.log.charge(event.originator_id, event.charge_id)
        price = charge.price_per_credit_usd
        changes.insert(USAGE, {
            "position": position, "time": event.timestamp, "kind": "refund",
            "account_id": self.log.account_id(event.originator_id),
            "charge_id": event.charge_id, "refund_id": event.refund_id,
            "reservation_id": getattr(charge, "reservation_id", None),
            "call_id": charge.call_id, "operation": charge.operation, "units": 0,
            "model_id": charge.model_id, "provider": charge.provider,
            "credits_used": -event.credits, "price_per_credit_usd": price,
            "revenue_usd": -revenue_usd(event.credits, price), "cost_usd": None,
            "input_tokens": None, "output_tokens": None, "images": None})
