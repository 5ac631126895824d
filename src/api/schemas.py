"""Request and response bodies. Kept apart from the domain's objects."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    model_validator,
)


def _money(value: Any) -> Decimal:
    if not isinstance(value, str):
        raise ValueError('money is a decimal string, e.g. "2.00" (never a JSON number)')
    try:
        d = Decimal(value)
    except InvalidOperation:
        raise ValueError("not a decimal number") from None
    if not d.is_finite():
        raise ValueError("not a finite decimal")
    exponent = d.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -12:
        raise ValueError("at most 12 decimal places")
    if abs(d) >= Decimal("1e12"):
        raise ValueError("too large")
    return d


def _non_negative(d: Decimal) -> Decimal:
    if d < 0:
        raise ValueError("must not be negative")
    return d


Money = Annotated[Decimal, BeforeValidator(_money), AfterValidator(_non_negative)]
MAX_CREDITS = 10**12
Credits = Annotated[StrictInt, Field(gt=0, le=MAX_CREDITS)]
SignedCredits = Annotated[StrictInt, Field(ge=-MAX_CREDITS, le=MAX_CREDITS)]
Count = Annotated[StrictInt, Field(ge=0, le=10**12)]
Text = Annotated[str, Field(min_length=1, max_length=500)]
Name = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:@\-]+$")]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class PurchaseCreate(Body):
    credits: Credits
    amount_usd: Money
    payment_ref: Text
    expires_at: AwareDatetime | None = None
    priority: Annotated[StrictInt, Field(ge=-1000, le=1000)] = 0


class GrantCreate(Body):
    credits: Credits
    reason: Text
    expires_at: AwareDatetime | None = None
    priority: Annotated[StrictInt, Field(ge=-1000, le=1000)] = 0


class AdjustmentCreate(Body):
    credits: SignedCredits
    reason: Text


class ProviderCost(Body):
    model_id: Name | None = None
    provider: Name | None = None
    cost_usd: Money | None = None
    input_tokens: Count | None = None
    output_tokens: Count | None = None
    images: Count | None = None


class DeductionCreate(ProviderCost):
    operation: Name
    units: Count


class ReservationCreate(Body):
    operation: Name
    credits: Credits | None = None
    units: Count | None = None
    expires_in_s: Annotated[StrictInt, Field(gt=0, le=7 * 24 * 3600)] | None = None

    @model_validator(mode="after")
    def _one_of(self) -> ReservationCreate:
        if (self.credits is None) == (self.units is None):
            raise ValueError("give exactly one of credits or units")
        return self


class Usage(Body):
    units: Count | None = None
    input_tokens: Count | None = None
    output_tokens: Count | None = None
    images: Count | None = None


class CaptureCreate(ProviderCost):
    credits: Annotated[StrictInt, Field(ge=0, le=MAX_CREDITS)] | None = None
    usage: Usage | None = None

    @model_validator(mode="after")
    def _one_of(self) -> CaptureCreate:
        if (self.credits is None) == (self.usage is None):
            raise ValueError("give exactly one of credits or usage")
        return self


class ReleaseCreate(Body):
    reason: Annotated[str, Field(max_length=200)] = "released"


class RefundCreate(Body):
    charge_id: Annotated[str, Field(min_length=1, max_length=64)]
    credits: Credits | None = None
    reason: Text


class BalancePublic(BaseModel):
    account_id: str
    balance: int
    reserved: int
    available: int
    as_of: datetime | None = None
    position: int | None = None
    # lifetime figures, from the balances view (absent with as_of)
    purchased: int | None = None
    granted: int | None = None
    used: int | None = None
    refunded: int | None = None
    expired: int | None = None
    adjusted: int | None = None
    purchased_usd: str | None = None
    updated_at: datetime | None = None
    lots: list[dict[str, Any]] | None = None  # open lots in burn order (absent with as_of)


class ReceiptPublic(BaseModel):
    account_id: str
    id: str | None
    credits: int | None
    balance: int
    reserved: int
    available: int
    position: int | None = None


class KeyCreate(Body):
    role: Annotated[str, Field(min_length=1, max_length=32)]
    account_id: Name | None = None
    user_id: Name | None = None
    expires_at: AwareDatetime | None = None
    label: Annotated[str, Field(max_length=200)] = ""


class KeyPublic(BaseModel):
    key_id: str
    token: str
    role: str
    account_id: str | None
    user_id: str | None
    expires_at: datetime | None
