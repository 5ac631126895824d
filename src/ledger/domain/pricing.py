"""Pricing: how many credits an operation costs and what it costs the platform.

Everything is exact: credits are int, money is Decimal and never rounded before it is
recorded (1M-token rates divide exactly). Rounding happens only when money is shown.
The arithmetic runs in a context wide enough for every amount the API admits (10^12
credits or tokens times a 24-digit price) that traps an inexact result instead of
rounding it silently, as Python's default 28-digit context would.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal, Inexact, InvalidOperation, Overflow
from enum import StrEnum

MILLION = Decimal(1_000_000)
USD_DISPLAY = Decimal("0.000001")
EXACT = Context(prec=100, traps=[Inexact, InvalidOperation, Overflow])
SHOWN = Context(prec=100, rounding=ROUND_HALF_EVEN)  # rounds, but only to the places asked


class Unit(StrEnum):
    TOKENS = "tokens"
    IMAGE = "image"
    CALL = "call"


@dataclass(frozen=True)
class CostRule:
    """The credit cost of one operation at one version of its CreditCostConfig."""

    operation: str
    unit: Unit
    tokens_per_credit: int
    credits_per_unit: int
    min_credits: int
    price_per_credit_usd: Decimal
    version: int

    def credits_for(self, units: int) -> int:
        """max(min_credits, ceil(tokens / tokens_per_credit)) or max(min, units * per unit)."""
        if units < 0:
            raise ValueError("units must not be negative")
        if self.unit is Unit.TOKENS:
            raw = -(-units // self.tokens_per_credit)  # ceil without floats
        else:
            raw = units * self.credits_per_unit
        return max(self.min_credits, raw)


@dataclass(frozen=True)
class Quote:
    """A priced charge: the decision that an event records verbatim."""

    operation: str
    units: int
    credits: int
    price_per_credit_usd: Decimal
    cost_config_version: int

    @property
    def revenue_usd(self) -> Decimal:
        return revenue_usd(self.credits, self.price_per_credit_usd)


def quote(rule: CostRule, units: int) -> Quote:
    return Quote(
        operation=rule.operation,
        units=units,
        credits=rule.credits_for(units),
        price_per_credit_usd=rule.price_per_credit_usd,
        cost_config_version=rule.version,
    )


def revenue_usd(credits: int, price_per_credit_usd: Decimal) -> Decimal:
    return EXACT.multiply(Decimal(credits), price_per_credit_usd)


def text_cost_usd(
    input_tokens: int, output_tokens: int, input_rate: Decimal, output_rate: Decimal
) -> Decimal:
    """Provider cost of a text call; rates are USD per 1M tokens."""
    total = EXACT.add(EXACT.multiply(Decimal(input_tokens), input_rate),
                      EXACT.multiply(Decimal(output_tokens), output_rate))
    return EXACT.divide(total, MILLION)


def image_cost_usd(images: int, cost_per_image: Decimal) -> Decimal:
    return EXACT.multiply(Decimal(images), cost_per_image)


def money(value: Decimal) -> str:
    """Money as the contract shows it: a decimal string with 6 places."""
    return str(_unsigned_zero(value.quantize(USD_DISPLAY, context=SHOWN)))


def ratio_pct(numerator: Decimal, denominator: Decimal) -> Decimal | None:
    if denominator == 0:
        return None
    ratio = SHOWN.divide(SHOWN.multiply(numerator, 100), denominator)
    pct = ratio.quantize(Decimal("0.01"), context=SHOWN)
    return _unsigned_zero(pct)


def _unsigned_zero(d: Decimal) -> Decimal:
    """-0.00 (a tiny negative rounded away) is shown as 0.00: rounding has no sign."""
    return d.copy_abs() if d.is_zero() else d
