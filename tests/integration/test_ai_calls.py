"""Metered AI calls end to end, on SQLite and PostgreSQL: the API, the ledger, each
provider's official SDK (or its REST API over httpx) and a local fake of each provider
over real HTTP (tests/fakes/providers.py). Nothing is mocked.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from ledger.config import Settings
from ledger.credits import account_key
from ledger.domain.base import recorded_at
from ledger.domain.calls import ProviderCall
from ledger.domain.credits import CreditAccount
from ledger.service import Ledger
from tests.conftest import ADMIN_TOKEN, PG_URL, SECRET_KEY, LiveServer, PgSchema, make_settings
from tests.fakes.providers import FakeProviders, serve_fake_providers

API = "/api/v1"
ACC = f"{API}/accounts/acme/credits"
KEYS = {"openai": "sk-test-openai-5b1d0c4f9e2a", "anthropic": "sk-ant-test-7c3e9a1b2d4f",
        "google": "AIza-test-google-1f2e3d4c5b", "runware": "rw-test-runware-9a8b7c6d5e",
        "bria": "bria-test-token-0f1e2d3c4b"}
GEMINI = {"model_id": "gemini-2.0-flash", "display_name": "Gemini 2.0 Flash",
          "model_type": "text", "provider": "google", "input_token_rate": "0.10",
          "output_token_rate": "0.40", "max_output_tokens": 8192}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProviders]:
    yield from serve_fake_providers()


@pytest.fixture(autouse=True)
def _fresh_fake(fake: FakeProviders) -> None:
    fake.set_mode("ok")
    fake.requests.clear()
    fake.input_tokens, fake.output_tokens = 1200, 345


@pytest.fixture
def settings(backend: str, tmp_path: Path, fake: FakeProviders) -> Iterator[Settings]:
    """The suite's settings, with every provider pointed at the fakes, a short timeout
    and one quick retry."""
    overrides: dict[str, Any] = {"provider_timeout_s": 0.5, "provider_max_retries": 1,
                                 "provider_backoff_s": 0.01, "sweep_interval_s": 0,
                                 **fake.base_urls()}
    if backend == "postgres":
        with PgSchema() as schema:
            yield make_settings(backend, tmp_path, schema.name, **overrides)
    else:
        yield make_settings(backend, tmp_path, **overrides)


def ok(r: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert r.status_code == status, r.text
    return r.json()  # type: ignore[no-any-return]


@pytest.fixture
def client(settings: Settings, ledger: Ledger) -> Iterator[TestClient]:
    """The API with every provider key configured and acme holding 100 credits."""
    with TestClient(create_app(settings, ledger), raise_server_exceptions=False) as c:
        c.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        ok(c.put(f"{API}/system/settings/global/",
                 json={f"{name}_api_key": key for name, key in KEYS.items()}))
        ok(c.post(f"{ACC}/purchases", json={"credits": 100, "amount_usd": "2.00",
                                            "payment_ref": "pi_ai"}), 201)
        yield c


def balance(client: TestClient) -> dict[str, Any]:
    return ok(client.get(f"{ACC}/balance"))


def call_events(ledger: Ledger, call_id: str) -> list[Any]:
    return list(ledger.store.events_of(ProviderCall.create_id(call_id)))


def usage_row(client: TestClient, position: int) -> dict[str, Any]:
    usage = ok(client.get(f"{API}/usage", params={"min_position": position}))
    return usage["data"][0]  # type: ignore[no-any-return]


# -- the "Done when" lines -------------------------------------------------------------------

def test_a_dalle3_image_leaves_95_of_100_and_records_cost_and_revenue(
        client: TestClient, ledger: Ledger, fake: FakeProviders) -> None:
    body = ok(client.post(f"{API}/ai/images", json={"account_id": "acme",
                                                    "prompt": "a lighthouse at dawn"}))
    assert (body["model_id"], body["provider"], body["credits_charged"]) == (
        "dall-e-3", "openai", 5)
    assert len(body["images"]) == 1
    assert body["images"][0].startswith("https://")
    assert (body["balance"], body["reserved"], body["available"]) == (95, 0, 95)
    assert balance(client)["balance"] == 95

    row = usage_row(client, body["position"])
    assert (row["model"], row["provider"], row["operation"], row["credits_used"],
            row["cost_usd"], row["revenue_usd"], row["images"]) == (
        "dall-e-3", "openai", "image_generation", 5, "0.040000", "0.100000", 1)

    # dall-e falls back to the OpenAI key; the settings' size, quality and style went out
    [sent] = fake.requests_to("openai")
    assert sent.headers["authorization"] == f"Bearer {KEYS['openai']}"
    assert (sent.body["model"], sent.body["size"], sent.body["n"], sent.body["quality"]) == (
        "dall-e-3", "1024x1024", 1, "standard")
    requested, succeeded = call_events(ledger, body["call_id"])
    assert isinstance(requested, ProviderCall.Requested)
    assert requested.held_credits == 5
    assert isinstance(succeeded, ProviderCall.Succeeded)
    assert (succeeded.credits, succeeded.images, succeeded.cost_usd) == (5, 1, Decimal("0.040"))
    assert succeeded.rates == {"cost_per_image": Decimal("0.040")}


def test_gpt4o_mini_text_is_charged_from_the_reported_usage(
        client: TestClient, ledger: Ledger, fake: FakeProviders) -> None:
    fake.input_tokens, fake.output_tokens = 1234, 567
    body = ok(client.post(f"{API}/ai/text", json={
        "account_id": "acme", "model_id": "gpt-4o-mini",
        "messages": [{"role": "system", "content": "Be brief."},
                     {"role": "user", "content": "Say hello."}]}))
    credits = math.ceil((1234 + 567) / 500)  # text_generation: 500 tokens a credit
    assert body["credits_charged"] == credits == 4
    assert body["usage"] == {"input_tokens": 1234, "output_tokens": 567, "images": 0,
                             "reported": True}
    assert body["text"] == "Hello from the fake."
    assert balance(client)["balance"] == 100 - credits
    cost = (Decimal(1234) * Decimal("0.15") + Decimal(567) * Decimal("0.60")) / 1_000_000
    assert body["cost_usd"] == "0.000525"  # money is shown to 6 places

    row = usage_row(client, body["position"])
    assert (row["model"], row["credits_used"], row["input_tokens"], row["output_tokens"]) == (
        "gpt-4o-mini", credits, 1234, 567)
    assert Decimal(row["cost_usd"]).quantize(Decimal("0.01")) == cost.quantize(Decimal("0.01"))
    assert row["cost_usd"] == "0.000525"  # 0.0001851 + 0.0003402, shown to 6 places
    assert row["revenue_usd"] == "0.040000"
    [sent] = fake.requests_to("openai")
    assert sent.headers["authorization"] == f"Bearer {KEYS['openai']}"
    assert sent.body["messages"][0] == {"role": "system", "content": "Be brief."}
    # the hold was the upper bound (prompt bytes + overhead + max_tokens); the rest returned
    [requested, succeeded] = call_events(ledger, body["call_id"])
    assert requested.held_credits == math.ceil((9 + 8 + 10 + 8 + 8192) / 500)
    assert succeeded.cost_usd == cost  # recorded exactly, not only to the cent
    assert (succeeded.input_tokens, succeeded.output_tokens, succeeded.credits) == (
        1234, 567, credits)
    assert succeeded.rates == {"input_token_rate": Decimal("0.15"),
                               "output_token_rate": Decimal("0.60")}


@pytest.mark.parametrize(("mode", "status", "kind"), [
    ("500", 502, "upstream_error"),
    ("timeout", 504, "timeout"),
    ("malformed", 502, "malformed_response"),
])
def test_a_provider_failure_charges_nothing_and_is_recorded(
        client: TestClient, ledger: Ledger, fake: FakeProviders,
        mode: str, status: int, kind: str) -> None:
    fake.set_mode(mode)
    r = client.post(f"{API}/ai/images", json={"account_id": "acme", "prompt": "a fox"})
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert (problem["status"], problem["failure_kind"], problem["provider"]) == (
        status, kind, "openai")
    assert problem["type"].endswith("/provider-failure")
    assert balance(client) | {"balance": 100, "reserved": 0, "available": 100} == balance(
        client)

    _requested, failed = call_events(ledger, problem["call_id"])
    assert isinstance(failed, ProviderCall.Failed)
    assert (failed.error_kind, failed.http_status) == (kind, status)
    assert failed.detail
    account = ledger.store.events_of(account_key("acme"))
    assert [type(e).__name__ for e in account[-2:]] == ["CreditsReserved",
                                                        "ReservationReleased"]
    assert account[-1].reason == "provider_failed"
    if mode != "malformed":  # retryable: tried once more, and no more (the bound)
        assert len(fake.requests_to("openai")) == 2


@pytest.mark.slow  # starts a worker process
def test_a_hold_from_a_killed_process_is_released_by_the_sweeper(
        backend: str, settings: Settings, ledger: Ledger, fake: FakeProviders,
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker holds credits, records the call and is SIGKILLed while the provider is
    still thinking: nobody settles the hold, the sweeper releases it once it expired."""
    client_env = {"LEDGER_VAR_DIR": str(settings.var_dir), "LEDGER_SECRET_KEY": SECRET_KEY,
                  "LEDGER_OPENAI_BASE_URL": fake.base_urls()["openai_base_url"],
                  "LEDGER_PROVIDER_TIMEOUT_S": "60", "LEDGER_SWEEP_INTERVAL_S": "0"}
    if backend == "postgres":
        client_env |= {"LEDGER_DATABASE_URL": PG_URL,
                       "LEDGER_POSTGRES_SCHEMA": str(settings.postgres_schema)}
    from ledger.domain.base import Actor

    admin = Actor(id="test", role="platform_admin")
    ledger.settings_service.put_global({"openai_api_key": KEYS["openai"]}, admin)
    ledger.credits.purchase("acme", 20, Decimal("0.40"), "pi_k", admin)
    fake.set_mode("timeout")
    fake.hang_s = 120
    worker = subprocess.Popen([sys.executable, "-c", (
        "from ledger.config import Settings\n"
        "from ledger.domain.base import Actor\n"
        "from ledger.service import Ledger\n"
        "ledger = Ledger(Settings())\n"
        "choice = ledger.ai.choose_image('acme', None, model_id='dall-e-3', n=1, size=None)\n"
        "ledger.ai.images('acme', None, 'a fox', choice, Actor(id='w', role='service'))\n")],
        env={**os.environ, **client_env}, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not fake.requests_to("openai"):  # the worker is waiting for the provider
            assert worker.poll() is None, "the worker died before calling the provider"
            assert time.monotonic() < deadline, "the worker never called the provider"
            time.sleep(0.05)
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
    fake.hang_s = 30

    acc: CreditAccount = ledger.store.find(account_key("acme"))
    [(rid, hold)] = acc.holds.items()
    assert (acc.balance, acc.held, hold["credits"]) == (20, 5, 5)
    call: ProviderCall = ledger.store.find(ProviderCall.create_id(hold["call_id"]))
    assert call.status == "requested"

    assert ledger.sweeper.run_once().released == []  # not expired yet: a live call's hold

    for name, value in {**client_env, "LEDGER_BOOTSTRAP_ADMIN_TOKEN": ADMIN_TOKEN}.items():
        monkeypatch.setenv(name, value)
    from ledger.cli import main

    with recorded_at(hold["expires_at"] + timedelta(seconds=1)):
        assert main(["sweep"]) == 0  # `ledger sweep`, as cron would run it
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["released"] == [f"acme/{rid}"]

    acc = ledger.store.find(account_key("acme"))
    assert (acc.balance, acc.held, acc.holds) == (20, 0, {})
    events = call_events(ledger, hold["call_id"])
    assert [type(e).__name__ for e in events] == ["Requested", "Abandoned"]
    released = ledger.store.events_of(account_key("acme"))[-1]
    assert isinstance(released, CreditAccount.ReservationReleased)
    assert (released.reservation_id, released.reason) == (rid, "expired")


def test_twenty_concurrent_images_with_credits_for_ten(
        settings: Settings, ledger: Ledger, client: TestClient, fake: FakeProviders) -> None:
    ok(client.post(f"{ACC}/adjustments", json={"credits": -50, "reason": "leave 50"}), 201)
    assert balance(client)["available"] == 50  # ten images of 5
    with LiveServer(create_app(settings, ledger)) as server, httpx.Client(
            base_url=server.url, timeout=30,
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as http:
        def one(i: int) -> httpx.Response:
            return http.post(f"{API}/ai/images", json={"account_id": "acme",
                                                       "prompt": f"image {i}"})
        with ThreadPoolExecutor(20) as pool:
            responses = list(pool.map(one, range(20)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 10 + [402] * 10
    assert all(r.headers["content-type"] == "application/problem+json"
               for r in responses if r.status_code == 402)
    succeeded = [r.json() for r in responses if r.status_code == 200]
    assert len({b["call_id"] for b in succeeded}) == len({b["charge_id"] for b in succeeded}) == 10
    assert (balance(client)["balance"], balance(client)["reserved"]) == (0, 0)
    captures = [e for e in ledger.store.events_of(account_key("acme"))
                if isinstance(e, CreditAccount.ReservationCaptured)]
    assert len(captures) == 10
    assert {e.credits for e in captures} == {5}
    assert len({e.call_id for e in captures}) == 10  # none charged twice
    assert len(fake.requests_to("openai")) == 10  # a refused call never reached the provider


# -- each provider ---------------------------------------------------------------------------

def test_anthropic_text(client: TestClient, ledger: Ledger, fake: FakeProviders) -> None:
    body = ok(client.post(f"{API}/ai/text", json={
        "account_id": "acme", "model_id": "claude-3-5-haiku-20241022", "temperature": 1.5,
        "messages": [{"role": "system", "content": "Terse."},
                     {"role": "user", "content": "Hi"}]}))
    assert (body["provider"], body["text"], body["credits_charged"]) == (
        "anthropic", "Hello, Claude.", 4)
    assert Decimal(body["cost_usd"]) == (Decimal(1200) * Decimal("0.80")
                                         + Decimal(345) * Decimal("4.00")) / 1_000_000
    [sent] = fake.requests_to("anthropic")
    # the SDK sends the key as x-api-key or (this version) as a bearer token
    assert KEYS["anthropic"] in (sent.headers.get("x-api-key"),
                                 sent.headers.get("authorization", "").removeprefix("Bearer "))
    assert sent.body["system"] == "Terse."
    assert sent.body["messages"] == [{"role": "user", "content": "Hi"}]
    assert sent.body["temperature"] == 1.0  # Anthropic's range ends at 1
    assert sent.body["max_tokens"] == 8192  # the global anthropic_max_tokens


def test_google_text(client: TestClient, fake: FakeProviders) -> None:
    ok(client.post(f"{API}/models", json=GEMINI), 201)
    body = ok(client.post(f"{API}/ai/text", json={
        "account_id": "acme", "model_id": "gemini-2.0-flash", "max_tokens": 2000,
        "prompt": "Hello?"}))
    assert (body["provider"], body["text"], body["credits_charged"]) == (
        "google", "Hello, Gemini.", 4)
    assert Decimal(body["cost_usd"]) == Decimal("0.000258")  # 1200*0.10 + 345*0.40, per 1M
    [sent] = fake.requests_to("google")
    assert sent.headers["x-goog-api-key"] == KEYS["google"]
    assert sent.path.endswith("/models/gemini-2.0-flash:generateContent")
    assert sent.body["generationConfig"]["maxOutputTokens"] == 2000


def test_runware_image(client: TestClient, fake: FakeProviders) -> None:
    ok(client.put(f"{API}/system/settings/global/", json={"default_image_service": "runware"}))
    body = ok(client.post(f"{API}/ai/images", json={"account_id": "acme", "prompt": "a cat",
                                                    "n": 2, "size": "768x768"}))
    assert (body["provider"], body["model_id"], body["credits_charged"]) == (
        "runware", "runware:100@1", 10)
    assert Decimal(body["cost_usd"]) == Decimal("0.018")
    assert len(body["images"]) == 2
    [sent] = fake.requests_to("runware")
    assert sent.headers["authorization"] == f"Bearer {KEYS['runware']}"
    [task] = sent.body
    assert (task["taskType"], task["model"], task["width"], task["height"],
            task["numberResults"]) == ("imageInference", "runware:100@1", 768, 768, 2)


def test_bria_image(client: TestClient, fake: FakeProviders) -> None:
    body = ok(client.post(f"{API}/ai/images", json={"account_id": "acme",
                                                    "prompt": "a vase", "model_id": "bria-2.3"}))
    assert (body["provider"], body["credits_charged"], Decimal(body["cost_usd"])) == (
        "bria", 5, Decimal("0.015"))
    [sent] = fake.requests_to("bria")
    assert sent.headers["api_token"] == KEYS["bria"]
    assert sent.path == "/bria/v1/text-to-image/base/2.3"
    assert (sent.body["num_results"], sent.body["aspect_ratio"]) == (1, "1:1")


@pytest.mark.parametrize(("path", "body", "provider"), [
    ("text", {"model_id": "gpt-4o-mini", "prompt": "hi"}, "openai"),
    ("text", {"model_id": "claude-3-haiku-20240307", "prompt": "hi"}, "anthropic"),
    ("text", {"model_id": "gemini-2.0-flash", "prompt": "hi"}, "google"),
    ("images", {"model_id": "gpt-image-1", "prompt": "a cat"}, "openai"),
    ("images", {"model_id": "runware:100@1", "prompt": "a cat"}, "runware"),
    ("images", {"model_id": "bria-2.3", "prompt": "a cat"}, "bria"),
])
def test_a_429_is_retried_and_then_succeeds(client: TestClient, fake: FakeProviders,
                                            path: str, body: dict[str, Any],
                                            provider: str) -> None:
    if provider == "google":
        ok(client.post(f"{API}/models", json=GEMINI), 201)
    fake.set_mode("429-then-ok", provider)
    answer = ok(client.post(f"{API}/ai/{path}", json={"account_id": "acme", **body}))
    assert answer["provider"] == provider
    assert answer["credits_charged"] > 0
    assert len(fake.requests_to(provider)) == 2


# -- the rest of the flow --------------------------------------------------------------------

def test_a_response_without_usage_is_charged_at_the_hold_and_flagged(
        client: TestClient, ledger: Ledger, fake: FakeProviders) -> None:
    fake.set_mode("missing-usage")
    body = ok(client.post(f"{API}/ai/text", json={
        "account_id": "acme", "model_id": "gpt-4o-mini", "max_tokens": 1000,
        "prompt": "x" * 100}))
    held = math.ceil((100 + 8 + 1000) / 500)
    assert body["usage"]["reported"] is False
    assert body["credits_charged"] == held == 3
    capture = ledger.store.events_of(account_key("acme"))[-1]
    assert isinstance(capture, CreditAccount.ReservationCaptured)
    assert capture.usage_reported is False
    succeeded = call_events(ledger, body["call_id"])[-1]
    assert succeeded.usage_reported is False


def test_a_retried_call_with_its_idempotency_key_is_not_made_or_charged_again(
        client: TestClient, fake: FakeProviders) -> None:
    request = {"account_id": "acme", "prompt": "once"}
    first = ok(client.post(f"{API}/ai/images", json=request,
                           headers={"Idempotency-Key": "img-once"}))
    again = client.post(f"{API}/ai/images", json=request,
                        headers={"Idempotency-Key": "img-once"})
    assert again.status_code == 200, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert (again.json()["call_id"], again.json()["credits_charged"]) == (first["call_id"], 5)
    assert balance(client)["balance"] == 95
    assert len(fake.requests_to("openai")) == 1
    other = client.post(f"{API}/ai/images", json={**request, "prompt": "twice"},
                        headers={"Idempotency-Key": "img-once"})
    assert other.status_code == 409


@pytest.mark.parametrize(("path", "body", "status", "field"), [
    ("images", {"prompt": "a", "size": "512x512"}, 422, "size"),  # dall-e-3 does not offer it
    ("images", {"prompt": "a", "n": 3}, 422, "n"),  # max_in_article_images is 2
    ("images", {"prompt": "a", "model_id": "gpt-4o-mini"}, 422, "model_id"),  # a text model
    ("text", {"prompt": "a", "model_id": "dall-e-3"}, 422, "model_id"),
    ("text", {"prompt": "a", "model_id": "gpt-4o-mini", "max_tokens": 20000}, 422,
     "max_tokens"),
    ("images", {"prompt": "a", "model_id": "bria-2.2"}, 409, "model_id"),  # inactive
    ("images", {"prompt": "a", "model_id": "no-such-model"}, 404, "model_id"),
])
def test_a_refused_call_holds_nothing(client: TestClient, fake: FakeProviders, path: str,
                                      body: dict[str, Any], status: int, field: str) -> None:
    r = client.post(f"{API}/ai/{path}", json={"account_id": "acme", **body})
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert field in json.dumps(r.json())
    assert balance(client) == balance(client) | {"balance": 100, "reserved": 0}
    assert fake.requests == []


def test_without_an_api_key_nothing_is_held(settings: Settings, ledger: Ledger,
                                            fake: FakeProviders) -> None:
    with TestClient(create_app(settings, ledger), raise_server_exceptions=False) as c:
        c.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        ok(c.post(f"{ACC}/purchases", json={"credits": 10, "amount_usd": "0.20",
                                            "payment_ref": "pi_nokey"}), 201)
        r = c.post(f"{API}/ai/images", json={"account_id": "acme", "prompt": "a"})
        assert r.status_code == 503, r.text
        assert r.json()["type"].endswith("/provider-not-configured")
        assert ok(c.get(f"{ACC}/balance"))["reserved"] == 0
    assert fake.requests == []


def test_an_account_bound_key_does_not_see_the_platform_cost(client: TestClient) -> None:
    token = ok(client.post(f"{API}/auth/keys", json={"role": "user", "account_id": "acme",
                                                     "user_id": "u1"}), 201)["token"]
    as_user = {"Authorization": f"Bearer {token}"}
    body = ok(client.post(f"{API}/ai/images", json={"prompt": "mine"}, headers=as_user))
    assert body["credits_charged"] == 5
    assert "cost_usd" not in body
    assert "revenue_usd" not in body
    r = client.post(f"{API}/ai/images", json={"account_id": "other", "prompt": "theirs"},
                    headers=as_user)
    assert r.status_code == 404


def test_no_api_key_appears_in_any_event_response_or_log(
        client: TestClient, ledger: Ledger, fake: FakeProviders,
        caplog: pytest.LogCaptureFixture) -> None:
    """The fakes' 500 echoes the credentials they were sent: the adapters must not carry
    them into a failure's detail, the recorded event, the response or a log line."""
    caplog.set_level(logging.DEBUG)
    ok(client.post(f"{API}/models", json=GEMINI), 201)
    calls = [("text", {"model_id": "gpt-4o-mini"}, "openai"),
             ("text", {"model_id": "claude-3-haiku-20240307"}, "anthropic"),
             ("text", {"model_id": "gemini-2.0-flash"}, "google"),
             ("images", {"model_id": "dall-e-3"}, "openai"),
             ("images", {"model_id": "runware:100@1"}, "runware"),
             ("images", {"model_id": "bria-2.3"}, "bria")]
    bodies: list[str] = []
    for mode in ("ok", "500"):
        fake.set_mode(mode)
        for path, body, _provider in calls:
            r = client.post(f"{API}/ai/{path}", json={"account_id": "acme", "prompt": "p",
                                                      **body})
            assert r.status_code == (200 if mode == "ok" else 502), r.text
            bodies.append(r.text)
    failures = [json.loads(b) for b in bodies if '"failure_kind"' in b]
    assert len(failures) == len(calls)
    assert all("[redacted]" in f["detail"] for f in failures)  # the echo was there

    # the credentials really went out to every provider
    sent = json.dumps([r.headers for r in fake.requests])
    assert all(key in sent for key in KEYS.values())

    stored, after = [], 0
    while page := ledger.store.recorder.select_notifications(after, 500,
                                                             inclusive_of_start=False):
        stored += [n.state.decode(errors="replace") for n in page]
        after = page[-1].id
    logs = [record.getMessage() for record in caplog.records] + [
        str(record.args) for record in caplog.records]
    for key in KEYS.values():
        assert not [s for s in stored if key in s], "a key in a stored event"
        assert not [b for b in bodies if key in b], "a key in a response"
        assert not [m for m in logs if key in m], "a key in a log record"
