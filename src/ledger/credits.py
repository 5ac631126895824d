"""Credit commands: each is get, command, save, run on the account's writer."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from ledger.domain.base import Actor, utcnow
from ledger.domain.calls import REQUESTED, ProviderCall
from ledger.domain.costs import CreditCostConfig
from ledger.domain.credits import ChargeRef, CreditAccount, ProviderCharge
from ledger.domain.errors import InvalidCommand, NotFound, UnknownCharge
from ledger.domain.pricing import CostRule, Quote, quote
from ledger.pipeline import Batch, IdempotencySpec, Outcome, Pipeline
from ledger.store import LedgerStore

Respond = Callable[[Any], tuple[int, dict[str, Any]]]


@dataclass(frozen=True)
class Receipt:
    """The account right after a command, and the id that command created."""

    account_id: str
    id: str | None
    balance: int
    held: int
    credits: int | None = None
    extra: dict[str, Any] | None = None

    @property
    def available(self) -> int:
        return self.balance - self.held


class CostBook:
    """Current CreditCostConfig rules, read through a short cache.

    A change made in this process is seen at once (invalidate()); one made by another
    process within `ttl_s`.
    """

    def __init__(self, store: LedgerStore, ttl_s: float = 1.0) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self._rules: dict[str, tuple[float, CostRule]] = {}
        self._lock = threading.Lock()

    def rule(self, operation: str) -> CostRule:
        now = time.monotonic()
        with self._lock:
            hit = self._rules.get(operation)
        if hit is not None and now - hit[0] < self.ttl_s:
            return hit[1]
        config = self.store.find(CreditCostConfig.create_id(operation))
        if config is None:
            raise NotFound(f"unknown operation {operation!r}", field="operation")
        rule: CostRule = config.rule()
        with self._lock:
            self._rules[operation] = (now, rule)
        return rule

    def invalidate(self, operation: str | None = None) -> None:
        with self._lock:
            if operation is None:
                self._rules.clear()
            else:
                self._rules.pop(operation, None)


def account_key(account_id: str) -> UUID:
    key: UUID = CreditAccount.create_id(account_id)
    return key


def charge_version(charge_id: str) -> int:
    prefix, _, number = charge_id.partition("-")
    if prefix != "chg" or not number.isdigit():
        raise UnknownCharge(f"no charge {charge_id!r}", field="charge_id")
    return int(number)


_KINDS: dict[type[Any], str] = {
    CreditAccount.CreditsPurchased: "purchase",
    CreditAccount.CreditsGranted: "grant",
    CreditAccount.CreditsReserved: "hold",
    CreditAccount.CreditsDeducted: "deduction",
    CreditAccount.ReservationCaptured: "capture",
    CreditAccount.ReservationReleased: "release",
    CreditAccount.CreditsRefunded: "refund",
    CreditAccount.CreditsAdjusted: "adjustment",
    CreditAccount.LotExpired: "expiry",
}


def transaction_row(event: Any) -> dict[str, Any] | None:
    """One credit-history row of an account event: what it did to balance and holds."""
    kind = _KINDS.get(type(event))
    if kind is None:
        return None
    credits = getattr(event, "credits", 0)
    balance_delta = {"purchase": credits, "grant": credits, "refund": credits,
                     "adjustment": credits, "deduction": -credits, "capture": -credits,
                     "expiry": -credits}.get(kind, 0)
    held_delta = {"hold": credits, "release": -credits}.get(kind, 0)
    if kind == "capture":
        held_delta = -event.held_credits
    row: dict[str, Any] = {
        "transaction_id": f"{kind}:{event.originator_version}",
        "version": event.originator_version,
        "type": kind,
        "credits": credits,
        "balance_delta": balance_delta,
        "reserved_delta": held_delta,
        "time": event.timestamp,
        "actor_id": event.actor_id,
        "actor_role": event.actor_role,
    }
    for name in ("lot_id", "charge_id", "reservation_id", "refund_id", "adjustment_id",
                 "operation", "reason", "payment_ref", "amount_usd", "revenue_usd",
                 "price_per_credit_usd", "model_id", "provider", "cost_usd", "draws",
                 "expires_at"):
        value = getattr(event, name, None)
        if value is not None:
            row[name] = value
    return row


class CreditService:
    def __init__(self, store: LedgerStore, pipeline: Pipeline, costs: CostBook,
                 hold_ttl_s: int = 900) -> None:
        self.store = store
        self.pipeline = pipeline
        self.costs = costs
        self.hold_ttl_s = hold_ttl_s

    # -- helpers -----------------------------------------------------------------------

    @staticmethod
    def account(batch: Batch, account_id: str, actor: Actor) -> CreditAccount:
        acc: CreditAccount = batch.get(account_key(account_id),
                                       lambda: CreditAccount.open(account_id, actor))
        return acc

    @staticmethod
    def receipt(acc: CreditAccount, id_: str | None, credits: int | None = None,
                **extra: Any) -> Receipt:
        return Receipt(acc.account_id, id_, acc.balance, acc.held, credits, extra or None)

    def _submit(self, account_id: str, actor: Actor, run: Callable[[Batch], Any],
                idem: IdempotencySpec | None, respond: Respond | None) -> Outcome[Any]:
        return self.pipeline.submit(account_key(account_id), run, actor,
                                    idempotency=idem, respond=respond)

    def price(self, operation: str, units: int | None = None,
              credits: int | None = None) -> Quote:
        """A quote for `units` of an operation, or for a stated number of credits."""
        rule = self.costs.rule(operation)
        if credits is not None:
            return Quote(operation, units or 0, credits, rule.price_per_credit_usd, rule.version)
        if units is None:
            raise InvalidCommand("units or credits is required", field="units")
        return quote(rule, units)

    # -- commands ----------------------------------------------------------------------

    def purchase(self, account_id: str, credits: int, amount_usd: Decimal, payment_ref: str,
                 actor: Actor, *, expires_at: datetime | None = None, priority: int = 0,
                 idem: IdempotencySpec | None = None,
                 respond: Respond | None = None) -> Outcome[Any]:
        def run(batch: Batch) -> Receipt:
            acc = self.account(batch, account_id, actor)
            lot = acc.purchase(credits, amount_usd, payment_ref, actor, utcnow(),
                               priority=priority, expires_at=expires_at)
            return self.receipt(acc, lot, credits)
        return self._submit(account_id, actor, run, idem, respond)

    def grant(self, account_id: str, credits: int, reason: str, actor: Actor, *,
              expires_at: datetime | None = None, priority: int = 0,
              idem: IdempotencySpec | None = None,
              respond: Respond | None = None) -> Outcome[Any]:
        def run(batch: Batch) -> Receipt:
            acc = self.account(batch, account_id, actor)
            lot = acc.grant(credits, reason, actor, utcnow(), priority=priority,
                            expires_at=expires_at)
            return self.receipt(acc, lot, credits)
        return self._submit(account_id, actor, run, idem, respond)

    def adjust(self, account_id: str, credits: int, reason: str, actor: Actor, *,
               idem: IdempotencySpec | None = None,
               respond: Respond | None = None) -> Outcome[Any]:
        def run(batch: Batch) -> Receipt:
            acc = self.account(batch, account_id, actor)
            adj = acc.adjust(credits, reason, actor, utcnow())
            return self.receipt(acc, adj, credits)
        return self._submit(account_id, actor, run, idem, respond)

    def deduct(self, account_id: str, charge: Quote, cost: ProviderCharge, actor: Actor, *,
               idem: IdempotencySpec | None = None,
               respond: Respond | None = None) -> Outcome[Any]:
        def run(batch: Batch) -> Receipt:
            acc = self.account(batch, account_id, actor)
            charge_id = acc.deduct(charge, cost, actor, utcnow())
            return self.receipt(acc, charge_id, charge.credits,
                                revenue_usd=charge.revenue_usd,
                                price_per_credit_usd=charge.price_per_credit_usd)
        return self._submit(account_id, actor, run, idem, respond)

    def reserve(self, account_id: str, operation: str, credits: int, actor: Actor, *,
                expires_in_s: int | None = None, call_id: str | None = None,
                idem: IdempotencySpec | None = None,
                respond: Respond | None = None) -> Outcome[Any]:
        ttl = self.hold_ttl_s if expires_in_s is None else expires_in_s
        self.costs.rule(operation)  # an unknown operation is refused before anything else

        def run(batch: Batch) -> Receipt:
            acc = self.account(batch, account_id, actor)
            now = utcnow()
            rid = acc.reserve(operation, credits, now + timedelta(seconds=ttl), actor, now,
                              call_id=call_id)
            return self.receipt(acc, rid, credits, expires_at=acc.holds[rid]["expires_at"])
        return self._submit(account_id, actor, run, idem, respond)

    def capture(self, account_id: str, reservation_id: str, charge: Callable[[str], Quote],
                cost: ProviderCharge, actor: Actor, *, usage_reported: bool = True,
                idem: IdempotencySpec | None = None,
                respond: Respond | None = None) -> Outcome[Any]:
        """Capture a hold; `charge(operation)` prices it for the hold's operation."""
        def run(batch: Batch) -> Receipt:
            acc = self.account(batch, account_id, actor)
            hold = acc.holds.get(reservation_id)
            if hold is None:
                self._explain_settled(acc, reservation_id)
            assert hold is not None
            q = charge(hold["operation"])
            charge_id = acc.capture(reservation_id, q, cost, actor, utcnow(),
                                    usage_reported=usage_reported)
            return self.receipt(acc, charge_id, q.credits, reservation_id=reservation_id,
                                released_credits=hold["credits"] - q.credits,
                                revenue_usd=q.revenue_usd,
                                price_per_credit_usd=q.price_per_credit_usd)
        return self._submit(account_id, actor, run, idem, respond)

    def release(self, account_id: str, reservation_id: str, actor: Actor, *,
                reason: str = "released", idem: IdempotencySpec | None = None,
                respond: Respond | None = None) -> Outcome[Any]:
        def run(batch: Batch) -> Receipt:
            acc = self.account(batch, account_id, actor)
            hold = acc.holds.get(reservation_id)
            if hold is None:
                self._explain_settled(acc, reservation_id)
            assert hold is not None
            acc.release(reservation_id, actor, utcnow(), reason=reason)
            return self.receipt(acc, reservation_id, hold["credits"])
        return self._submit(account_id, actor, run, idem, respond)

    def refund(self, account_id: str, charge_id: str, credits: int | None, reason: str,
               actor: Actor, *, idem: IdempotencySpec | None = None,
               respond: Respond | None = None) -> Outcome[Any]:
        version = charge_version(charge_id)

        def run(batch: Batch) -> Receipt:
            acc = self.account(batch, account_id, actor)
            ref = self._charge(acc, charge_id, version)
            amount = credits if credits is not None else ref.credits - acc.refunded.get(
                charge_id, 0)
            rid = acc.refund(ref, amount, reason, actor, utcnow())
            return self.receipt(acc, rid, amount, charge_id=charge_id)
        return self._submit(account_id, actor, run, idem, respond)

    def sweep(self, account_id: str, actor: Actor) -> Outcome[Any]:
        """Release expired holds and expire due lots of one account; a provider call
        whose hold expired unsettled (its process died) is marked abandoned."""
        def run(batch: Batch) -> Receipt:
            acc = self.account(batch, account_id, actor)
            released = acc.expire_holds(utcnow(), actor)
            for hold in released:
                if hold["call_id"]:
                    call = batch.find(ProviderCall.create_id(hold["call_id"]))
                    if call is not None and call.status == REQUESTED:
                        call.abandon("hold expired before the call was settled", actor)
            return self.receipt(acc, None, None,
                                released=[h["reservation_id"] for h in released])
        return self._submit(account_id, actor, run, None, None)

    def expire_lots(self, account_id: str, actor: Actor) -> Outcome[Any]:
        """Record the breakage of the account's lots whose expiry has passed (credits
        that back open holds stay until the hold settles). Nothing for an unknown
        account or when no lot is due."""
        def run(batch: Batch) -> Receipt | None:
            acc: CreditAccount | None = batch.find(account_key(account_id))
            if acc is None:
                return None
            acc.expire_lots(utcnow(), actor)
            return self.receipt(acc, None, None)
        return self._submit(account_id, actor, run, None, None)

    # -- reads -------------------------------------------------------------------------

    def snapshot(self, account_id: str, as_of: datetime | None = None) -> Receipt | None:
        """The account from the log (latest, or replayed up to `as_of`)."""
        key = account_key(account_id)
        if as_of is None:
            acc = self.store.find(key)
            return None if acc is None else self.receipt(acc, None)
        events = self.store.events_of(key)
        acc = None
        for event in events:
            if event.timestamp > as_of:
                break
            acc = event.mutate(acc)
        return None if acc is None else self.receipt(acc, None)

    def history(self, account_id: str, *, limit: int = 50,
                before: int | None = None) -> tuple[list[dict[str, Any]], int | None]:
        """The account's events as transactions, newest first, `limit` a page."""
        events = list(self.store.events.get(account_key(account_id),
                                            lte=None if before is None else before - 1,
                                            desc=True, limit=limit))
        rows = [row for row in map(transaction_row, events) if row is not None]
        next_before = events[-1].originator_version if len(events) == limit else None
        return rows, next_before

    def _charge(self, acc: CreditAccount, charge_id: str, version: int) -> ChargeRef:
        if version > acc.version:
            raise UnknownCharge(f"no charge {charge_id!r}", field="charge_id")
        events = self.store.events_of(acc.id, gt=version - 1, lte=version)
        if not events or not isinstance(events[0], CreditAccount.Charged):
            raise UnknownCharge(f"no charge {charge_id!r}", field="charge_id")
        ev = events[0]
        return ChargeRef(charge_id, ev.credits, [list(d) for d in ev.draws])

    def _explain_settled(self, acc: CreditAccount, reservation_id: str) -> None:
        """Raise the precise error for a hold that is not open."""
        from ledger.domain.errors import ReservationSettled, UnknownReservation

        prefix, _, number = reservation_id.partition("-")
        if prefix == "rsv" and number.isdigit() and int(number) <= acc.version:
            v = int(number)
            events = self.store.events_of(acc.id, gt=v - 1, lte=v)
            if events and isinstance(events[0], CreditAccount.CreditsReserved):
                raise ReservationSettled(
                    f"hold {reservation_id} was already captured or released",
                    field="reservation_id")
        raise UnknownReservation(f"no hold {reservation_id!r}", field="reservation_id")
