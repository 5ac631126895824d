"""Usage, revenue report, balances and projection status over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from ledger.config import Settings
from ledger.service import Ledger
from tests.conftest import ADMIN_TOKEN

API = "/api/v1"
ACC = f"{API}/accounts/acme/credits"
DALLE_IMAGE = {"operation": "image_generation", "units": 1, "model_id": "dall-e-3",
               "provider": "openai", "cost_usd": "0.040", "images": 1}


def post(client: TestClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    r = client.post(path, json=body)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def seed_example(client: TestClient) -> dict[str, Any]:
    """The seed's worked example: one DALL-E 3 image, 5 credits at $0.02, cost $0.040."""
    post(client, f"{ACC}/purchases", {"credits": 100, "amount_usd": "2.00",
                                      "payment_ref": "pi_1"})
    return post(client, f"{ACC}/deductions", DALLE_IMAGE)


def test_the_seeds_worked_example(client: TestClient) -> None:
    charge = seed_example(client)
    usage = client.get(f"{API}/usage", params={"min_position": charge["position"]}).json()
    assert usage["count"] == 1
    row = usage["data"][0]
    assert {k: row[k] for k in ("kind", "account", "operation", "model", "provider",
                                "credits_used", "price_per_credit_usd", "revenue_usd",
                                "cost_usd", "images", "charge_id", "model_id", "account_id")
            } == {
        "kind": "charge", "account": "acme", "operation": "image_generation",
        "model": "dall-e-3", "provider": "openai", "credits_used": 5,
        "model_id": "dall-e-3", "account_id": "acme",
        "price_per_credit_usd": "0.020000", "revenue_usd": "0.100000",
        "cost_usd": "0.040000", "images": 1, "charge_id": charge["id"]}

    r = client.get(f"{API}/reports/revenue", params={
        "group_by": "model,provider", "min_position": charge["position"]})
    assert r.status_code == 200, r.text
    report = r.json()
    figures = {"charges": 1, "credits_used": 5, "revenue_usd": "0.100000",
               "cost_usd": "0.040000", "margin_usd": "0.060000", "margin_pct": "60.00",
               "markup_pct": "150.00", "recognized_revenue_usd": "0.100000",
               "promotional_credits": 0}
    assert report["data"] == [{"model": "dall-e-3", "provider": "openai", **report["data"][0]}]
    assert {k: report["data"][0][k] for k in figures} == figures
    assert {k: report["total"][k] for k in figures} == figures
    assert report["group_by"] == ["model", "provider"]


def test_reports_as_csv(client: TestClient) -> None:
    charge = seed_example(client)
    wait = {"min_position": charge["position"]}
    r = client.get(f"{API}/reports/revenue", params={**wait, "group_by": "day",
                                                    "format": "csv"})
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 1
    assert (rows[0]["revenue_usd"], rows[0]["cost_usd"], rows[0]["margin_pct"],
            rows[0]["markup_pct"]) == ("0.100000", "0.040000", "60.00", "150.00")
    r = client.get(f"{API}/usage", params=wait, headers={"Accept": "text/csv"})
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [(x["account"], x["model"], x["credits_used"], x["cost_usd"], x["input_tokens"])
            for x in rows] == [("acme", "dall-e-3", "5", "0.040000", "")]
    assert r.text.startswith("time,account,operation,model,provider,kind,credits_used,")


def test_a_refund_reduces_revenue_not_cost(client: TestClient) -> None:
    charge = seed_example(client)
    refund = post(client, f"{ACC}/refunds", {"charge_id": charge["id"], "credits": 2,
                                             "reason": "blank image"})
    wait = {"min_position": refund["position"]}
    total = client.get(f"{API}/reports/revenue", params=wait).json()["total"]
    assert {k: total[k] for k in ("credits_used", "credits_refunded", "revenue_usd",
                                  "refunded_usd", "cost_usd", "margin_usd", "margin_pct")
            } == {"credits_used": 3, "credits_refunded": 2, "revenue_usd": "0.060000",
                  "refunded_usd": "0.040000", "cost_usd": "0.040000",
                  "margin_usd": "0.020000", "margin_pct": "33.33"}
    rows = client.get(f"{API}/usage", params={**wait, "kind": "refund"}).json()["data"]
    assert [(r["credits_used"], r["revenue_usd"], r["cost_usd"], r["charge_id"])
            for r in rows] == [(-2, "-0.040000", None, charge["id"])]


def test_balance_comes_from_the_view_with_lifetime_figures(client: TestClient) -> None:
    charge = seed_example(client)
    b = client.get(f"{ACC}/balance", params={"min_position": charge["position"]}).json()
    assert {k: b[k] for k in ("balance", "reserved", "available", "purchased", "used",
                              "purchased_usd", "position")} == {
        "balance": 95, "reserved": 0, "available": 95, "purchased": 100, "used": 5,
        "purchased_usd": "2.000000", "position": charge["position"]}
    assert client.get(f"{ACC}/balance").json()["balance"] == 95  # waits for the head
    unknown = client.get(f"{API}/accounts/nobody/credits/balance").json()
    assert (unknown["balance"], unknown["available"]) == (0, 0)
    history = client.get(f"{ACC}/transactions").json()
    assert [t["type"] for t in history["data"]] == ["deduction", "purchase"]
    assert history["data"][0]["cost_usd"] == "0.040000"


def test_usage_pages_and_filters(client: TestClient) -> None:
    post(client, f"{ACC}/purchases", {"credits": 100, "amount_usd": "2.00",
                                      "payment_ref": "p"})
    last = {}
    for model in ("dall-e-3", "gpt-image-1", "dall-e-3"):
        last = post(client, f"{ACC}/deductions", {**DALLE_IMAGE, "model_id": model})
    wait = {"min_position": last["position"]}
    first = client.get(f"{API}/usage", params={**wait, "limit": 2}).json()
    assert [r["model_id"] for r in first["data"]] == ["dall-e-3", "gpt-image-1"]
    rest = client.get(f"{API}/usage", params={"before": first["next_before"]}).json()
    assert [r["model_id"] for r in rest["data"]] == ["dall-e-3"]
    assert rest["next_before"] is None
    only = client.get(f"{API}/usage", params={"model_id": "dall-e-3"}).json()
    assert only["count"] == 2
    assert client.get(f"{API}/usage", params={"from": "2999-01-01"}).json()["count"] == 0


def test_reads_refuse_what_they_cannot_answer(client: TestClient) -> None:
    charge = seed_example(client)
    r = client.get(f"{API}/reports/revenue", params={"group_by": "week"})
    assert (r.status_code, r.json()["errors"][0]["field"]) == (422, "group_by")
    r = client.get(f"{API}/reports/revenue", params={"from": "2025-01-01T10:30:00Z"})
    assert (r.status_code, r.json()["errors"][0]["field"]) == (422, "from")
    r = client.get(f"{API}/usage", params={"to": "yesterday"})
    assert (r.status_code, r.json()["errors"][0]["field"]) == (422, "to")
    r = client.get(f"{API}/usage", params={"min_position": charge["position"] + 1000})
    assert (r.status_code, r.json()["errors"][0]["field"]) == (422, "min_position")


def test_account_keys_see_their_own_usage_only(client: TestClient) -> None:
    seed_example(client)
    other = post(client, f"{API}/accounts/globex/credits/purchases",
                 {"credits": 10, "amount_usd": "1.00", "payment_ref": "g"})
    post(client, f"{API}/accounts/globex/credits/deductions", DALLE_IMAGE)
    key = client.post(f"{API}/auth/keys", json={"role": "user", "account_id": "acme",
                                                "user_id": "u1"}).json()["token"]
    as_user = {"Authorization": f"Bearer {key}"}
    wait = {"min_position": other["position"] + 1}
    rows = client.get(f"{API}/usage", params=wait, headers=as_user).json()["data"]
    assert {r["account_id"] for r in rows} == {"acme"}
    assert client.get(f"{API}/usage", params={"account_id": "globex"},
                      headers=as_user).status_code == 404
    assert client.get(f"{API}/reports/revenue", headers=as_user).status_code == 403
    assert client.get(f"{API}/audit/verify", headers=as_user).status_code == 403
    everyone = client.get(f"{API}/usage", params=wait).json()["data"]
    assert {r["account_id"] for r in everyone} == {"acme", "globex"}


def test_status_and_verify(client: TestClient) -> None:
    charge = seed_example(client)
    # every view, not only the one a read waits for, has applied the charge
    assert client.app.state.projections.wait(charge["position"], timeout=10)  # type: ignore[attr-defined]
    status = client.get(f"{API}/projections/status").json()
    assert status["runner"] == "running"
    assert [p["name"] for p in status["projections"]] == ["balances", "transactions",
                                                           "usage", "revenue", "lots"]
    assert all(p["position"] >= charge["position"] for p in status["projections"])
    verified = client.get(f"{API}/audit/verify").json()
    assert (verified["ok"], verified["differences"]) == (True, [])
    assert verified["events"] >= charge["position"]


@pytest.fixture
def idle_client(settings: Settings, ledger: Ledger) -> Any:
    """An API whose projections nobody runs (LEDGER_RUN_PROJECTIONS=false, no worker)."""
    idle = settings.model_copy(update={"run_projections": False, "projections_wait_s": 0.2})
    with TestClient(create_app(idle, ledger), raise_server_exceptions=False) as c:
        c.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        yield c


def test_reads_answer_503_when_the_views_do_not_catch_up(idle_client: TestClient) -> None:
    charge = seed_example(idle_client)
    r = idle_client.get(f"{API}/usage", params={"min_position": charge["position"]})
    assert (r.status_code, r.headers["retry-after"]) == (503, "1")
    assert r.headers["content-type"] == "application/problem+json"
    assert idle_client.get(f"{ACC}/balance").status_code == 503
    assert idle_client.get(f"{ACC}/balance", params={"as_of": "2999-01-01T00:00:00Z"}
                           ).json()["balance"] == 95  # as_of replays the account itself
    assert idle_client.get(f"{API}/usage").json()["count"] == 0  # no wait asked: as is
    assert idle_client.get(f"{API}/projections/status").json()["runner"] == "stopped"
