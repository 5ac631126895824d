"""Provider API keys at rest: planted through the API, then looked for in the raw SQLite
files, in every PostgreSQL table of the test's schema, in every response and log line.
And LEDGER_SECRET_KEY rotation without losing the stored keys."""

from __future__ import annotations

import json
import logging
import secrets
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import sql
from pydantic import SecretStr

from ledger import cli
from ledger.config import Settings
from ledger.domain.base import Actor
from ledger.secrets import SecretBox, SecretUnreadable, mask
from ledger.service import Ledger
from tests.conftest import PG_URL

S = "/api/v1/system/settings"
ADMIN = Actor(id="test", role="platform_admin")


def planted() -> str:
    return f"sk-proj-planted-{secrets.token_hex(16)}"


def sqlite_bytes(settings: Settings) -> bytes:
    path = settings.sqlite_path()
    files = [p for p in (path, Path(f"{path}-wal")) if p.exists()]
    assert files
    return b"".join(p.read_bytes() for p in files)


def postgres_cells(schema: str) -> list[tuple[str, bytes]]:
    """Every cell of every table of the schema, as text and, for bytea, decoded bytes."""
    cells: list[tuple[str, bytes]] = []
    with psycopg.connect(PG_URL) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (schema,))]
        assert tables
        for table in tables:
            name = sql.Identifier(schema, table)
            for (row_text,) in conn.execute(sql.SQL("SELECT t::text FROM {} t").format(name)):
                cells.append((table, row_text.encode()))
            for row in conn.execute(sql.SQL("SELECT * FROM {}").format(name)):
                cells += [(table, bytes(v) if isinstance(v, bytes | memoryview)
                           else str(v).encode()) for v in row]
    return cells


def test_a_planted_key_is_nowhere_in_plaintext(client: TestClient, ledger: Ledger,
                                               settings: Settings,
                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    key, other = planted(), planted()
    user = {"Authorization": "Bearer " + client.post(
        "/api/v1/auth/keys", json={"role": "user", "account_id": "acme", "user_id": "u1"}
    ).json()["token"]}
    responses = [
        client.put(f"{S}/global", json={"openai_api_key": key, "anthropic_api_key": other},
                   headers={"Idempotency-Key": "plant-1"}),
        client.put(f"{S}/global", json={"openai_api_key": key, "anthropic_api_key": other},
                   headers={"Idempotency-Key": "plant-1"}),
        # refusals of every kind, each carrying the key
        client.put(f"{S}/global", json={"openai_api_key": key, "openai_temperature": 9}),
        client.put(f"{S}/global", json={"image_quality": key, "image_style": key}),
        client.put(f"{S}/global", json={"google_api_key": key}, headers={"If-Match": '"999"'}),
        client.put(f"{S}/global", json={"openai_api_key": key}, headers=user),
        client.put(f"{S}/integrations/openai", params={"account_id": "acme"},
                   json={"api_key": key, "model": "gpt-4o"}),
        client.post(f"{S}/user", headers=user,
                    json={"key": "ai_settings", "value": {"openai_api_key": key}}),
        client.put(f"{S}/sites/blog/integrations", params={"account_id": "acme"},
                   json={"value": {"openai": {"model": "gpt-4o", "api_key": key}}}),
        # every read
        client.get(f"{S}/global"),
        client.get(f"{S}/effective", params={"account_id": "acme", "site_id": "blog"}),
        client.get(f"{S}/integrations/openai", params={"account_id": "acme"}),
    ]
    assert [r.status_code for r in responses[:2]] == [200, 200]
    assert responses[1].headers["Idempotent-Replayed"] == "true"
    assert responses[0].json()["openai_api_key"] == "sk-..." + key[-4:]
    assert [r.status_code for r in responses[2:9]] == [422, 422, 409, 403, 201, 422, 422]
    for r in responses:
        text = r.text + json.dumps(dict(r.headers))
        assert key not in text
        assert other not in text
    # The adapters get the key back; nothing else does.
    assert ledger.settings_service.provider_api_key("openai") == key
    assert ledger.settings_service.provider_api_key("dalle") == key  # falls back to openai
    assert ledger.settings_service.provider_api_key("anthropic") == other
    assert ledger.settings_service.provider_api_key("runware") is None

    for secret in (key, other):
        assert secret not in caplog.text
        for record in caplog.records:
            assert secret not in record.getMessage()

    if settings.is_postgres:
        assert settings.postgres_schema is not None
        cells = postgres_cells(settings.postgres_schema)
        assert any(b"fernet:" in cell for _, cell in cells)  # we looked where they are
        for secret in (key, other):
            leaks = [table for table, cell in cells if secret.encode() in cell]
            assert leaks == []
    else:
        raw = sqlite_bytes(settings)
        assert b"fernet:" in raw
        assert key.encode() not in raw
        assert other.encode() not in raw


def test_rotating_the_secret_key_keeps_the_keys_readable(ledger: Ledger,
                                                         settings: Settings) -> None:
    key = planted()
    ledger.settings_service.put_global({"bria_api_key": key}, ADMIN)
    assert settings.secret_key is not None
    old, new = settings.secret_key.get_secret_value(), SecretBox.new_key()

    def with_keys(value: str) -> Ledger:
        return Ledger(settings.model_copy(update={"secret_key": SecretStr(value)}))

    both = with_keys(f"{new},{old}")
    try:
        assert both.settings_service.provider_api_key("bria") == key
        assert both.settings_service.rotate(ADMIN) == ["bria_api_key"]
        assert both.settings_service.rotate(ADMIN) == []  # already under the new key
    finally:
        both.close()
    only_new = with_keys(new)
    try:
        assert only_new.settings_service.provider_api_key("bria") == key
        view = only_new.settings_service.global_view(only_new.settings_service.global_settings())
        assert view["bria_api_key"] == mask(key)
    finally:
        only_new.close()
    only_old = with_keys(old)
    try:
        with pytest.raises(SecretUnreadable) as err:
            only_old.settings_service.provider_api_key("bria")
        assert key not in str(err.value)
    finally:
        only_old.close()


def test_ledger_secrets_rotate_command(ledger: Ledger, settings: Settings,
                                       monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    key = planted()
    ledger.settings_service.put_global({"openai_api_key": key}, ADMIN)
    assert settings.secret_key is not None
    assert cli.main(["secrets", "new-key"]) == 0
    new = capsys.readouterr().out.strip()
    env = {"LEDGER_VAR_DIR": str(settings.var_dir),
           "LEDGER_SECRET_KEY": f"{new},{settings.secret_key.get_secret_value()}"}
    if settings.is_postgres:
        assert settings.database_url is not None
        env.update(LEDGER_DATABASE_URL=settings.database_url,
                   LEDGER_POSTGRES_SCHEMA=str(settings.postgres_schema))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert cli.main(["secrets", "rotate"]) == 0
    assert json.loads(capsys.readouterr().out) == {"resealed": ["openai_api_key"]}
    monkeypatch.setenv("LEDGER_SECRET_KEY", new)
    after = Ledger(Settings())
    try:
        assert after.settings_service.provider_api_key("openai") == key
    finally:
        after.close()
