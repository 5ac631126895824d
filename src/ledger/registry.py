"""The AI model registry: which models exist, at what price, and which is the default.

Every command of a model type runs on that type's ModelCatalog writer (see
ledger.domain.models), so registrations, default changes and status changes of one type
are serialized, and the catalog's version guards them across processes too.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from ledger.domain.base import Actor, utcnow
from ledger.domain.errors import Conflict, VersionConflict
from ledger.domain.models import (
    MODEL_TYPES,
    PRICE_FIELDS,
    SPEC_FIELDS,
    AIModelConfig,
    ModelCatalog,
    ModelExists,
    ModelPrice,
    UnknownModel,
)
from ledger.history import change_rows, state_at
from ledger.pipeline import Batch, IdempotencySpec, Outcome, Pipeline
from ledger.store import LedgerStore

Respond = Callable[[Any], tuple[int, dict[str, Any]]]


def check_version(aggregate: Any, if_match: int | None) -> None:
    """An If-Match precondition: `if_match` must be the current version (0 = absent)."""
    current = 0 if aggregate is None else aggregate.version
    if if_match is not None and if_match != current:
        raise VersionConflict(f"version {if_match} is not current ({current})",
                              field="If-Match")


class ModelRegistry:
    def __init__(self, store: LedgerStore, pipeline: Pipeline) -> None:
        self.store = store
        self.pipeline = pipeline

    # -- reads -------------------------------------------------------------------------

    def find(self, model_id: str, as_of: datetime | None = None) -> AIModelConfig | None:
        model: AIModelConfig | None = state_at(self.store, AIModelConfig.create_id(model_id),
                                               as_of)
        return model

    def get(self, model_id: str, as_of: datetime | None = None) -> AIModelConfig:
        """The model (as it stood at `as_of`); UnknownModel (404) if there is none."""
        model = self.find(model_id, as_of)
        if model is None:
            raise UnknownModel(f"no model {model_id!r}", field="model_id")
        return model

    def list(self, model_type: str | None = None, provider: str | None = None,
             active: bool | None = None) -> builtins.list[AIModelConfig]:
        """Models ordered by type, sort_order and id."""
        models = [m for t in MODEL_TYPES if model_type in (None, t)
                  for m in map(self.get, self._catalog_ids(t))]
        return sorted((m for m in models if provider in (None, m.provider)
                       and active in (None, m.is_active)),
                      key=lambda m: (MODEL_TYPES.index(m.model_type), m.spec["sort_order"],
                                     m.model_id))

    def default_for(self, model_type: str) -> AIModelConfig | None:
        catalog: ModelCatalog | None = self.store.find(ModelCatalog.create_id(model_type))
        if catalog is None or catalog.default_model_id is None:
            return None
        return self.get(catalog.default_model_id)

    def price_at(self, model_id: str, when: datetime) -> ModelPrice:
        """The model's prices in force at `when` (UnknownModel if it had none then)."""
        price = self.get(model_id).price_at(when)
        if price is None:
            raise UnknownModel(f"model {model_id!r} was not registered at {when.isoformat()}",
                               field="model_id")
        return price

    def usable(self, model_id: str, now: datetime | None = None) -> AIModelConfig:
        """The model, if it may serve a new call now: active and not deprecated
        (ModelUnavailable, 409, otherwise)."""
        model = self.get(model_id)
        model.check_usable(now or utcnow())
        return model

    def history(self, model_id: str) -> builtins.list[dict[str, Any]]:
        events = self.store.events_of(AIModelConfig.create_id(model_id))
        if not events:
            raise UnknownModel(f"no model {model_id!r}", field="model_id")
        return change_rows(events)

    def _catalog_ids(self, model_type: str) -> builtins.list[str]:
        catalog: ModelCatalog | None = self.store.find(ModelCatalog.create_id(model_type))
        return [] if catalog is None else builtins.list(catalog.model_ids)

    # -- commands ----------------------------------------------------------------------

    def register(self, values: dict[str, Any], actor: Actor, *,
                 idem: IdempotencySpec | None = None,
                 respond: Respond | None = None) -> Outcome[Any]:
        """Add a model (409 if its model_id exists; 422 on a bad field). With
        ``is_default`` it becomes its type's default in the same transaction."""
        model_type = values.get("model_type", "")
        catalog_id = ModelCatalog.create_id(str(model_type))

        def run(batch: Batch) -> AIModelConfig:
            catalog = batch.get(catalog_id, lambda: ModelCatalog.open(model_type, actor))
            if batch.find(AIModelConfig.create_id(values.get("model_id", ""))) is not None:
                raise ModelExists(f"model {values['model_id']} already exists",
                                  field="model_id")
            model: AIModelConfig = batch.add(AIModelConfig.register(
                values.get("model_id", ""), model_type, values.get("provider", ""),
                {k: values[k] for k in SPEC_FIELDS if k in values},
                {k: values.get(k) for k in PRICE_FIELDS}, values.get("is_active", True),
                actor, utcnow()))
            catalog.list_model(model, actor)
            if values.get("is_default"):
                self._choose_default(batch, catalog, model, actor)
            return model

        return self.pipeline.submit(catalog_id, run, actor, idempotency=idem, respond=respond)

    def change(self, model_id: str, values: dict[str, Any], actor: Actor, *,
               if_match: int | None = None, idem: IdempotencySpec | None = None,
               respond: Respond | None = None) -> Outcome[Any]:
        """Change a model's fields, prices (from ``effective_at``), status or default.

        404 unknown model; 409 stale If-Match, deactivating or deprecating the default,
        unsetting the default (choose another instead) or choosing an unusable one; 422
        on a bad field."""
        model_type = self.get(model_id).model_type  # immutable: picks the writer
        catalog_id = ModelCatalog.create_id(model_type)

        def run(batch: Batch) -> AIModelConfig:
            model: AIModelConfig = batch.get(AIModelConfig.create_id(model_id))
            check_version(model, if_match)
            now = utcnow()
            model.revise({k: values[k] for k in SPEC_FIELDS if k in values}, actor, now)
            prices = {k: values[k] for k in PRICE_FIELDS if k in values}
            if prices or values.get("effective_at") is not None:
                model.reprice(prices, values.get("effective_at"), actor, now)
            if values.get("is_active") is True:
                model.activate(actor, now)
            if values.get("is_default") is True:
                self._choose_default(batch, batch.get(catalog_id), model, actor)
            elif values.get("is_default") is False and model.is_default:
                raise Conflict(f"{model_id} is the default {model_type} model: make another "
                               "model the default instead", field="is_default")
            if values.get("is_active") is False:
                model.deactivate(values.get("reason") or "deactivated", actor)
            return model

        return self.pipeline.submit(catalog_id, run, actor, idempotency=idem, respond=respond)

    def seed(self, data: dict[str, Any], actor: Actor) -> int:
        """Register the seed's models that are not registered yet (never changes one)."""
        created = 0
        for entry in data["models"]:
            if self.find(entry["model_id"]) is not None:
                continue
            values = {k: v for k, v in entry.items() if k != "price_source"}
            values.update({k: Decimal(v) for k in PRICE_FIELDS
                           if (v := entry.get(k)) is not None})
            source = data["sources"].get(entry.get("price_source", ""))
            if source is not None:
                cited = f"Price: {source['url']}, as of {source['as_of']} ({source['basis']})."
                values["notes"] = " ".join(filter(None, (entry.get("notes"), cited)))
            self.register(values, actor)
            created += 1
        return created

    def _choose_default(self, batch: Batch, catalog: ModelCatalog, model: AIModelConfig,
                        actor: Actor) -> None:
        previous = None
        if catalog.default_model_id not in (None, model.model_id):
            previous = batch.find(AIModelConfig.create_id(catalog.default_model_id))
        catalog.choose_default(model, previous, actor, utcnow())
