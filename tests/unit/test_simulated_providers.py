"""The demo's simulated providers: the Provider Protocol, answered in-process from a
seeded generator, with simulated (never slept) latency and a share of failures."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from ledger.providers import (
    ChatMessage,
    ImageRequest,
    Provider,
    ProviderError,
    TextRequest,
    UnknownProvider,
    Usage,
)
from ledger.providers.simulated import SimulatedProviders, prompt_tokens

Outcome = tuple[str, int, Usage | None, int | None]  # what, clock ms, usage, HTTP status

TEXT = TextRequest(model="gpt-4o-mini", max_tokens=2000, messages=(
    ChatMessage("system", "You write."), ChatMessage("user", "x" * 5000)))
IMAGE = ImageRequest(model="dall-e-3", prompt="a fox", n=2, size="1024x1024")


def outcomes(seed: int, calls: int) -> list[Outcome]:
    """(what happened, how far the clock moved, the usage or the failure's status) of
    `calls` calls alternating text and images."""
    sim = SimulatedProviders(random.Random(seed), timeout_s=60, max_retries=2, backoff_s=0.5)
    out: list[Outcome] = []
    for i in range(calls):
        before = sim.clock.ms
        try:
            if i % 2:
                usage = sim.image("openai").generate_images(IMAGE, "").usage
            else:
                usage = sim.text("anthropic" if i % 4 else "openai").generate_text(TEXT, "").usage
            out.append(("ok", sim.clock.ms - before, usage, None))
        except ProviderError as error:
            out.append((error.kind, sim.clock.ms - before, None, error.http_status))
    return out


def test_they_are_providers_of_the_registry_kinds() -> None:
    sim = SimulatedProviders(random.Random(1))
    for name in ("openai", "anthropic", "google"):
        assert isinstance(sim.text(name), Provider)
    for name in ("openai", "runware", "bria"):
        assert isinstance(sim.image(name), Provider)
    with pytest.raises(UnknownProvider):
        sim.image("anthropic")
    with pytest.raises(UnknownProvider):
        sim.text("runware")


def test_usage_follows_the_request_and_the_clock_moves_by_the_latency() -> None:
    results = outcomes(seed=7, calls=400)
    assert sum(what == "ok" for what, *_ in results) > 350
    for i, (_, elapsed_ms, usage, _) in enumerate(results):
        if usage is None:
            continue
        if i % 2:
            assert usage.images == IMAGE.n
            assert elapsed_ms >= 2 * 5_000  # dall-e-3 takes seconds an image
        else:
            assert usage.input_tokens == prompt_tokens(TEXT) >= 5000 // 4
            assert 0 < usage.output_tokens <= TEXT.max_tokens
            assert elapsed_ms > 0


def test_a_small_share_fails_in_each_kind_costing_its_time() -> None:
    results = outcomes(seed=11, calls=4000)
    kinds = Counter(what for what, *_ in results)
    assert set(kinds) == {"ok", "upstream_error", "timeout", "malformed_response"}
    assert 0.01 < (len(results) - kinds["ok"]) / len(results) < 0.06
    for what, elapsed_ms, _, status in results:
        if what == "timeout":  # three attempts ran into the 60 s timeout
            assert elapsed_ms >= 180_000
            assert status == 504
        elif what != "ok":
            assert status == 502


def test_the_same_seed_answers_the_same() -> None:
    assert outcomes(seed=3, calls=300) == outcomes(seed=3, calls=300)
    assert outcomes(seed=3, calls=300) != outcomes(seed=4, calls=300)
