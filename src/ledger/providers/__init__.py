"""Provider adapters behind one Protocol (`Provider`), built from Settings at one edge.

`build_providers(settings)` makes the registry the ledger calls through: OpenAI (text and
images), Anthropic and Google (text) through their official SDKs, Runware and Bria
(images) over REST with httpx. Base URLs come from the contract's LEDGER_*_BASE_URL
variables, timeout and retry bound from LEDGER_PROVIDER_TIMEOUT_S / _MAX_RETRIES. API
keys are not part of an adapter: the caller passes the key of the global integration
settings with every call.
"""

from __future__ import annotations

from ledger.config import Settings
from ledger.providers.base import (
    HTTP_STATUS,
    ChatMessage,
    ImageRequest,
    ImageResult,
    Provider,
    ProviderConfig,
    ProviderError,
    TextRequest,
    TextResult,
    Usage,
    scrub,
)

__all__ = [
    "DEFAULT_BASE_URLS",
    "HTTP_STATUS",
    "ChatMessage",
    "ImageRequest",
    "ImageResult",
    "Provider",
    "ProviderConfig",
    "ProviderError",
    "ProviderRegistry",
    "TextRequest",
    "TextResult",
    "UnknownProvider",
    "Usage",
    "build_providers",
    "scrub",
]

DEFAULT_BASE_URLS = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "google": "https://generativelanguage.googleapis.com",
    "runware": "https://api.runware.ai/v1",
    "bria": "https://engine.prod.bria-api.com",
}


class UnknownProvider(LookupError):
    """No adapter serves this provider for this kind of call."""


class ProviderRegistry:
    def __init__(self, providers: dict[str, Provider]) -> None:
        self.providers = providers

    def _get(self, name: str, kind: str) -> Provider:
        provider = self.providers.get(name)
        if provider is None or kind not in provider.kinds:
            raise UnknownProvider(f"no {kind} provider {name!r}")
        return provider

    def text(self, name: str) -> Provider:
        return self._get(name, "text")

    def image(self, name: str) -> Provider:
        return self._get(name, "image")

    def close(self) -> None:
        for provider in self.providers.values():
            close = getattr(provider, "close", None)
            if close is not None:
                close()


def provider_config(settings: Settings, name: str) -> ProviderConfig:
    base_url = getattr(settings, f"{name}_base_url", None) or DEFAULT_BASE_URLS[name]
    return ProviderConfig(base_url=base_url, timeout_s=settings.provider_timeout_s,
                          max_retries=max(0, settings.provider_max_retries),
                          backoff_initial_s=settings.provider_backoff_s,
                          backoff_max_s=max(settings.provider_backoff_s, 8.0))


def build_providers(settings: Settings) -> ProviderRegistry:
    from ledger.providers.anthropic_provider import AnthropicProvider
    from ledger.providers.bria_provider import BriaProvider
    from ledger.providers.google_provider import GoogleProvider
    from ledger.providers.openai_provider import OpenAIProvider
    from ledger.providers.runware_provider import RunwareProvider

    classes: dict[str, type] = {"openai": OpenAIProvider, "anthropic": AnthropicProvider,
                                "google": GoogleProvider, "runware": RunwareProvider,
                                "bria": BriaProvider}
    return ProviderRegistry({name: cls(provider_config(settings, name))
                             for name, cls in classes.items()})
