"""CreditCostConfig commands."""

from __future__ import annotations

from typing import Any

from ledger.credits import CostBook
from ledger.domain.base import Actor, utcnow
from ledger.domain.costs import CreditCostConfig
from ledger.domain.errors import VersionConflict
from ledger.pipeline import Batch, IdempotencySpec, Outcome, Pipeline
from ledger.store import LedgerStore


class CostService:
    def __init__(self, store: LedgerStore, pipeline: Pipeline, book: CostBook) -> None:
        self.store = store
        self.pipeline = pipeline
        self.book = book

    def get(self, operation: str) -> CreditCostConfig | None:
        config: CreditCostConfig | None = self.store.find(CreditCostConfig.create_id(operation))
        return config

    def put(self, operation: str, values: dict[str, Any], actor: Actor, *,
            if_match: int | None = None, idem: IdempotencySpec | None = None,
            respond: Any = None) -> Outcome[Any]:
        """Create the operation's config, or change it (a new version, history kept)."""
        def run(batch: Batch) -> CreditCostConfig:
            config: CreditCostConfig | None = batch.find(CreditCostConfig.create_id(operation))
            if if_match is not None and (config is None or config.version != if_match):
                raise VersionConflict(
                    f"version {if_match} is not current "
                    f"({None if config is None else config.version})", field="If-Match")
            if config is None:
                config = batch.add(CreditCostConfig.configure(operation, values, actor,
                                                              utcnow()))
            else:
                config.change(values, actor, utcnow())
            return config
        outcome = self.pipeline.submit(CreditCostConfig.create_id(operation), run, actor,
                                       idempotency=idem, respond=respond)
        self.book.invalidate(operation)
        return outcome

    def history(self, operation: str) -> list[Any]:
        return list(self.store.events_of(CreditCostConfig.create_id(operation)))
