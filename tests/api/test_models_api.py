"""/models over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from ledger.config import Settings
from ledger.domain.base import Actor
from ledger.domain.models import AIModelConfig, ModelCatalog, ModelUnavailable, UnknownModel
from ledger.service import Ledger
from tests.conftest import ADMIN_TOKEN, LiveServer

M = "/api/v1/models"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
TEXT = ["gpt-4.1", "gpt-4o-mini", "gpt-4o", "gpt-5.1", "gpt-5.2"]


def defaults(client: TestClient | httpx.Client, model_type: str) -> list[str]:
    rows = client.get(M, params={"model_type": model_type}).json()["data"]
    return [r["model_id"] for r in rows if r["is_default"]]


def fresh_defaults(settings: Settings, model_type: str) -> tuple[str | None, list[str]]:
    """The catalog's default and the models flagged default, loaded without any cache."""
    ledger = Ledger(settings)
    try:
        catalog = ledger.store.load(ModelCatalog.create_id(model_type))
        flagged = [m for m in catalog.model_ids
                   if ledger.store.load(AIModelConfig.create_id(m)).is_default]
        return catalog.default_model_id, flagged
    finally:
        ledger.close()


def new_model(**extra: Any) -> dict[str, Any]:
    return {"model_id": "acme-text-1", "display_name": "Acme Text", "model_type": "text",
            "provider": "openai", "input_token_rate": "1.00", "output_token_rate": "4.00",
            **extra}


def test_the_seeded_registry_is_served(client: TestClient) -> None:
    body = client.get(M).json()
    assert body["count"] == 18
    assert defaults(client, "text") == ["gpt-4.1"]
    assert defaults(client, "image") == ["dall-e-3"]
    dalle = client.get(f"{M}/dall-e-3").json()
    assert dalle["cost_per_image"] == "0.040000"
    assert dalle["available_sizes"][0] == "1024x1024"
    gpt = client.get(f"{M}/gpt-4.1")
    assert gpt.headers["ETag"] == '"2"'
    assert (gpt.json()["input_token_rate"], gpt.json()["output_token_rate"]) == (
        "2.000000", "8.000000")
    active = client.get(M, params={"active": "true"}).json()["data"]
    assert {"bria-2.2", "bria-2.3-fast"}.isdisjoint(r["model_id"] for r in active)
    assert client.get(f"{M}/no-such-model").status_code == 404


def test_register_a_model_and_its_invariants(client: TestClient) -> None:
    r = client.post(M, json=new_model(max_output_tokens=4096))
    assert r.status_code == 201, r.text
    assert r.headers["ETag"] == '"1"'
    assert client.post(M, json=new_model()).status_code == 409
    r = client.post(M, json=new_model(model_id="acme-text-2", output_token_rate=None))
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "output_token_rate"
    r = client.post(M, json=new_model(model_id="acme-text-3", input_token_rate=1.0))
    assert r.status_code == 422, "money is a decimal string, never a JSON number"
    # An inactive model without prices may wait for them.
    r = client.post(M, json=new_model(model_id="acme-text-4", input_token_rate=None,
                                      is_active=False))
    assert r.status_code == 201


def test_making_a_model_default_clears_the_previous_one(client: TestClient) -> None:
    r = client.patch(f"{M}/gpt-4o", json={"is_default": True})
    assert r.status_code == 200, r.text
    assert defaults(client, "text") == ["gpt-4o"]
    assert defaults(client, "image") == ["dall-e-3"]
    cleared = client.get(f"{M}/gpt-4.1/history").json()["data"][-1]
    assert cleared["event"] == "DefaultCleared"
    assert cleared["changes"] == {"successor": "gpt-4o"}
    made = client.get(f"{M}/gpt-4o/history").json()["data"][-1]
    assert (made["event"], made["changes"]) == ("MadeDefault", {"previous": "gpt-4.1"})
    assert made["actor_role"] == "platform_admin"
    assert made["request_id"] == cleared["request_id"]  # one command


def test_default_rules(client: TestClient) -> None:
    r = client.patch(f"{M}/gpt-4.1", json={"is_active": False})
    assert r.status_code == 409
    assert client.patch(f"{M}/gpt-4.1", json={"is_default": False}).status_code == 409
    assert client.patch(f"{M}/gpt-4o", json={"is_active": False}).status_code == 200
    assert client.patch(f"{M}/gpt-4o", json={"is_default": True}).status_code == 409
    today = datetime.now(UTC).date().isoformat()
    assert client.patch(f"{M}/gpt-5.1", json={"deprecation_date": today}).status_code == 200
    assert client.patch(f"{M}/gpt-5.1", json={"is_default": True}).status_code == 409
    r = client.patch(f"{M}/gpt-4.1", json={"deprecation_date": today})
    assert r.status_code == 409
    assert defaults(client, "text") == ["gpt-4.1"]
    # Activating and choosing as default in one PATCH works.
    r = client.patch(f"{M}/gpt-4o", json={"is_active": True, "is_default": True})
    assert r.status_code == 200
    assert defaults(client, "text") == ["gpt-4o"]


def test_stale_if_match_is_refused(client: TestClient) -> None:
    etag = client.get(f"{M}/gpt-4o").headers["ETag"]
    r = client.patch(f"{M}/gpt-4o", json={"notes": "fast"}, headers={"If-Match": etag})
    assert r.status_code == 200
    r = client.patch(f"{M}/gpt-4o", json={"notes": "slow"}, headers={"If-Match": etag})
    assert r.status_code == 409
    assert client.get(f"{M}/gpt-4o").json()["notes"] == "fast"


def test_a_price_change_has_an_effective_time_and_history(client: TestClient) -> None:
    before = client.get(f"{M}/gpt-4o").json()
    time.sleep(0.01)
    now = datetime.now(UTC)
    later = now + timedelta(days=30)
    r = client.patch(f"{M}/gpt-4o", json={"input_token_rate": "1.25",
                                          "effective_at": later.isoformat()})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["input_token_rate"] == "2.500000"  # not yet
    assert body["scheduled_prices"][0]["input_token_rate"] == "1.250000"
    price = client.get(f"{M}/gpt-4o/price", params={"at": later.isoformat()}).json()
    assert (price["input_token_rate"], price["output_token_rate"]) == ("1.250000",
                                                                       "10.000000")
    price = client.get(f"{M}/gpt-4o/price", params={"at": now.isoformat()}).json()
    assert price["input_token_rate"] == "2.500000"
    r = client.patch(f"{M}/gpt-4o", json={"output_token_rate": "9.00"})
    assert r.json()["output_token_rate"] == "9.000000"
    # The model as it stood before the changes, and its price then.
    old = client.get(f"{M}/gpt-4o", params={"as_of": before["updated_at"]}).json()
    assert (old["version"], old["output_token_rate"]) == (1, "10.000000")
    rows = client.get(f"{M}/gpt-4o/history").json()["data"]
    assert [r["event"] for r in rows] == ["Registered", "Repriced", "Repriced"]
    assert all(r["actor_id"] for r in rows)
    past = (now - timedelta(days=1)).isoformat()
    r = client.patch(f"{M}/gpt-4o", json={"input_token_rate": "1", "effective_at": past})
    assert r.status_code == 422


def test_roles(client: TestClient) -> None:
    token = client.post("/api/v1/auth/keys", json={"role": "user", "account_id": "acme",
                                                   "user_id": "u1"}).json()["token"]
    user = {"Authorization": f"Bearer {token}"}
    assert client.get(M, headers=user).status_code == 200
    assert client.patch(f"{M}/gpt-4o", json={"notes": "x"}, headers=user).status_code == 403
    assert client.post(M, json=new_model(), headers=user).status_code == 403


def test_two_concurrent_default_changes_leave_exactly_one(live_server: LiveServer,
                                                          settings: Settings) -> None:
    with httpx.Client(base_url=live_server.url, headers=AUTH, timeout=30) as http:
        for round_ in range(3):
            pair = TEXT[1:3] if round_ % 2 == 0 else TEXT[3:5]
            barrier = threading.Barrier(2)

            def make_default(model_id: str, barrier: threading.Barrier = barrier) -> int:
                barrier.wait()
                return http.patch(f"{M}/{model_id}", json={"is_default": True}).status_code

            with ThreadPoolExecutor(max_workers=2) as pool:
                statuses = list(pool.map(make_default, pair))
            assert statuses == [200, 200]
            winners = defaults(http, "text")
            assert len(winners) == 1
            assert winners[0] in pair
    default, flagged = fresh_defaults(settings, "text")
    assert flagged == [default]


def test_two_processes_racing_for_the_default(ledger: Ledger, settings: Settings) -> None:
    """Two Ledger instances on one database (as two server processes): each has its own
    writer and cache, so only the catalog's version keeps them apart."""
    other = Ledger(settings)
    try:
        admin = Actor(id="race", role="platform_admin")
        for pair in (("gpt-4o", "gpt-5.1"), ("gpt-5.2", "gpt-4o-mini")):
            barrier = threading.Barrier(2)

            def make_default(args: tuple[Ledger, str],
                             barrier: threading.Barrier = barrier) -> str:
                service, model_id = args
                barrier.wait()
                service.registry.change(model_id, {"is_default": True}, admin)
                return model_id

            with ThreadPoolExecutor(max_workers=2) as pool:
                list(pool.map(make_default, [(ledger, pair[0]), (other, pair[1])]))
            default, flagged = fresh_defaults(settings, "text")
            assert default in pair
            assert flagged == [default]
    finally:
        other.close()


def test_only_usable_models_serve_new_calls(ledger: Ledger) -> None:
    assert ledger.registry.usable("gpt-4.1").model_id == "gpt-4.1"
    with pytest.raises(ModelUnavailable, match="inactive"):
        ledger.registry.usable("bria-2.2")
    admin = Actor(id="t", role="platform_admin")
    ledger.registry.change("gpt-4o", {"deprecation_date": "2020-01-01"}, admin)
    with pytest.raises(ModelUnavailable, match="deprecated"):
        ledger.registry.usable("gpt-4o")
    with pytest.raises(UnknownModel):
        ledger.registry.usable("gpt-0")
    assert ledger.registry.default_for("embedding") is None
