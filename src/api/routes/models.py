"""/models: the AI model registry (AIModelConfig), its prices over time and its history."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import JSONResponse
from pydantic import Field, StrictBool, StrictInt

from api.deps import Caller, IdempotencyDep, IfMatchDep, LedgerDep, authorize, json_ready
from api.replies import reply_versioned, respond_with
from api.schemas import Body, Instant, Money, Name
from ledger.domain.base import utcnow
from ledger.domain.models import PRICE_FIELDS, AIModelConfig, ModelPrice

router = APIRouter(prefix="/models", tags=["models"])

Reader = Annotated[Caller, Depends(authorize("models.read"))]
Writer = Annotated[Caller, Depends(authorize("models.write"))]
ModelType = Literal["text", "image", "embedding"]  # = ledger.domain.models.MODEL_TYPES
Provider = Literal["openai", "anthropic", "google", "runware", "bria"]  # = PROVIDERS
Tokens = Annotated[StrictInt, Field(gt=0, le=100_000_000)]
Size = Annotated[str, Field(pattern=r"^[1-9][0-9]{1,4}x[1-9][0-9]{1,4}$")]


class ModelFields(Body):
    """What POST and PATCH share. Prices are USD decimal strings; token rates per 1M."""

    input_token_rate: Money | None = None
    output_token_rate: Money | None = None
    cost_per_image: Money | None = None
    max_input_tokens: Tokens | None = None
    max_output_tokens: Tokens | None = None
    available_sizes: Annotated[list[Size], Field(max_length=50)] | None = None
    supports_json_mode: StrictBool | None = None
    supports_vision: StrictBool | None = None
    supports_tools: StrictBool | None = None
    is_active: StrictBool | None = None
    is_default: StrictBool | None = None
    sort_order: Annotated[StrictInt, Field(ge=-10**6, le=10**6)] | None = None
    notes: Annotated[str, Field(max_length=2000)] | None = None
    release_date: date | None = None
    deprecation_date: date | None = None


class ModelCreate(ModelFields):
    model_id: Name
    display_name: Annotated[str, Field(min_length=1, max_length=200)]
    model_type: ModelType
    provider: Provider


class ModelPatch(ModelFields):
    display_name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    effective_at: Instant | None = Field(
        default=None, description="when new prices apply (default now; never in the past)")
    reason: Annotated[str, Field(max_length=200)] | None = None


def _values(body: ModelFields) -> dict[str, Any]:
    """The fields the caller sent (an explicit null clears an optional one)."""
    values = body.model_dump(exclude_unset=True)
    return {k: v.isoformat() if isinstance(v, date) and not isinstance(v, datetime) else v
            for k, v in values.items()}


def price_body(p: ModelPrice) -> dict[str, Any]:
    return {**{n: getattr(p, n) for n in PRICE_FIELDS}, "effective_at": p.effective_at,
            "recorded_in_version": p.version}


def model_body(m: AIModelConfig, at: datetime | None = None) -> dict[str, Any]:
    """The model as of `at` (now): its prices then, and price changes still to come."""
    at = at or utcnow()
    price = m.price_at(at)
    body = {
        "model_id": m.model_id, "model_type": m.model_type, "provider": m.provider,
        **m.spec,
        **{n: getattr(price, n) if price else None for n in PRICE_FIELDS},
        "price_effective_at": price.effective_at if price else None,
        "scheduled_prices": [price_body(p) for p in m.scheduled(at)],
        "is_active": m.is_active, "is_default": m.is_default,
        "is_deprecated": m.is_deprecated(at),
        "version": m.version, "created_at": m.created_on, "updated_at": m.modified_on,
    }
    return json_ready(body)  # type: ignore[no-any-return]


@router.get("")
def list_models(ledger: LedgerDep, caller: Reader,
                model_type: ModelType | None = None, provider: Provider | None = None,
                active: bool | None = None) -> dict[str, Any]:
    """Every model (never deleted; filter with `active=true`), by type and sort_order."""
    rows = [model_body(m) for m in ledger.registry.list(model_type, provider, active)]
    return {"data": rows, "count": len(rows)}


@router.post("", status_code=201)
def post_model(body: ModelCreate, ledger: LedgerDep, caller: Writer,
               idem: IdempotencyDep) -> JSONResponse:
    """Register a model. 409 if the model_id exists; 422 if an active model lacks the
    prices of its type. With `is_default` it replaces its type's default atomically."""
    return reply_versioned(ledger.registry.register(_values(body), caller.actor, idem=idem,
                                                    respond=respond_with(201, model_body)))


@router.get("/{model_id}")
def get_model(model_id: str, ledger: LedgerDep, caller: Reader, response: Response,
              as_of: Annotated[Instant | None, Query()] = None) -> dict[str, Any]:
    """One model, or as it stood at `as_of` (with the prices in force then)."""
    model = ledger.registry.get(model_id, as_of)
    response.headers["ETag"] = f'"{model.version}"'
    return model_body(model, as_of)


@router.patch("/{model_id}")
def patch_model(model_id: str, body: ModelPatch, ledger: LedgerDep, caller: Writer,
                idem: IdempotencyDep, if_match: IfMatchDep) -> JSONResponse:
    """Change pricing (from `effective_at`), limits, flags or status; every change is an
    event (see /history). 409 on a stale If-Match, on deactivating, deprecating or
    unsetting the default, or making an inactive or deprecated model the default."""
    return reply_versioned(ledger.registry.change(
        model_id, _values(body), caller.actor, if_match=if_match, idem=idem,
        respond=respond_with(200, model_body)))


@router.get("/{model_id}/history")
def model_history(model_id: str, ledger: LedgerDep, caller: Reader) -> dict[str, Any]:
    """Every change of the model, oldest first, with its actor and request."""
    rows = ledger.registry.history(model_id)
    return {"data": json_ready(rows), "count": len(rows)}


@router.get("/{model_id}/price")
def model_price(model_id: str, ledger: LedgerDep, caller: Reader,
                at: Annotated[Instant | None, Query()] = None) -> dict[str, Any]:
    """The prices in force at `at` (now by default)."""
    price = ledger.registry.price_at(model_id, at or utcnow())
    return json_ready({"model_id": model_id, **price_body(price)})  # type: ignore[no-any-return]
