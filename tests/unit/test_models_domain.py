"""AIModelConfig and ModelCatalog: invariants and prices over time, without a database."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from ledger.domain.base import SYSTEM, utcnow
from ledger.domain.errors import Conflict, InvalidCommand
from ledger.domain.models import AIModelConfig, ModelCatalog, ModelExists, ModelUnavailable

T0 = utcnow()


def text_model(model_id: str = "gpt-x", **spec: Any) -> AIModelConfig:
    return AIModelConfig.register(
        model_id, "text", "openai", {"display_name": model_id, **spec},
        {"input_token_rate": Decimal("2.00"), "output_token_rate": Decimal("8.00")}, True,
        SYSTEM, T0)


def catalog_with(*models: AIModelConfig) -> ModelCatalog:
    catalog = ModelCatalog.open("text", SYSTEM)
    for m in models:
        catalog.list_model(m, SYSTEM)
    return catalog


def test_price_at_answers_from_the_recorded_points() -> None:
    m = text_model()
    later = T0 + timedelta(days=30)
    m.reprice({"input_token_rate": Decimal("1.50")}, later, SYSTEM, T0)
    before, after = m.price_at(later - timedelta(seconds=1)), m.price_at(later)
    assert before is not None
    assert after is not None
    assert (before.input_token_rate, before.output_token_rate) == (Decimal("2.00"),
                                                                   Decimal("8.00"))
    # A field left out keeps the value in force at effective_at.
    assert (after.input_token_rate, after.output_token_rate) == (Decimal("1.50"),
                                                                 Decimal("8.00"))
    assert after.version == 2
    assert m.price_at(T0 - timedelta(seconds=1)) is None
    assert [p.effective_at for p in m.scheduled(T0)] == [later]


def test_a_price_change_never_takes_effect_in_the_past() -> None:
    m = text_model()
    with pytest.raises(InvalidCommand, match="past"):
        m.reprice({"input_token_rate": Decimal("1")}, T0 - timedelta(minutes=1), SYSTEM, T0)
    assert m.pending_events[-1].__class__ is AIModelConfig.Registered


def test_prices_are_non_negative_decimals() -> None:
    m = text_model()
    for bad in (Decimal("-1"), Decimal("NaN"), 1.5, "2.00"):
        with pytest.raises(InvalidCommand):
            m.reprice({"input_token_rate": bad}, None, SYSTEM, T0)
    assert len(m.pending_events) == 1


def test_an_active_model_needs_the_prices_of_its_type() -> None:
    with pytest.raises(InvalidCommand, match="cost_per_image"):
        AIModelConfig.register("img", "image", "bria", {"display_name": "img"}, {}, True,
                               SYSTEM, T0)
    m = AIModelConfig.register("img", "image", "bria", {"display_name": "img"}, {}, False,
                               SYSTEM, T0)
    with pytest.raises(InvalidCommand, match="cost_per_image"):
        m.activate(SYSTEM, T0)
    m.reprice({"cost_per_image": Decimal("0.015")}, None, SYSTEM, T0)
    m.activate(SYSTEM, T0)
    assert m.is_active


def test_choosing_a_default_clears_the_previous_one_in_the_same_command() -> None:
    a, b = text_model("a"), text_model("b")
    catalog = catalog_with(a, b)
    catalog.choose_default(a, None, SYSTEM, T0)
    catalog.choose_default(b, a, SYSTEM, T0)
    assert (a.is_default, b.is_default, catalog.default_model_id) == (False, True, "b")
    assert isinstance(a.pending_events[-1], AIModelConfig.DefaultCleared)
    assert a.pending_events[-1].successor == "b"
    assert b.pending_events[-1].previous == "a"


def test_the_previous_default_given_must_be_the_current_one() -> None:
    a, b, c = text_model("a"), text_model("b"), text_model("c")
    catalog = catalog_with(a, b, c)
    catalog.choose_default(a, None, SYSTEM, T0)
    with pytest.raises(Conflict):
        catalog.choose_default(c, b, SYSTEM, T0)
    assert catalog.default_model_id == "a"


def test_inactive_or_deprecated_models_cannot_be_default() -> None:
    a, b = text_model("a"), text_model("b", deprecation_date=T0.date().isoformat())
    catalog = catalog_with(a, b)
    a.deactivate("retired", SYSTEM)
    with pytest.raises(ModelUnavailable, match="inactive"):
        catalog.choose_default(a, None, SYSTEM, T0)
    with pytest.raises(ModelUnavailable, match="deprecated"):
        catalog.choose_default(b, None, SYSTEM, T0)
    assert catalog.default_model_id is None


def test_the_default_cannot_be_deactivated_or_deprecated() -> None:
    a = text_model("a")
    catalog_with(a).choose_default(a, None, SYSTEM, T0)
    with pytest.raises(Conflict, match="default"):
        a.deactivate("no", SYSTEM)
    with pytest.raises(Conflict, match="default"):
        a.revise({"deprecation_date": T0.date().isoformat()}, SYSTEM, T0)
    # A deprecation announced for later is fine.
    a.revise({"deprecation_date": (T0 + timedelta(days=90)).date().isoformat()}, SYSTEM, T0)
    a.check_usable(T0)
    with pytest.raises(ModelUnavailable):
        a.check_usable(T0 + timedelta(days=91))


def test_a_model_is_listed_once() -> None:
    a = text_model("a")
    catalog = catalog_with(a)
    with pytest.raises(ModelExists):
        catalog.list_model(a, SYSTEM)


def test_revise_records_only_what_changed_and_checks_fields() -> None:
    m = text_model()
    m.revise({"display_name": "gpt-x", "max_output_tokens": 4096}, SYSTEM, T0)
    assert m.pending_events[-1].changes == {"max_output_tokens": 4096}
    for bad in ({"max_output_tokens": 0}, {"available_sizes": ["big"]},
                {"release_date": "2024-13-01"}, {"supports_tools": "yes"}, {"colour": "red"}):
        with pytest.raises(InvalidCommand):
            m.revise(bad, SYSTEM, T0)
    assert len(m.pending_events) == 2


def test_replay_rebuilds_the_same_model() -> None:
    m = text_model()
    m.reprice({"output_token_rate": Decimal("6")}, T0 + timedelta(days=1), SYSTEM, T0)
    m.revise({"notes": "cheaper soon"}, SYSTEM, T0)
    replayed = None
    for event in m.collect_events():
        replayed = event.mutate(replayed)
    assert replayed is not None
    assert vars(replayed) == vars(m)
