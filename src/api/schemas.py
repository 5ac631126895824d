"""Request and response bodies. Kept apart from the domain's objects."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from fastapi import Path
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


def _rfc3339(value: Any) -> Any:
    """Times are RFC 3339 strings: pydantic alone would also take a number (or a string
    of digits) as a Unix timestamp."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or len(value) < 10 or value[4] != "-":
        raise ValueError('a time is an RFC 3339 string, e.g. "2025-01-31T12:00:00Z"')
    return value


Instant = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]
MAX_CREDITS = 10**12
Credits = Annotated[StrictInt, Field(gt=0, le=MAX_CREDITS)]
SignedCredits = Annotated[StrictInt, Field(ge=-MAX_CREDITS, le=MAX_CREDITS)]
Count = Annotated[StrictInt, Field(ge=0, le=10**12)]
Text = Annotated[str, Field(min_length=1, max_length=500)]
NAME_PATTERN = r"^[A-Za-z0-9_.:@\-]+$"
Name = Annotated[str, Field(min_length=1, max_length=128, pattern=NAME_PATTERN)]
# an account id in a path: a name too (an id like "x';DROP TABLE t;--" is refused, 422)
AccountId = Annotated[str, Path(min_length=1, max_length=128, pattern=NAME_PATTERN,
                                description="the account's id (letters, digits, _.:@-)")]
PathName = Annotated[str, Path(min_length=1, max_length=128, pattern=NAME_PATTERN)]


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(v) for v in value)
    return False


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        """No U+0000 anywhere: PostgreSQL text cannot hold it, so a recorded one would
        stop the views that copy the text (a poison event)."""
        if _has_nul(data):
            raise ValueError("text must not contain NUL (U+0000)")
        return data


class PurchaseCreate(Body):
    credits: Credits
    amount_usd: Money
    payment_ref: Text
    expires_at: Instant | None = None
    priority: Annotated[StrictInt, Field(ge=-1000, le=1000)] = 0


class GrantCreate(Body):
    credits: Credits
    reason: Text
    expires_at: Instant | None = None
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
    expires_at: Instant | None = None
    label: Annotated[str, Field(max_length=200)] = ""


class KeyPublic(BaseModel):
    key_id: str
    token: str
    role: str
    account_id: str | None
    user_id: str | None
    expires_at: datetime | None


WebhookEventType = Literal["low_balance", "balance_exhausted", "hold_expired", "lot_expiring",
                           "lot_expired", "provider_call_failed"]


class WebhookCreate(Body):
    """A webhook subscription. `secret` (16 to 200 characters) signs the deliveries;
    one is generated when absent. Either way it is answered once, here."""

    url: Annotated[str, Field(min_length=10, max_length=2000, pattern=r"^https?://[^\s]+$")]
    event_types: Annotated[list[WebhookEventType], Field(min_length=1, max_length=6)]
    secret: Annotated[str, Field(min_length=16, max_length=200)] | None = None
    low_balance_threshold: Credits | None = None
    lot_expiring_days: Annotated[StrictInt, Field(ge=1, le=365)] | None = None
    description: Annotated[str, Field(max_length=500)] = ""


class WebhookPublic(BaseModel):
    subscription_id: str
    account_id: str | None
    url: str
    event_types: list[str]
    low_balance_threshold: int | None
    lot_expiring_days: int | None
    description: str
    created_at: datetime
    active: bool
    secret: str | None = None  # only in the answer to the creation
    position: int | None = None
