"""The credits endpoints over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from ledger.config import Settings
from ledger.credits import account_key
from ledger.service import Ledger
from tests.conftest import ADMIN_TOKEN, LiveServer

ACC = "/api/v1/accounts/acme/credits"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def buy(client: TestClient, credits: int = 100, amount: str = "2.00") -> dict[str, Any]:
    r = client.post(f"{ACC}/purchases", json={"credits": credits, "amount_usd": amount,
                                              "payment_ref": "pay_1"})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def balance(client: TestClient) -> dict[str, Any]:
    r = client.get(f"{ACC}/balance")
    assert r.status_code == 200
    return r.json()  # type: ignore[no-any-return]


def history_types(client: TestClient) -> list[str]:
    rows: list[dict[str, Any]] = []
    before = None
    while True:
        r = client.get(f"{ACC}/transactions", params={"limit": 25, "before": before}
                       if before else {"limit": 25})
        page = r.json()
        rows += page["data"]
        before = page["next_before"]
        if before is None:
            return [row["type"] for row in rows]


def test_fifty_concurrent_deductions_on_100_credits(live_server: LiveServer,
                                                    ledger: Ledger) -> None:
    with httpx.Client(base_url=live_server.url, headers=AUTH, timeout=30) as http:
        r = http.post(f"{ACC}/purchases", json={"credits": 100, "amount_usd": "2.00",
                                                "payment_ref": "p"})
        assert r.status_code == 201

        def deduct(_: int) -> int:
            return http.post(f"{ACC}/deductions",
                             json={"operation": "image_generation", "units": 1}).status_code

        with ThreadPoolExecutor(max_workers=50) as pool:
            statuses = list(pool.map(deduct, range(50)))
        assert statuses.count(201) == 20
        assert statuses.count(402) == 30
        body = http.get(f"{ACC}/balance").json()
        assert (body["balance"], body["reserved"], body["available"]) == (0, 0, 0)
        rows = http.get(f"{ACC}/transactions", params={"limit": 500}).json()["data"]
    assert [r["type"] for r in rows].count("deduction") == 20
    # The log itself, replayed without any cache, holds the same balance.
    assert ledger.store.load(account_key("acme")).balance == 0


def test_purchase_deduct_and_receipt(client: TestClient) -> None:
    buy(client)
    r = client.post(f"{ACC}/deductions", json={
        "operation": "image_generation", "units": 1, "model_id": "dall-e-3",
        "provider": "openai", "cost_usd": "0.040"})
    assert r.status_code == 201
    body = r.json()
    assert body["credits"] == 5
    assert body["revenue_usd"] == "0.100000"
    assert body["price_per_credit_usd"] == "0.020000"
    assert (body["balance"], body["available"]) == (95, 95)
    assert body["id"].startswith("chg-")
    assert isinstance(body["position"], int)


def test_text_deduction_is_priced_per_tokens(client: TestClient) -> None:
    buy(client)
    r = client.post(f"{ACC}/deductions", json={"operation": "text_generation",
                                               "units": 1201})
    assert r.json()["credits"] == 3  # ceil(1201 / 500)


def test_reservation_capture_release_flow(client: TestClient) -> None:
    buy(client)
    r = client.post(f"{ACC}/reservations", json={"operation": "text_generation",
                                                 "credits": 30})
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    assert (r.json()["reserved"], r.json()["available"]) == (30, 70)
    r = client.post(f"{ACC}/reservations/{rid}/capture",
                    json={"usage": {"input_tokens": 3000, "output_tokens": 1000},
                          "cost_usd": "0.0011", "model_id": "gpt-4o-mini"})
    assert r.status_code == 201, r.text
    assert (r.json()["credits"], r.json()["released_credits"]) == (8, 22)
    b = balance(client)
    assert (b["balance"], b["reserved"], b["available"]) == (92, 0, 92)
    r = client.post(f"{ACC}/reservations/{rid}/capture", json={"credits": 1})
    assert r.status_code == 409
    assert r.json()["title"] == "Reservation already settled"

    r2 = client.post(f"{ACC}/reservations", json={"operation": "image_generation",
                                                  "units": 2})
    rid2 = r2.json()["id"]
    assert r2.json()["credits"] == 10
    assert client.post(f"{ACC}/reservations/{rid2}/release").status_code == 200
    assert client.post(f"{ACC}/reservations/{rid2}/capture",
                       json={"credits": 1}).status_code == 409
    assert client.post(f"{ACC}/reservations/rsv-999/capture",
                       json={"credits": 1}).status_code == 404
    r = client.post(f"{ACC}/reservations", json={"operation": "image_generation",
                                                 "credits": 500})
    assert r.status_code == 402


def test_capture_more_than_held(client: TestClient) -> None:
    buy(client)
    rid = client.post(f"{ACC}/reservations", json={"operation": "image_generation",
                                                   "credits": 5}).json()["id"]
    r = client.post(f"{ACC}/reservations/{rid}/capture", json={"credits": 6})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "credits"


def test_refunds_never_exceed_the_charge(client: TestClient) -> None:
    buy(client)
    charge = client.post(f"{ACC}/deductions", json={"operation": "image_generation",
                                                    "units": 2}).json()["id"]
    r = client.post(f"{ACC}/refunds", json={"charge_id": charge, "credits": 4,
                                            "reason": "blurry"})
    assert r.status_code == 201
    assert r.json()["balance"] == 94
    r = client.post(f"{ACC}/refunds", json={"charge_id": charge, "credits": 7,
                                            "reason": "again"})
    assert r.status_code == 422
    assert r.json()["title"] == "Refund exceeds charge"
    r = client.post(f"{ACC}/refunds", json={"charge_id": charge, "reason": "the rest"})
    assert r.json()["credits"] == 6
    assert balance(client)["balance"] == 100
    assert client.post(f"{ACC}/refunds", json={"charge_id": "chg-1", "reason": "x"}
                       ).status_code == 404
    assert client.post(f"{ACC}/refunds", json={"charge_id": "lot-2", "reason": "x"}
                       ).status_code == 404


def test_adjustments_and_grants(client: TestClient) -> None:
    r = client.post(f"{ACC}/grants", json={"credits": 50, "reason": "welcome"})
    assert r.status_code == 201
    r = client.post(f"{ACC}/adjustments", json={"credits": -20, "reason": "correction"})
    assert r.json()["balance"] == 30
    r = client.post(f"{ACC}/adjustments", json={"credits": -31, "reason": "too much"})
    assert r.status_code == 402
    assert history_types(client) == ["adjustment", "grant"]


def test_balance_as_of_replays_history(client: TestClient) -> None:
    buy(client)
    first = client.get(f"{ACC}/transactions").json()["data"][0]["time"]
    client.post(f"{ACC}/deductions", json={"operation": "image_generation", "units": 1})
    assert balance(client)["balance"] == 95
    r = client.get(f"{ACC}/balance", params={"as_of": first})
    assert r.json()["balance"] == 100
    r = client.get(f"{ACC}/balance", params={"as_of": "2000-01-01T00:00:00Z"})
    assert r.json()["balance"] == 0


BAD = [
    ("purchases", {"credits": 0, "amount_usd": "1.00", "payment_ref": "p"}, 422, "credits"),
    ("purchases", {"credits": -5, "amount_usd": "1.00", "payment_ref": "p"}, 422, "credits"),
    ("purchases", {"credits": 1.5, "amount_usd": "1.00", "payment_ref": "p"}, 422, "credits"),
    ("purchases", {"credits": "10", "amount_usd": "1.00", "payment_ref": "p"}, 422, "credits"),
    ("purchases", {"credits": 10, "amount_usd": 1.0, "payment_ref": "p"}, 422, "amount_usd"),
    ("purchases", {"credits": 10, "amount_usd": "NaN", "payment_ref": "p"}, 422,
     "amount_usd"),
    ("purchases", {"credits": 10, "amount_usd": "-1", "payment_ref": "p"}, 422, "amount_usd"),
    ("purchases", {"credits": 10, "amount_usd": "1.00"}, 422, "payment_ref"),
    ("purchases", {"credits": 10**13, "amount_usd": "1.00", "payment_ref": "p"}, 422,
     "credits"),
    ("purchases", {"credits": 10, "amount_usd": "1.00", "payment_ref": "p", "x": 1}, 422,
     "x"),
    ("grants", {"credits": 10, "reason": ""}, 422, "reason"),
    ("grants", {"credits": 10, "reason": "r", "expires_at": "2001-01-01T00:00:00Z"}, 422,
     "expires_at"),
    ("adjustments", {"credits": 0, "reason": "r"}, 422, "credits"),
    ("deductions", {"operation": "no_such_op", "units": 1}, 404, "operation"),
    ("deductions", {"operation": "image_generation", "units": -1}, 422, "units"),
    ("deductions", {"operation": "image_generation", "units": 1, "cost_usd": 0.04}, 422,
     "cost_usd"),
    ("reservations", {"operation": "image_generation"}, 422, "body"),
    ("reservations", {"operation": "image_generation", "credits": 5, "units": 1}, 422,
     "body"),
    ("refunds", {"charge_id": "chg-x", "reason": "r"}, 404, "charge_id"),
]


@pytest.mark.parametrize(("path", "body", "status", "field"), BAD)
def test_bad_input_names_the_field_and_records_nothing(
        client: TestClient, ledger: Ledger, path: str, body: dict[str, Any], status: int,
        field: str) -> None:
    buy(client)
    head = ledger.store.head()
    r = client.post(f"{ACC}/{path}", json=body)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert {"type", "title", "status", "detail"} <= problem.keys()
    assert field in {e["field"] for e in problem.get("errors", [])} or field in problem[
        "detail"]
    assert ledger.store.head() == head


def test_malformed_and_oversized_bodies(client: TestClient, ledger: Ledger) -> None:
    head = ledger.store.head()
    r = client.post(f"{ACC}/purchases", content=b'{"credits": 1,',
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json()["title"] == "Malformed request"
    r = client.post(f"{ACC}/purchases", content=b"x" * 200_000,
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert r.headers["content-type"] == "application/problem+json"
    assert ledger.store.head() == head


def test_auth_required(client: TestClient) -> None:
    r = client.get(f"{ACC}/balance", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    r = client.get(f"{ACC}/balance", headers={"Authorization": ""})
    assert r.status_code == 401


def test_user_key_sees_only_its_account(client: TestClient) -> None:
    buy(client)
    r = client.post("/api/v1/auth/keys", json={"role": "user", "account_id": "acme",
                                               "user_id": "u1"})
    assert r.status_code == 201
    token = r.json()["token"]
    as_user = {"Authorization": f"Bearer {token}"}
    assert client.get(f"{ACC}/balance", headers=as_user).json()["balance"] == 100
    r = client.get("/api/v1/accounts/other/credits/balance", headers=as_user)
    assert r.status_code == 404
    r = client.post(f"{ACC}/deductions", json={"operation": "image_generation", "units": 1},
                    headers=as_user)
    assert r.status_code == 403


def test_trailing_slash_is_the_same_path(client: TestClient) -> None:
    buy(client)
    r = client.get(f"{ACC}/balance/", follow_redirects=False)
    assert r.status_code == 200
    assert r.json()["balance"] == 100


# -- idempotency ------------------------------------------------------------------------


def test_same_key_same_body_replays_without_a_new_event(client: TestClient,
                                                       ledger: Ledger) -> None:
    buy(client)
    body = {"operation": "image_generation", "units": 1}
    key = {"Idempotency-Key": "charge-42"}
    first = client.post(f"{ACC}/deductions", json=body, headers=key)
    head = ledger.store.head()
    again = client.post(f"{ACC}/deductions", json=body, headers=key)
    assert again.status_code == first.status_code == 201
    assert {k: v for k, v in again.json().items() if k != "position"} == {
        k: v for k, v in first.json().items() if k != "position"}
    assert again.headers["Idempotent-Replayed"] == "true"
    assert ledger.store.head() == head
    assert balance(client)["balance"] == 95
    other = client.post(f"{ACC}/deductions", json={**body, "units": 2}, headers=key)
    assert other.status_code == 409
    assert ledger.store.head() == head


def test_same_key_concurrently_applies_once(client: TestClient) -> None:
    buy(client)
    body = {"operation": "image_generation", "units": 1}

    def send(_: int) -> tuple[int, str]:
        r = client.post(f"{ACC}/deductions", json=body, headers={"Idempotency-Key": "k"})
        return r.status_code, r.json()["id"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(send, range(16)))
    assert set(results) == {(201, results[0][1])}
    assert balance(client)["balance"] == 95


def test_idempotency_survives_a_restart(settings: Settings, ledger: Ledger) -> None:
    body = {"credits": 100, "amount_usd": "2.00", "payment_ref": "p"}
    headers = {**AUTH, "Idempotency-Key": "buy-1"}
    with TestClient(create_app(settings, ledger)) as c:
        first = c.post(f"{ACC}/purchases", json=body, headers=headers)
    ledger.close()

    restarted = Ledger(settings)  # a new process: empty caches, same store
    try:
        with TestClient(create_app(settings, restarted)) as c:
            again = c.post(f"{ACC}/purchases", json=body, headers=headers)
            assert again.status_code == 201
            assert again.json()["id"] == first.json()["id"]
            assert again.headers["Idempotent-Replayed"] == "true"
            assert c.get(f"{ACC}/balance", headers=AUTH).json()["balance"] == 100
            conflict = c.post(f"{ACC}/purchases", json={**body, "credits": 5},
                              headers=headers)
            assert conflict.status_code == 409
    finally:
        restarted.close()


def test_a_refused_command_can_be_retried_with_its_key(client: TestClient) -> None:
    body = {"operation": "image_generation", "units": 1}
    key = {"Idempotency-Key": "early"}
    assert client.post(f"{ACC}/deductions", json=body, headers=key).status_code == 402
    buy(client)
    assert client.post(f"{ACC}/deductions", json=body, headers=key).status_code == 201
