"""Random command sequences against the CreditAccount: the ledger's invariants hold.

After every step: the balance equals the sum of the balance effects of all recorded
events, it never goes below what is held, and a replay of the events rebuilds the same
state. A refused command records nothing.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from ledger.credits import transaction_row
from ledger.domain.base import SYSTEM, utcnow
from ledger.domain.credits import ChargeRef, CreditAccount, ProviderCharge
from ledger.domain.errors import DomainError
from ledger.domain.pricing import Quote

credits_st = st.integers(min_value=1, max_value=500)


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = utcnow()
        self.acc = CreditAccount.open("prop", SYSTEM)
        self.events: list[Any] = list(self.acc.collect_events())
        self.charges: dict[str, ChargeRef] = {}

    def _do(self, command: Any, *, records: bool = True) -> None:
        before = (self.acc.balance, self.acc.held, self.acc.version)
        try:
            command()
        except DomainError:
            assert self.acc.pending_events == []
            assert (self.acc.balance, self.acc.held, self.acc.version) == before
            return
        new = self.acc.collect_events()
        assert new or not records, "an accepted command records at least one event"
        for event in new:
            if isinstance(event, CreditAccount.Charged):
                self.charges[event.charge_id] = ChargeRef(event.charge_id, event.credits,
                                                          event.draws)
        self.events.extend(new)

    @rule(credits=credits_st, expires=st.none() | st.integers(1, 100))
    def grant(self, credits: int, expires: int | None) -> None:
        at = None if expires is None else self.now + timedelta(minutes=expires)
        self._do(lambda: self.acc.grant(credits, "promo", SYSTEM, self.now, expires_at=at))

    @rule(credits=credits_st, cents=st.integers(0, 10_000))
    def purchase(self, credits: int, cents: int) -> None:
        self._do(lambda: self.acc.purchase(credits, Decimal(cents) / 100, "pay", SYSTEM,
                                           self.now))

    @rule(credits=credits_st)
    def deduct(self, credits: int) -> None:
        q = Quote("op", credits, credits, Decimal("0.02"), 1)
        self._do(lambda: self.acc.deduct(q, ProviderCharge(), SYSTEM, self.now))

    @rule(credits=credits_st, ttl=st.integers(1, 100))
    def reserve(self, credits: int, ttl: int) -> None:
        self._do(lambda: self.acc.reserve("op", credits, self.now + timedelta(minutes=ttl),
                                          SYSTEM, self.now))

    @rule(data=st.data())
    def capture(self, data: st.DataObject) -> None:
        if not self.acc.holds:
            return
        rid = data.draw(st.sampled_from(sorted(self.acc.holds)))
        credits = data.draw(st.integers(0, self.acc.holds[rid]["credits"] + 2))
        q = Quote("op", credits, credits, Decimal("0.02"), 1)
        self._do(lambda: self.acc.capture(rid, q, ProviderCharge(), SYSTEM, self.now))

    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        if self.acc.holds:
            rid = data.draw(st.sampled_from(sorted(self.acc.holds)))
            self._do(lambda: self.acc.release(rid, SYSTEM, self.now))

    @rule(data=st.data())
    def refund(self, data: st.DataObject) -> None:
        if self.charges:
            ref = self.charges[data.draw(st.sampled_from(sorted(self.charges)))]
            credits = data.draw(st.integers(1, max(1, ref.credits + 1)))
            self._do(lambda: self.acc.refund(ref, credits, "refund", SYSTEM, self.now))

    @rule(credits=st.integers(-300, 300))
    def adjust(self, credits: int) -> None:
        self._do(lambda: self.acc.adjust(credits, "fix", SYSTEM, self.now))

    @rule(minutes=st.integers(1, 60))
    def time_passes(self, minutes: int) -> None:
        self.now += timedelta(minutes=minutes)
        self._do(lambda: (self.acc.expire_holds(self.now, SYSTEM),
                          self.acc.expire_lots(self.now, SYSTEM)), records=False)

    @invariant()
    def balance_is_the_sum_of_the_events(self) -> None:
        rows = [r for r in map(transaction_row, self.events) if r is not None]
        assert self.acc.balance == sum(r["balance_delta"] for r in rows)
        assert self.acc.held == sum(r["reserved_delta"] for r in rows)
        assert self.acc.balance == sum(lot["remaining"] for lot in self.acc.lots.values())
        assert all(lot["remaining"] >= 0 for lot in self.acc.lots.values())

    @invariant()
    def never_overdrawn(self) -> None:
        assert self.acc.held >= 0
        assert self.acc.balance - self.acc.held >= 0

    @invariant()
    def replay_rebuilds_the_same_state(self) -> None:
        replayed: Any = None
        for event in self.events:
            replayed = event.mutate(replayed)
        assert replayed.__dict__ == self.acc.__dict__


TestLedgerMachine = LedgerMachine.TestCase
TestLedgerMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
