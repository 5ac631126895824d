"""`ledger demo`, its metered provider calls and the clock it backfills with, on both
backends."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from ledger.call_log import recent_calls
from ledger.cli import main
from ledger.config import Settings
from ledger.credits import account_key
from ledger.demo import PROFILES, Demo, DemoExists
from ledger.domain.base import SYSTEM, recorded_at, utcnow
from ledger.domain.credits import CreditAccount, ProviderCharge
from ledger.service import Ledger
from projections.service import Projections
from projections.verify import verify
from tests.conftest import ADMIN_TOKEN
from tests.integration.test_projections_cli import env  # noqa: F401  (a fixture)

API = "/api/v1"
T = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def test_recorded_at_reaches_the_writer_thread(ledger: Ledger) -> None:
    with recorded_at(T):
        ledger.credits.purchase("acme", 100, Decimal("2.00"), "pi_1", SYSTEM)
        with recorded_at(T + timedelta(hours=1)):
            ledger.credits.grant("acme", 10, "welcome", SYSTEM)
        ledger.credits.deduct("acme", ledger.credits.price("image_generation", units=1),
                              ProviderCharge(), SYSTEM)
    before = utcnow()
    ledger.credits.grant("acme", 5, "now", SYSTEM)
    events = ledger.store.events_of(account_key("acme"))
    times = [e.timestamp for e in events]
    assert times[:4] == [T, T, T + timedelta(hours=1), T]  # opened, bought, granted, charged
    assert times[4] >= before  # outside the context: the wall clock again


def test_recorded_at_needs_an_aware_time() -> None:
    with pytest.raises(ValueError, match="aware"), recorded_at(T.replace(tzinfo=None)):
        pass


def test_demo_spreads_a_month_that_the_views_add_up(ledger: Ledger,
                                                    settings: Settings) -> None:
    now = utcnow()
    demo = Demo(ledger, days=6, scale=0.3, now=now)
    seen: list[tuple[int, int]] = []
    summary = demo.run(progress=lambda done, total: seen.append((done, total)))

    assert summary.accounts == len(PROFILES)
    assert summary.charges > 100
    assert summary.purchases >= len(PROFILES)
    assert summary.holds == 3
    assert seen[-1][0] == seen[-1][1]  # the progress ends at its total
    assert [d for d, _ in seen] == list(range(1, len(seen) + 1))

    events = [e for p in PROFILES for e in ledger.store.events_of(account_key(p.name))]
    days = {e.timestamp.date() for e in events}
    assert len(days) == 7  # the start day, five more and today
    assert min(e.timestamp for e in events) >= demo.start
    assert max(e.timestamp for e in events) <= now
    for p in PROFILES:  # each account's history is in time order
        times = [e.timestamp for e in ledger.store.events_of(account_key(p.name))]
        assert times == sorted(times)

    projections = Projections(ledger.store, settings)
    projections.catch_up()
    total = projections.revenue.report(since=None, until=None, group_by=[]).total
    refunded = total["credits_refunded"]
    assert total["charges"] == summary.charges
    assert total["credits_used"] + refunded == summary.credits_used
    assert total["cost_usd"] == summary.cost_usd
    by_day = projections.revenue.report(since=None, until=None, group_by=["day"]).rows
    assert len(by_day) >= 6
    assert verify(projections).ok

    with pytest.raises(DemoExists):
        Demo(ledger, days=2).plan()


def test_the_same_seed_gives_the_same_plan(ledger: Ledger) -> None:
    now = utcnow()
    a, b = Demo(ledger, days=3, now=now), Demo(ledger, days=3, now=now)
    assert a.plan() == b.plan()
    assert [s.at for s in sorted(a._queue)] == [s.at for s in sorted(b._queue)]


@pytest.mark.usefixtures("env")
def test_cli_demo(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--days", "2", "--scale", "0.2", "--prefix", "cli-"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["accounts"] == len(PROFILES)
    assert summary["charges"] > 0
    lines = captured.err.splitlines()  # not a terminal: plain lines, the last with the rate
    assert lines[-1].startswith("demo: ")
    assert "commands/s" in lines[-1]
    assert not any("\r" in line for line in lines)


def test_demo_calls_go_through_the_metered_flow(ledger: Ledger, settings: Settings) -> None:
    """Text and image usage are metered provider calls (the dashboard's calls panel):
    some fail and cost nothing, the revenue report's provider cost of text and images is
    what the succeeded calls cost, every event of a call carries its demo step's time,
    and latencies are the simulated providers' time, not the wall clock's."""
    now = utcnow()
    demo = Demo(ledger, days=5, scale=0.4, now=now)
    summary = demo.run()
    calls = recent_calls(ledger.store, limit=100_000)
    succeeded = [c for c in calls if c["status"] == "succeeded"]
    failed = [c for c in calls if c["status"] == "failed"]
    assert len(calls) == summary.calls == len(succeeded) + len(failed)
    assert len(failed) == summary.failed_calls > 0
    assert len(succeeded) > 10 * len(failed)
    assert {c["kind"] for c in succeeded} == {"text", "image"}
    assert {c["error_kind"] for c in failed} <= {"upstream_error", "timeout",
                                                  "malformed_response"}
    assert all(c["credits"] > 0 and c["cost_usd"] > 0 for c in succeeded)

    # failed calls charged nothing: their holds were released, no charge names them
    events = [e for p in PROFILES for e in ledger.store.events_of(account_key(p.name))]
    charged = {e.call_id for e in events if isinstance(e, CreditAccount.Charged)}
    released = {e.reservation_id for e in events
                if isinstance(e, CreditAccount.ReservationReleased)
                and e.reason == "provider_failed"}
    reserved = {e.call_id: e for e in events if isinstance(e, CreditAccount.CreditsReserved)}
    assert {c["call_id"] for c in succeeded} <= charged
    for e in events:  # a charge names the tokens of a text call, the images of an image call
        if isinstance(e, CreditAccount.Charged) and e.call_id is not None:
            text = e.operation == "text_generation"
            assert (e.input_tokens is not None, e.images is None) == (text, text)
    assert not {c["call_id"] for c in failed} & charged
    assert {reserved[c["call_id"]].reservation_id for c in failed} == released

    # a call's events carry its step's time, as do its account's hold and settlement
    for c in calls:
        assert demo.start <= c["time"] == c["settled_at"] == reserved[c["call_id"]].timestamp
        assert c["time"] < now
    assert len({c["time"].date() for c in calls}) >= 5
    # latency is the simulated clock's: it advanced by exactly the calls' latencies
    assert sum(c["latency_ms"] for c in calls) == demo.providers.clock.ms
    timeout_ms = settings.provider_timeout_s * (settings.provider_max_retries + 1) * 1000
    assert all(c["latency_ms"] >= timeout_ms for c in failed if c["error_kind"] == "timeout")

    projections = Projections(ledger.store, settings)
    projections.catch_up()
    rows = projections.revenue.report(since=None, until=None, group_by=["operation"]).rows
    by_operation = {r["operation"]: r for r in rows}
    metered = [by_operation["text_generation"], by_operation["image_generation"]]
    assert sum(r["cost_usd"] for r in metered) == sum(c["cost_usd"] for c in succeeded)
    assert sum(r["charges"] for r in metered) == len(succeeded)


def test_demo_calls_in_the_api(ledger: Ledger, settings: Settings) -> None:
    """What the dashboard's calls panel and revenue page read: /calls lists succeeded
    and failed calls (failed ones with no credits), and /reports/revenue's provider cost
    of text and images is the succeeded calls' provider costs (to the API's 6 decimals;
    the exact sums are compared in the test above)."""
    Demo(ledger, days=3, scale=0.4).run()
    head = ledger.store.head()
    with TestClient(create_app(settings, ledger)) as client:
        client.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        failed = client.get(f"{API}/calls", params={"status": "failed", "limit": 500})
        assert failed.status_code == 200, failed.text
        assert failed.json()["count"] > 0
        for row in failed.json()["data"]:
            assert row["credits"] is None
            assert row["cost_usd"] is None
            assert row["error_kind"] in ("upstream_error", "timeout", "malformed_response")
            assert row["http_status"] in (502, 504)
        succeeded = client.get(f"{API}/calls", params={"status": "succeeded", "limit": 500})
        assert succeeded.status_code == 200, succeeded.text
        rows = succeeded.json()["data"]
        assert 0 < len(rows) < 500  # every one of them
        report = client.get(f"{API}/reports/revenue", params={
            "group_by": "operation", "min_position": head})
        assert report.status_code == 200, report.text
    cost = {r["operation"]: Decimal(r["cost_usd"]) for r in report.json()["data"]}
    # the API shows money to 6 decimals: each call's cost and each sum is rounded once
    calls_cost = sum(Decimal(r["cost_usd"]) for r in rows)
    difference = abs(cost["text_generation"] + cost["image_generation"] - calls_cost)
    assert difference <= (len(rows) + 2) * Decimal("0.0000005")
