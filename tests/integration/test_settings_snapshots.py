"""Settings and registry aggregates survive a snapshot: the state loaded from it equals
the state replayed from the events, on both backends."""

from __future__ import annotations

from ledger.domain.base import SYSTEM
from ledger.domain.models import AIModelConfig, ModelCatalog
from ledger.domain.settings import GlobalIntegrationSettings, Scope, SettingsDocument
from ledger.service import Ledger


def test_snapshots_round_trip(ledger: Ledger) -> None:
    service = ledger.settings_service
    service.put_global({"openai_api_key": "sk-snapshot-0123456789"}, SYSTEM)
    service.put_document(Scope.USER, "acme", "u1", "user_preferences",
                         {"notifications": {"email": False}}, SYSTEM)
    ledger.registry.change("gpt-4o", {"is_default": True}, SYSTEM)
    ids = [GlobalIntegrationSettings.create_id(), AIModelConfig.create_id("gpt-4o"),
           AIModelConfig.create_id("gpt-4.1"), ModelCatalog.create_id("text"),
           SettingsDocument.create_id(Scope.USER, "acme", "u1", "user_preferences")]
    replayed = [ledger.store.load(i) for i in ids]
    ledger.store.snapshot(replayed)
    other = Ledger(ledger.settings)
    try:
        for aggregate in replayed:
            assert other.store.snapshots is not None
            assert list(other.store.snapshots.get(aggregate.id))
            assert vars(other.store.load(aggregate.id)) == vars(aggregate)
    finally:
        other.close()
