"""Simulated providers: the `Provider` Protocol answered in-process, for `ledger demo`.

No network and no sleeping: each call decides, from a seeded `random.Random`, what a
real provider would have done (usage per model, how long it took, now and then a
failure of the kinds the real adapters report) and advances a `SimulatedClock` by that
latency. An `AIService` built with `clock=registry.clock` measures exactly the
simulated latency, so a month of metered calls takes seconds to record.

The simulated providers ignore the API key they are passed: the demo builds its
`ModelChoice`s itself (with no key), and never writes a key into the settings. Only the
demo builds them, never `build_providers`, so production keeps answering 503 when an
integration has no key.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from ledger.providers import ProviderRegistry
from ledger.providers.base import (
    MALFORMED,
    TIMEOUT,
    UPSTREAM_ERROR,
    ImageRequest,
    ImageResult,
    ProviderError,
    TextRequest,
    TextResult,
    Usage,
)

CHARS_PER_TOKEN = 4  # English prose: about four characters a token
MESSAGE_TOKENS = 4  # role and separators per chat message


class SimulatedClock:
    """A monotonic clock (seconds) that moves only when a simulated call takes time.
    Kept in whole milliseconds, so differences are exact."""

    def __init__(self) -> None:
        self.ms = 0

    def __call__(self) -> float:
        return self.ms / 1000

    def advance(self, ms: int) -> None:
        self.ms += max(0, ms)


@dataclass(frozen=True)
class Speed:
    """How fast a model answers: first-byte time and output tokens a second (text), or
    seconds per image."""

    first_s: float
    per_s: float  # text: output tokens a second; image: seconds an image


TEXT_SPEEDS = {
    "gpt-4o-mini": Speed(0.35, 85), "gpt-4o": Speed(0.5, 70), "gpt-4.1": Speed(0.6, 60),
    "gpt-5.1": Speed(2.5, 55), "gpt-5.2": Speed(3.0, 50),  # reasoning before answering
    "claude-3-5-haiku-20241022": Speed(0.5, 65), "claude-3-haiku-20240307": Speed(0.4, 90),
    "claude-3-5-sonnet-20241022": Speed(0.8, 50), "claude-3-5-sonnet-20240620": Speed(0.8, 50),
    "claude-3-opus-20240229": Speed(1.6, 25),
}
IMAGE_SPEEDS = {
    "dall-e-3": Speed(1.0, 11.0), "dall-e-2": Speed(0.8, 4.5), "gpt-image-1": Speed(2.0, 28.0),
    "gpt-image-1-mini": Speed(1.5, 9.0), "runware:100@1": Speed(0.3, 1.8),
    "bria-2.3": Speed(0.6, 5.5),
}
DEFAULT_TEXT, DEFAULT_IMAGE = Speed(0.6, 60), Speed(1.0, 8.0)
# Share of calls that end in each failure, after the adapter's retries.
FAILURES = ((UPSTREAM_ERROR, 0.02), (TIMEOUT, 0.01), (MALFORMED, 0.01))
RETRIED = 0.03  # share of successful calls that needed one retry first
UPSTREAM_ANSWERS = ((500, "Internal server error"), (502, "Bad gateway"),
                    (503, "The server is overloaded, please retry later"))


def prompt_tokens(request: TextRequest) -> int:
    """Input tokens of a chat request, counted the way the simulation's providers do."""
    return sum(math.ceil(len(m.content) / CHARS_PER_TOKEN) + MESSAGE_TOKENS
               for m in request.messages)


class SimulatedProvider:
    """One provider (`name`, `kinds`) answering from `rng`; see the module docstring."""

    def __init__(self, name: str, kinds: frozenset[str], registry: SimulatedProviders) -> None:
        self.name = name
        self.kinds = kinds
        self._sim = registry

    def generate_text(self, request: TextRequest, api_key: str) -> TextResult:
        rng, speed = self._sim.rng, TEXT_SPEEDS.get(request.model, DEFAULT_TEXT)
        wanted = int(rng.lognormvariate(math.log(1800), 0.45))
        output = max(1, min(wanted, request.max_tokens))  # a long answer stops at the limit
        seconds = rng.uniform(0.7, 1.3) * speed.first_s + output / (
            speed.per_s * rng.uniform(0.8, 1.2))
        self._answer(seconds)
        usage = Usage(input_tokens=prompt_tokens(request), output_tokens=output)
        return TextResult(text=f"[simulated {request.model} answer of {output} tokens]",
                          usage=usage, provider_request_id=self._sim.request_id(self.name))

    def generate_images(self, request: ImageRequest, api_key: str) -> ImageResult:
        rng, speed = self._sim.rng, IMAGE_SPEEDS.get(request.model, DEFAULT_IMAGE)
        seconds = speed.first_s + sum(speed.per_s * rng.uniform(0.75, 1.4)
                                      for _ in range(request.n))
        self._answer(seconds)
        request_id = self._sim.request_id(self.name)
        images = tuple(f"https://images.example/{self.name}/{request_id}-{i}.png"
                       for i in range(request.n))
        return ImageResult(images=images, usage=Usage(images=request.n, size=request.size),
                           provider_request_id=request_id)

    def _answer(self, seconds: float) -> None:
        """Spend `seconds` (plus a retry now and then) on the clock, or fail."""
        sim, rng = self._sim, self._sim.rng
        draw, threshold = rng.random(), 0.0
        for kind, share in FAILURES:
            threshold += share
            if draw < threshold:
                raise self._failure(kind, seconds)
        if rng.random() < RETRIED:  # the first attempt got a 503, the retry answered
            seconds += rng.uniform(0.2, 1.5) + sim.backoff_s(1)
        sim.clock.advance(round(seconds * 1000))

    def _failure(self, kind: str, seconds: float) -> ProviderError:
        sim, rng = self._sim, self._sim.rng
        attempts = sim.max_retries + 1
        backoffs = sum(sim.backoff_s(i) for i in range(1, attempts))
        if kind == TIMEOUT:  # every attempt ran into the timeout
            sim.clock.advance(round((sim.timeout_s * attempts + backoffs) * 1000))
            return ProviderError(self.name, TIMEOUT, "no answer within the timeout "
                                 "(simulated)")
        if kind == UPSTREAM_ERROR:  # every attempt got a quick 5xx
            status, message = rng.choice(UPSTREAM_ANSWERS)
            spent = sum(rng.uniform(0.1, 1.2) for _ in range(attempts)) + backoffs
            sim.clock.advance(round(spent * 1000))
            return ProviderError(self.name, UPSTREAM_ERROR,
                                 f'HTTP {status}: {{"error": {{"message": "{message}"}}}} '
                                 "(simulated)", upstream_status=status)
        sim.clock.advance(round(seconds * 1000))  # a whole answer, unreadable
        return ProviderError(self.name, MALFORMED, "unreadable answer (JSONDecodeError, "
                             "simulated)")


class SimulatedProviders(ProviderRegistry):
    """The five providers of `build_providers`, simulated; deterministic from `rng`.

    `timeout_s`, `max_retries` and `backoff_s` are the real adapters' settings
    (LEDGER_PROVIDER_*): a simulated timeout costs what the real one would."""

    def __init__(self, rng: random.Random, *, timeout_s: float = 60.0, max_retries: int = 2,
                 backoff_s: float = 0.5) -> None:
        self.rng = rng
        self.clock = SimulatedClock()
        self.timeout_s = timeout_s
        self.max_retries = max(0, max_retries)
        self.backoff = backoff_s
        self._requests = 0
        kinds = {"openai": frozenset({"text", "image"}), "anthropic": frozenset({"text"}),
                 "google": frozenset({"text"}), "runware": frozenset({"image"}),
                 "bria": frozenset({"image"})}
        super().__init__({name: SimulatedProvider(name, k, self) for name, k in kinds.items()})

    def backoff_s(self, retry: int) -> float:
        """The wait before retry number `retry` (doubling, at most 8 s), with jitter."""
        return min(self.backoff * 2.0 ** (retry - 1), 8.0) + self.rng.uniform(0, self.backoff)

    def request_id(self, provider: str) -> str:
        self._requests += 1
        return f"sim-{provider}-{self._requests:06d}"
