"""What every provider adapter shares: the neutral request, result and usage records, the
one Protocol, the failure classes, and the bounded retry of the REST adapters.

Failures are classified once, here, into the kinds the ledger records and the API maps
to a status:

    timeout               the provider did not answer within the timeout      -> 504
    upstream_error        the provider answered 5xx                           -> 502
    rate_limited          the provider answered 429 (after the retries)       -> 502
    connection_error      no connection could be made                         -> 502
    malformed_response    the answer could not be read (not JSON, wrong shape) -> 502
    rejected              the provider refused the request (4xx: bad key, ...) -> 502

An API key never appears in a failure's detail: `scrub()` removes it from every text
taken from an SDK exception or a provider's body before it is kept.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

import httpx
import tenacity

log = logging.getLogger(__name__)

T = TypeVar("T")

TIMEOUT = "timeout"
UPSTREAM_ERROR = "upstream_error"
RATE_LIMITED = "rate_limited"
CONNECTION_ERROR = "connection_error"
MALFORMED = "malformed_response"
REJECTED = "rejected"
HTTP_STATUS = {TIMEOUT: 504, UPSTREAM_ERROR: 502, RATE_LIMITED: 502, CONNECTION_ERROR: 502,
               MALFORMED: 502, REJECTED: 502}
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 529})
DETAIL_LIMIT = 300


@dataclass(frozen=True)
class ChatMessage:
    role: str  # system | user | assistant
    content: str


@dataclass(frozen=True)
class TextRequest:
    model: str
    messages: tuple[ChatMessage, ...]
    max_tokens: int
    temperature: float | None = None


@dataclass(frozen=True)
class ImageRequest:
    model: str
    prompt: str
    n: int = 1
    size: str | None = None  # "1024x1024"
    quality: str | None = None  # standard | hd (the platform's words)
    style: str | None = None


@dataclass(frozen=True)
class Usage:
    """What one call used, in the same terms for every provider.

    `reported` is False when the provider's answer carried no usage: the ledger then
    charges the hold and flags the charge."""

    input_tokens: int = 0
    output_tokens: int = 0
    images: int = 0
    size: str | None = None
    reported: bool = True


@dataclass(frozen=True)
class TextResult:
    text: str
    usage: Usage
    provider_request_id: str | None = None


@dataclass(frozen=True)
class ImageResult:
    images: tuple[str, ...]  # URLs, or base64 PNGs for the models that only return those
    usage: Usage
    provider_request_id: str | None = None


class ProviderError(Exception):
    """A provider call failed; `kind` is one of the classes above."""

    def __init__(self, provider: str, kind: str, detail: str, *,
                 upstream_status: int | None = None) -> None:
        super().__init__(f"{provider}: {kind}: {detail}")
        self.provider = provider
        self.kind = kind
        self.detail = detail[:DETAIL_LIMIT]
        self.upstream_status = upstream_status

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.kind, 502)


@runtime_checkable
class Provider(Protocol):
    """One AI provider. An adapter implements the kinds it names in `kinds` ("text",
    "image"); the API key is passed per call (read from the global settings each time,
    so a changed key takes effect at once)."""

    name: str
    kinds: frozenset[str]

    def generate_text(self, request: TextRequest, api_key: str) -> TextResult: ...

    def generate_images(self, request: ImageRequest, api_key: str) -> ImageResult: ...


@dataclass(frozen=True)
class ProviderConfig:
    """Where a provider lives and how patiently it is called."""

    base_url: str
    timeout_s: float
    max_retries: int
    backoff_initial_s: float = 0.25
    backoff_max_s: float = 4.0
    extra: dict[str, Any] = field(default_factory=dict)


_BEARER = re.compile(r"(?i)(bearer\s+|api[_-]?key[\"'=:\s]+|api_token[\"'=:\s]+)[^\s\"',}]+")


def scrub(text: object, *secrets: str | None) -> str:
    """`text` without any of `secrets` (nor anything that looks like a bearer token or an
    api key assignment), cut to a readable length."""
    out = str(text)
    for secret in secrets:
        if secret:
            out = out.replace(secret, "[redacted]")
    out = _BEARER.sub(lambda m: m.group(1) + "[redacted]", out)
    return out[:DETAIL_LIMIT]


class _Closable(Protocol):
    def close(self) -> None: ...


C = TypeVar("C", bound=_Closable)


class ClientsByKey(Generic[C]):
    """An SDK's clients (each with its connection pool) by API key. Adapters read the key
    from the settings on every call, so a changed key gets a client of its own at once;
    keys change rarely, so only the latest few clients are kept."""

    def __init__(self, make: Callable[[str], C], keep: int = 4) -> None:
        self._make = make
        self._keep = keep
        self._clients: dict[str, C] = {}
        self._lock = threading.Lock()

    def get(self, api_key: str) -> C:
        with self._lock:
            client = self._clients.get(api_key)
            if client is None:
                if len(self._clients) >= self._keep:
                    self._clients.pop(next(iter(self._clients))).close()
                client = self._clients[api_key] = self._make(api_key)
            return client

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()


class UnsupportedKind:
    """Mixin for an adapter that serves only one kind."""

    name: str

    def generate_text(self, request: TextRequest, api_key: str) -> TextResult:
        raise ProviderError(self.name, REJECTED, "this provider does not generate text")

    def generate_images(self, request: ImageRequest, api_key: str) -> ImageResult:
        raise ProviderError(self.name, REJECTED, "this provider does not generate images")


# -- the REST adapters' HTTP: httpx with tenacity's bounded, backed-off retries ---------------

def status_error(provider: str, response: httpx.Response, api_key: str) -> ProviderError:
    code = response.status_code
    kind = (RATE_LIMITED if code == 429 else TIMEOUT if code in (408, 504)
            else UPSTREAM_ERROR if code >= 500 else REJECTED)
    return ProviderError(provider, kind, f"HTTP {code}: {scrub(response.text, api_key)}",
                         upstream_status=code)


def transport_error(provider: str, exc: httpx.HTTPError, api_key: str) -> ProviderError:
    if isinstance(exc, httpx.TimeoutException):
        return ProviderError(provider, TIMEOUT, f"no answer within the timeout "
                             f"({type(exc).__name__})")
    return ProviderError(provider, CONNECTION_ERROR,
                         f"{type(exc).__name__}: {scrub(exc, api_key)}")


def post_json(client: httpx.Client, config: ProviderConfig, provider: str, url: str,
              api_key: str, *, headers: dict[str, str], body: Any,
              parse: Callable[[Any, httpx.Response], T]) -> T:
    """POST `body`, retrying 408/429/5xx and connection errors (and timeouts) up to
    `config.max_retries` times with exponential backoff; `parse` reads the JSON answer
    (raising KeyError/TypeError/ValueError on a malformed one)."""

    def attempt() -> T:
        try:
            response = client.post(url, json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise Retryable(transport_error(provider, exc, api_key)) from None
        if response.status_code in RETRYABLE_STATUSES:
            raise Retryable(status_error(provider, response, api_key))
        if response.status_code >= 400:
            raise status_error(provider, response, api_key)
        try:
            return parse(response.json(), response)
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            raise ProviderError(provider, MALFORMED,
                                f"unreadable answer ({type(exc).__name__})") from None

    return with_retries(config, attempt)


class Retryable(Exception):
    """Raised by an attempt whose failure may pass: it is tried again, within bounds."""

    def __init__(self, error: ProviderError) -> None:
        super().__init__(error.kind)
        self.error = error


def with_retries(config: ProviderConfig, attempt: Callable[[], T]) -> T:
    """Run `attempt` up to `config.max_retries` more times while it raises Retryable,
    with exponential backoff and jitter (tenacity), then raise its ProviderError. Nothing
    is logged here: a failure's text is only ever kept scrubbed."""
    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(config.max_retries + 1),
        wait=tenacity.wait_exponential_jitter(initial=config.backoff_initial_s,
                                              max=config.backoff_max_s,
                                              jitter=config.backoff_initial_s),
        retry=tenacity.retry_if_exception_type(Retryable),
        reraise=True,
    )
    try:
        return retrying(attempt)
    except Retryable as exc:
        raise exc.error from None


class HttpProvider(UnsupportedKind):
    """An adapter that speaks a provider's REST API with one httpx client (the key
    travels in each request)."""

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        self.http = http_client(config)

    def close(self) -> None:
        self.http.close()


def http_client(config: ProviderConfig) -> httpx.Client:
    return httpx.Client(timeout=httpx.Timeout(config.timeout_s, connect=min(
        config.timeout_s, 10.0)), follow_redirects=False)


def size_of(size: str | None, default: str = "1024x1024") -> tuple[int, int]:
    width, _, height = (size or default).partition("x")
    return int(width), int(height)
