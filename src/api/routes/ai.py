"""/ai/text and /ai/images: metered calls to the providers."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import Field, StrictInt, model_validator

from api.deps import Caller, IdempotencyDep, LedgerDep, authorize, json_ready
from api.problems import Problem
from api.schemas import Body, Name
from ledger.ai import CallResult, Replayed
from ledger.domain.calls import FAILED, SUCCEEDED, ProviderCall
from ledger.domain.keys import ACCOUNT_BOUND
from ledger.providers import ChatMessage
from ledger.service import Ledger

router = APIRouter(prefix="/ai", tags=["ai"])
AICaller = Annotated[Caller, Depends(authorize("ai.call"))]
Prompt = Annotated[str, Field(min_length=1, max_length=100_000)]


class Message(Body):
    role: Literal["system", "user", "assistant"]
    content: Prompt


class TextCall(Body):
    account_id: Name | None = None
    user_id: Name | None = None
    messages: Annotated[list[Message], Field(min_length=1, max_length=200)] | None = None
    prompt: Prompt | None = None
    model_id: Name | None = None
    max_tokens: Annotated[StrictInt, Field(ge=1, le=1_000_000)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2, allow_inf_nan=False)] | None = None

    @model_validator(mode="after")
    def _one_of(self) -> TextCall:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("give exactly one of messages or prompt")
        return self


class ImageCall(Body):
    account_id: Name | None = None
    user_id: Name | None = None
    prompt: Prompt
    n: Annotated[StrictInt, Field(ge=1, le=10)] = 1
    size: Annotated[str, Field(pattern=r"^[1-9][0-9]{1,4}x[1-9][0-9]{1,4}$")] | None = None
    model_id: Name | None = None


def _who(caller: Caller, body: TextCall | ImageCall) -> tuple[str, str | None]:
    account_id = caller.account(body.account_id)
    user_id = caller.principal.user_id or body.user_id
    return account_id, user_id


def _body(r: CallResult, caller: Caller, output_name: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "call_id": r.call_id, "status": SUCCEEDED, "provider": r.provider,
        "model_id": r.model_id, output_name: r.output,
        "usage": {"input_tokens": r.usage.input_tokens, "output_tokens": r.usage.output_tokens,
                  "images": r.usage.images, "reported": r.usage.reported},
        "credits_charged": r.credits, "charge_id": r.charge_id, "balance": r.balance,
        "reserved": r.held, "available": r.balance - r.held, "latency_ms": r.latency_ms,
        "position": r.position,
    }
    if caller.principal.role not in ACCOUNT_BOUND:  # the platform's cost is not the customer's
        body.update(cost_usd=r.cost_usd, revenue_usd=r.revenue_usd)
    return json_ready(body)  # type: ignore[no-any-return]


def _replay(ledger: Ledger, call_id: str) -> JSONResponse:
    """A retried call (same Idempotency-Key): how the first one ended; never a new call."""
    call: ProviderCall | None = ledger.store.find(ProviderCall.create_id(call_id))
    if call is None or call.status not in (SUCCEEDED, FAILED):
        raise Problem(409, "Call in progress", f"call {call_id} has not finished; retry later",
                      headers={"Retry-After": "1"})
    events = ledger.store.events_of(call.id)
    last = events[-1]
    if call.status == FAILED:
        raise Problem(last.http_status, "Provider failure",
                      f"call {call_id} failed earlier: {last.error_kind}", kind="provider-failure")
    return JSONResponse(json_ready({
        "call_id": call_id, "status": call.status, "provider": call.provider,
        "model_id": call.model_id, "replayed": True, "output_available": False,
        "usage": {"input_tokens": last.input_tokens, "output_tokens": last.output_tokens,
                  "images": last.images, "reported": last.usage_reported},
        "credits_charged": last.credits, "charge_id": last.charge_id}),
        headers={"Idempotent-Replayed": "true"})


@router.post("/text", responses={402: {}, 502: {}, 503: {}, 504: {}})
def post_text(body: TextCall, ledger: LedgerDep, caller: AICaller,
              idem: IdempotencyDep) -> JSONResponse:
    """Text generation, held at an upper bound and charged at the usage reported.
    402 without the credits; 502/504 when the provider fails (nothing charged)."""
    account_id, user_id = _who(caller, body)
    messages = tuple(ChatMessage(m.role, m.content) for m in body.messages or []) or (
        ChatMessage("user", body.prompt or ""),)
    choice = ledger.ai.choose_text(account_id, user_id, model_id=body.model_id,
                                   max_tokens=body.max_tokens, temperature=body.temperature)
    result = ledger.ai.text(account_id, user_id, messages, choice, caller.actor, idem=idem)
    if isinstance(result, Replayed):
        return _replay(ledger, result.call_id)
    return JSONResponse(_body(result, caller, "text"))


@router.post("/images", responses={402: {}, 502: {}, 503: {}, 504: {}})
def post_images(body: ImageCall, ledger: LedgerDep, caller: AICaller,
                idem: IdempotencyDep) -> JSONResponse:
    """Image generation: n images at the operation's credits per image, charged for the
    images returned. 402 without the credits; 502/504 when the provider fails."""
    account_id, user_id = _who(caller, body)
    choice = ledger.ai.choose_image(account_id, user_id, model_id=body.model_id, n=body.n,
                                    size=body.size)
    result = ledger.ai.images(account_id, user_id, body.prompt, choice, caller.actor,
                              idem=idem)
    if isinstance(result, Replayed):
        return _replay(ledger, result.call_id)
    return JSONResponse(_body(result, caller, "images"))
