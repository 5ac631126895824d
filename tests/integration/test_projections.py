"""The projections on SQLite and PostgreSQL: exactly once, resumable, rebuildable, verifiable."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from eventsourcing.persistence import (
    IntegrityError,
    OperationalError,
    Tracking,
    TrackingRecorder,
)

from ledger.config import Settings
from ledger.credits import account_key
from ledger.domain.base import SYSTEM, utcnow
from ledger.domain.credits import ProviderCharge
from ledger.service import Ledger
from projections.base import APPLICATION
from projections.runner import Runner
from projections.service import NAMES, Projections
from projections.tables import Changes
from projections.verify import verify

DALLE = ProviderCharge(model_id="dall-e-3", provider="openai", cost_usd=Decimal("0.040"),
                       images=1)
MINI = ProviderCharge(model_id="gpt-4o-mini", provider="openai", cost_usd=Decimal("0.0011"),
                      input_tokens=3000, output_tokens=1000)


def history(ledger: Ledger, accounts: tuple[str, ...] = ("acme", "globex")) -> int:
    """Every kind of credit event, on each account; the position of the last."""
    c = ledger.credits
    for account in accounts:
        c.purchase(account, 100, Decimal("2.00"), f"pay-{account}", SYSTEM)
        c.grant(account, 20, "welcome", SYSTEM)
        image = c.deduct(account, c.price("image_generation", units=1), DALLE, SYSTEM)
        c.deduct(account, c.price("text_generation", units=4000), MINI, SYSTEM)
        hold = c.reserve(account, "text_generation", 30, SYSTEM).value.id
        c.capture(account, hold, lambda op: c.price(op, units=2000), MINI, SYSTEM)
        other = c.reserve(account, "image_generation", 10, SYSTEM).value.id
        c.release(account, other, SYSTEM)
        c.refund(account, image.value.id, 2, "one image was blank", SYSTEM)
        c.adjust(account, -3, "correction", SYSTEM)
    return ledger.store.head()


def snapshots(projections: Projections) -> dict[str, Any]:
    return {name: p.view.snapshot() for name, p in projections.projections.items()}


@pytest.fixture
def projections(ledger: Ledger, settings: Settings) -> Projections:
    return Projections(ledger.store, settings)


def test_a_view_is_a_tracking_recorder_that_refuses_what_it_has_applied(
        projections: Projections) -> None:
    view = projections.balances
    assert isinstance(view, TrackingRecorder)
    assert view.max_tracking_id(APPLICATION) is None
    assert view.position() == 0
    row = {"account_id": "acme", "balance": 5, "version": 2, "position": 4,
           "updated_at": utcnow()}

    def changes() -> Changes:
        c = Changes()
        c.add(view.tables[0], view.tables[0].row(**row))
        return c

    view.apply(changes(), after=0, to=4)
    view.apply(changes(), after=4, to=9)
    assert (view.position(), view.get("acme").balance) == (9, 10)  # type: ignore[union-attr]

    with pytest.raises(IntegrityError):  # a batch from a position the view has left
        view.apply(changes(), after=4, to=12)
    with pytest.raises(IntegrityError):  # the library's form: not beyond the position
        view.apply(changes(), after=None, to=9)
    assert (view.position(), view.get("acme").balance) == (9, 10)  # type: ignore[union-attr]
    view.apply(changes(), after=None, to=10)
    assert view.get("acme").balance == 15  # type: ignore[union-attr]


def test_redelivered_events_change_no_figure(ledger: Ledger, projections: Projections) -> None:
    head = history(ledger)
    assert projections.catch_up() == head
    before = snapshots(projections)
    notifications = ledger.store.recorder.select_notifications(1, head)

    # The library's entry point, one event at a time: every one is refused.
    for projection in projections.projections.values():
        for n in notifications[-5:]:
            event = ledger.store.mapper.to_domain_event(n)
            with pytest.raises(IntegrityError):
                projection.process_event(event, Tracking(APPLICATION, n.id))

    # A runner that believes the views are behind delivers the whole log again.
    stale = Runner(ledger.store, list(projections.projections.values()))
    stale.positions = dict.fromkeys(NAMES, 0)
    with pytest.raises(IntegrityError):
        stale.process(notifications)

    assert snapshots(projections) == before
    assert projections.catch_up() == 0
    assert verify(projections).ok


class Killed(BaseException):
    """The worker dies here, in the middle of a view's transaction."""


def test_a_runner_killed_mid_stream_resumes_and_equals_a_rebuild(
        ledger: Ledger, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    head = history(ledger, accounts=("a", "b", "c", "d"))
    first = Projections(ledger.store, settings)
    first.runner.page_size = 7
    usage = first.usage
    calls = 0
    original = type(usage).insert_rows

    def dies_on_the_third_page(c: Any, t: Any, params: Any) -> None:
        nonlocal calls
        calls += 1
        original(usage, c, t, params)  # the rows are written, the transaction is open...
        if calls == 3:
            raise Killed

    monkeypatch.setattr(usage, "insert_rows", dies_on_the_third_page)
    with pytest.raises(Killed):
        first.catch_up()
    stopped = first.positions()
    assert 0 < stopped["usage"] < head  # mid-stream: its last transaction rolled back

    second = Projections(ledger.store, settings)  # a new worker on the same database
    assert second.positions() == stopped
    second.catch_up()
    resumed = snapshots(second)
    assert {s.position for s in resumed.values()} == {head}
    second.rebuild()
    assert snapshots(second) == resumed
    assert verify(second).ok


def test_a_refusal_that_is_not_a_move_is_raised(ledger: Ledger,
                                                projections: Projections) -> None:
    history(ledger, accounts=("acme",))
    projections.catch_up()
    version = ledger.store.load(account_key("acme")).version
    view = projections.transactions
    with view.writing() as c:  # a row squatting the key of the next transaction
        c.execute(view.sql("INSERT INTO {proj_transactions} (account_id, version, position, "
                           "type, credits, balance_delta, reserved_delta, time, actor_id, "
                           "actor_role) SELECT 'acme', ?, 0, 'x', 0, 0, 0, time, 'x', 'x' "
                           "FROM {proj_transactions} WHERE version = 2"), [version + 1])
    ledger.credits.grant("acme", 1, "one more", SYSTEM)
    with pytest.raises(IntegrityError):
        projections.catch_up()
    assert projections.transactions.position() < ledger.store.head()
    assert projections.balances.position() == ledger.store.head()


def test_a_rebuild_beside_a_running_projector(ledger: Ledger, settings: Settings,
                                              projections: Projections) -> None:
    history(ledger)
    projections.start()
    writes = threading.Thread(target=history, args=(ledger, ("c", "d", "e")))
    try:
        writes.start()
        Projections(ledger.store, settings).rebuild(["usage", "balances"])
        writes.join()
        assert projections.wait(ledger.store.head(), timeout=10)
    finally:
        projections.stop()
    followed = snapshots(projections)
    projections.rebuild()
    assert snapshots(projections) == followed
    assert verify(projections).ok


def test_rebuild_gives_the_same_figures(ledger: Ledger, projections: Projections) -> None:
    history(ledger)
    projections.catch_up()
    before = snapshots(projections)
    report = projections.revenue.report(group_by=["account", "model"])
    rebuilt = projections.rebuild()
    assert rebuilt.events == ledger.store.head()
    assert rebuilt.names == NAMES
    assert snapshots(projections) == before
    assert projections.rebuild(["revenue"]).names == ("revenue",)
    assert projections.revenue.report(group_by=["account", "model"]) == report


def test_verify_is_clean_and_names_an_altered_row(ledger: Ledger,
                                                  projections: Projections) -> None:
    history(ledger)
    projections.catch_up()
    assert verify(projections).differences == []

    usage = projections.usage
    with usage.writing() as c:
        c.execute(usage.sql("UPDATE {proj_usage} SET credits_used = 7 "
                            "WHERE kind = 'charge' AND model_id = 'dall-e-3' "
                            "AND account_id = 'acme'"))
    balances = projections.balances
    with balances.writing() as c:
        c.execute(balances.sql("DELETE FROM {proj_balances} WHERE account_id = 'globex'"))

    found = {(d.view, d.key.split(" ")[0], d.field, d.expected, d.found)
             for d in verify(projections).differences}
    altered = next(f for f in found if f[0] == "usage" and f[2] == "credits_used"
                   and f[1].startswith("position="))
    assert altered[3:] == (5, 7)
    assert ("usage", "total", "credits_used", 2 * (5 + 8 + 4 - 2), 2 * (5 + 8 + 4 - 2) + 2
            ) in found
    assert ("balances", "account_id=globex", None, "a row", None) in found
    assert ("balances", "account_id=globex", "balance", 102, None) in found  # the aggregate


def test_a_running_projector_follows_the_log(ledger: Ledger, projections: Projections) -> None:
    projections.start()
    try:
        outcome = ledger.credits.purchase("acme", 50, Decimal("1.00"), "p", SYSTEM)
        assert projections.wait(outcome.position, timeout=5)
        assert projections.balances.get("acme").balance == 50  # type: ignore[union-attr]
        position = history(ledger, accounts=("acme",))
        assert projections.wait(position, timeout=5)
        status = projections.status()
        assert status["runner"] == "running"
        assert {p["lag"] for p in status["projections"]} == {0}
        assert projections.balances.get("acme").balance == 50 + 102  # type: ignore[union-attr]
    finally:
        projections.stop()
    assert projections.state == "stopped"
    assert not projections.wait(ledger.store.head() + 1, timeout=0.05)


def test_the_runner_survives_a_database_failure(ledger: Ledger, projections: Projections,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    process = projections.runner.process
    failures = []

    def fails_once(notifications: Any) -> None:
        if not failures:
            failures.append(len(notifications))
            raise OperationalError("server closed the connection unexpectedly")
        process(notifications)

    monkeypatch.setattr(projections.runner, "process", fails_once)
    projections.start()
    try:
        position = ledger.credits.grant("acme", 5, "hello", SYSTEM).position
        assert projections.wait(position, timeout=5)
        assert failures
        assert "OperationalError: server closed" in str(projections.status()["last_error"])
        assert projections.balances.get("acme").balance == 5  # type: ignore[union-attr]
    finally:
        projections.stop()


def test_one_runner_leads_and_another_takes_over(ledger: Ledger, settings: Settings,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Projections, "standby_s", 0.05)
    first, second = Projections(ledger.store, settings), Projections(ledger.store, settings)
    first.start()
    assert _eventually(lambda: first.state == "running")
    second.start()
    try:
        assert _eventually(lambda: second.state == "standby")
        first.stop()
        assert _eventually(lambda: second.state == "running")
        position = ledger.credits.grant("acme", 5, "hello", SYSTEM).position
        assert second.wait(position, timeout=5)
    finally:
        first.stop()
        second.stop()


def test_credit_lots_split_revenue_into_paid_promotional_and_breakage(
        ledger: Ledger, projections: Projections) -> None:
    c = ledger.credits
    soon = utcnow() + timedelta(seconds=0.3)
    c.purchase("acme", 100, Decimal("3.00"), "a", SYSTEM)  # 0.03 a credit, no expiry
    c.purchase("acme", 10, Decimal("1.00"), "b", SYSTEM, expires_at=soon + timedelta(
        seconds=0.1))  # 0.10 a credit, expires unused
    c.grant("acme", 10, "welcome", SYSTEM, expires_at=soon)
    c.deduct("acme", c.price("image_generation", units=1), DALLE, SYSTEM)  # from the grant
    time.sleep(0.45)
    c.sweep("acme", SYSTEM)  # 5 granted and 10 paid credits expire
    c.deduct("acme", c.price("image_generation", units=2), DALLE, SYSTEM)  # from lot a
    projections.catch_up()

    total = projections.revenue.report().total
    assert total["charges"] == 2
    assert total["credits_used"] == 15
    assert total["revenue_usd"] == Decimal("0.30")  # list: 15 credits at 0.02
    assert total["recognized_revenue_usd"] == Decimal("0.30")  # 10 paid credits at 0.03
    assert total["promotional_credits"] == 5
    assert (total["breakage_credits"], total["breakage_usd"]) == (15, Decimal("1.00"))
    b = projections.balances.get("acme")
    assert b is not None
    assert (b.purchased, b.granted, b.used, b.expired, b.balance) == (110, 10, 15, 15, 90)
    assert b.purchased_usd == Decimal("4.00")
    assert verify(projections).ok


def test_report_groups_and_ranges(ledger: Ledger, projections: Projections) -> None:
    history(ledger)
    projections.catch_up()
    revenue = projections.revenue
    by_account = revenue.report(group_by=["account"])
    assert [r["account"] for r in by_account.rows] == ["acme", "globex"]
    assert by_account.rows[0]["credits_used"] == 5 + 8 + 4 - 2
    month = revenue.report(group_by=["month", "model"])
    assert {(r["month"], r["model"]) for r in month.rows} == {
        (utcnow().strftime("%Y-%m"), "dall-e-3"), (utcnow().strftime("%Y-%m"), "gpt-4o-mini")}
    assert month.total == by_account.total
    hour = utcnow().replace(minute=0, second=0, microsecond=0)
    assert revenue.report(since=hour - timedelta(hours=1),
                          until=hour + timedelta(hours=1)).total == month.total
    later = revenue.report(since=hour + timedelta(hours=1), group_by=["day"])
    assert later.rows == []
    assert later.total["revenue_usd"] == 0
    assert later.total["margin_pct"] is None
    assert revenue.report(group_by=["operation"], model_id="dall-e-3").rows[0][
        "operation"] == "image_generation"


def _eventually(check: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_waiting_readers_are_woken_by_the_runner(ledger: Ledger,
                                                 projections: Projections) -> None:
    projections.start()
    try:
        assert _eventually(lambda: projections.state == "running")
        woke: list[float] = []
        target = ledger.store.head() + 1

        def reader() -> None:
            started = time.monotonic()
            if projections.wait(target, ["balances"], timeout=5):
                woke.append(time.monotonic() - started)

        thread = threading.Thread(target=reader)
        thread.start()
        ledger.credits.grant("acme", 1, "ping", SYSTEM)
        thread.join()
        assert len(woke) == 1
        assert woke[0] < 1
    finally:
        projections.stop()
