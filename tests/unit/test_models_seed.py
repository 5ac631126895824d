"""The seed registry file: the seed's models, sources for every price, and text rates that
agree with the genai-prices package's data."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from ledger.domain.models import PROVIDERS, REQUIRED_PRICES
from ledger.service import load_data

DATA = load_data("models.json")
MODELS = {m["model_id"]: m for m in DATA["models"]}
SEED_MODELS = {"gpt-4.1", "gpt-4o-mini", "gpt-4o", "gpt-5.1", "gpt-5.2", "dall-e-3",
               "dall-e-2", "gpt-image-1", "gpt-image-1-mini", "runware:100@1", "bria-2.3",
               "bria-2.3-fast", "bria-2.2"}
SEED_IMAGE_COSTS = {"dall-e-3": "0.040", "dall-e-2": "0.020", "gpt-image-1": "0.042",
                    "gpt-image-1-mini": "0.011", "bria-2.3": "0.015"}


def test_the_seed_models_are_all_there() -> None:
    assert MODELS.keys() >= SEED_MODELS
    assert {m for m in MODELS if m.startswith("claude-3")} >= {
        "claude-3-5-sonnet-20241022", "claude-3-opus-20240229", "claude-3-haiku-20240307"}
    defaults = {(m["model_type"], m["model_id"]) for m in MODELS.values() if m.get("is_default")}
    assert defaults == {("text", "gpt-4.1"), ("image", "dall-e-3")}
    assert {m["provider"] for m in MODELS.values()} <= set(PROVIDERS)


def test_the_seed_image_costs_are_copied_exactly() -> None:
    for model_id, cost in SEED_IMAGE_COSTS.items():
        assert Decimal(MODELS[model_id]["cost_per_image"]) == Decimal(cost)
    # "~$0.008-0.009": the upper figure.
    assert Decimal(MODELS["runware:100@1"]["cost_per_image"]) == Decimal("0.009")


def test_every_active_model_is_priced_and_cites_its_source() -> None:
    for m in MODELS.values():
        if m.get("is_active", True):
            assert all(m.get(f) is not None for f in REQUIRED_PRICES[m["model_type"]]), m
            source = DATA["sources"][m["price_source"]]
            assert source["url"]
            assert source["as_of"]
        for f in ("input_token_rate", "output_token_rate", "cost_per_image"):
            assert m.get(f) is None or isinstance(m[f], str), "money is a decimal string"


def _text_models() -> list[dict[str, Any]]:
    return [m for m in MODELS.values() if m["model_type"] == "text"]


@pytest.mark.parametrize("model", _text_models(), ids=lambda m: m["model_id"])
def test_text_rates_agree_with_genai_prices(model: dict[str, Any]) -> None:
    genai_prices = pytest.importorskip("genai_prices")
    price = genai_prices.calc_price(
        genai_prices.Usage(input_tokens=1_000_000, output_tokens=1_000_000),
        model_ref=model["model_id"], provider_id=model["provider"])
    assert Decimal(str(price.input_price)) == Decimal(model["input_token_rate"])
    assert Decimal(str(price.output_price)) == Decimal(model["output_token_rate"])
