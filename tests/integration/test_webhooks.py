"""Webhooks on SQLite and PostgreSQL, delivered over real HTTP to a receiver on
127.0.0.1 that checks signatures, with failures (500, timeout) and restarts between
attempts. Rounds of the worker are run here one by one (`tick()`), polling with a
deadline: nothing is timed."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from ledger.config import Settings
from ledger.domain.base import SYSTEM, Actor, recorded_at, utcnow
from ledger.domain.credits import ProviderCharge
from ledger.domain.webhooks import WebhookDelivery
from ledger.service import Ledger
from ledger.webhooks import PLATFORM
from projections.webhooks.worker import WebhookWorker
from tests.fakes.webhook_receiver import Receiver

ADMIN = Actor(id="test-admin", role="platform_admin")
DALLE = ProviderCharge(model_id="dall-e-3", provider="openai", cost_usd=Decimal("0.040"),
                       images=1)


@pytest.fixture
def fast(settings: Settings) -> Settings:
    """Short backoff and timeout: a retry is due at once, a hung receiver is given up
    on quickly."""
    return settings.model_copy(update={
        "webhooks_backoff_s": 0.01, "webhooks_backoff_max_s": 0.05,
        "webhooks_timeout_s": 0.5, "webhooks_max_attempts": 5, "webhooks_scan_s": 3600.0})


@contextmanager
def service(settings: Settings) -> Iterator[tuple[Ledger, WebhookWorker]]:
    """The service as one process runs it; leaving the block is its shutdown."""
    ledger = Ledger(settings)
    ledger.seed()
    worker = WebhookWorker(ledger, settings)
    try:
        yield ledger, worker
    finally:
        worker.close()
        ledger.close()


def rounds_until(worker: WebhookWorker, done: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "not done before the deadline"
        worker.tick()
        time.sleep(0.01)


def spend(ledger: Ledger, credits: int) -> None:
    c = ledger.credits
    c.deduct("acme", c.price("image_generation", credits=credits), DALLE, SYSTEM)


def deliveries(ledger: Ledger, worker: WebhookWorker) -> list[WebhookDelivery]:
    """Every delivery the worker's view knows of, as the log has it now."""
    found = [ledger.webhooks.delivery(row["delivery_id"]) for row in worker.view.deliveries()]
    return [d for d in found if d is not None]


def test_low_balance_delivers_one_signed_webhook_through_failures_and_restarts(
        fast: Settings) -> None:
    """The issue's Done-when: the balance falls below its threshold; the receiver
    answers 500, then hangs past the timeout, then accepts; the service restarts
    between the attempts. Exactly one delivery, three signed attempts of the same
    body and id, one accepted; later debits below the threshold tell nothing more."""
    with Receiver() as receiver:
        with service(fast) as (ledger, worker):
            sub = ledger.webhooks.subscribe("acme", receiver.url, ["low_balance"], ADMIN,
                                            low_balance_threshold=50).value
            receiver.secrets.append(ledger.webhooks.open_secret(sub.secret))
            receiver.plan = ["500", "timeout"]
            ledger.credits.purchase("acme", 100, Decimal("2.00"), "pi_1", SYSTEM)
            spend(ledger, 30)  # 70: above
            spend(ledger, 30)  # 40: crosses below 50
            rounds_until(worker, lambda: len(receiver.requests()) == 1)
            (d,) = deliveries(ledger, worker)
            assert (d.status, d.attempts) == ("retrying", 1)

        with service(fast) as (ledger, worker):  # restarted: the retry is still due
            spend(ledger, 5)  # 35: still below, nothing new
            rounds_until(worker, lambda: len(receiver.requests()) == 2)
            rounds_until(worker, lambda: deliveries(ledger, worker)[0].attempts == 2)

        with service(fast) as (ledger, worker):  # restarted again
            rounds_until(worker, lambda: deliveries(ledger, worker)[0].status == "delivered")
            for _ in range(3):  # more rounds send nothing more
                worker.tick(scan=True)
            (d,) = deliveries(ledger, worker)
            events = ledger.store.events_of(WebhookDelivery.create_id(d.delivery_id))

    got = receiver.requests()
    assert [r.answer for r in got] == ["500", "timeout", "ok"]
    assert all(r.verified for r in got)
    assert {r.delivery_id for r in got} == {d.delivery_id}
    assert len({r.body for r in got}) == 1  # the same bytes on every attempt
    payload = got[0].payload
    assert payload["id"] == d.delivery_id
    assert (payload["type"], payload["account_id"]) == ("low_balance", "acme")
    assert payload["data"] == {"balance": 40, "previous_balance": 70, "threshold": 50}
    assert [type(e).__name__ for e in events] == [
        "Scheduled", "AttemptFailed", "AttemptFailed", "Delivered"]
    assert [getattr(e, "error", None) for e in events[1:]] == ["http_500", "timeout", None]


def test_low_balance_rearms_and_other_occurrences_reach_their_subscribers(
        fast: Settings) -> None:
    with Receiver() as receiver, service(fast) as (ledger, worker):
        w = ledger.webhooks
        own = w.subscribe("acme", receiver.url, ["low_balance", "balance_exhausted"], ADMIN,
                          low_balance_threshold=10).value
        platform = w.subscribe(None, receiver.url, ["lot_expired", "hold_expired"],
                               ADMIN).value
        other = w.subscribe("globex", receiver.url, ["low_balance"], ADMIN,
                            low_balance_threshold=1000).value
        receiver.secrets += [w.open_secret(s.secret) for s in (own, platform, other)]
        c = ledger.credits
        start = utcnow() - timedelta(hours=2)
        with recorded_at(start):
            c.purchase("acme", 20, Decimal("0.40"), "pi_1", SYSTEM)
            c.grant("acme", 5, "trial", SYSTEM, expires_at=start + timedelta(hours=1))
            c.reserve("acme", "image_generation", 3, SYSTEM, expires_in_s=60)
        c.sweep("acme", SYSTEM)  # the hold expired unsettled; the trial lot's 5 expire
        spend(ledger, 18)  # 20 -> 2: crosses below 10
        spend(ledger, 1)  # 1: still below, nothing
        c.purchase("acme", 20, Decimal("0.40"), "pi_2", SYSTEM)  # 21: re-armed
        spend(ledger, 21)  # 0: below again, and exhausted
        rounds_until(worker, lambda: len(receiver.requests()) == 5)
        for _ in range(2):
            worker.tick(scan=True)

        got = receiver.requests()
        assert all(r.verified and r.answer == "ok" for r in got)
        kinds = sorted((r.payload["type"], r.payload["data"].get("balance")) for r in got)
        assert kinds == [("balance_exhausted", 0), ("hold_expired", None),
                         ("lot_expired", None), ("low_balance", 0), ("low_balance", 2)]
        assert len({r.delivery_id for r in got}) == 5
        assert all(r.payload["account_id"] == "acme" for r in got)  # globex heard nothing

        # a deleted subscription hears nothing more
        w.unsubscribe(own.subscription_id, ADMIN)
        c.purchase("acme", 50, Decimal("1.00"), "pi_3", SYSTEM)
        spend(ledger, 50)
        for _ in range(3):
            worker.tick()
        assert len(receiver.requests()) == 5
        assert [s.subscription_id for s in w.subscriptions(PLATFORM)] == [
            platform.subscription_id]


def test_a_receiver_that_keeps_failing_is_given_up_after_the_last_attempt(
        fast: Settings) -> None:
    with Receiver() as receiver, service(fast) as (ledger, worker):
        sub = ledger.webhooks.subscribe("acme", receiver.url, ["balance_exhausted"],
                                        ADMIN).value
        receiver.secrets.append(ledger.webhooks.open_secret(sub.secret))
        receiver.plan = ["500"] * 10
        ledger.credits.purchase("acme", 10, Decimal("0.20"), "pi_1", SYSTEM)
        spend(ledger, 10)
        rounds_until(worker, lambda: bool(deliveries(ledger, worker))
                     and deliveries(ledger, worker)[0].status == "gave_up")
        for _ in range(3):
            worker.tick()
        assert len(receiver.requests()) == fast.webhooks_max_attempts
        (d,) = deliveries(ledger, worker)
        assert d.attempts == fast.webhooks_max_attempts


def test_lot_expiring_is_told_once_per_lot_and_the_scan_expires_due_lots(
        fast: Settings) -> None:
    with Receiver() as receiver, service(fast) as (ledger, worker):
        sub = ledger.webhooks.subscribe(None, receiver.url, ["lot_expiring", "lot_expired"],
                                        ADMIN, lot_expiring_days=7).value
        receiver.secrets.append(ledger.webhooks.open_secret(sub.secret))
        c = ledger.credits
        soon, late = utcnow() + timedelta(days=3), utcnow() + timedelta(days=30)
        lot = c.grant("acme", 10, "trial", SYSTEM, expires_at=soon).value.id
        c.grant("acme", 10, "later", SYSTEM, expires_at=late)
        start = utcnow() - timedelta(hours=2)
        with recorded_at(start):
            c.grant("globex", 4, "old", SYSTEM, expires_at=start + timedelta(hours=1))
        from projections.service import Projections

        projections = Projections(ledger.store, ledger.settings)
        projections.catch_up()  # the lots view the scan reads
        worker.tick(scan=True)  # globex's lot expires: its breakage is recorded
        projections.catch_up()
        rounds_until(worker, lambda: len(receiver.requests()) == 2)
        for _ in range(3):
            worker.tick(scan=True)
        got = sorted((r.payload["type"], r.payload["account_id"], r.payload["data"]["lot_id"])
                     for r in receiver.requests())
        assert got == [("lot_expired", "globex", "lot-2"), ("lot_expiring", "acme", lot)]
        assert all(r.verified for r in receiver.requests())


def test_a_failed_provider_call_is_told(fast: Settings) -> None:
    from ledger.domain.calls import ProviderCall

    with Receiver() as receiver, service(fast) as (ledger, worker):
        sub = ledger.webhooks.subscribe("acme", receiver.url, ["provider_call_failed"],
                                        ADMIN).value
        receiver.secrets.append(ledger.webhooks.open_secret(sub.secret))

        def run(batch: Any) -> None:
            call = ProviderCall.request(
                SYSTEM, call_id="call-1", account_id="acme", user_id=None, kind="text",
                operation="text_generation", provider="openai", model_id="gpt-4o-mini",
                params={}, prompt_chars=5, reservation_id="rsv-2", held_credits=3)
            call.fail("server_error", "the provider answered 500", 502, 12, SYSTEM)
            batch.add(call)
        ledger.pipeline.submit(ProviderCall.create_id("call-1"), run, SYSTEM)
        rounds_until(worker, lambda: len(receiver.requests()) == 1)
        (got,) = receiver.requests()
        assert got.verified
        assert got.payload["type"] == "provider_call_failed"
        assert got.payload["data"] == {
            "call_id": "call-1", "operation": "text_generation", "provider": "openai",
            "model_id": "gpt-4o-mini", "error_kind": "server_error", "http_status": 502}
