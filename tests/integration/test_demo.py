"""`ledger demo` and the clock it backfills with, on both backends."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from ledger.cli import main
from ledger.config import Settings
from ledger.credits import account_key
from ledger.demo import PROFILES, Demo, DemoExists
from ledger.domain.base import SYSTEM, recorded_at, utcnow
from ledger.domain.credits import ProviderCharge
from ledger.service import Ledger
from projections.service import Projections
from projections.verify import verify
from tests.integration.test_projections_cli import env  # noqa: F401  (a fixture)

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
