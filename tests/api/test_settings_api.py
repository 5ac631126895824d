"""/system/settings/* over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient

from ledger.domain.settings import Scope, SettingsDocument
from ledger.service import Ledger

S = "/api/v1/system/settings"
ACME = {"account_id": "acme"}


def token(client: TestClient, role: str, **ids: str) -> dict[str, str]:
    r = client.post("/api/v1/auth/keys", json={"role": role, **ids})
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def effective(client: TestClient, **params: str) -> dict[str, Any]:
    r = client.get(f"{S}/effective", params={**ACME, **params})
    assert r.status_code == 200, r.text
    values: dict[str, Any] = r.json()["values"]
    return values


def test_global_settings_have_the_seed_defaults(client: TestClient) -> None:
    r = client.get(f"{S}/global")
    body = r.json()
    assert r.headers["ETag"] == f'"{body["version"]}"'
    assert (body["openai_model"], body["openai_temperature"], body["openai_max_tokens"]) == (
        "gpt-4o-mini", 0.7, 8192)
    assert body["anthropic_model"] == "claude-3-5-sonnet-20241022"
    assert (body["dalle_model"], body["dalle_image_size"]) == ("dall-e-3", "1024x1024")
    assert (body["max_in_article_images"], body["desktop_image_size"]) == (2, "1024x1024")
    assert body["openai_api_key"] is None
    assert "mobile_image_size" not in body


def test_global_put_is_partial_and_checks_fields(client: TestClient) -> None:
    r = client.put(f"{S}/global", json={"anthropic_temperature": 0.2})
    assert r.status_code == 200, r.text
    body = client.get(f"{S}/global").json()
    assert (body["anthropic_temperature"], body["openai_temperature"]) == (0.2, 0.7)
    for bad in ({"openai_temperature": 2.5}, {"openai_temperature": -0.1},
                {"image_quality": "ultra"}, {"mobile_image_size": "512x512"},
                {"openai_model": "dall-e-3"}, {"anthropic_model": "bria-2.2"}):
        r = client.put(f"{S}/global", json=bad)
        assert r.status_code == 422, (bad, r.text)
    assert client.get(f"{S}/global").json()["version"] == body["version"]


def test_account_override_keeps_allowed_fields_and_drops_the_key(client: TestClient,
                                                                 ledger: Ledger) -> None:
    r = client.put(f"{S}/integrations/openai", params=ACME,
                   json={"model": "gpt-4.1", "api_key": "sk-not-stored-0000",
                         "openai_api_key": "sk-not-stored-0000", "endpoint": "x"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["value"] == {"model": "gpt-4.1"}
    assert body["dropped_fields"] == ["api_key", "endpoint", "openai_api_key"]
    doc = ledger.store.load(SettingsDocument.create_id(Scope.INTEGRATION, "acme", "", "openai"))
    assert doc.values == {"model": "gpt-4.1"}

    values = effective(client)
    model, temperature = values["openai_model"], values["openai_temperature"]
    assert (model["value"], model["source"]["level"]) == ("gpt-4.1", "account")
    assert model["source"]["aggregate_id"] == body["id"]
    assert model["source"]["version"] == 1
    assert model["source"]["field"] == "integrations/openai.model"
    assert (temperature["value"], temperature["source"]["level"]) == (0.7, "global")
    assert temperature["source"]["changed_at"] is not None

    view = client.get(f"{S}/integrations/openai", params=ACME).json()
    assert view["config"] == {"model": "gpt-4.1"}
    assert view["effective"]["model"]["value"] == "gpt-4.1"
    assert view["effective"]["max_tokens"]["source"]["level"] == "global"
    assert client.put(f"{S}/integrations/openai", params=ACME,
                      json={"temperature": 3}).status_code == 422
    assert client.put(f"{S}/integrations/slack", params=ACME, json={}).status_code == 404


def test_user_save_flow_creates_then_updates_one_record(client: TestClient,
                                                        ledger: Ledger) -> None:
    user = token(client, "user", account_id="acme", user_id="u1")
    r = client.post(f"{S}/user", headers=user,
                    json={"key": "table_settings", "value": {"records_per_page": 50}})
    assert r.status_code == 201, r.text
    assert (r.json()["version"], r.json()["user_id"], r.json()["account_id"]) == (1, "u1",
                                                                                  "acme")
    r = client.put(f"{S}/user", headers=user,
                   json={"key": "table_settings",
                         "value": {"records_per_page": 100, "sort_direction": "asc"}})
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 2
    assert r.headers["ETag"] == '"2"'
    rows = client.get(f"{S}/user", headers=user).json()["data"]
    assert [(row["key"], row["value"]["records_per_page"]) for row in rows] == [
        ("table_settings", 100)]

    doc_id = SettingsDocument.create_id(Scope.USER, "acme", "u1", "table_settings")
    before = len(ledger.store.events_of(doc_id))
    r = client.put(f"{S}/user", headers=user,
                   json={"key": "table_settings", "value": {"records_per_page": 100000}})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "value.records_per_page"
    r = client.post(f"{S}/user", headers=user,
                    json={"key": "writer_automation",
                          "value": {"schedule": {"frequency": "fortnightly"}}})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "value.schedule.frequency"
    assert client.post(f"{S}/user", headers=user,
                       json={"key": "favourite_colour", "value": {}}).status_code == 422
    assert len(ledger.store.events_of(doc_id)) == before
    assert client.get(f"{S}/user", headers=user,
                      params={"key": "writer_automation"}).json()["count"] == 0

    # The user's account and id come from the token.
    other = client.get(f"{S}/user", headers=user, params={"user_id": "u2"})
    assert other.status_code == 404
    assert client.get(f"{S}/user", headers=user, params={"account_id": "beta"}).status_code == 404
    # Admins name the user.
    rows = client.get(f"{S}/user", params={**ACME, "user_id": "u1"}).json()["data"]
    assert rows[0]["value"]["records_per_page"] == 100
    assert client.get(f"{S}/user", params=ACME).status_code == 422


def test_only_the_global_level_holds_keys(client: TestClient, ledger: Ledger) -> None:
    key = "sk-refused-key-1234567890"
    user = token(client, "user", account_id="acme", user_id="u1")
    attempts = [
        client.post(f"{S}/user", headers=user,
                    json={"key": "ai_settings", "value": {"openai_api_key": key}}),
        client.post(f"{S}/user", headers=user, json={
            "key": "ai_settings", "value": {"integrations": {"openai": {"api_key": key}}}}),
        client.put(f"{S}/account/user_preferences", params=ACME,
                   json={"value": {"api_key": key}}),
        client.put(f"{S}/sites/blog/integrations", params=ACME,
                   json={"value": {"openai": {"api_key": key}}}),
    ]
    for r in attempts:
        assert r.status_code == 422
        assert key not in r.text
    assert client.get(f"{S}/user", headers=user).json()["count"] == 0


def test_if_match_guards_against_lost_updates(client: TestClient) -> None:
    url = f"{S}/account/table_settings"
    r = client.put(url, params=ACME, json={"value": {"records_per_page": 10}},
                   headers={"If-Match": '"0"'})
    assert r.status_code == 201
    etag = r.headers["ETag"]
    assert client.get(url, params=ACME).headers["ETag"] == etag
    ok = client.put(url, params=ACME, json={"value": {"records_per_page": 20}},
                    headers={"If-Match": etag})
    assert ok.status_code == 200
    stale = client.put(url, params=ACME, json={"value": {"records_per_page": 30}},
                       headers={"If-Match": etag})
    assert stale.status_code == 409
    assert client.get(url, params=ACME).json()["value"] == {"records_per_page": 20}
    g = client.get(f"{S}/global").headers["ETag"]
    assert client.put(f"{S}/global", json={"image_style": "anime"},
                      headers={"If-Match": g}).status_code == 200
    assert client.put(f"{S}/global", json={"image_style": "sketch"},
                      headers={"If-Match": g}).status_code == 409
    assert client.put(url, params=ACME, json={"value": {}},
                      headers={"If-Match": "soon"}).status_code == 400


def test_levels_merge_global_account_site_user(client: TestClient) -> None:
    client.put(f"{S}/global", json={"image_quality": "standard", "anthropic_max_tokens": 4000})
    client.put(f"{S}/integrations/anthropic", params=ACME, json={"temperature": 0.4})
    client.put(f"{S}/account/table_settings", params=ACME, json={"value": {"density": "compact"}})
    client.put(f"{S}/sites/blog/image-settings", params=ACME,
               json={"value": {"image_quality": "hd", "featured_image": False}})
    client.put(f"{S}/sites/blog/integrations", params=ACME,
               json={"value": {"runware": {"image_quality": "standard"}}})
    user = token(client, "user", account_id="acme", user_id="u1")
    r = client.post(f"{S}/user", headers=user, json={"key": "ai_settings", "value": {
        "default_text_provider": "anthropic",
        "integrations": {"anthropic": {"temperature": 0.9}}}})
    assert r.status_code == 201, r.text
    client.post(f"{S}/user", headers=user,
                json={"key": "table_settings", "value": {"records_per_page": 75}})

    r = client.get(f"{S}/effective", headers=user, params={"site_id": "blog"})
    assert r.status_code == 200
    body = r.json()
    assert body["user_id"] == "u1"
    v = body["values"]

    def at(name: str) -> tuple[Any, str]:
        return v[name]["value"], v[name]["source"]["level"]

    assert at("default_text_provider") == ("anthropic", "user")
    assert at("anthropic_temperature") == (0.9, "user")
    assert at("anthropic_max_tokens") == (4000, "global")
    assert at("image_quality") == ("hd", "site")
    assert at("dalle_image_quality") == ("hd", "site")  # fed by the universal setting
    assert at("runware_image_quality") == ("standard", "site")  # the specific one wins
    assert at("site.image-settings.featured_image") == (False, "site")
    assert at("table_settings.records_per_page") == (75, "user")
    assert at("table_settings.density") == ("compact", "account")
    assert at("table_settings.sort_direction") == ("desc", "default")
    assert v["table_settings.sort_direction"]["source"]["aggregate_id"] is None
    # Without the user, the account's and site's values show through.
    assert effective(client, site_id="blog")["anthropic_temperature"]["value"] == 0.4


def test_effective_as_of_a_past_moment(client: TestClient) -> None:
    client.put(f"{S}/integrations/openai", params=ACME, json={"model": "gpt-4o"})
    time.sleep(0.01)
    between = datetime.now(UTC).isoformat()
    time.sleep(0.01)
    client.put(f"{S}/integrations/openai", params=ACME, json={"model": "gpt-5.1"})
    client.put(f"{S}/global", json={"openai_temperature": 1.1})
    now, then = effective(client), effective(client, as_of=between)
    assert (now["openai_model"]["value"], then["openai_model"]["value"]) == ("gpt-5.1",
                                                                             "gpt-4o")
    assert then["openai_model"]["source"]["version"] == 1
    assert (now["openai_temperature"]["value"], then["openai_temperature"]["value"]) == (
        1.1, 0.7)
    old = client.get(f"{S}/integrations/openai", params={**ACME, "as_of": between}).json()
    assert old["config"] == {"model": "gpt-4o"}


def test_roles_and_tenancy(client: TestClient) -> None:
    user = token(client, "user", account_id="acme", user_id="u1")
    auditor = token(client, "auditor")
    assert client.get(f"{S}/global", headers=user).status_code == 403
    assert client.get(f"{S}/global", headers=auditor).status_code == 200
    assert client.put(f"{S}/global", headers=auditor, json={}).status_code == 403
    assert client.put(f"{S}/integrations/openai", headers=user,
                      json={"model": "gpt-4o"}).status_code == 403
    assert client.get(f"{S}/effective", headers=user,
                      params={"account_id": "beta"}).status_code == 404
    admin_acme = token(client, "account_admin", account_id="acme")
    r = client.put(f"{S}/sites/blog/publishing", headers=admin_acme,
                   json={"value": {"platform": "wordpress", "publish_days": ["mon", "thu"]}})
    assert r.status_code == 201, r.text
    assert client.get(f"{S}/sites/blog/publishing", params={"account_id": "beta"}
                      ).status_code == 404
    assert client.get(f"{S}/sites/blog/nonsense", params=ACME).status_code == 404
