"""The composition root: builds the store, the pipeline and every service from Settings."""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from importlib import resources
from typing import Any

from ledger.ai import AIService, call_budget_s
from ledger.config import Settings
from ledger.costs import CostService
from ledger.credits import CostBook, CreditService
from ledger.domain.base import SYSTEM, Actor
from ledger.keys import KeyService
from ledger.pipeline import Pipeline
from ledger.providers import ProviderRegistry, build_providers
from ledger.registry import ModelRegistry
from ledger.settings import SettingsService
from ledger.store import LedgerStore
from ledger.sweeper import HoldSweeper
from ledger.webhooks import WebhookService

log = logging.getLogger(__name__)


def load_data(name: str) -> Any:
    return json.loads(resources.files("ledger.data").joinpath(name).read_text(),
                      parse_float=Decimal)


class Ledger:
    """Everything the API, the CLI and the tests talk to."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = LedgerStore(settings)
        self.pipeline = Pipeline(
            self.store,
            writers=settings.writers,
            max_batch=settings.max_batch,
            cache_size=settings.aggregate_cache_size,
            snapshot_interval=settings.snapshot_interval,
        )
        self.cost_book = CostBook(self.store)
        self.credits = CreditService(self.store, self.pipeline, self.cost_book,
                                     hold_ttl_s=settings.hold_ttl_s)
        self.costs = CostService(self.store, self.pipeline, self.cost_book)
        token = settings.bootstrap_admin_token
        self.keys = KeyService(self.store, self.pipeline,
                               token.get_secret_value() if token else None)
        self.registry = ModelRegistry(self.store, self.pipeline)
        self.settings_service = SettingsService(self.store, self.pipeline, self.registry,
                                                settings)
        self.providers: ProviderRegistry = build_providers(settings)
        self.ai = AIService(self.pipeline, self.credits, self.providers, self.registry,
                            self.settings_service, call_budget_s=call_budget_s(
                                settings.provider_timeout_s, settings.provider_max_retries))
        self.sweeper = HoldSweeper(self.store, self.credits)
        self.webhooks = WebhookService(self.store, self.pipeline, settings)

    def seed(self, actor: Actor = SYSTEM) -> dict[str, int]:
        """Create what an empty store needs (cost configs, model registry, global
        settings); never overwrites a change."""
        created = 0
        for operation, values in load_data("credit_costs.json")["operations"].items():
            if self.costs.get(operation) is None:
                values = {**values, "price_per_credit_usd": Decimal(values["price_per_credit_usd"])}
                self.costs.put(operation, values, actor)
                created += 1
        return {"credit_costs": created,
                "models": self.registry.seed(load_data("models.json"), actor),
                "global_settings": self.settings_service.seed(actor)}

    def close(self) -> None:
        self.sweeper.stop()
        self.providers.close()
        self.pipeline.close()
        self.store.close()
