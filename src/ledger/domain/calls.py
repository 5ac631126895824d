"""ProviderCall: one metered AI call, from request to its settlement.

Its events are saved in the same transaction as the credit events they cause: a call
is requested together with its hold, and succeeds together with the capture or fails
together with the release. The prompt itself is not recorded (only its size).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ledger.domain.base import Actor, LedgerAggregate, natural_id
from ledger.domain.errors import Conflict

REQUESTED, SUCCEEDED, FAILED, ABANDONED = "requested", "succeeded", "failed", "abandoned"


class ProviderCall(LedgerAggregate):
    class Requested(LedgerAggregate.Created):
        call_id: str
        account_id: str
        user_id: str | None
        kind: str  # "text" | "image"
        operation: str
        provider: str
        model_id: str
        params: dict[str, Any]
        prompt_chars: int
        reservation_id: str
        held_credits: int

    class Succeeded(LedgerAggregate.Event):
        charge_id: str
        credits: int
        input_tokens: int
        output_tokens: int
        images: int
        usage_reported: bool
        cost_usd: Decimal
        rates: dict[str, Decimal]
        latency_ms: int
        provider_request_id: str | None

        def apply(self, call: ProviderCall) -> None:
            call.status = SUCCEEDED

    class Failed(LedgerAggregate.Event):
        error_kind: str
        detail: str
        http_status: int
        latency_ms: int

        def apply(self, call: ProviderCall) -> None:
            call.status = FAILED

    class Abandoned(LedgerAggregate.Event):
        reason: str

        def apply(self, call: ProviderCall) -> None:
            call.status = ABANDONED

    def __init__(self, call_id: str, account_id: str, user_id: str | None, kind: str,
                 operation: str, provider: str, model_id: str, params: dict[str, Any],
                 prompt_chars: int, reservation_id: str, held_credits: int) -> None:
        self.call_id = call_id
        self.account_id = account_id
        self.user_id = user_id
        self.kind = kind
        self.operation = operation
        self.provider = provider
        self.model_id = model_id
        self.params = params
        self.reservation_id = reservation_id
        self.held_credits = held_credits
        self.status = REQUESTED

    @staticmethod
    def create_id(call_id: str) -> Any:
        return natural_id("provider-call", call_id)

    @classmethod
    def request(cls, actor: Actor, **fields: Any) -> ProviderCall:
        call: ProviderCall = cls._open(cls.Requested, actor, **fields)
        return call

    def _check_open(self) -> None:
        if self.status != REQUESTED:
            raise Conflict(f"call {self.call_id} is already {self.status}", field="call_id")

    def succeed(self, actor: Actor, **fields: Any) -> None:
        self._check_open()
        self._record(self.Succeeded, actor, **fields)

    def fail(self, error_kind: str, detail: str, http_status: int, latency_ms: int,
             actor: Actor) -> None:
        self._check_open()
        self._record(self.Failed, actor, error_kind=error_kind, detail=detail[:500],
                     http_status=http_status, latency_ms=latency_ms)

    def abandon(self, reason: str, actor: Actor) -> None:
        self._check_open()
        self._record(self.Abandoned, actor, reason=reason)
