"""Metered AI calls: hold, call the provider, then capture what was used or release.

    1. resolve the model and parameters from the effective settings (ModelChoice);
    2. price an upper bound: images exactly, text from the prompt's UTF-8 size (a token
       is never shorter than one byte) plus max_tokens, computed offline;
    3. hold those credits and record the call as requested, in one transaction (402);
    4. call the provider (outside any transaction or lock);
    5. capture the actual credits with the usage, the model's rates and the provider
       cost, and record the success, in one transaction; on a provider failure release
       the hold and record the failure with its class instead. A response without usage
       is charged at the hold and flagged.
    6. holds nobody settles (the process died in 4) expire: CreditService.sweep()
       releases them and marks their calls abandoned.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from ledger.credits import CreditService, account_key
from ledger.domain.base import Actor, utcnow
from ledger.domain.calls import ProviderCall
from ledger.domain.credits import CreditAccount, ProviderCharge
from ledger.domain.errors import InvalidCommand
from ledger.domain.models import AIModelConfig
from ledger.domain.pricing import Quote, image_cost_usd, text_cost_usd
from ledger.pipeline import Batch, IdempotencySpec, Pipeline
from ledger.providers import (
    ChatMessage,
    ImageRequest,
    ImageResult,
    Provider,
    ProviderError,
    ProviderRegistry,
    TextRequest,
    TextResult,
    UnknownProvider,
    Usage,
)
from ledger.providers.base import UPSTREAM_ERROR
from ledger.registry import ModelRegistry
from ledger.settings import SettingsService
from ledger.settings_schemas import IMAGE_SERVICES

log = logging.getLogger(__name__)

TEXT_OPERATION = "text_generation"
IMAGE_OPERATION = "image_generation"
MESSAGE_OVERHEAD_TOKENS = 8  # role and separators per chat message, generously


@dataclass(frozen=True)
class ModelChoice:
    """What the effective settings and the registry decided for one call."""

    provider: str
    model_id: str
    api_key: str = field(repr=False)
    rates: dict[str, Decimal]  # input_token_rate / output_token_rate per 1M, cost_per_image
    params: dict[str, Any]  # max_tokens, temperature, size, quality, style, n


@dataclass(frozen=True)
class CallResult:
    call_id: str
    kind: str
    provider: str
    model_id: str
    output: Any  # text, or a tuple of image urls / base64 strings
    usage: Usage
    credits: int
    cost_usd: Decimal
    revenue_usd: Decimal
    charge_id: str
    balance: int
    held: int
    latency_ms: int
    position: int


@dataclass(frozen=True)
class Replayed:
    """A retry (same idempotency key) of a call made before: its id, never a new call."""

    call_id: str


class ProviderNotConfigured(Exception):
    """No API key (or no adapter) for the integration (HTTP 503); nothing was held."""


class ProviderCallFailed(Exception):
    """The provider failed; the hold was released and the failure recorded."""

    def __init__(self, error: ProviderError, call_id: str, position: int) -> None:
        super().__init__(str(error))
        self.error = error
        self.call_id = call_id
        self.position = position


def text_upper_bound(messages: tuple[ChatMessage, ...], max_tokens: int) -> int:
    prompt = sum(len(m.content.encode()) + MESSAGE_OVERHEAD_TOKENS for m in messages)
    return prompt + max_tokens


def call_budget_s(timeout_s: float, max_retries: int, backoff_max_s: float = 8.0) -> float:
    """The longest a provider call can take: every attempt times out, every backoff is
    the longest."""
    return timeout_s * (max_retries + 1) + backoff_max_s * max_retries


class AIService:
    def __init__(self, pipeline: Pipeline, credits: CreditService, providers: ProviderRegistry,
                 registry: ModelRegistry, settings: SettingsService, *,
                 call_budget_s: float = 0.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.pipeline = pipeline
        self.credits = credits
        self.providers = providers
        self.registry = registry
        self.settings = settings
        self.clock = clock  # seconds, for latencies (a simulated one in `ledger demo`)
        # A call's hold outlives the call: at least the configured hold TTL, and at least
        # twice the longest the provider call can take (plus a minute), so the sweeper
        # never releases the hold of a call that is still running.
        self.hold_ttl_s = max(credits.hold_ttl_s, math.ceil(2 * call_budget_s) + 60)

    # -- 1. resolve ----------------------------------------------------------------------

    def choose_text(self, account_id: str, user_id: str | None, *, model_id: str | None,
                    max_tokens: int | None, temperature: float | None) -> ModelChoice:
        """The model and parameters of a text call: the request's, else the effective
        settings' (Global -> Account -> User)."""
        eff = self.settings.effective(account_id, user_id).values
        integration = str(eff["default_text_provider"])
        model = self._usable(model_id or self._configured(eff, integration, "text"), "text")
        integration = model.provider
        limit = model.spec.get("max_output_tokens")
        tokens = max_tokens or int(eff[f"{integration}_max_tokens"])
        if limit is not None:
            if max_tokens is not None and max_tokens > limit:
                raise InvalidCommand(f"max_tokens {max_tokens} exceeds the {limit} of "
                                     f"{model.model_id}", field="max_tokens")
            tokens = min(tokens, limit)
        temp = temperature if temperature is not None else eff[f"{integration}_temperature"]
        return self._choice(model, integration, {"max_tokens": tokens, "temperature": temp})

    def choose_image(self, account_id: str, user_id: str | None, *, model_id: str | None,
                     n: int, size: str | None) -> ModelChoice:
        eff = self.settings.effective(account_id, user_id).values
        integration = IMAGE_SERVICES[str(eff["default_image_service"])]
        model = self._usable(model_id or self._configured(eff, integration, "image"), "image")
        integration = {"openai": "dalle"}.get(model.provider, model.provider)
        allowed = int(eff["max_in_article_images"])
        if n > allowed:
            raise InvalidCommand(f"at most {allowed} images per request", field="n")
        size = size or eff.get(f"{integration}_image_size")
        sizes = model.spec.get("available_sizes") or []
        if sizes and size not in sizes:
            raise InvalidCommand(f"{model.model_id} offers sizes {', '.join(sizes)}",
                                 field="size")
        return self._choice(model, integration, {
            "n": n, "size": size, "quality": eff.get(f"{integration}_image_quality"),
            "style": eff.get(f"{integration}_image_style")})

    def _configured(self, eff: dict[str, Any], integration: str, model_type: str) -> str:
        """The model the settings name for an integration, else the registry's first
        active model of its provider."""
        configured = eff.get(f"{integration}_model")
        if configured:
            return str(configured)
        provider = "openai" if integration == "dalle" else integration
        for model in self.registry.list(model_type, provider, active=True):
            return model.model_id
        raise InvalidCommand(f"no {model_type} model is configured for {integration}",
                             field="model_id")

    def _usable(self, model_id: str, model_type: str) -> AIModelConfig:
        model = self.registry.usable(model_id)
        if model.model_type != model_type:
            raise InvalidCommand(f"{model_id} is a {model.model_type} model, not {model_type}",
                                 field="model_id")
        return model

    def _choice(self, model: AIModelConfig, integration: str,
                params: dict[str, Any]) -> ModelChoice:
        try:
            (self.providers.text if model.model_type == "text" else self.providers.image)(
                model.provider)
        except UnknownProvider:
            raise ProviderNotConfigured(f"no adapter calls {model.provider} for "
                                        f"{model.model_type}") from None
        api_key = self.settings.provider_api_key(integration)
        if not api_key:
            raise ProviderNotConfigured(f"no API key is configured for {integration}")
        rates = self.registry.price_at(model.model_id, utcnow()).rates()
        return ModelChoice(model.provider, model.model_id, api_key, rates, params)

    def text(self, account_id: str, user_id: str | None, messages: tuple[ChatMessage, ...],
             choice: ModelChoice, actor: Actor, *,
             idem: IdempotencySpec | None = None) -> CallResult | Replayed:
        max_tokens = int(choice.params["max_tokens"])
        request = TextRequest(model=choice.model_id, messages=messages, max_tokens=max_tokens,
                              temperature=choice.params.get("temperature"))
        bound = self.credits.price(TEXT_OPERATION, units=text_upper_bound(messages, max_tokens))
        provider: Provider = self.providers.text(choice.provider)

        def call() -> TextResult:
            return provider.generate_text(request, choice.api_key)

        def settle(result: TextResult) -> tuple[Quote, Decimal]:
            u = result.usage
            if not u.reported:  # charged at the hold, costed at the bound, flagged
                return bound, text_cost_usd(bound.units - max_tokens, max_tokens,
                                            choice.rates["input_token_rate"],
                                            choice.rates["output_token_rate"])
            used = self.credits.price(TEXT_OPERATION, units=u.input_tokens + u.output_tokens)
            return used, text_cost_usd(u.input_tokens, u.output_tokens,
                                       choice.rates["input_token_rate"],
                                       choice.rates["output_token_rate"])

        prompt_chars = sum(len(m.content) for m in messages)
        return self._metered("text", TEXT_OPERATION, account_id, user_id, choice, bound,
                             prompt_chars, call, settle, lambda r: r.text, actor, idem)

    def images(self, account_id: str, user_id: str | None, prompt: str, choice: ModelChoice,
               actor: Actor, *, idem: IdempotencySpec | None = None) -> CallResult | Replayed:
        n = int(choice.params.get("n", 1))
        request = ImageRequest(model=choice.model_id, prompt=prompt, n=n,
                               size=choice.params.get("size"),
                               quality=choice.params.get("quality"),
                               style=choice.params.get("style"))
        bound = self.credits.price(IMAGE_OPERATION, units=n)
        provider: Provider = self.providers.image(choice.provider)

        def call() -> ImageResult:
            return provider.generate_images(request, choice.api_key)

        def settle(result: ImageResult) -> tuple[Quote, Decimal]:
            images = min(result.usage.images or len(result.images), n)
            used = self.credits.price(IMAGE_OPERATION, units=images)
            return used, image_cost_usd(images, choice.rates["cost_per_image"])

        return self._metered("image", IMAGE_OPERATION, account_id, user_id, choice, bound,
                             len(prompt), call, settle, lambda r: r.images, actor, idem)

    # -- the flow ------------------------------------------------------------------------

    def _metered(self, kind: str, operation: str, account_id: str, user_id: str | None,
                 choice: ModelChoice, bound: Quote, prompt_chars: int,
                 call: Callable[[], Any], settle: Callable[[Any], tuple[Quote, Decimal]],
                 output: Callable[[Any], Any], actor: Actor,
                 idem: IdempotencySpec | None) -> CallResult | Replayed:
        call_id = secrets.token_hex(12)
        key = account_key(account_id)
        call_key = ProviderCall.create_id(call_id)
        ttl = timedelta(seconds=self.hold_ttl_s)

        def hold(batch: Batch) -> str:  # 3. hold + requested, one transaction
            acc = self.credits.account(batch, account_id, actor)
            now = utcnow()
            rid = acc.reserve(operation, bound.credits, now + ttl, actor, now, call_id=call_id)
            batch.add(ProviderCall.request(
                actor, call_id=call_id, account_id=account_id, user_id=user_id, kind=kind,
                operation=operation, provider=choice.provider, model_id=choice.model_id,
                params=choice.params, prompt_chars=prompt_chars, reservation_id=rid,
                held_credits=bound.credits))
            return rid

        held = self.pipeline.submit(key, hold, actor, idempotency=idem, respond=lambda rid: (
            202, {"call_id": call_id, "reservation_id": rid}))
        if held.replayed:
            return Replayed(held.value[1]["call_id"])
        reservation_id: str = held.value[1]["reservation_id"]
        started = self.clock()
        try:
            try:
                result = call()  # 4. the provider, outside any transaction
            except ProviderError:
                raise
            except Exception as unexpected:  # an adapter's bug must not keep the hold
                log.exception("provider adapter %s failed unexpectedly", choice.provider)
                raise ProviderError(choice.provider, UPSTREAM_ERROR,
                                    f"adapter error ({type(unexpected).__name__})") from None
        except ProviderError as error:
            failure, latency = error, round((self.clock() - started) * 1000)
            log.warning("provider call %s to %s failed: %s (%s)", call_id, choice.provider,
                        failure.kind, failure.detail)

            def release(batch: Batch) -> None:
                acc: CreditAccount = self.credits.account(batch, account_id, actor)
                acc.release(reservation_id, actor, utcnow(), reason="provider_failed")
                batch.get(call_key).fail(failure.kind, failure.detail, failure.http_status,
                                         latency, actor)

            outcome = self.pipeline.submit(key, release, actor)
            raise ProviderCallFailed(error, call_id, outcome.position) from error
        latency = round((self.clock() - started) * 1000)
        used, cost_usd = settle(result)
        usage: Usage = result.usage
        if used.credits > bound.credits:  # the bound is an upper bound; never charge past it
            used = Quote(used.operation, used.units, bound.credits, used.price_per_credit_usd,
                         used.cost_config_version)

        text = kind == "text"  # the charge names tokens of a text call, images of an image call

        def capture(batch: Batch) -> CallResult:  # 5. capture + succeeded, one transaction
            acc = self.credits.account(batch, account_id, actor)
            charge_id = acc.capture(
                reservation_id, used,
                ProviderCharge(model_id=choice.model_id, provider=choice.provider,
                               cost_usd=cost_usd,
                               input_tokens=usage.input_tokens if text else None,
                               output_tokens=usage.output_tokens if text else None,
                               images=None if text else usage.images,
                               rates=choice.rates, call_id=call_id),
                actor, utcnow(), usage_reported=usage.reported)
            batch.get(call_key).succeed(
                actor, charge_id=charge_id, credits=used.credits,
                input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
                images=usage.images, usage_reported=usage.reported, cost_usd=cost_usd,
                rates=choice.rates, latency_ms=latency,
                provider_request_id=getattr(result, "provider_request_id", None))
            return CallResult(call_id, kind, choice.provider, choice.model_id, output(result),
                              usage, used.credits, cost_usd, used.revenue_usd, charge_id,
                              acc.balance, acc.held, latency, 0)

        outcome = self.pipeline.submit(key, capture, actor)
        value: CallResult = outcome.value
        return CallResult(**{**value.__dict__, "position": outcome.position})
