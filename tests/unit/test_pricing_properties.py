"""Properties of pricing (ledger.domain.pricing), checked against exact rational arithmetic.

Over the whole range the API accepts (credits up to 10^12, money below 10^12 with at most
12 decimal places, token counts up to 10^12):

* credits are never negative, never fewer than the minimum, and a token-metered charge
  rounds up (the platform never undercharges) by less than one credit;
* more units never cost fewer credits;
* revenue = credits x price per credit, exactly (no rounding of any size);
* the provider cost formulas are exact: (input x rate + output x rate) / 1M, images x rate;
* money shown with 6 places is the nearest value, half to even, and rounding never
  turns a sign: a positive amount never shows negative, a negative one never positive,
  and zero is never shown as "-0.000000".
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.domain.pricing import (
    CostRule,
    Unit,
    image_cost_usd,
    money,
    quote,
    ratio_pct,
    revenue_usd,
    text_cost_usd,
)

MAX = 10**12
counts = st.integers(min_value=0, max_value=MAX)
# what the API's Money type admits: finite, < 10^12, at most 12 decimal places
money_values = st.decimals(min_value=Decimal(0), max_value=Decimal(MAX) - Decimal("1e-12"),
                           places=12, allow_nan=False, allow_infinity=False)
prices = money_values.filter(lambda d: d > 0)
signed_money = st.decimals(min_value=-Decimal(MAX), max_value=Decimal(MAX), places=12,
                           allow_nan=False, allow_infinity=False)


@st.composite
def rules(draw: st.DrawFn) -> CostRule:
    return CostRule(operation="op", unit=draw(st.sampled_from(list(Unit))),
                    tokens_per_credit=draw(st.integers(min_value=1, max_value=10**6)),
                    credits_per_unit=draw(st.integers(min_value=0, max_value=10**6)),
                    min_credits=draw(st.integers(min_value=0, max_value=10**6)),
                    price_per_credit_usd=draw(prices), version=draw(st.integers(1, 10**6)))


def exact(d: Decimal) -> Fraction:
    return Fraction(d)


@given(rules(), counts)
def test_credits_are_never_negative_nor_below_the_minimum(rule: CostRule, units: int) -> None:
    credits = rule.credits_for(units)
    assert isinstance(credits, int)
    assert credits >= rule.min_credits >= 0


@given(rules(), counts)
def test_token_charges_round_up_by_less_than_one_credit(rule: CostRule, units: int) -> None:
    credits = rule.credits_for(units)
    if rule.unit is Unit.TOKENS:
        owed = Fraction(units, rule.tokens_per_credit)
        assert credits >= owed  # never undercharged
        assert credits == rule.min_credits or credits - owed < 1
    else:
        assert credits == max(rule.min_credits, units * rule.credits_per_unit)


@given(rules(), counts, counts)
def test_more_units_never_cost_fewer_credits(rule: CostRule, a: int, b: int) -> None:
    low, high = sorted((a, b))
    assert rule.credits_for(low) <= rule.credits_for(high)


@given(rules(), st.integers(max_value=-1))
def test_negative_units_are_refused(rule: CostRule, units: int) -> None:
    with pytest.raises(ValueError):
        rule.credits_for(units)


@given(rules(), counts)
def test_a_quote_records_its_prices_and_revenue_is_credits_times_price(
        rule: CostRule, units: int) -> None:
    q = quote(rule, units)
    assert (q.price_per_credit_usd, q.cost_config_version) == (rule.price_per_credit_usd,
                                                               rule.version)
    assert exact(q.revenue_usd) == q.credits * exact(rule.price_per_credit_usd)


@given(st.integers(min_value=-MAX, max_value=MAX), prices)
def test_revenue_is_exact_for_any_credits_and_price(credits: int, price: Decimal) -> None:
    r = revenue_usd(credits, price)
    assert exact(r) == credits * exact(price)
    assert (r > 0) == (credits > 0)
    assert (r < 0) == (credits < 0)


@given(counts, counts, money_values, money_values)
def test_text_cost_is_exact(inp: int, out: int, in_rate: Decimal, out_rate: Decimal) -> None:
    cost = text_cost_usd(inp, out, in_rate, out_rate)
    assert exact(cost) == (inp * exact(in_rate) + out * exact(out_rate)) / 1_000_000
    assert cost >= 0


@given(counts, money_values)
def test_image_cost_is_exact(images: int, rate: Decimal) -> None:
    assert exact(image_cost_usd(images, rate)) == images * exact(rate)


@given(signed_money)
def test_money_rounds_to_the_nearest_and_never_turns_a_sign(value: Decimal) -> None:
    shown = money(value)
    d = Decimal(shown)
    assert d.as_tuple().exponent == -6
    assert abs(exact(d) - exact(value)) <= Fraction(1, 2 * 10**6)
    assert not (value > 0 and d < 0)
    assert not (value < 0 and d > 0)
    assert not shown.startswith("-") or d < 0  # no "-0.000000"


@given(st.integers(min_value=-MAX, max_value=MAX), prices)
def test_any_revenue_can_be_shown(credits: int, price: Decimal) -> None:
    r = revenue_usd(credits, price)
    assert abs(exact(Decimal(money(r))) - exact(r)) <= Fraction(1, 2 * 10**6)
    assert ratio_pct(r, price) is not None


@given(signed_money, signed_money)
def test_percentages_keep_the_sign_of_the_ratio(num: Decimal, den: Decimal) -> None:
    pct = ratio_pct(num, den)
    if den == 0:
        assert pct is None
        return
    assert pct is not None
    ratio = exact(num) * 100 / exact(den)
    assert abs(exact(pct) - ratio) <= Fraction(1, 200)
    assert not (ratio > 0 and pct < 0)
    assert not (ratio < 0 and pct > 0)
    assert not str(pct).startswith("-") or pct < 0
