"""Anthropic through the official `anthropic` SDK (the Messages API). The SDK does the
retries (max_retries: 408, 409, 429, 5xx, connection errors, timeouts) and the timeout."""

from __future__ import annotations

from typing import Any

import anthropic
import pydantic

from ledger.providers.base import (
    MALFORMED,
    ClientsByKey,
    ProviderConfig,
    ProviderError,
    TextRequest,
    TextResult,
    UnsupportedKind,
    Usage,
)
from ledger.providers.openai_provider import sdk_error

MAX_TEMPERATURE = 1.0  # Anthropic's range is 0..1; the platform's settings allow 0..2


class AnthropicProvider(UnsupportedKind):
    name = "anthropic"
    kinds = frozenset({"text"})

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        self.clients = ClientsByKey(self._new_client)

    def close(self) -> None:
        self.clients.close()

    def client(self, api_key: str) -> anthropic.Anthropic:
        return self.clients.get(api_key)

    def _new_client(self, api_key: str) -> anthropic.Anthropic:
        return anthropic.Anthropic(api_key=api_key, base_url=self.config.base_url,
                                   timeout=self.config.timeout_s,
                                   max_retries=self.config.max_retries)

    def generate_text(self, request: TextRequest, api_key: str) -> TextResult:
        system = "\n\n".join(m.content for m in request.messages if m.role == "system")
        kwargs: dict[str, Any] = {
            "model": request.model, "max_tokens": request.max_tokens,
            "messages": [{"role": m.role, "content": m.content}
                         for m in request.messages if m.role != "system"]}
        if system:
            kwargs["system"] = system
        if request.temperature is not None:  # this SDK version no longer names it
            kwargs["extra_body"] = {"temperature": min(request.temperature, MAX_TEMPERATURE)}
        try:
            message = self.client(api_key).messages.create(**kwargs)
        except anthropic.AnthropicError as exc:
            raise sdk_error(self.name, exc, api_key) from None
        except (ValueError, pydantic.ValidationError) as exc:
            raise ProviderError(self.name, MALFORMED,
                                f"unreadable answer ({type(exc).__name__})") from None
        content = getattr(message, "content", None)
        if not isinstance(content, list):
            raise ProviderError(self.name, MALFORMED, "the answer has no content")
        text = "".join(getattr(block, "text", "") for block in content)
        u = getattr(message, "usage", None)
        usage = (Usage(input_tokens=u.input_tokens, output_tokens=u.output_tokens)
                 if u is not None and u.input_tokens is not None else Usage(reported=False))
        return TextResult(text, usage, getattr(message, "_request_id", None) or
                          getattr(message, "id", None))
