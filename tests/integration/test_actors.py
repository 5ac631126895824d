"""Every event names its actor (key id and role) and a request: the `ledger` fixture
checks it after each test (tests/conftest.py); here, that this check finds an event
that does not, and that an actor cannot be made without a request id."""

from __future__ import annotations

import pytest
from eventsourcing.domain import Aggregate

from ledger.config import Settings
from ledger.domain.base import SYSTEM, Actor
from ledger.service import Ledger
from tests.conftest import events_without_actor


class Anonymous(Aggregate):
    """An aggregate outside the ledger's base class: its events name nobody."""


def test_the_fixture_check_finds_an_event_without_an_actor(settings: Settings) -> None:
    ledger = Ledger(settings)  # not the `ledger` fixture: its own check would fail here
    try:
        ledger.seed()
        assert events_without_actor(ledger.store) == []
        stray = Anonymous()
        [recording] = ledger.store.save(stray)
        assert events_without_actor(ledger.store) == [
            f"{recording.notification.id} {recording.notification.topic}"]
    finally:
        ledger.close()


def test_every_actor_names_a_request() -> None:
    cli = Actor(id="cli", role="platform_admin")
    assert cli.request_id
    assert cli.request_id != Actor("cli", "platform_admin").request_id
    assert Actor("k1", "service", "").request_id  # empty: a fresh one
    assert Actor("k1", "service", "req-7").request_id == "req-7"
    assert SYSTEM.request_id
    for id_, role in (("", "service"), ("k1", "")):
        with pytest.raises(ValueError, match="an id and a role"):
            Actor(id_, role)
