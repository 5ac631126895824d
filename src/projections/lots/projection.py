"""Credit events -> lots: each lot's creation, and every draw, refund and expiry of it."""

from __future__ import annotations

from functools import singledispatchmethod
from typing import Any

from ledger.domain.credits import CreditAccount, Draws
from projections.base import LedgerProjection, topics_of, version_of
from projections.lots.view import LOTS, LotsView
from projections.tables import Changes


class LotsProjection(LedgerProjection[LotsView]):
    name = "lots"
    topics = topics_of(CreditAccount.Opened, CreditAccount.CreditsPurchased,
                       CreditAccount.CreditsGranted, CreditAccount.CreditsDeducted,
                       CreditAccount.ReservationCaptured, CreditAccount.CreditsRefunded,
                       CreditAccount.CreditsAdjusted, CreditAccount.LotExpired)

    @singledispatchmethod
    def project(self, event: Any, position: int, changes: Changes) -> None:
        self.log.note(event)

    @project.register
    def _purchased(self, event: CreditAccount.CreditsPurchased, position: int,
                   changes: Changes) -> None:
        self._created(event, position, changes, source="purchase",
                      priority=event.priority, expires_at=event.expires_at,
                      price_per_credit_usd=event.price_per_credit_usd,
                      payment_ref=event.payment_ref)

    @project.register
    def _granted(self, event: CreditAccount.CreditsGranted, position: int,
                 changes: Changes) -> None:
        self._created(event, position, changes, source="grant", priority=event.priority,
                      expires_at=event.expires_at, reason=event.reason)

    @project.register
    def _charged(self, event: CreditAccount.Charged, position: int,
                 changes: Changes) -> None:
        self._draws(event, position, changes, event.draws, "debited", -1)

    @project.register
    def _refunded(self, event: CreditAccount.CreditsRefunded, position: int,
                  changes: Changes) -> None:
        self._draws(event, position, changes, event.draws, "refunded", 1)

    @project.register
    def _adjusted(self, event: CreditAccount.CreditsAdjusted, position: int,
                  changes: Changes) -> None:
        if event.credits > 0:
            self._created(event, position, changes, lot_id=event.adjustment_id,
                          source="adjustment", priority=0, reason=event.reason)
        else:
            self._draws(event, position, changes, event.draws, "debited", -1)

    @project.register
    def _expired(self, event: CreditAccount.LotExpired, position: int,
                 changes: Changes) -> None:
        self._draws(event, position, changes, [[event.lot_id, event.credits]], "expired", -1)

    def _created(self, event: Any, position: int, changes: Changes, *,
                 lot_id: str | None = None, **what: Any) -> None:
        lot_id = lot_id or event.lot_id
        changes.add(LOTS, LOTS.row(
            **self._row(event, position, lot_id), seq=version_of(lot_id),
            created_at=event.timestamp, credits=event.credits, remaining=event.credits,
            **what))

    def _draws(self, event: Any, position: int, changes: Changes, draws: Draws, column: str,
               sign: int) -> None:
        for lot_id, credits in draws:
            changes.add(LOTS, LOTS.row(**self._row(event, position, lot_id),
                                       remaining=sign * credits, **{column: credits}))

    def _row(self, event: Any, position: int, lot_id: str) -> dict[str, Any]:
        return {"account_id": self.log.account_id(event.originator_id), "lot_id": lot_id,
                "updated_at": event.timestamp, "position": position}
