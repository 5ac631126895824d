"""Charges, refunds and expired lots -> hourly revenue, cost and margin."""

from __future__ import annotations

from datetime import UTC
from decimal import Decimal
from functools import singledispatchmethod
from typing import Any
from uuid import UUID

from ledger.domain.credits import CreditAccount, Draws
from ledger.domain.pricing import revenue_usd
from projections.base import LedgerProjection, topics_of
from projections.revenue.view import REVENUE, RevenueView
from projections.tables import EXACT, Changes, usd


class RevenueProjection(LedgerProjection[RevenueView]):
    name = "revenue"
    topics = topics_of(CreditAccount.Opened, CreditAccount.CreditsDeducted,
                       CreditAccount.ReservationCaptured, CreditAccount.CreditsRefunded,
                       CreditAccount.LotExpired)

    @singledispatchmethod
    def project(self, event: Any, position: int, changes: Changes) -> None:
        self.log.note(event)

    @project.register
    def _charged(self, event: CreditAccount.Charged, position: int, changes: Changes) -> None:
        paid_usd, promotional = self._split(event.originator_id, event.draws)
        changes.add(REVENUE, REVENUE.row(
            **self._bucket(event, event), charges=1, credits_used=event.credits,
            revenue_usd=event.revenue_usd, cost_usd=event.cost_usd or Decimal(0),
            recognized_revenue_usd=paid_usd, promotional_credits=promotional))

    @project.register
    def _refunded(self, event: CreditAccount.CreditsRefunded, position: int,
                  changes: Changes) -> None:
        charge = self.log.charge(event.originator_id, event.charge_id)
        refunded = revenue_usd(event.credits, charge.price_per_credit_usd)
        paid_usd, promotional = self._split(event.originator_id, event.draws)
        changes.add(REVENUE, REVENUE.row(
            **self._bucket(event, charge), credits_used=-event.credits,
            credits_refunded=event.credits, revenue_usd=-refunded, refunded_usd=refunded,
            recognized_revenue_usd=-paid_usd, promotional_credits=-promotional))

    @project.register
    def _expired(self, event: CreditAccount.LotExpired, position: int,
                 changes: Changes) -> None:
        price = self.log.lot_price(event.originator_id, event.lot_id)
        changes.add(REVENUE, REVENUE.row(
            **self._bucket(event, None), breakage_credits=event.credits,
            breakage_usd=Decimal(0) if price is None else usd(event.credits, price)))

    def _bucket(self, event: Any, charge: Any) -> dict[str, Any]:
        """The row an event adds to: its hour and account, and the charge's dimensions."""
        return {"hour": event.timestamp.astimezone(UTC).replace(minute=0, second=0,
                                                                 microsecond=0),
                "account_id": self.log.account_id(event.originator_id),
                "operation": charge.operation if charge else "",
                "model_id": (charge.model_id if charge else None) or "",
                "provider": (charge.provider if charge else None) or ""}

    def _split(self, originator_id: UUID, draws: Draws) -> tuple[Decimal, int]:
        """Draws as (what their paid credits were paid, how many were promotional)."""
        paid_usd, promotional = Decimal(0), 0
        for lot_id, credits in draws:
            price = self.log.lot_price(originator_id, lot_id)
            if price is None:
                promotional += credits
            else:
                paid_usd = EXACT.add(paid_usd, usd(credits, price))
        return paid_usd, promotional
