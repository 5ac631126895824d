"""The CreditAccount aggregate, without any database."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from ledger.domain.base import SYSTEM, utcnow
from ledger.domain.credits import ChargeRef, CreditAccount, ProviderCharge
from ledger.domain.errors import (
    InsufficientCredits,
    InvalidCommand,
    RefundExceedsCharge,
    ReservationExpired,
    UnknownReservation,
)
from ledger.domain.pricing import CostRule, Quote, Unit, quote

IMAGE = CostRule("image_generation", Unit.IMAGE, 50, 5, 5, Decimal("0.02"), 1)
TEXT = CostRule("text_generation", Unit.TOKENS, 500, 1, 1, Decimal("0.01"), 1)
NO_COST = ProviderCharge()


def account(credits: int = 0) -> CreditAccount:
    acc = CreditAccount.open("acme", SYSTEM)
    if credits:
        acc.purchase(credits, Decimal(credits) * Decimal("0.02"), "pay", SYSTEM, utcnow())
    return acc


def test_deterministic_id_per_account() -> None:
    assert CreditAccount.open("a", SYSTEM).id == CreditAccount.create_id("a")
    assert CreditAccount.create_id("a") != CreditAccount.create_id("b")


def test_every_event_names_its_actor() -> None:
    acc = account(100)
    acc.deduct(quote(IMAGE, 1), NO_COST, SYSTEM, utcnow())
    events = acc.collect_events()
    assert [type(e).__name__ for e in events] == ["Opened", "CreditsPurchased",
                                                   "CreditsDeducted"]
    assert all(e.actor_id == "system" and e.actor_role == "system" for e in events)


def test_deduction_records_the_price_it_used() -> None:
    acc = account(100)
    acc.deduct(quote(IMAGE, 1), ProviderCharge(model_id="dall-e-3", provider="openai",
                                               cost_usd=Decimal("0.040")), SYSTEM, utcnow())
    event = acc.collect_events()[-1]
    assert isinstance(event, CreditAccount.CreditsDeducted)
    assert (event.credits, event.price_per_credit_usd, event.revenue_usd) == (
        5, Decimal("0.02"), Decimal("0.10"))
    assert event.cost_usd == Decimal("0.040")
    assert acc.balance == 95


def test_overdraw_is_refused_and_records_nothing() -> None:
    acc = account(4)
    acc.collect_events()
    with pytest.raises(InsufficientCredits) as err:
        acc.deduct(quote(IMAGE, 1), NO_COST, SYSTEM, utcnow())
    assert (err.value.required, err.value.available) == (5, 4)
    assert acc.collect_events() == []
    assert acc.balance == 4


def test_hold_counts_against_available_and_capture_returns_the_rest() -> None:
    acc = account(100)
    now = utcnow()
    rid = acc.reserve("text_generation", 60, now + timedelta(minutes=5), SYSTEM, now)
    assert (acc.balance, acc.held, acc.available) == (100, 60, 40)
    with pytest.raises(InsufficientCredits):
        acc.deduct(quote(IMAGE, 9), NO_COST, SYSTEM, now)  # 45 > 40
    acc.capture(rid, quote(TEXT, 10_000), NO_COST, SYSTEM, now)  # 20 credits
    assert (acc.balance, acc.held, acc.available) == (80, 0, 80)


def test_capture_more_than_held_is_refused() -> None:
    acc = account(100)
    now = utcnow()
    rid = acc.reserve("text_generation", 2, now + timedelta(minutes=5), SYSTEM, now)
    with pytest.raises(InvalidCommand, match="exceeds"):
        acc.capture(rid, quote(TEXT, 5_000), NO_COST, SYSTEM, now)


def test_capture_twice_and_capture_after_release() -> None:
    acc = account(100)
    now = utcnow()
    rid = acc.reserve("image_generation", 5, now + timedelta(minutes=5), SYSTEM, now)
    acc.capture(rid, quote(IMAGE, 1), NO_COST, SYSTEM, now)
    with pytest.raises(UnknownReservation):
        acc.capture(rid, quote(IMAGE, 1), NO_COST, SYSTEM, now)
    rid2 = acc.reserve("image_generation", 5, now + timedelta(minutes=5), SYSTEM, now)
    acc.release(rid2, SYSTEM, now)
    with pytest.raises(UnknownReservation):
        acc.release(rid2, SYSTEM, now)
    assert (acc.balance, acc.held) == (95, 0)


def test_expired_hold_cannot_be_captured_and_is_swept() -> None:
    acc = account(100)
    now = utcnow()
    rid = acc.reserve("image_generation", 5, now + timedelta(seconds=1), SYSTEM, now)
    later = now + timedelta(seconds=2)
    with pytest.raises(ReservationExpired):
        acc.capture(rid, quote(IMAGE, 1), NO_COST, SYSTEM, later)
    assert [h["reservation_id"] for h in acc.expire_holds(later, SYSTEM)] == [rid]
    assert (acc.balance, acc.held) == (100, 0)


def test_refund_never_exceeds_the_charge() -> None:
    acc = account(100)
    now = utcnow()
    charge_id = acc.deduct(quote(IMAGE, 2), NO_COST, SYSTEM, now)
    draws = acc.collect_events()[-1].draws
    ref = ChargeRef(charge_id, 10, draws)
    acc.refund(ref, 4, "bad image", SYSTEM, now)
    with pytest.raises(RefundExceedsCharge):
        acc.refund(ref, 7, "again", SYSTEM, now)
    acc.refund(ref, 6, "rest", SYSTEM, now)
    assert acc.balance == 100


def test_burn_order_grants_before_purchases_and_breakage_on_expiry() -> None:
    now = utcnow()
    acc = account(100)  # purchased, no expiry
    acc.grant(50, "promo", SYSTEM, now)
    acc.deduct(Quote("x", 120, 120, Decimal("0.01"), 1), NO_COST, SYSTEM, now)
    event = acc.collect_events()[-1]
    assert event.draws == [["lot-3", 50], ["lot-2", 70]]

    acc2 = account(0)
    acc2.grant(30, "trial", SYSTEM, now, expires_at=now + timedelta(days=1))
    acc2.grant(30, "promo", SYSTEM, now)
    acc2.deduct(Quote("x", 10, 10, Decimal("0.01"), 1), NO_COST, SYSTEM, now)
    assert acc2.collect_events()[-1].draws == [["lot-2", 10]]  # earliest expiry first
    acc2.expire_lots(now + timedelta(days=2), SYSTEM)
    expired = acc2.collect_events()[-1]
    assert isinstance(expired, CreditAccount.LotExpired)
    assert (expired.lot_id, expired.credits, acc2.balance) == ("lot-2", 20, 30)


def test_expiry_never_breaks_a_hold() -> None:
    now = utcnow()
    acc = account(0)
    acc.grant(50, "trial", SYSTEM, now, expires_at=now + timedelta(hours=1))
    rid = acc.reserve("text_generation", 40, now + timedelta(hours=2), SYSTEM, now)
    later = now + timedelta(hours=1, minutes=1)
    acc.expire_lots(later, SYSTEM)
    assert (acc.balance, acc.held) == (40, 40)  # 10 broke, 40 stay pledged
    acc.capture(rid, Quote("text_generation", 0, 40, Decimal("0.01"), 1), NO_COST, SYSTEM,
                later)
    assert (acc.balance, acc.held) == (0, 0)


def test_adjustments_are_signed_and_cannot_overdraw() -> None:
    acc = account(10)
    now = utcnow()
    acc.adjust(5, "goodwill", SYSTEM, now)
    acc.adjust(-12, "correction", SYSTEM, now)
    assert acc.balance == 3
    with pytest.raises(InsufficientCredits):
        acc.adjust(-4, "too much", SYSTEM, now)
    with pytest.raises(InvalidCommand):
        acc.adjust(0, "nothing", SYSTEM, now)


@pytest.mark.parametrize("credits", [0, -1, True, 2.5, "3"])
def test_credits_must_be_a_positive_int(credits: object) -> None:
    with pytest.raises(InvalidCommand) as err:
        account().grant(credits, "x", SYSTEM, utcnow())  # type: ignore[arg-type]
    assert err.value.field == "credits"


def test_purchase_rejects_float_money() -> None:
    with pytest.raises(InvalidCommand) as err:
        account().purchase(10, 0.2, "p", SYSTEM, utcnow())  # type: ignore[arg-type]
    assert err.value.field == "amount_usd"
