"""The AI model registry: one AIModelConfig per model id, one ModelCatalog per model type.

Prices. A price change is an event that says from when it applies (``effective_at``,
now or later, never earlier: a charge already made is never re-priced). The aggregate
keeps every price point, so ``price_at(when)`` answers from the log alone: the point in
force at ``when`` is the one with the latest ``effective_at`` not after it. Because no
point takes effect before it was recorded, that is also what the registry said at
``when``.

Defaults. The ModelCatalog of a model type lists its models and names its default.
Choosing a default records one event on the catalog, one on the new default and one on
the previous default, saved together: there is never a moment with two defaults.
Commands of one model type are serialized on its catalog, so two concurrent choices
cannot both win (and across processes the catalog's version refuses the stale one).

Status. A model is never deleted, only deactivated. An inactive model, or one whose
``deprecation_date`` has come, cannot be the default nor be used for a new call; the
default cannot be deactivated or deprecated until another model is chosen instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from ledger.domain.base import Actor, LedgerAggregate, natural_id
from ledger.domain.errors import Conflict, InvalidCommand, NotFound

MODEL_TYPES = ("text", "image", "embedding")
PROVIDERS = ("openai", "anthropic", "google", "runware", "bria")
PRICE_FIELDS = ("input_token_rate", "output_token_rate", "cost_per_image")
SPEC_FIELDS = ("display_name", "max_input_tokens", "max_output_tokens", "available_sizes",
               "supports_json_mode", "supports_vision", "supports_tools", "sort_order",
               "notes", "release_date", "deprecation_date")
# The prices a model of each type needs before it can be active.
REQUIRED_PRICES = {"text": ("input_token_rate", "output_token_rate"),
                   "image": ("cost_per_image",),
                   "embedding": ("input_token_rate",)}
MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@\-]{0,127}$")
SIZE = re.compile(r"^[1-9][0-9]{1,4}x[1-9][0-9]{1,4}$")


# -- field checks: each returns the value to record or raises InvalidCommand ----------

def _rate(name: str, v: Any) -> Decimal | None:
    if v is None:
        return None
    if not isinstance(v, Decimal) or not v.is_finite() or v < 0:
        raise InvalidCommand(f"{name} must be a non-negative decimal (USD)", field=name)
    return v


def _count(name: str, v: Any) -> int | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise InvalidCommand(f"{name} must be a positive integer", field=name)
    return v


def _flag(name: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise InvalidCommand(f"{name} must be true or false", field=name)
    return v


def _text(name: str, v: Any, *, max_len: int, optional: bool) -> str | None:
    if v is None and optional:
        return None
    if not isinstance(v, str) or not v.strip() or len(v) > max_len:
        raise InvalidCommand(f"{name} must be a string of 1 to {max_len} characters",
                             field=name)
    return v


def _date(name: str, v: Any) -> str | None:
    if v is None:
        return None
    try:
        return date.fromisoformat(v).isoformat()
    except (TypeError, ValueError):
        raise InvalidCommand(f"{name} must be a date YYYY-MM-DD", field=name) from None


def _sizes(name: str, v: Any) -> list[str]:
    if not isinstance(v, list | tuple) or not all(isinstance(s, str) and SIZE.match(s)
                                                  for s in v):
        raise InvalidCommand(f"{name} must be a list of sizes like 1024x1024", field=name)
    if len(set(v)) != len(v):
        raise InvalidCommand(f"{name} lists a size twice", field=name)
    return list(v)


def _order(name: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not -10**6 <= v <= 10**6:
        raise InvalidCommand(f"{name} must be an integer", field=name)
    return v


SPEC_CHECKS: dict[str, Any] = {
    "display_name": lambda n, v: _text(n, v, max_len=200, optional=False),
    "max_input_tokens": _count,
    "max_output_tokens": _count,
    "available_sizes": _sizes,
    "supports_json_mode": _flag,
    "supports_vision": _flag,
    "supports_tools": _flag,
    "sort_order": _order,
    "notes": lambda n, v: _text(n, v, max_len=2000, optional=True),
    "release_date": _date,
    "deprecation_date": _date,
}
SPEC_DEFAULTS: dict[str, Any] = {
    "max_input_tokens": None, "max_output_tokens": None, "available_sizes": [],
    "supports_json_mode": False, "supports_vision": False, "supports_tools": False,
    "sort_order": 0, "notes": None, "release_date": None, "deprecation_date": None,
}


def _checked_spec(values: dict[str, Any]) -> dict[str, Any]:
    unknown = values.keys() - SPEC_CHECKS.keys()
    if unknown:
        raise InvalidCommand(f"unknown field(s) {sorted(unknown)}", field=min(unknown))
    return {name: SPEC_CHECKS[name](name, v) for name, v in values.items()}


def _checked_prices(values: dict[str, Any]) -> dict[str, Decimal | None]:
    return {name: _rate(name, values.get(name)) for name in PRICE_FIELDS}


@dataclass(frozen=True)
class ModelPrice:
    """The prices of a model from one moment on (USD; token rates per 1M tokens)."""

    model_id: str
    input_token_rate: Decimal | None
    output_token_rate: Decimal | None
    cost_per_image: Decimal | None
    effective_at: datetime
    version: int  # the version of the model's event that recorded this price

    def rates(self) -> dict[str, Decimal]:
        return {n: v for n in PRICE_FIELDS if (v := getattr(self, n)) is not None}


class AIModelConfig(LedgerAggregate):
    class Registered(LedgerAggregate.Created):
        model_id: str
        model_type: str
        provider: str
        spec: dict[str, Any]
        prices: dict[str, Decimal | None]
        effective_at: datetime
        is_active: bool

    class Revised(LedgerAggregate.Event):
        changes: dict[str, Any]  # only the fields that changed

        def apply(self, model: AIModelConfig) -> None:
            model.spec = {**model.spec, **self.changes}

    class Repriced(LedgerAggregate.Event):
        prices: dict[str, Decimal | None]  # all price fields, as in force from effective_at
        effective_at: datetime

        def apply(self, model: AIModelConfig) -> None:
            model._add_price(self.prices, self.effective_at, self.originator_version)

    class Activated(LedgerAggregate.Event):
        def apply(self, model: AIModelConfig) -> None:
            model.is_active = True

    class Deactivated(LedgerAggregate.Event):
        reason: str

        def apply(self, model: AIModelConfig) -> None:
            model.is_active = False

    class MadeDefault(LedgerAggregate.Event):
        previous: str | None  # the model that was the default of this type

        def apply(self, model: AIModelConfig) -> None:
            model.is_default = True

    class DefaultCleared(LedgerAggregate.Event):
        successor: str

        def apply(self, model: AIModelConfig) -> None:
            model.is_default = False

    def __init__(self, model_id: str, model_type: str, provider: str, spec: dict[str, Any],
                 prices: dict[str, Decimal | None], effective_at: datetime,
                 is_active: bool) -> None:
        self.model_id = model_id
        self.model_type = model_type
        self.provider = provider
        self.spec = spec
        self.is_active = is_active
        self.is_default = False
        # [{"effective_at", "version", <price fields>}], in the order recorded
        self.price_points: list[dict[str, Any]] = []
        self._add_price(prices, effective_at, 1)

    @staticmethod
    def create_id(model_id: str) -> Any:
        return natural_id("ai-model", model_id)

    # -- commands ----------------------------------------------------------------------

    @classmethod
    def register(cls, model_id: str, model_type: str, provider: str, spec: dict[str, Any],
                 prices: dict[str, Any], is_active: bool, actor: Actor,
                 now: datetime) -> AIModelConfig:
        """Raises InvalidCommand for a malformed field, or an active model without the
        prices of its type."""
        if not isinstance(model_id, str) or not MODEL_ID.match(model_id):
            raise InvalidCommand("model_id must be 1 to 128 letters, digits or _.:@-",
                                 field="model_id")
        if model_type not in MODEL_TYPES:
            raise InvalidCommand(f"model_type must be one of {list(MODEL_TYPES)}",
                                 field="model_type")
        if provider not in PROVIDERS:
            raise InvalidCommand(f"provider must be one of {list(PROVIDERS)}", field="provider")
        if "display_name" not in spec:
            raise InvalidCommand("display_name is required", field="display_name")
        checked = {**SPEC_DEFAULTS, **_checked_spec(spec)}
        priced = _checked_prices(prices)
        _flag("is_active", is_active)
        if is_active:
            _check_priced(model_type, priced)
        model: AIModelConfig = cls._open(cls.Registered, actor, model_id=model_id,
                                         model_type=model_type, provider=provider,
                                         spec=checked, prices=priced, effective_at=now,
                                         is_active=is_active)
        return model

    def revise(self, values: dict[str, Any], actor: Actor, now: datetime) -> None:
        """Change descriptive fields, limits, sizes, capabilities, order or dates."""
        checked = _checked_spec(values)
        changes = {k: v for k, v in checked.items() if self.spec.get(k) != v}
        if not changes:
            return
        deprecation = changes.get("deprecation_date")
        if self.is_default and deprecation is not None and date.fromisoformat(
                deprecation) <= now.date():
            raise Conflict(f"{self.model_id} is the default {self.model_type} model: choose "
                           "another default before deprecating it", field="deprecation_date")
        self._record(self.Revised, actor, changes=changes)

    def reprice(self, values: dict[str, Any], effective_at: datetime | None, actor: Actor,
                now: datetime) -> None:
        """Record new prices from `effective_at` (default now; never in the past). Price
        fields left out keep the value in force at that moment."""
        when = now if effective_at is None else effective_at
        if when.tzinfo is None:
            raise InvalidCommand("effective_at needs a time zone", field="effective_at")
        if when < now:
            raise InvalidCommand("effective_at must not be in the past: recorded charges "
                                 "are never re-priced", field="effective_at")
        unknown = values.keys() - set(PRICE_FIELDS)
        if unknown:
            raise InvalidCommand(f"unknown price field(s) {sorted(unknown)}", field=min(unknown))
        base = self.price_at(when)
        current = {n: getattr(base, n) for n in PRICE_FIELDS} if base else {}
        priced = _checked_prices({**current, **values})
        if priced == current:
            return
        if self.is_active:
            _check_priced(self.model_type, priced)
        self._record(self.Repriced, actor, prices=priced, effective_at=when)

    def activate(self, actor: Actor, now: datetime) -> None:
        if self.is_active:
            return
        current = self.price_at(now)
        _check_priced(self.model_type,
                      {n: getattr(current, n) for n in PRICE_FIELDS} if current else {})
        self._record(self.Activated, actor)

    def deactivate(self, reason: str, actor: Actor) -> None:
        """Take the model out of use; its history and prices stay."""
        if not self.is_active:
            return
        if self.is_default:
            raise Conflict(f"{self.model_id} is the default {self.model_type} model: choose "
                           "another default before deactivating it", field="is_active")
        self._record(self.Deactivated, actor, reason=reason)

    def check_usable(self, now: datetime) -> None:
        """Raises ModelUnavailable unless the model may serve a new call now."""
        if not self.is_active:
            raise ModelUnavailable(f"model {self.model_id} is inactive", field="model_id")
        if self.is_deprecated(now):
            raise ModelUnavailable(f"model {self.model_id} is deprecated since "
                                   f"{self.spec['deprecation_date']}", field="model_id")

    # -- queries -----------------------------------------------------------------------

    def is_deprecated(self, now: datetime) -> bool:
        d = self.spec.get("deprecation_date")
        return d is not None and date.fromisoformat(d) <= now.date()

    def price_at(self, when: datetime) -> ModelPrice | None:
        """The price in force at `when`, or None before the model was registered."""
        points = [p for p in self.price_points if p["effective_at"] <= when]
        if not points:
            return None
        p = max(points, key=lambda p: (p["effective_at"], p["version"]))
        return ModelPrice(self.model_id, p["input_token_rate"], p["output_token_rate"],
                          p["cost_per_image"], p["effective_at"], p["version"])

    def scheduled(self, now: datetime) -> list[ModelPrice]:
        """Price changes recorded to take effect after `now`."""
        return [ModelPrice(self.model_id, p["input_token_rate"], p["output_token_rate"],
                           p["cost_per_image"], p["effective_at"], p["version"])
                for p in sorted(self.price_points, key=lambda p: p["effective_at"])
                if p["effective_at"] > now]

    def _add_price(self, prices: dict[str, Decimal | None], effective_at: datetime,
                   version: int) -> None:
        self.price_points = [*self.price_points,
                             {**prices, "effective_at": effective_at, "version": version}]


def _check_priced(model_type: str, prices: dict[str, Decimal | None]) -> None:
    missing = [n for n in REQUIRED_PRICES[model_type] if prices.get(n) is None]
    if missing:
        raise InvalidCommand(f"an active {model_type} model needs {', '.join(missing)}",
                             field=missing[0])


class ModelCatalog(LedgerAggregate):
    """The models of one type and which one is the default."""

    class Opened(LedgerAggregate.Created):
        model_type: str

    class ModelListed(LedgerAggregate.Event):
        model_id: str

        def apply(self, catalog: ModelCatalog) -> None:
            catalog.model_ids = [*catalog.model_ids, self.model_id]

    class DefaultChosen(LedgerAggregate.Event):
        model_id: str
        previous: str | None

        def apply(self, catalog: ModelCatalog) -> None:
            catalog.default_model_id = self.model_id

    def __init__(self, model_type: str) -> None:
        self.model_type = model_type
        self.model_ids: list[str] = []
        self.default_model_id: str | None = None

    @staticmethod
    def create_id(model_type: str) -> Any:
        return natural_id("model-catalog", model_type)

    @classmethod
    def open(cls, model_type: str, actor: Actor) -> ModelCatalog:
        if model_type not in MODEL_TYPES:
            raise InvalidCommand(f"model_type must be one of {list(MODEL_TYPES)}",
                                 field="model_type")
        catalog: ModelCatalog = cls._open(cls.Opened, actor, model_type=model_type)
        return catalog

    def list_model(self, model: AIModelConfig, actor: Actor) -> None:
        if model.model_type != self.model_type:
            raise InvalidCommand(f"{model.model_id} is not a {self.model_type} model",
                                 field="model_type")
        if model.model_id in self.model_ids:
            raise ModelExists(f"model {model.model_id} already exists", field="model_id")
        self._record(self.ModelListed, actor, model_id=model.model_id)

    def choose_default(self, model: AIModelConfig, previous: AIModelConfig | None,
                       actor: Actor, now: datetime) -> None:
        """Make `model` the default and clear `previous` (the current default), together.

        Raises ModelUnavailable for an inactive or deprecated model."""
        if model.model_id not in self.model_ids:
            raise InvalidCommand(f"{model.model_id} is not a {self.model_type} model",
                                 field="model_type")
        if (previous.model_id if previous else None) != self.default_model_id:
            raise Conflict("the previous default given is not the current one")
        if model.model_id == self.default_model_id:
            return
        model.check_usable(now)
        previous_id = self.default_model_id
        self._record(self.DefaultChosen, actor, model_id=model.model_id, previous=previous_id)
        model._record(model.MadeDefault, actor, previous=previous_id)
        if previous is not None:
            previous._record(previous.DefaultCleared, actor, successor=model.model_id)


class UnknownModel(NotFound):
    title = "Unknown model"


class ModelExists(Conflict):
    title = "Model already registered"


class ModelUnavailable(Conflict):
    """An inactive or deprecated model was asked to serve or become the default."""

    title = "Model unavailable"
