"""Credit lots on SQLite and PostgreSQL: burn order, the revenue split, expiry as
breakage by the sweep, and the lots view behind GET /accounts/{id}/credits/lots."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient

from ledger.cli import main
from ledger.config import Settings
from ledger.credits import account_key
from ledger.domain.base import SYSTEM, recorded_at, utcnow
from ledger.domain.credits import CreditAccount, ProviderCharge
from ledger.service import Ledger
from projections.lots.sweep import expire_due_lots
from projections.service import Projections
from projections.verify import verify
from tests.integration.test_projections_cli import env  # noqa: F401 (a fixture)

DALLE = ProviderCharge(model_id="dall-e-3", provider="openai", cost_usd=Decimal("0.040"),
                       images=1)


@pytest.fixture
def projections(ledger: Ledger, settings: Settings) -> Projections:
    return Projections(ledger.store, settings)


def test_buy_100_grant_50_spend_120_then_the_rest_expires(ledger: Ledger,
                                                          projections: Projections) -> None:
    """The issue's Done-when: 100 bought at $0.02 and 50 granted, both valid one day;
    120 spent draws the 50 granted first, then 70 purchased; recognized revenue is
    70 x 0.02 = 1.40, promotional usage 50 credits; when the day is over the sweep
    records the 30 purchased credits left as breakage."""
    c = ledger.credits
    start = utcnow() - timedelta(days=3)
    expiry = start + timedelta(days=1)
    with recorded_at(start):
        lot_paid = c.purchase("acme", 100, Decimal("2.00"), "pay-1", SYSTEM,
                              expires_at=expiry).value.id
    with recorded_at(start + timedelta(minutes=1)):
        lot_promo = c.grant("acme", 50, "promotion", SYSTEM, expires_at=expiry).value.id
    with recorded_at(start + timedelta(minutes=2)):
        charge = c.deduct("acme", c.price("image_generation", credits=120), DALLE,
                          SYSTEM).value.id

    events = ledger.store.events_of(account_key("acme"))
    deducted = next(e for e in events if getattr(e, "charge_id", None) == charge)
    assert deducted.draws == [[lot_promo, 50], [lot_paid, 70]]  # granted, then purchased

    projections.catch_up()
    assert expire_due_lots(ledger.credits, projections.lots) == ["acme"]
    expired = [e for e in ledger.store.events_of(account_key("acme"))
               if isinstance(e, CreditAccount.LotExpired)]
    assert [(e.lot_id, e.credits) for e in expired] == [(lot_paid, 30)]

    projections.catch_up()
    total = projections.revenue.report().total
    assert total["credits_used"] == 120
    assert total["revenue_usd"] == Decimal("2.40")  # list: 120 credits at 0.02
    assert total["recognized_revenue_usd"] == Decimal("1.40")  # 70 paid credits at 0.02
    assert total["promotional_credits"] == 50
    assert (total["breakage_credits"], total["breakage_usd"]) == (30, Decimal("0.60"))

    lots = {lot["lot_id"]: lot for lot in projections.lots.lots("acme", utcnow(),
                                                                 open_only=False)}
    paid, promo = lots[lot_paid], lots[lot_promo]
    assert (paid["credits"], paid["debited"], paid["expired"], paid["remaining"]) == (
        100, 70, 30, 0)
    assert (paid["source"], paid["price_per_credit_usd"], paid["status"]) == (
        "purchase", Decimal("0.02"), "expired")
    assert (promo["credits"], promo["debited"], promo["remaining"], promo["status"]) == (
        50, 50, 0, "used")
    assert projections.lots.lots("acme", utcnow()) == []  # nothing open
    balance = projections.balances.get("acme")
    assert balance is not None
    assert (balance.balance, balance.used, balance.expired) == (0, 120, 30)
    assert expire_due_lots(ledger.credits, projections.lots) == []  # nothing due any more
    assert verify(projections).ok


def test_lots_follow_refunds_and_adjustments_and_show_in_burn_order(
        ledger: Ledger, projections: Projections) -> None:
    c = ledger.credits
    later = utcnow() + timedelta(days=30)
    paid = c.purchase("acme", 10, Decimal("1.00"), "p", SYSTEM).value.id
    trial = c.grant("acme", 5, "trial", SYSTEM, expires_at=later).value.id
    bonus = c.adjust("acme", 3, "goodwill", SYSTEM).value.id
    charge = c.deduct("acme", c.price("image_generation", credits=7), DALLE, SYSTEM).value.id
    c.refund("acme", charge, 4, "blank image", SYSTEM)
    projections.catch_up()

    lots = projections.lots.lots("acme", utcnow())
    # expiring grant first, then the adjustment (a grant-like lot without expiry), then
    # the purchase; the charge drew 5 from the trial and 2 from the adjustment, the
    # refund gave 2 back to the adjustment and 2 to the trial (last drawn first)
    assert [(lot["lot_id"], lot["remaining"]) for lot in lots] == [
        (trial, 2), (bonus, 3), (paid, 10)]
    assert [lot["source"] for lot in lots] == ["grant", "adjustment", "purchase"]
    assert lots[0]["expires_at"] == later
    assert sum(lot["remaining"] for lot in lots) == projections.balances.get(  # type: ignore[union-attr]
        "acme").balance
    assert verify(projections).ok


def test_lots_endpoint_and_the_balance_show_lots(client: TestClient) -> None:
    base = "/api/v1/accounts/acme/credits"
    expires = (utcnow() + timedelta(days=7)).isoformat()
    assert client.post(f"{base}/purchases", json={"credits": 100, "amount_usd": "2.00",
                                                  "payment_ref": "pi_1"}).status_code == 201
    assert client.post(f"{base}/grants", json={"credits": 20, "reason": "welcome",
                                               "expires_at": expires}).status_code == 201
    assert client.post(f"{base}/deductions", json={
        "operation": "image_generation", "units": 1}).status_code == 201

    got = client.get(f"{base}/lots")
    assert got.status_code == 200, got.text
    body = got.json()
    assert [(lot["source"], lot["remaining"]) for lot in body["data"]] == [
        ("grant", 15), ("purchase", 100)]
    purchase = body["data"][1]
    assert purchase["price_per_credit_usd"] == "0.020000"
    assert purchase["payment_ref"] == "pi_1"
    assert body["data"][0]["expires_at"] is not None
    assert body["data"][0]["status"] == "open"

    balance = client.get(f"{base}/balance").json()
    assert balance["balance"] == 115
    assert [lot["remaining"] for lot in balance["lots"]] == [15, 100]

    other = client.get("/api/v1/accounts/nobody/credits/lots")
    assert other.status_code == 200
    assert other.json()["data"] == []


@pytest.mark.usefixtures("env")
def test_ledger_sweep_expires_due_lots(ledger: Ledger,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    """`ledger sweep` (cron) records the breakage of lots past their expiry."""
    start = utcnow() - timedelta(hours=2)
    with recorded_at(start):
        lot = ledger.credits.grant("acme", 7, "trial", SYSTEM,
                                   expires_at=start + timedelta(hours=1)).value.id
    assert main(["sweep"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["expired_lots_of"] == ["acme"]
    ledger.pipeline.evict(account_key("acme"))
    expired = ledger.store.events_of(account_key("acme"))[-1]
    assert isinstance(expired, CreditAccount.LotExpired)
    assert (expired.lot_id, expired.credits) == (lot, 7)
