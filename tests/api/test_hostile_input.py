"""Hostile input on the command routes: every answer is a 4xx problem+json and nothing is
stored (the log's head does not move), on SQLite and PostgreSQL.

Huge numbers, deep JSON nesting, NaN and Infinity, floats where decimal strings or
integers are required, numbers where times are required, unicode in keys and values
(NUL, lone surrogates), SQL-looking identifiers, bodies that are not JSON objects.
Text that merely looks like SQL in a free-text field is data: stored verbatim, harmless.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ledger.service import Ledger

API = "/api/v1"
ACCOUNT = f"{API}/accounts/acme/credits"
NEST = 20_000  # within the 64 KiB body limit, far beyond any recursion limit

DEDUCTION = {"operation": "image_generation", "units": 1}
PURCHASE = {"credits": 10, "amount_usd": "1.00", "payment_ref": "pi_h"}
GRANT = {"credits": 10, "reason": "welcome"}


def deep(depth: int, open_: str = "[", close: str = "]") -> str:
    return open_ * depth + close * depth


# (name, method, path, raw body): each must be refused with a 4xx and record nothing
RAW: list[tuple[str, str, str, bytes]] = [
    ("deep list", "POST", f"{ACCOUNT}/deductions",
     ('{"operation": "image_generation", "units": 1, "x": ' + deep(NEST) + "}").encode()),
    ("deep objects", "POST", f"{ACCOUNT}/grants",
     ('{"a":' * (NEST // 2) + "1" + "}" * (NEST // 2)).encode()),
    ("deep value", "POST", f"{API}/auth/keys", ('{"role": ' + deep(NEST) + "}").encode()),
    ("a 5000-digit integer", "POST", f"{ACCOUNT}/deductions",
     b'{"operation": "image_generation", "units": ' + b"9" * 5000 + b"}"),
    ("NaN credits", "POST", f"{ACCOUNT}/purchases",
     b'{"credits": NaN, "amount_usd": "1.00", "payment_ref": "x"}'),
    ("Infinity money", "POST", f"{ACCOUNT}/purchases",
     b'{"credits": 1, "amount_usd": Infinity, "payment_ref": "x"}'),
    ("-Infinity units", "POST", f"{ACCOUNT}/deductions",
     b'{"operation": "image_generation", "units": -Infinity}'),
    ("not JSON", "POST", f"{ACCOUNT}/grants", b"credits=10&reason=x"),
    ("truncated JSON", "POST", f"{ACCOUNT}/grants", b'{"credits": 10, "reason": "x"'),
    ("invalid UTF-8", "POST", f"{ACCOUNT}/grants", b'{"credits": 10, "reason": "\xff\xfe"}'),
    ("a list body", "POST", f"{ACCOUNT}/grants", b"[1, 2, 3]"),
    ("a string body", "POST", f"{ACCOUNT}/deductions", b'"image_generation"'),
    ("null body", "POST", f"{ACCOUNT}/purchases", b"null"),
]

# (name, method, path, JSON body): valid JSON, wrong content
BODIES: list[tuple[str, str, str, Any]] = [
    ("huge credits", "POST", f"{ACCOUNT}/purchases", {**PURCHASE, "credits": 10**30}),
    ("huge units", "POST", f"{ACCOUNT}/deductions", {**DEDUCTION, "units": 2**64}),
    ("huge money", "POST", f"{ACCOUNT}/purchases", {**PURCHASE, "amount_usd": "1e400"}),
    ("money beyond 10^12", "POST", f"{ACCOUNT}/purchases",
     {**PURCHASE, "amount_usd": "1000000000000.00"}),
    ("money with 13 places", "POST", f"{ACCOUNT}/purchases",
     {**PURCHASE, "amount_usd": "0.0000000000001"}),
    ("NaN money string", "POST", f"{ACCOUNT}/purchases", {**PURCHASE, "amount_usd": "NaN"}),
    ("Infinity money string", "POST", f"{ACCOUNT}/purchases",
     {**PURCHASE, "amount_usd": "Infinity"}),
    ("sNaN cost", "POST", f"{ACCOUNT}/deductions", {**DEDUCTION, "cost_usd": "sNaN"}),
    ("negative money", "POST", f"{ACCOUNT}/purchases", {**PURCHASE, "amount_usd": "-1.00"}),
    ("float money", "POST", f"{ACCOUNT}/purchases", {**PURCHASE, "amount_usd": 2.0}),
    ("float cost", "POST", f"{ACCOUNT}/deductions", {**DEDUCTION, "cost_usd": 0.04}),
    ("float credits", "POST", f"{ACCOUNT}/grants", {**GRANT, "credits": 10.0}),
    ("string credits", "POST", f"{ACCOUNT}/grants", {**GRANT, "credits": "10"}),
    ("boolean units", "POST", f"{ACCOUNT}/deductions", {**DEDUCTION, "units": True}),
    ("negative credits", "POST", f"{ACCOUNT}/grants", {**GRANT, "credits": -5}),
    ("a number for a time", "POST", f"{ACCOUNT}/grants",
     {**GRANT, "expires_at": 1_900_000_000}),
    ("digits for a time", "POST", f"{ACCOUNT}/grants", {**GRANT, "expires_at": "1900000000"}),
    ("a time without zone", "POST", f"{ACCOUNT}/grants",
     {**GRANT, "expires_at": "2030-01-01T00:00:00"}),
    ("NUL in a value", "POST", f"{ACCOUNT}/grants", {**GRANT, "reason": "wel\u0000come"}),
    ("NUL in a reference", "POST", f"{ACCOUNT}/purchases",
     {**PURCHASE, "payment_ref": "pi\u0000"}),
    ("lone surrogate", "POST", f"{ACCOUNT}/grants", {**GRANT, "reason": "a\ud800b"}),
    ("unicode key", "POST", f"{ACCOUNT}/grants", {**GRANT, "crédits": 10}),
    ("emoji key", "POST", f"{ACCOUNT}/deductions", {**DEDUCTION, "\U0001f4b8": 1}),
    ("NUL key", "POST", f"{ACCOUNT}/deductions", {**DEDUCTION, "units\u0000": 1}),
    ("unicode operation", "POST", f"{ACCOUNT}/deductions",
     {**DEDUCTION, "operation": "génération_d'image"}),
    ("RTL override in an id", "POST", f"{ACCOUNT}/deductions",
     {**DEDUCTION, "model_id": "dall-e-3\u202e"}),
    ("SQL in an operation", "POST", f"{ACCOUNT}/deductions",
     {**DEDUCTION, "operation": "x'; DROP TABLE ledger_events; --"}),
    ("SQL in a model id", "POST", f"{ACCOUNT}/deductions",
     {**DEDUCTION, "model_id": "1 OR 1=1"}),
    ("SQL in a role", "POST", f"{API}/auth/keys", {"role": "platform_admin' --"}),
    ("SQL in a key's account", "POST", f"{API}/auth/keys",
     {"role": "user", "account_id": "acme' OR '1'='1", "user_id": "u"}),
    ("too long a reason", "POST", f"{ACCOUNT}/grants", {**GRANT, "reason": "é" * 501}),
    ("empty reason", "POST", f"{ACCOUNT}/grants", {**GRANT, "reason": "   "}),
    ("huge adjustment", "POST", f"{ACCOUNT}/adjustments",
     {"credits": -(10**13), "reason": "x"}),
    ("both credits and units", "POST", f"{ACCOUNT}/reservations",
     {"operation": "image_generation", "credits": 5, "units": 1}),
    ("huge hold lifetime", "POST", f"{ACCOUNT}/reservations",
     {"operation": "image_generation", "credits": 5, "expires_in_s": 10**20}),
    ("nested junk in a refund", "POST", f"{ACCOUNT}/refunds",
     {"charge_id": {"$ne": None}, "reason": "x"}),
    ("SQL in a cost's operation", "PUT", f"{API}/credit-costs/x';DROP TABLE t;--",
     {"unit": "image", "credits_per_unit": 5, "price_per_credit_usd": "0.02"}),
    ("float price", "PUT", f"{API}/credit-costs/image_generation",
     {"unit": "image", "credits_per_unit": 5, "price_per_credit_usd": 0.02}),
]

# paths: an account id is a name
PATHS: list[tuple[str, str, str, Any]] = [
    ("SQL in an account id", "POST",
     f"{API}/accounts/acme';DROP TABLE ledger_events;--/credits/grants", GRANT),
    ("quote in an account id", "POST", f"{API}/accounts/ac'me/credits/deductions", DEDUCTION),
    ("unicode account id", "POST", f"{API}/accounts/%C3%A9%F0%9F%92%B8/credits/purchases",
     PURCHASE),
    ("NUL in an account id", "POST", f"{API}/accounts/ac%00me/credits/grants", GRANT),
    ("a 300-character account id", "POST", f"{API}/accounts/{'a' * 300}/credits/grants",
     GRANT),
]


@pytest.fixture
def funded(client: TestClient) -> TestClient:
    assert client.post(f"{ACCOUNT}/purchases", json=PURCHASE).status_code == 201
    return client


def _problem(r: Any, statuses: range | tuple[int, ...]) -> str | None:
    """What is wrong with this answer to a hostile request (None: a proper refusal)."""
    if r.status_code not in statuses:
        return f"{r.status_code} {r.text[:200]}"
    if not r.headers["content-type"].startswith("application/problem+json"):
        return f"not problem+json: {r.headers['content-type']}"
    if r.json().get("status") != r.status_code or "Traceback" in r.text:
        return f"a malformed problem: {r.text[:200]}"
    return None


def test_malformed_bodies_are_refused_and_change_nothing(funded: TestClient,
                                                         ledger: Ledger) -> None:
    wrong = {}
    for name, method, path, raw in RAW:
        head = ledger.store.head()
        r = funded.request(method, path, content=raw,
                           headers={"content-type": "application/json"})
        if (problem := _problem(r, (400, 422))) or ledger.store.head() != head:
            wrong[name] = problem or "something was stored"
    assert wrong == {}


def test_hostile_values_are_refused_and_change_nothing(funded: TestClient,
                                                       ledger: Ledger) -> None:
    wrong = {}
    for i, (name, method, path, body) in enumerate(BODIES + PATHS):
        head = ledger.store.head()
        raw = json.dumps(body, ensure_ascii=True).encode()  # lone surrogates go escaped
        r = funded.request(method, path, content=raw, headers={
            "content-type": "application/json", "Idempotency-Key": f"hostile-{i}"})
        if (problem := _problem(r, range(400, 500))) or ledger.store.head() != head:
            wrong[name] = problem or "something was stored"
    assert wrong == {}


def test_sql_looking_text_is_only_data(funded: TestClient, ledger: Ledger) -> None:
    """A free-text field may say anything printable: it is bound as a parameter, never
    spliced into SQL, and comes back exactly as it was sent."""
    reason = "'); DROP TABLE ledger_events; -- \u202e\U0001f600 图像 \"quoted\" \\ %s {}"
    r = funded.post(f"{ACCOUNT}/grants", json={"credits": 3, "reason": reason})
    assert r.status_code == 201, r.text
    rows = funded.get(f"{ACCOUNT}/transactions",
                      params={"min_position": r.json()["position"]}).json()["data"]
    assert [row["reason"] for row in rows if row["type"] == "grant"] == [reason]
    balance = funded.get(f"{ACCOUNT}/balance").json()
    assert balance["balance"] == 13
    assert ledger.store.head() >= r.json()["position"]  # the log is still there


def test_the_views_keep_up_after_hostile_input(funded: TestClient) -> None:
    """None of the refused requests left anything that stops a projection."""
    for _name, method, path, body in BODIES:
        funded.request(method, path, content=json.dumps(body).encode(),
                       headers={"content-type": "application/json"})
    r = funded.post(f"{ACCOUNT}/deductions", json=DEDUCTION)
    assert r.status_code == 201, r.text
    fresh = funded.get(f"{ACCOUNT}/transactions", params={"min_position": r.json()["position"]})
    assert fresh.status_code == 200, fresh.text
    status = funded.get(f"{API}/projections/status").json()
    assert status["last_error"] is None
