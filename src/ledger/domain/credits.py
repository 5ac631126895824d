"""The credit account: one aggregate per customer account.

State is kept small so that a long history loads fast from a snapshot: the lots (one per
purchase or grant), open holds and the refunds made so far; settled holds and past
charges live only in the log, where a refund looks its charge up.

Lots. Every purchase, grant and positive adjustment is a lot. Debits draw from lots in
the burn order below, and the event records which lots paid and how much each:

    1. lower ``priority`` first,
    2. then the earliest expiry (a lot without expiry comes last),
    3. then granted credits before purchased ones,
    4. then the oldest lot.

An expired lot leaves the balance as breakage (``LotExpired``), but never below what is
held: credits that back an open hold stay pledged and are drawn first by its capture.

Ids. A lot, hold or charge is named by the version of the event that created it within
this account ("lot-3", "rsv-17", "chg-42"), so an auditor goes from an id straight to
its event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from ledger.domain.base import Actor, LedgerAggregate, natural_id
from ledger.domain.errors import (
    InsufficientCredits,
    InvalidCommand,
    RefundExceedsCharge,
    ReservationExpired,
    UnknownReservation,
)
from ledger.domain.pricing import Quote

Draws = list[list[Any]]  # [[lot_id, credits], ...] as stored in events


@dataclass(frozen=True)
class ProviderCharge:
    """What a charge cost the platform, copied into the event that records it."""

    model_id: str | None = None
    provider: str | None = None
    cost_usd: Decimal | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    images: int | None = None
    rates: dict[str, Decimal] | None = None  # the model's rates used for cost_usd
    call_id: str | None = None


@dataclass(frozen=True)
class ChargeRef:
    """A past charge as the event store holds it, passed in to refund it."""

    charge_id: str
    credits: int
    draws: Draws


GRANT_SOURCES = frozenset({"grant", "adjustment"})


def _positive_credits(credits: object, field: str = "credits") -> int:
    if isinstance(credits, bool) or not isinstance(credits, int) or credits <= 0:
        raise InvalidCommand(f"{field} must be a positive integer", field=field)
    return credits


class CreditAccount(LedgerAggregate):
    """Balance = sum of open lots; available = balance - held; never below zero."""

    class Opened(LedgerAggregate.Created):
        account_id: str

    class CreditsPurchased(LedgerAggregate.Event):
        lot_id: str
        credits: int
        amount_usd: Decimal
        price_per_credit_usd: Decimal
        payment_ref: str
        priority: int
        expires_at: datetime | None

        def apply(self, account: CreditAccount) -> None:
            account._add_lot(self.lot_id, "purchase", self.credits, self.priority,
                             self.expires_at, self.price_per_credit_usd)

    class CreditsGranted(LedgerAggregate.Event):
        lot_id: str
        credits: int
        reason: str
        priority: int
        expires_at: datetime | None

        def apply(self, account: CreditAccount) -> None:
            account._add_lot(self.lot_id, "grant", self.credits, self.priority,
                             self.expires_at, None)

    class CreditsReserved(LedgerAggregate.Event):
        reservation_id: str
        operation: str
        credits: int
        expires_at: datetime
        call_id: str | None

        def apply(self, account: CreditAccount) -> None:
            account.holds[self.reservation_id] = {
                "operation": self.operation,
                "credits": self.credits,
                "expires_at": self.expires_at,
                "call_id": self.call_id,
            }
            account.held += self.credits

    class Charged(LedgerAggregate.Event):
        """Base of the two events that take credits for an operation."""

        charge_id: str
        operation: str
        units: int
        credits: int
        price_per_credit_usd: Decimal
        revenue_usd: Decimal
        cost_config_version: int
        model_id: str | None
        provider: str | None
        cost_usd: Decimal | None
        input_tokens: int | None
        output_tokens: int | None
        images: int | None
        rates: dict[str, Decimal] | None
        call_id: str | None
        draws: Draws

        def apply(self, account: CreditAccount) -> None:
            account._take(self.draws)

    class CreditsDeducted(Charged):
        pass

    class ReservationCaptured(Charged):
        reservation_id: str
        held_credits: int
        usage_reported: bool

        def apply(self, account: CreditAccount) -> None:
            account._settle(self.reservation_id)
            account._take(self.draws)

    class ReservationReleased(LedgerAggregate.Event):
        reservation_id: str
        credits: int
        reason: str  # "released" | "expired" | "provider_failed" | "abandoned"

        def apply(self, account: CreditAccount) -> None:
            account._settle(self.reservation_id)

    class CreditsRefunded(LedgerAggregate.Event):
        refund_id: str
        charge_id: str
        credits: int
        reason: str
        draws: Draws

        def apply(self, account: CreditAccount) -> None:
            for lot_id, credits in self.draws:
                account.lots[lot_id]["remaining"] += credits
            account.balance += self.credits
            refunded = account.refunded.get(self.charge_id, 0)
            account.refunded[self.charge_id] = refunded + self.credits

    class CreditsAdjusted(LedgerAggregate.Event):
        adjustment_id: str
        credits: int  # signed
        reason: str
        draws: Draws  # lots debited when credits < 0

        def apply(self, account: CreditAccount) -> None:
            if self.credits > 0:
                account._add_lot(self.adjustment_id, "adjustment", self.credits, 0, None, None)
            else:
                account._take(self.draws)

    class LotExpired(LedgerAggregate.Event):
        lot_id: str
        credits: int  # breakage: what left the balance unused

        def apply(self, account: CreditAccount) -> None:
            account._take([[self.lot_id, self.credits]])

    # -- state -----------------------------------------------------------------------

    def __init__(self, account_id: str) -> None:
        self.account_id = account_id
        self.balance = 0
        self.held = 0
        self.lots: dict[str, dict[str, Any]] = {}
        self.holds: dict[str, dict[str, Any]] = {}
        self.refunded: dict[str, int] = {}

    @staticmethod
    def create_id(account_id: str) -> Any:
        return natural_id("credit-account", account_id)

    @classmethod
    def open(cls, account_id: str, actor: Actor) -> CreditAccount:
        account: CreditAccount = cls._open(cls.Opened, actor, account_id=account_id)
        return account

    @property
    def available(self) -> int:
        return self.balance - self.held

    # -- commands --------------------------------------------------------------------

    def purchase(self, credits: int, amount_usd: Decimal, payment_ref: str, actor: Actor,
                 now: datetime, *, priority: int = 0, expires_at: datetime | None = None) -> str:
        _positive_credits(credits)
        if not isinstance(amount_usd, Decimal) or amount_usd < 0:
            raise InvalidCommand("amount_usd must be a non-negative decimal", field="amount_usd")
        if not payment_ref:
            raise InvalidCommand("payment_ref is required", field="payment_ref")
        self._check_expiry(expires_at, now)
        self._expire_due(now, actor)
        lot_id = self._next_id("lot")
        self._record(self.CreditsPurchased, actor, lot_id=lot_id, credits=credits,
                     amount_usd=amount_usd, price_per_credit_usd=amount_usd / credits,
                     payment_ref=payment_ref, priority=priority, expires_at=expires_at)
        return lot_id

    def grant(self, credits: int, reason: str, actor: Actor, now: datetime, *,
              priority: int = 0, expires_at: datetime | None = None) -> str:
        _positive_credits(credits)
        if not reason:
            raise InvalidCommand("reason is required", field="reason")
        self._check_expiry(expires_at, now)
        self._expire_due(now, actor)
        lot_id = self._next_id("lot")
        self._record(self.CreditsGranted, actor, lot_id=lot_id, credits=credits, reason=reason,
                     priority=priority, expires_at=expires_at)
        return lot_id

    def reserve(self, operation: str, credits: int, expires_at: datetime, actor: Actor,
                now: datetime, *, call_id: str | None = None) -> str:
        _positive_credits(credits)
        if expires_at <= now:
            raise InvalidCommand("a hold must expire in the future", field="expires_in_s")
        self._check_available(credits, now)
        self._expire_due(now, actor)
        reservation_id = self._next_id("rsv")
        self._record(self.CreditsReserved, actor, reservation_id=reservation_id,
                     operation=operation, credits=credits, expires_at=expires_at,
                     call_id=call_id)
        return reservation_id

    def capture(self, reservation_id: str, quote: Quote, cost: ProviderCharge, actor: Actor,
                now: datetime, *, usage_reported: bool = True) -> str:
        hold = self._open_hold(reservation_id, now)
        if quote.credits < 0:
            raise InvalidCommand("credits must not be negative", field="credits")
        if quote.credits > hold["credits"]:
            raise InvalidCommand(
                f"capture of {quote.credits} credits exceeds the {hold['credits']} held",
                field="credits",
            )
        self._expire_due(now, actor)
        charge_id = self._next_id("chg")
        self._record(self.ReservationCaptured, actor, reservation_id=reservation_id,
                     held_credits=hold["credits"], usage_reported=usage_reported,
                     **self._charge_fields(charge_id, quote, cost, now))
        return charge_id

    def release(self, reservation_id: str, actor: Actor, now: datetime, *,
                reason: str = "released") -> None:
        hold = self.holds.get(reservation_id)
        if hold is None:
            raise UnknownReservation(f"no open hold {reservation_id}", field="reservation_id")
        self._record(self.ReservationReleased, actor, reservation_id=reservation_id,
                     credits=hold["credits"], reason=reason)
        self._expire_due(now, actor)

    def expire_holds(self, now: datetime, actor: Actor) -> list[dict[str, Any]]:
        """Release every hold whose expiry has passed (the sweeper's command)."""
        expired = [{"reservation_id": rid, **h} for rid, h in self.holds.items()
                   if h["expires_at"] <= now]
        for hold in expired:
            self._record(self.ReservationReleased, actor, reservation_id=hold["reservation_id"],
                         credits=hold["credits"], reason="expired")
        self._expire_due(now, actor)
        return expired

    def expire_lots(self, now: datetime, actor: Actor) -> None:
        self._expire_due(now, actor)

    def deduct(self, quote: Quote, cost: ProviderCharge, actor: Actor, now: datetime) -> str:
        if isinstance(quote.units, bool) or quote.units < 0:
            raise InvalidCommand("units must be a non-negative integer", field="units")
        self._check_available(quote.credits, now)
        self._expire_due(now, actor)
        charge_id = self._next_id("chg")
        self._record(self.CreditsDeducted, actor,
                     **self._charge_fields(charge_id, quote, cost, now))
        return charge_id

    def refund(self, charge: ChargeRef, credits: int, reason: str, actor: Actor,
               now: datetime) -> str:
        _positive_credits(credits)
        if not reason:
            raise InvalidCommand("reason is required", field="reason")
        left = charge.credits - self.refunded.get(charge.charge_id, 0)
        if credits > left:
            raise RefundExceedsCharge(
                f"refund of {credits} exceeds the {left} credits left to refund of "
                f"{charge.charge_id}",
                field="credits",
            )
        # Give credits back to the lots that paid, last drawn first.
        draws: Draws = []
        todo = credits
        for lot_id, drawn in reversed(charge.draws):
            if todo == 0:
                break
            back = min(drawn, todo)
            draws.append([lot_id, back])
            todo -= back
        self._expire_due(now, actor)
        refund_id = self._next_id("rfd")
        self._record(self.CreditsRefunded, actor, refund_id=refund_id,
                     charge_id=charge.charge_id, credits=credits, reason=reason, draws=draws)
        return refund_id

    def adjust(self, credits: int, reason: str, actor: Actor, now: datetime) -> str:
        if isinstance(credits, bool) or not isinstance(credits, int) or credits == 0:
            raise InvalidCommand("credits must be a non-zero integer", field="credits")
        if not reason:
            raise InvalidCommand("reason is required", field="reason")
        draws: Draws = []
        if credits < 0:
            self._check_available(-credits, now)
        self._expire_due(now, actor)
        if credits < 0:
            draws = self._plan_draws(-credits, now)
        adjustment_id = self._next_id("adj")
        self._record(self.CreditsAdjusted, actor, adjustment_id=adjustment_id, credits=credits,
                     reason=reason, draws=draws)
        return adjustment_id

    # -- rules -----------------------------------------------------------------------

    def _check_available(self, credits: int, now: datetime) -> None:
        available = self.available - sum(c for _, c in self._due_breakage(now))
        if credits > available:
            raise InsufficientCredits(required=credits, available=max(available, 0))

    @staticmethod
    def _check_expiry(expires_at: datetime | None, now: datetime) -> None:
        if expires_at is not None and expires_at <= now:
            raise InvalidCommand("expires_at must be in the future", field="expires_at")

    def _open_hold(self, reservation_id: str, now: datetime) -> dict[str, Any]:
        hold = self.holds.get(reservation_id)
        if hold is None:
            raise UnknownReservation(f"no open hold {reservation_id}", field="reservation_id")
        if hold["expires_at"] <= now:
            raise ReservationExpired(
                f"hold {reservation_id} expired at {hold['expires_at'].isoformat()}",
                field="reservation_id",
            )
        return hold

    def _charge_fields(self, charge_id: str, quote: Quote, cost: ProviderCharge,
                       now: datetime) -> dict[str, Any]:
        return {
            "charge_id": charge_id,
            "operation": quote.operation,
            "units": quote.units,
            "credits": quote.credits,
            "price_per_credit_usd": quote.price_per_credit_usd,
            "revenue_usd": quote.revenue_usd,
            "cost_config_version": quote.cost_config_version,
            "model_id": cost.model_id,
            "provider": cost.provider,
            "cost_usd": cost.cost_usd,
            "input_tokens": cost.input_tokens,
            "output_tokens": cost.output_tokens,
            "images": cost.images,
            "rates": cost.rates,
            "call_id": cost.call_id,
            "draws": self._plan_draws(quote.credits, now),
        }

    def _burn_order(self, now: datetime) -> list[str]:
        far = datetime.max.replace(tzinfo=now.tzinfo)

        def key(item: tuple[str, dict[str, Any]]) -> tuple[Any, ...]:
            lot = item[1]
            expired = lot["expires_at"] is not None and lot["expires_at"] <= now
            return (
                not expired,  # pledged credits of expired lots go first
                lot["priority"],
                lot["expires_at"] or far,
                lot["source"] not in GRANT_SOURCES,
                lot["seq"],
            )

        open_lots = [item for item in self.lots.items() if item[1]["remaining"] > 0]
        return [lot_id for lot_id, _ in sorted(open_lots, key=key)]

    def _plan_draws(self, credits: int, now: datetime) -> Draws:
        draws: Draws = []
        todo = credits
        for lot_id in self._burn_order(now):
            if todo == 0:
                break
            take = min(self.lots[lot_id]["remaining"], todo)
            if take:
                draws.append([lot_id, take])
                todo -= take
        if todo:  # guarded by _check_available / the hold; reaching here is a bug
            raise InsufficientCredits(required=credits, available=credits - todo)
        return draws

    def _due_breakage(self, now: datetime) -> list[tuple[str, int]]:
        """Expired lots' unused credits that may leave now, never eating into holds."""
        spare = self.available
        out = []
        for lot_id in self._burn_order(now):
            lot = self.lots[lot_id]
            if lot["expires_at"] is None or lot["expires_at"] > now:
                continue
            credits = min(lot["remaining"], spare)
            if credits > 0:
                out.append((lot_id, credits))
                spare -= credits
        return out

    def _expire_due(self, now: datetime, actor: Actor) -> None:
        for lot_id, credits in self._due_breakage(now):
            self._record(self.LotExpired, actor, lot_id=lot_id, credits=credits)

    def _next_id(self, prefix: str) -> str:
        return f"{prefix}-{self.version + 1}"

    # -- mutators used by events ---------------------------------------------------

    def _add_lot(self, lot_id: str, source: str, credits: int, priority: int,
                 expires_at: datetime | None, price: Decimal | None) -> None:
        self.lots[lot_id] = {
            "source": source,
            "remaining": credits,
            "priority": priority,
            "expires_at": expires_at,
            "price_per_credit_usd": price,
            "seq": self.version + 1,
        }
        self.balance += credits

    def _take(self, draws: Draws) -> None:
        for lot_id, credits in draws:
            lot = self.lots[lot_id]
            lot["remaining"] -= credits
            self.balance -= credits

    def _settle(self, reservation_id: str) -> None:
        hold = self.holds.pop(reservation_id)
        self.held -= hold["credits"]

    def open_lots(self) -> list[dict[str, Any]]:
        """Lots with credits left, oldest first."""
        return [{"lot_id": k, **v} for k, v in self.lots.items() if v["remaining"] > 0]
