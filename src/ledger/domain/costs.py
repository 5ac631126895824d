"""CreditCostConfig: the credit price of one operation, event-sourced with its history."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from ledger.domain.base import Actor, LedgerAggregate, natural_id
from ledger.domain.errors import InvalidCommand
from ledger.domain.pricing import CostRule, Unit

COST_FIELDS = ("unit", "tokens_per_credit", "credits_per_unit", "min_credits",
               "price_per_credit_usd")


def _validate(values: dict[str, Any]) -> dict[str, Any]:
    try:
        unit = Unit(values["unit"])
    except ValueError:
        raise InvalidCommand(f"unit must be one of {[u.value for u in Unit]}",
                             field="unit") from None
    for name in ("tokens_per_credit", "credits_per_unit"):
        v = values[name]
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise InvalidCommand(f"{name} must be a positive integer", field=name)
    v = values["min_credits"]
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise InvalidCommand("min_credits must be a non-negative integer", field="min_credits")
    price = values["price_per_credit_usd"]
    if not isinstance(price, Decimal) or not price.is_finite() or price <= 0:
        raise InvalidCommand("price_per_credit_usd must be a positive decimal",
                             field="price_per_credit_usd")
    return {**values, "unit": unit.value}


class CreditCostConfig(LedgerAggregate):
    class Configured(LedgerAggregate.Created):
        operation: str
        unit: str
        tokens_per_credit: int
        credits_per_unit: int
        min_credits: int
        price_per_credit_usd: Decimal
        effective_at: datetime

    class Changed(LedgerAggregate.Event):
        unit: str
        tokens_per_credit: int
        credits_per_unit: int
        min_credits: int
        price_per_credit_usd: Decimal
        effective_at: datetime

        def apply(self, config: CreditCostConfig) -> None:
            config._set(self)

    def __init__(self, operation: str, unit: str, tokens_per_credit: int,
                 credits_per_unit: int, min_credits: int, price_per_credit_usd: Decimal,
                 effective_at: datetime) -> None:
        self.operation = operation
        self.unit = unit
        self.tokens_per_credit = tokens_per_credit
        self.credits_per_unit = credits_per_unit
        self.min_credits = min_credits
        self.price_per_credit_usd = price_per_credit_usd
        self.effective_at = effective_at

    @staticmethod
    def create_id(operation: str) -> Any:
        return natural_id("credit-cost", operation)

    @classmethod
    def configure(cls, operation: str, values: dict[str, Any], actor: Actor,
                  now: datetime) -> CreditCostConfig:
        if not operation or len(operation) > 64:
            raise InvalidCommand("operation must be 1 to 64 characters", field="operation")
        config: CreditCostConfig = cls._open(cls.Configured, actor, operation=operation,
                                             effective_at=now, **_validate(values))
        return config

    def change(self, values: dict[str, Any], actor: Actor, now: datetime) -> None:
        merged = {name: values.get(name, getattr(self, name)) for name in COST_FIELDS}
        merged = _validate(merged)
        if all(merged[name] == getattr(self, name) for name in COST_FIELDS):
            return
        self._record(self.Changed, actor, effective_at=now, **merged)

    def _set(self, event: Any) -> None:
        for name in (*COST_FIELDS, "effective_at"):
            setattr(self, name, getattr(event, name))

    def rule(self) -> CostRule:
        return CostRule(
            operation=self.operation,
            unit=Unit(self.unit),
            tokens_per_credit=self.tokens_per_credit,
            credits_per_unit=self.credits_per_unit,
            min_credits=self.min_credits,
            price_per_credit_usd=self.price_per_credit_usd,
            version=self.version,
        )

    def as_dict(self) -> dict[str, Any]:
        return {"operation": self.operation, **{n: getattr(self, n) for n in COST_FIELDS},
                "effective_at": self.effective_at, "version": self.version}
