"""One suite, two backends: every test that takes `backend` runs on SQLite and PostgreSQL.

PostgreSQL tests each get a fresh schema, dropped afterwards. Outside CI they are skipped
when no server answers on 127.0.0.1:5432; in CI (CI set) that is a failure.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from eventsourcing.persistence import EventSourcingError
from fastapi.testclient import TestClient

from api.app import create_app
from ledger.config import Settings
from ledger.service import Ledger
from ledger.store import LedgerStore

PG_URL = os.environ.get("LEDGER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
ADMIN_TOKEN = "test-admin-token"
SECRET_KEY = "3q2-7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="


def _postgres_available() -> bool:
    try:
        with psycopg.connect(PG_URL, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


_PG_OK: bool | None = None


def require_postgres() -> None:
    global _PG_OK
    if _PG_OK is None:
        _PG_OK = _postgres_available()
    if not _PG_OK:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is unreachable at {PG_URL} and CI is set")
        pytest.skip("PostgreSQL is not reachable (set CI to make this a failure)")


class PgSchema:
    """A throwaway schema for one test."""

    def __init__(self) -> None:
        self.name = f"t_{uuid.uuid4().hex[:12]}"

    def __enter__(self) -> PgSchema:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{self.name}"')
        return self

    def __exit__(self, *exc: object) -> None:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{self.name}" CASCADE')


def make_settings(backend: str, tmp_path: Path, schema: str | None = None,
                  **overrides: object) -> Settings:
    base: dict[str, object] = {
        "var_dir": tmp_path / "var",
        "bootstrap_admin_token": ADMIN_TOKEN,
        "secret_key": SECRET_KEY,
        "provider_timeout_s": 2.0,
        "provider_max_retries": 1,
    }
    if backend == "postgres":
        base.update(database_url=PG_URL, postgres_schema=schema, postgres_pool_size=4,
                    postgres_max_overflow=8)
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres":
        require_postgres()
    return str(request.param)


@pytest.fixture
def settings(backend: str, tmp_path: Path) -> Iterator[Settings]:
    if backend == "postgres":
        with PgSchema() as schema:
            yield make_settings(backend, tmp_path, schema.name)
    else:
        yield make_settings(backend, tmp_path)


def events_without_actor(store: LedgerStore) -> list[str]:
    """Every stored event (by whomever it was written) that does not name its actor
    (key id and role) and a request id: read from the stored JSON, without decoding, so
    that rows a test tampered with are read as stored."""
    missing: list[str] = []
    recorder, after = store.recorder, 0
    while page := recorder.select_notifications(after, 1000, inclusive_of_start=False):
        for n in page:
            state = json.loads(n.state)
            if not all(isinstance(state.get(k), str) and state[k]
                       for k in ("actor_id", "actor_role", "request_id")):
                missing.append(f"{n.id} {n.topic}")
        after = page[-1].id
    return missing


def check_actors(service: Ledger) -> None:
    """Every event the test wrote names its actor and request."""
    try:
        missing = events_without_actor(service.store)
    except EventSourcingError:  # the test closed the ledger (a restart): open the store
        store = LedgerStore(service.settings)
        try:
            missing = events_without_actor(store)
        finally:
            store.close()
    assert missing == [], "events without an actor"


@pytest.fixture
def ledger(settings: Settings) -> Iterator[Ledger]:
    service = Ledger(settings)
    service.seed()
    yield service
    try:
        check_actors(service)
    finally:
        service.close()


@pytest.fixture
def client(settings: Settings, ledger: Ledger) -> Iterator[TestClient]:
    app = create_app(settings, ledger)
    with TestClient(app, raise_server_exceptions=False) as c:
        c.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        yield c


class LiveServer:
    """The app served by uvicorn on 127.0.0.1 in a background thread (real HTTP)."""

    def __init__(self, app: object) -> None:
        import socket
        import threading

        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                access_log=False)  # type: ignore[arg-type]
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveServer:
        import time

        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def live_server(settings: Settings, ledger: Ledger) -> Iterator[LiveServer]:
    with LiveServer(create_app(settings, ledger)) as server:
        yield server
