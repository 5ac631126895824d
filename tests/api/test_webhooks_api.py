"""The webhook routes on SQLite and PostgreSQL: subscriptions per account and
platform-wide, the secret shown once and stored sealed, tenant isolation, and a
delivery made by the worker that `create_app` runs in its lifespan."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from ledger.service import Ledger
from tests.fakes.webhook_receiver import Receiver

API = "/api/v1"


def stored_states(ledger: Ledger) -> bytes:
    """Every stored event as its raw bytes."""
    out, after = [], 0
    recorder = ledger.store.recorder
    while page := recorder.select_notifications(after, 1000, inclusive_of_start=False):
        out += [n.state for n in page]
        after = page[-1].id
    return b"\n".join(out)


def key_for(client: TestClient, role: str, account_id: str | None = None) -> dict[str, str]:
    body = {"role": role, **({"account_id": account_id} if account_id else {})}
    r = client.post(f"{API}/auth/keys", json=body)
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def test_subscriptions_show_their_secret_once_and_store_it_sealed(
        client: TestClient, ledger: Ledger) -> None:
    chosen = "my-own-signing-secret-0123456789"
    r = client.post(f"{API}/accounts/acme/webhooks", headers={"Idempotency-Key": "wh-1"},
                    json={"url": "https://hooks.example/acme", "event_types": ["low_balance"],
                          "low_balance_threshold": 100, "secret": chosen})
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["secret"] == chosen
    assert (created["account_id"], created["event_types"], created["active"]) == (
        "acme", ["low_balance"], True)
    assert "sealed_secret" not in created
    again = client.post(f"{API}/accounts/acme/webhooks", headers={"Idempotency-Key": "wh-1"},
                        json={"url": "https://hooks.example/acme",
                              "event_types": ["low_balance"], "low_balance_threshold": 100,
                              "secret": chosen})
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json()["subscription_id"] == created["subscription_id"]
    assert again.json()["secret"] == chosen

    generated = client.post(f"{API}/webhooks", json={
        "url": "http://127.0.0.1:9/all", "event_types": ["lot_expired", "hold_expired"]})
    assert generated.status_code == 201, generated.text
    secret = generated.json()["secret"]
    assert secret.startswith("whsec_")
    assert generated.json()["account_id"] is None

    listed = client.get(f"{API}/webhooks")
    assert [s["subscription_id"] for s in listed.json()["data"]] == [
        created["subscription_id"], generated.json()["subscription_id"]]
    own = client.get(f"{API}/accounts/acme/webhooks").json()["data"]
    assert [s["subscription_id"] for s in own] == [created["subscription_id"]]
    for text in (listed.text, client.get(f"{API}/accounts/acme/webhooks").text):
        assert chosen not in text
        assert secret not in text
        assert "secret" not in text
    raw = stored_states(ledger)
    assert chosen.encode() not in raw
    assert secret.encode() not in raw
    assert b"fernet:" in raw


def test_bad_subscriptions_are_refused_with_a_problem(client: TestClient) -> None:
    for body, field in (
            ({"url": "https://h.example/x", "event_types": ["low_balance"]},
             "low_balance_threshold"),
            ({"url": "https://h.example/x", "event_types": ["lot_expiring"]},
             "lot_expiring_days"),
            ({"url": "https://h.example/x", "event_types": ["balance_exhausted"],
              "low_balance_threshold": 5}, "low_balance_threshold"),
            ({"url": "https://h.example/x", "event_types": ["nothing_happened"]},
             "event_types.0"),
            ({"url": "ftp://h.example/x", "event_types": ["lot_expired"]}, "url"),
            ({"url": "https://h.exa[mple/x", "event_types": ["lot_expired"]}, "url"),
            ({"url": "https://h.example:99999/x", "event_types": ["lot_expired"]}, "url"),
            ({"url": "https://h.example/x", "event_types": []}, "event_types"),
            ({"url": "https://h.example/x", "event_types": ["lot_expired"], "secret": "short"},
             "secret")):
        r = client.post(f"{API}/accounts/acme/webhooks", json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert field in {e["field"] for e in r.json()["errors"]}, r.json()
    assert client.get(f"{API}/webhooks").json()["count"] == 0  # nothing recorded


def test_an_account_admin_manages_its_own_subscriptions_only(client: TestClient) -> None:
    admin = key_for(client, "account_admin", "acme")
    auditor = key_for(client, "auditor")
    body = {"url": "https://hooks.example/x", "event_types": ["balance_exhausted"]}
    platform = client.post(f"{API}/webhooks", json=body).json()["subscription_id"]
    globex = client.post(f"{API}/accounts/globex/webhooks", json=body).json()[
        "subscription_id"]
    mine = client.post(f"{API}/accounts/acme/webhooks", json=body, headers=admin)
    assert mine.status_code == 201, mine.text
    sid = mine.json()["subscription_id"]

    assert client.post(f"{API}/accounts/globex/webhooks", json=body,
                       headers=admin).status_code == 404
    assert client.post(f"{API}/webhooks", json=body, headers=admin).status_code == 403
    assert client.get(f"{API}/webhooks", headers=admin).status_code == 403
    assert [s["subscription_id"] for s in client.get(
        f"{API}/accounts/acme/webhooks", headers=admin).json()["data"]] == [sid]
    for other in (platform, globex):  # not the account's: not found
        assert client.delete(f"{API}/accounts/acme/webhooks/{other}",
                             headers=admin).status_code == 404
    assert client.post(f"{API}/accounts/acme/webhooks", json=body,
                       headers=auditor).status_code == 403
    assert client.get(f"{API}/accounts/acme/webhooks", headers=auditor).status_code == 200
    deleted = client.delete(f"{API}/accounts/acme/webhooks/{sid}", headers=admin)
    assert deleted.status_code == 200, deleted.text
    assert client.delete(f"{API}/accounts/acme/webhooks/{sid}",
                         headers=admin).status_code == 409
    assert client.get(f"{API}/accounts/acme/webhooks", headers=admin).json()["data"] == []
    assert client.get(f"{API}/accounts/acme/webhooks?include_deleted=true",
                      headers=admin).json()["data"][0]["active"] is False
    assert client.delete(f"{API}/webhooks/{globex}").status_code == 200


def test_the_served_app_delivers_a_signed_webhook(client: TestClient) -> None:
    """The worker of create_app's lifespan detects, schedules and delivers."""
    with Receiver() as receiver:
        r = client.post(f"{API}/accounts/acme/webhooks", json={
            "url": receiver.url, "event_types": ["low_balance", "balance_exhausted"],
            "low_balance_threshold": 10})
        sub = r.json()
        receiver.secrets.append(sub["secret"])
        base = f"{API}/accounts/acme/credits"
        client.post(f"{base}/purchases", json={"credits": 15, "amount_usd": "0.30",
                                               "payment_ref": "pi_1"})
        client.post(f"{base}/deductions", json={"operation": "image_generation",
                                                "units": 1})  # 5 credits: 15 -> 10, not below
        client.post(f"{base}/deductions", json={"operation": "image_generation",
                                                "units": 1})  # 10 -> 5: below
        deadline = time.monotonic() + 20
        while len(receiver.requests()) < 1:
            assert time.monotonic() < deadline, "no delivery before the deadline"
            time.sleep(0.05)
        deliveries_url = f"{API}/accounts/acme/webhooks/{sub['subscription_id']}/deliveries"
        while client.get(deliveries_url).json()["data"][0]["status"] != "delivered":
            assert time.monotonic() < deadline, "not recorded as delivered in time"
            time.sleep(0.05)
    (got,) = receiver.requests()
    assert got.verified
    assert got.payload["type"] == "low_balance"
    assert got.payload["data"] == {"balance": 5, "previous_balance": 10, "threshold": 10}
    rows = client.get(deliveries_url).json()["data"]
    assert [(d["event_type"], d["attempts"], d["http_status"]) for d in rows] == [
        ("low_balance", 1, 204)]
