"""Google Gemini through the official `google-genai` SDK. Its client takes a base URL
and a timeout (milliseconds) in `HttpOptions`, so it is pointed at LEDGER_GOOGLE_BASE_URL
like the other SDKs.

Retries (408, 429, 5xx, connection errors and timeouts, bounded, exponential backoff)
are ours, not the SDK's: the SDK's retry logs each failure's full text at INFO before it
sleeps, and a provider's error body may echo the caller's API key (the tests' fake does).
The SDK is told to try once (`attempts=1`, which also turns off its implicit retry)."""

from __future__ import annotations

from typing import Any

from google import genai
from google.genai import errors, types

from ledger.providers.base import (
    CONNECTION_ERROR,
    MALFORMED,
    RATE_LIMITED,
    REJECTED,
    TIMEOUT,
    UPSTREAM_ERROR,
    ClientsByKey,
    ProviderConfig,
    ProviderError,
    Retryable,
    TextRequest,
    TextResult,
    UnsupportedKind,
    Usage,
    scrub,
    with_retries,
)

RETRYABLE_KINDS = frozenset({TIMEOUT, UPSTREAM_ERROR, RATE_LIMITED, CONNECTION_ERROR})


def _error(exc: Exception, api_key: str) -> ProviderError:
    if isinstance(exc, errors.APIError):
        status = int(exc.code) if isinstance(exc.code, int) else 502
        kind = (RATE_LIMITED if status == 429 else TIMEOUT if status in (408, 504)
                else UPSTREAM_ERROR if status >= 500 else REJECTED)
        return ProviderError("google", kind, f"HTTP {status}: {scrub(exc.message, api_key)}",
                             upstream_status=status)
    if isinstance(exc, ValueError):  # UnknownApiResponseError is one
        return ProviderError("google", MALFORMED, f"unreadable answer ({type(exc).__name__})")
    name = type(exc).__name__
    if "Timeout" in name:
        return ProviderError("google", TIMEOUT, f"no answer within the timeout ({name})")
    return ProviderError("google", CONNECTION_ERROR, f"{name}: {scrub(exc, api_key)}")


class GoogleProvider(UnsupportedKind):
    name = "google"
    kinds = frozenset({"text"})

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        self.clients = ClientsByKey(self._new_client)

    def close(self) -> None:
        self.clients.close()

    def client(self, api_key: str) -> genai.Client:
        return self.clients.get(api_key)

    def _new_client(self, api_key: str) -> genai.Client:
        options = types.HttpOptions(
            base_url=self.config.base_url, timeout=int(self.config.timeout_s * 1000),
            retry_options=types.HttpRetryOptions(attempts=1))  # our retries, not the SDK's
        return genai.Client(api_key=api_key, http_options=options)

    def generate_text(self, request: TextRequest, api_key: str) -> TextResult:
        system = "\n\n".join(m.content for m in request.messages if m.role == "system")
        contents: Any = [types.Content(role="model" if m.role == "assistant" else "user",
                                       parts=[types.Part(text=m.content)])
                         for m in request.messages if m.role != "system"]
        config = types.GenerateContentConfig(max_output_tokens=request.max_tokens,
                                             temperature=request.temperature,
                                             system_instruction=system or None)
        client = self.client(api_key)

        def attempt() -> types.GenerateContentResponse:
            try:
                return client.models.generate_content(model=request.model,
                                                      contents=contents, config=config)
            except Exception as exc:  # the SDK raises its own errors and its HTTP library's
                error = _error(exc, api_key)
            if error.kind in RETRYABLE_KINDS:
                raise Retryable(error)
            raise error

        response = with_retries(self.config, attempt)
        if not response.candidates:
            raise ProviderError(self.name, MALFORMED, "the answer has no candidates")
        text = response.text or ""
        meta = response.usage_metadata
        if meta is None or meta.prompt_token_count is None:
            usage = Usage(reported=False)
        else:  # thinking tokens are billed as output
            usage = Usage(input_tokens=meta.prompt_token_count,
                          output_tokens=(meta.candidates_token_count or 0)
                          + (meta.thoughts_token_count or 0))
        return TextResult(text, usage, response.response_id)
