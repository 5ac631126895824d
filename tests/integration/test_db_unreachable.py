"""PostgreSQL unreachable at request time: 503 problem+json, bounded by the pool's timeout.

The service reaches PostgreSQL through a TCP relay that the test can cut (every open
connection reset, new ones refused) and restore. While it is cut, a command and a read
each answer 503 problem+json with Retry-After, no stack trace, and nothing is recorded;
the client's own timeout (far above the pool's) only guards against a hang. Once the
relay is back the service reconnects by itself, and the retried command (same
Idempotency-Key) is recorded once.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest

from api.app import create_app
from ledger.credits import account_key
from ledger.service import Ledger
from tests.conftest import (
    ADMIN_TOKEN,
    PG_URL,
    LiveServer,
    PgSchema,
    make_settings,
    require_postgres,
)

pytestmark = pytest.mark.postgres
API = "/api/v1"


class Relay:
    """127.0.0.1:port -> PostgreSQL, byte for byte, until cut."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """Refuse new connections and reset every open one."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            sockets, self._open = self._open, set()
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open.update((client, server))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def relay() -> Iterator[Relay]:
    require_postgres()
    pg = urlparse(PG_URL)
    r = Relay((pg.hostname or "127.0.0.1", pg.port or 5432))
    r.start()
    yield r
    r.cut()


@pytest.fixture
def served(relay: Relay, tmp_path: Path) -> Iterator[tuple[LiveServer, Ledger]]:
    pg = urlparse(PG_URL)
    url = f"postgresql://{pg.username or 'postgres'}@127.0.0.1:{relay.port}{pg.path}"
    with PgSchema() as schema:
        settings = make_settings("postgres", tmp_path, schema.name, database_url=url,
                                 postgres_connect_timeout_s=2, projections_wait_s=1.0)
        ledger = Ledger(settings)
        ledger.seed()
        try:
            with LiveServer(create_app(settings, ledger)) as server:
                yield server, ledger
        finally:
            ledger.close()


def _assert_unavailable(r: httpx.Response) -> None:
    assert r.status_code == 503, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.headers.get("retry-after")
    body = r.json()
    assert body["status"] == 503
    assert "Traceback" not in r.text
    assert "psycopg" not in r.text


def test_unreachable_database_answers_503_and_the_service_reconnects(
        relay: Relay, served: tuple[LiveServer, Ledger]) -> None:
    server, ledger = served
    account = f"{API}/accounts/acme/credits"
    deduction = {"operation": "image_generation", "units": 1}
    # the pool's timeout is 2 s: 30 s without an answer would be a hang
    with httpx.Client(base_url=server.url, timeout=30,
                      headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as http:
        r = http.post(f"{account}/purchases", json={"credits": 50, "amount_usd": "1.00",
                                                    "payment_ref": "pi_1"})
        assert r.status_code == 201, r.text
        version_before = len(ledger.store.events_of(account_key("acme")))

        relay.cut()
        for _ in range(2):  # the pool's stale connections first, then new ones refused
            _assert_unavailable(http.post(f"{account}/deductions", json=deduction,
                                          headers={"Idempotency-Key": "d-1"}))
            _assert_unavailable(http.get(f"{account}/balance"))
        _assert_unavailable(http.get("/healthz"))

        relay.start()  # the pool reconnects by itself (with its backoff): ready again soon
        deadline = time.monotonic() + 60
        while http.get("/healthz").status_code != 200:
            assert time.monotonic() < deadline, "the service did not reconnect"
            time.sleep(0.2)
        r = http.post(f"{account}/deductions", json=deduction,
                      headers={"Idempotency-Key": "d-1"})
        assert r.status_code == 201, r.text
        again = http.post(f"{account}/deductions", json=deduction,
                          headers={"Idempotency-Key": "d-1"})
        assert (again.status_code, again.headers.get("idempotent-replayed")) == (201, "true")
        balance = http.get(f"{account}/balance").json()
        assert (balance["balance"], balance["available"]) == (45, 45)
    # nothing of the refused attempts reached the log: one purchase, one deduction
    assert len(ledger.store.events_of(account_key("acme"))) == version_before + 1
