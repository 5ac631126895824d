"""OpenAI through the official `openai` SDK: chat completions, and images (dall-e-3,
dall-e-2, gpt-image-1, gpt-image-1-mini). The SDK does the retries (max_retries: 408,
409, 429, 5xx, connection errors and timeouts, with backoff) and the timeout."""

from __future__ import annotations

from typing import Any

import openai
import pydantic

from ledger.providers.base import (
    CONNECTION_ERROR,
    MALFORMED,
    RATE_LIMITED,
    REJECTED,
    TIMEOUT,
    UPSTREAM_ERROR,
    ClientsByKey,
    ImageRequest,
    ImageResult,
    ProviderConfig,
    ProviderError,
    TextRequest,
    TextResult,
    Usage,
    scrub,
)

DALLE3_STYLES = frozenset({"vivid", "natural"})
# the platform's quality words for the gpt-image models
GPT_IMAGE_QUALITY = {"standard": "medium", "hd": "high"}


def sdk_error(provider: str, exc: Exception, api_key: str) -> ProviderError:
    """An `openai` or `anthropic` SDK exception as a ProviderError (the two SDKs share
    their exception hierarchy's shape)."""
    name = type(exc).__name__
    if name == "APITimeoutError":
        return ProviderError(provider, TIMEOUT, "no answer within the timeout")
    if name == "APIConnectionError":
        return ProviderError(provider, CONNECTION_ERROR, scrub(exc, api_key))
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        kind = (RATE_LIMITED if status == 429 else TIMEOUT if status in (408, 504)
                else UPSTREAM_ERROR if status >= 500 else REJECTED)
        return ProviderError(provider, kind, f"HTTP {status}: {scrub(exc, api_key)}",
                             upstream_status=status)
    return ProviderError(provider, MALFORMED, f"unreadable answer ({name})")


class OpenAIProvider:
    name = "openai"
    kinds = frozenset({"text", "image"})

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        self.clients = ClientsByKey(self._new_client)

    def close(self) -> None:
        self.clients.close()

    def client(self, api_key: str) -> openai.OpenAI:
        return self.clients.get(api_key)

    def _new_client(self, api_key: str) -> openai.OpenAI:
        return openai.OpenAI(api_key=api_key, base_url=self.config.base_url,
                             timeout=self.config.timeout_s,
                             max_retries=self.config.max_retries)

    def _call(self, api_key: str, call: Any) -> Any:
        try:
            return call(self.client(api_key))
        except openai.OpenAIError as exc:
            raise sdk_error(self.name, exc, api_key) from None
        except (ValueError, pydantic.ValidationError) as exc:  # a body that is not JSON
            raise ProviderError(self.name, MALFORMED,
                                f"unreadable answer ({type(exc).__name__})") from None

    def generate_text(self, request: TextRequest, api_key: str) -> TextResult:
        messages: Any = [{"role": m.role, "content": m.content} for m in request.messages]
        kwargs: dict[str, Any] = {"model": request.model, "messages": messages,
                                  "max_completion_tokens": request.max_tokens}
        if request.temperature is not None:
            kwargs["temperature"] = request.temperature
        completion = self._call(api_key, lambda c: c.chat.completions.create(**kwargs))
        try:
            text = completion.choices[0].message.content or ""
        except (AttributeError, IndexError, TypeError):
            raise ProviderError(self.name, MALFORMED, "the answer has no choices") from None
        u = completion.usage
        usage = (Usage(input_tokens=u.prompt_tokens, output_tokens=u.completion_tokens)
                 if u is not None else Usage(reported=False))
        return TextResult(text, usage, getattr(completion, "_request_id", None) or
                          completion.id)

    def generate_images(self, request: ImageRequest, api_key: str) -> ImageResult:
        if request.model == "dall-e-3" and request.n > 1:
            return self._one_by_one(request, api_key)  # dall-e-3 makes one image a request
        kwargs: dict[str, Any] = {"model": request.model, "prompt": request.prompt,
                                  "n": request.n}
        if request.size:
            kwargs["size"] = request.size
        if request.model.startswith("dall-e"):
            kwargs["response_format"] = "url"
        if request.model == "dall-e-3":
            if request.quality in ("standard", "hd"):
                kwargs["quality"] = request.quality
            if request.style in DALLE3_STYLES:
                kwargs["style"] = request.style
        elif request.model.startswith("gpt-image") and request.quality in GPT_IMAGE_QUALITY:
            kwargs["quality"] = GPT_IMAGE_QUALITY[request.quality]
        response = self._call(api_key, lambda c: c.images.generate(**kwargs))
        data = getattr(response, "data", None)
        if not isinstance(data, list) or not data:
            raise ProviderError(self.name, MALFORMED, "the answer has no images")
        images = tuple(d.url or d.b64_json or "" for d in data)
        if not all(images):
            raise ProviderError(self.name, MALFORMED, "an image has neither url nor data")
        return ImageResult(images, Usage(images=len(images), size=request.size),
                           getattr(response, "_request_id", None))

    def _one_by_one(self, request: ImageRequest, api_key: str) -> ImageResult:
        """n single-image requests; the images made before a failure are still returned
        (and charged), a failure of the first is the call's failure."""
        images: list[str] = []
        single = ImageRequest(request.model, request.prompt, 1, request.size,
                              request.quality, request.style)
        for _ in range(request.n):
            try:
                images += self.generate_images(single, api_key).images
            except ProviderError:
                if not images:
                    raise
                break
        return ImageResult(tuple(images), Usage(images=len(images), size=request.size))
