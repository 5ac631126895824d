"""API keys on SQLite and PostgreSQL: issued once and stored as a hash, refused when
wrong, expired or revoked (401), issued and revoked as events naming who did it, and
an account_admin held to its own account."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ledger.cli import main
from ledger.config import Settings
from ledger.domain.base import Actor, recorded_at
from ledger.domain.keys import ApiKey
from ledger.keys import KeyService
from ledger.service import Ledger
from tests.conftest import PG_URL, SECRET_KEY

API = "/api/v1"
KEYS = f"{API}/auth/keys"
ME = f"{API}/auth/me"
ADMIN = Actor("keys-test", "platform_admin", "req-keys")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def issue(client: TestClient, **body: Any) -> dict[str, Any]:
    r = client.post(KEYS, json=body)
    assert r.status_code == 201, r.text
    issued: dict[str, Any] = r.json()
    return issued


def history(client: TestClient, key_id: str) -> list[dict[str, Any]]:
    r = client.get(f"{API}/audit/aggregates/{ApiKey.create_id(key_id)}/events")
    assert r.status_code == 200, r.text
    events: list[dict[str, Any]] = r.json()["data"]
    return events


def test_a_key_is_shown_once_and_stored_as_its_hash(client: TestClient,
                                                    ledger: Ledger) -> None:
    key = issue(client, role="service", label="billing backend")
    assert key["token"].startswith(f"lk_{key['key_id']}_")
    me = client.get(ME, headers=bearer(key["token"])).json()
    assert (me["key_id"], me["role"], me["account_id"]) == (key["key_id"], "service", None)
    stored = ledger.store.load(ApiKey.create_id(key["key_id"]))
    assert stored.token_sha256 == hashlib.sha256(key["token"].encode()).hexdigest()
    listed = client.get(KEYS).json()["data"]
    [row] = [k for k in listed if k["key_id"] == key["key_id"]]
    assert (row["status"], row["label"], row["issued_by"]) == ("active", "billing backend",
                                                                "bootstrap")
    text = json.dumps(listed)
    assert key["token"] not in text
    assert stored.token_sha256 not in text
    [issued] = history(client, key["key_id"])
    assert issued["topic"].endswith("ApiKey.Issued")
    assert (issued["actor_id"], issued["actor_role"]) == ("bootstrap", "platform_admin")
    assert issued["fields"]["token_sha256"] == "****"


def test_wrong_and_missing_tokens_are_401(client: TestClient) -> None:
    key = issue(client, role="auditor")
    forged = key["token"][:-4] + ("AAAA" if not key["token"].endswith("AAAA") else "BBBB")
    for headers in ({"Authorization": ""}, {"Authorization": f"Basic {key['token']}"},
                    {"Authorization": "Bearer "}, bearer(forged),
                    bearer(f"lk_{'0' * 16}_nothing"), bearer("not-a-key-at-all")):
        r = client.get(ME, headers=headers)
        assert r.status_code == 401, headers
        assert r.headers["content-type"] == "application/problem+json"
        assert r.headers["www-authenticate"] == "Bearer"
    assert client.get(ME, headers=bearer(key["token"])).status_code == 200


def test_tokens_are_compared_in_constant_time(client: TestClient,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Every comparison of a token's hash goes through hmac.compare_digest."""
    key = issue(client, role="auditor")
    compared: list[tuple[Any, Any]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr("ledger.keys.hmac.compare_digest", spy)
    digest = hashlib.sha256(key["token"].encode()).hexdigest()
    forged = key["token"] + "x"
    assert client.get(ME, headers=bearer(forged)).status_code == 401
    assert client.get(ME, headers=bearer(key["token"])).status_code == 200
    assert (digest, hashlib.sha256(forged.encode()).hexdigest()) in compared
    assert (digest, digest) in compared


def test_an_expired_key_is_refused(client: TestClient, ledger: Ledger) -> None:
    now = datetime.now(UTC)
    with recorded_at(now - timedelta(hours=2)):  # issued two hours ago, for one hour
        old = ledger.keys.issue("service", ADMIN, expires_at=now - timedelta(hours=1)).value
    assert client.get(ME, headers=bearer(old.token)).status_code == 401
    fresh = KeyService(ledger.store, ledger.pipeline)  # another process: nothing cached
    assert fresh.authenticate(old.token, now=now - timedelta(hours=1, seconds=1))
    assert fresh.authenticate(old.token, now=now - timedelta(hours=1)) is None
    live = issue(client, role="service", expires_at=(now + timedelta(days=1)).isoformat())
    assert client.get(ME, headers=bearer(live["token"])).status_code == 200
    # expiry is checked again on every use, also for a token checked a moment ago
    assert ledger.keys.authenticate(live["token"], now=now + timedelta(days=2)) is None
    statuses = {k["key_id"]: k["status"] for k in client.get(KEYS).json()["data"]}
    assert (statuses[old.key_id], statuses[live["key_id"]]) == ("expired", "active")
    expired = client.get(KEYS, params={"status": "expired"}).json()["data"]
    assert [k["key_id"] for k in expired] == [old.key_id]
    r = client.post(KEYS, json={"role": "service",
                                "expires_at": (now - timedelta(minutes=1)).isoformat()})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "expires_at"
    r = client.post(KEYS, json={"role": "service", "expires_at": "2030-01-01T00:00:00"})
    assert r.status_code == 422  # a time without an offset is ambiguous


def test_a_revoked_key_is_refused_and_revoking_is_an_event(client: TestClient) -> None:
    admin = issue(client, role="account_admin", account_id="acme")
    user = issue(client, role="user", account_id="acme", user_id="u1")
    assert client.get(ME, headers=bearer(user["token"])).status_code == 200
    r = client.delete(f"{KEYS}/{user['key_id']}",
                      headers={**bearer(admin["token"]), "X-Request-Id": "req-revoke"})
    assert r.status_code == 200, r.text
    assert client.get(ME, headers=bearer(user["token"])).status_code == 401
    assert client.delete(f"{KEYS}/{user['key_id']}").status_code == 409
    issued, revoked = history(client, user["key_id"])
    assert (issued["actor_id"], revoked["actor_id"]) == ("bootstrap", admin["key_id"])
    assert (revoked["topic"].rsplit(".", 1)[1], revoked["actor_role"],
            revoked["request_id"]) == ("Revoked", "account_admin", "req-revoke")
    [row] = [k for k in client.get(KEYS).json()["data"] if k["key_id"] == user["key_id"]]
    assert (row["status"], row["revoked_by"]) == ("revoked", admin["key_id"])


def test_an_account_admin_keeps_to_its_account(client: TestClient) -> None:
    admin = bearer(issue(client, role="account_admin", account_id="acme")["token"])
    theirs = issue(client, role="user", account_id="globex", user_id="g1")
    r = client.post(KEYS, headers=admin, json={"role": "user", "user_id": "u2"})
    assert r.status_code == 201, r.text
    assert r.json()["account_id"] == "acme"
    assert client.post(KEYS, headers=admin, json={"role": "service"}).status_code == 403
    assert client.post(KEYS, headers=admin,
                       json={"role": "platform_admin"}).status_code == 403
    assert client.post(KEYS, headers=admin, json={"role": "user", "account_id": "globex",
                                                  "user_id": "u3"}).status_code == 404
    assert client.delete(f"{KEYS}/{theirs['key_id']}", headers=admin).status_code == 404
    assert client.get(ME, headers=bearer(theirs["token"])).status_code == 200
    listed = client.get(KEYS, headers=admin).json()["data"]
    assert {k["account_id"] for k in listed} == {"acme"}
    user = bearer(issue(client, role="user", account_id="acme", user_id="u4")["token"])
    assert client.post(KEYS, headers=user, json={"role": "user"}).status_code == 403
    assert client.get(KEYS, headers=user).status_code == 403


def test_keys_must_fit_their_role(client: TestClient) -> None:
    for body, field in (({"role": "root"}, "role"),
                        ({"role": "user", "account_id": "acme"}, "user_id"),
                        ({"role": "account_admin"}, "account_id"),
                        ({"role": "service", "account_id": "acme"}, "account_id")):
        r = client.post(KEYS, json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["errors"][0]["field"] == field, body


@pytest.fixture
def cli(settings: Settings, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    monkeypatch.setenv("LEDGER_VAR_DIR", str(settings.var_dir))
    monkeypatch.setenv("LEDGER_SECRET_KEY", SECRET_KEY)
    if settings.is_postgres:
        monkeypatch.setenv("LEDGER_DATABASE_URL", PG_URL)
        monkeypatch.setenv("LEDGER_POSTGRES_SCHEMA", str(settings.postgres_schema))

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err
    return run


def test_the_cli_issues_lists_and_revokes(client: TestClient, ledger: Ledger,
                                          cli: Callable[..., tuple[int, str, str]]) -> None:
    until = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    code, out, _ = cli("keys", "create", "--role", "auditor", "--label", "from the cli",
                       "--expires-at", until.isoformat().replace("+00:00", "Z"))
    assert code == 0
    made = json.loads(out)
    assert made["expires_at"] == until.isoformat()
    me = client.get(ME, headers=bearer(made["token"])).json()
    assert (me["key_id"], me["role"]) == (made["key_id"], "auditor")
    code, out, _ = cli("keys", "list", "--json")
    [row] = [k for k in json.loads(out) if k["key_id"] == made["key_id"]]
    assert (row["status"], row["issued_by"], row["label"]) == ("active", "cli",
                                                               "from the cli")
    assert made["token"] not in out
    assert cli("keys", "revoke", made["key_id"])[0] == 0
    # another process (the API here) caches a check for at most CHECK_CACHE_S; a
    # process that checks now refuses it
    assert KeyService(ledger.store, ledger.pipeline).authenticate(made["token"]) is None
    [issued, revoked] = history(client, made["key_id"])
    assert (issued["actor_id"], revoked["actor_id"]) == ("cli", "cli")
    assert issued["request_id"] != revoked["request_id"]  # two runs of the command
    code, _, err = cli("keys", "revoke", made["key_id"])
    assert (code, "already revoked" in err) == (2, True)
    with pytest.raises(SystemExit):
        cli("keys", "create", "--role", "auditor", "--expires-at", "2030-01-01T00:00:00")


def test_an_idempotent_issue_replays_the_token_without_storing_it(
        client: TestClient, ledger: Ledger) -> None:
    headers = {"Idempotency-Key": "issue-auditor-1"}
    first = client.post(KEYS, json={"role": "auditor"}, headers=headers)
    again = client.post(KEYS, json={"role": "auditor"}, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201), again.text
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json()["token"] == first.json()["token"]
    assert client.get(ME, headers=bearer(first.json()["token"])).status_code == 200
    secret = first.json()["token"].rsplit("_", 1)[1].encode()
    stored = ledger.store.recorder.select_notifications(1, 100_000)
    assert stored, "the log holds the key's events"
    assert not [n.id for n in stored if secret in n.state]
