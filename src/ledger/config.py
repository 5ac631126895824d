"""Service configuration: the contract's env vars, read once by pydantic-settings.

Everything else (the eventsourcing library's own environment, provider clients, the
secret box) is derived from one `Settings` object, so a test or a benchmark builds a
fully configured service by constructing `Settings(...)` and nothing reads `os.environ`
behind its back.
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger(__name__)

APPLICATION_NAME = "ledger"  # eventsourcing Application.name: PostgreSQL tables ledger_events, ...


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEDGER_", extra="ignore")

    database_url: str | None = Field(
        default=None, description="unset = SQLite file under var_dir; postgresql://... otherwise"
    )
    var_dir: Path = Path("var")
    bootstrap_admin_token: SecretStr | None = None
    secret_key: SecretStr | None = None
    postgres_schema: str | None = None
    postgres_pool_size: int = 10
    postgres_max_overflow: int = 10
    # The longest a request waits for a database connection (the pool's timeout, also
    # while PostgreSQL is unreachable): then it answers 503 problem+json.
    postgres_connect_timeout_s: int = Field(default=5, ge=1)

    openai_base_url: str | None = None
    anthropic_base_url: str | None = None
    google_base_url: str | None = None
    runware_base_url: str | None = None
    bria_base_url: str | None = None
    provider_timeout_s: float = 60.0
    provider_max_retries: int = 2
    # First backoff before a retry of a provider call (doubling, with jitter, up to 8 s).
    provider_backoff_s: float = 0.5

    # Credit holds that nobody settles are released after this many seconds.
    hold_ttl_s: int = 900
    # How often the API process looks for expired holds (0 = never; `ledger sweep` does).
    sweep_interval_s: float = 30.0
    snapshot_interval: int = 200
    aggregate_cache_size: int = 10_000
    max_batch: int = 256
    writers: int = 1
    max_body_bytes: int = 64 * 1024
    run_projections: bool = True
    # SQLite runners look for new events this often (PostgreSQL ones are notified).
    projections_poll_s: float = 0.02
    # How long a read with ?min_position waits for the views before answering 503.
    projections_wait_s: float = 2.0
    # Webhooks (README "Webhooks"): `ledger serve` runs the worker unless false.
    run_webhooks: bool = True
    webhooks_poll_s: float = 0.5  # how often the worker looks for occurrences and retries
    webhooks_scan_s: float = 60.0  # how often it expires due lots and looks for expiring ones
    webhooks_timeout_s: float = 10.0  # one delivery attempt's HTTP timeout
    webhooks_max_attempts: int = 8  # then the delivery is given up
    webhooks_backoff_s: float = 10.0  # wait after the first failure, doubling each time
    webhooks_backoff_max_s: float = 3600.0  # ... up to this

    @field_validator("database_url")
    @classmethod
    def _check_url(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        scheme = urlparse(v).scheme
        if scheme not in ("postgresql", "postgres", "sqlite"):
            raise ValueError("LEDGER_DATABASE_URL must be postgresql://... or sqlite:///path")
        return v

    @property
    def is_postgres(self) -> bool:
        return self.database_url is not None and self.database_url.startswith("postgres")

    def sqlite_path(self) -> Path:
        if self.database_url and self.database_url.startswith("sqlite"):
            return Path(unquote(urlparse(self.database_url).path).lstrip("/") or "ledger.db")
        return self.var_dir / "ledger.sqlite3"

    def eventsourcing_env(self) -> dict[str, str]:
        """The eventsourcing library's environment, derived from our settings."""
        env: dict[str, str] = {
            "IS_SNAPSHOTTING_ENABLED": "y",
            "ORIGINATOR_ID_TYPE": "uuid",
        }
        if self.is_postgres:
            assert self.database_url is not None
            url = urlparse(self.database_url)
            query = parse_qs(url.query)
            env.update(
                PERSISTENCE_MODULE="eventsourcing.postgres",
                APPLICATION_RECORDER_TOPIC="ledger.recorders:PostgresLedgerRecorder",
                POSTGRES_DBNAME=unquote(url.path.lstrip("/")) or "postgres",
                POSTGRES_HOST=url.hostname or "127.0.0.1",
                POSTGRES_PORT=str(url.port or 5432),
                POSTGRES_USER=unquote(url.username or "postgres"),
                POSTGRES_PASSWORD=unquote(url.password or ""),
                POSTGRES_POOL_SIZE=str(self.postgres_pool_size),
                POSTGRES_MAX_OVERFLOW=str(self.postgres_max_overflow),
                POSTGRES_CONNECT_TIMEOUT=str(self.postgres_connect_timeout_s),
                POSTGRES_PRE_PING="n",
                POSTGRES_LOCK_TIMEOUT="5",
            )
            schema = self.postgres_schema or next(iter(query.get("schema", [])), None)
            if schema:
                env["POSTGRES_SCHEMA"] = schema
        else:
            path = self.sqlite_path()
            path.parent.mkdir(parents=True, exist_ok=True)
            env.update(
                PERSISTENCE_MODULE="eventsourcing.sqlite",
                APPLICATION_RECORDER_TOPIC="ledger.recorders:SQLiteLedgerRecorder",
                SQLITE_DBNAME=str(path),
                SQLITE_LOCK_TIMEOUT="10",
            )
        return env

    def resolve_secret_key(self) -> str:
        """The key that seals provider API keys at rest.

        Without LEDGER_SECRET_KEY (the embedded `make run` case) a key is generated once
        into var_dir with mode 0600, and reused on every later start.
        """
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        if self.is_postgres:
            raise RuntimeError("LEDGER_SECRET_KEY must be set when the event store is PostgreSQL")
        path = self.var_dir / "secret.key"
        if path.exists():
            return path.read_text().strip()
        self.var_dir.mkdir(parents=True, exist_ok=True)
        key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(key + "\n")
        log.warning("LEDGER_SECRET_KEY is unset: generated one into %s (mode 0600)", path)
        return key
