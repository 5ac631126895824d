"""Crash safety on PostgreSQL: the server is SIGKILLed, or PostgreSQL restarts, under load.

Afterwards every acknowledged (2xx) deduction is in the log exactly once, nothing
unacknowledged is half-applied, no balance went negative, and a retry of every request
with its Idempotency-Key answers without charging twice.

These tests restart processes and (one of them) the PostgreSQL cluster, so they run on
their own after the parallel suite (`pytest -m crash`, see the Makefile).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from ledger.config import Settings
from ledger.credits import account_key
from ledger.domain.credits import CreditAccount
from ledger.store import LedgerStore
from tests.conftest import PG_URL, SECRET_KEY, PgSchema, require_postgres

pytestmark = pytest.mark.crash

TOKEN = "crash-admin"
ACCOUNTS = [f"crash-{i}" for i in range(8)]
CREDITS_EACH = 300  # 60 deductions of 5 each: the load runs some accounts dry (402s)
LOAD_SECONDS = float(os.environ.get("CRASH_LOAD_SECONDS", "2.5"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, schema: str, var_dir: Path, workers: int = 2) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "LEDGER_DATABASE_URL": PG_URL,
                    "LEDGER_POSTGRES_SCHEMA": schema, "LEDGER_SECRET_KEY": SECRET_KEY,
                    "LEDGER_BOOTSTRAP_ADMIN_TOKEN": TOKEN, "LEDGER_VAR_DIR": str(var_dir)}
        self.workers = workers
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        ledger_bin = str(Path(sys.executable).with_name("ledger"))
        self.proc = subprocess.Popen(
            [ledger_bin, "serve", "--port", str(self.port), "--workers", str(self.workers),
             "--log-level", "warning"], env=self.env, start_new_session=True)
        deadline = time.monotonic() + 90  # a guard: imports are slow on a busy machine
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("server did not become healthy")

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)  # the server and its workers, no cleanup
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


@dataclass
class Load:
    """Clients posting deductions with unique Idempotency-Keys, remembering the answers."""

    url: str
    acked: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (account, id)
    refused: set[str] = field(default_factory=set)  # 402: definitely not applied
    unknown: dict[str, str] = field(default_factory=dict)  # key -> account: no answer
    statuses: list[int] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def client(self, n: int) -> None:
        with httpx.Client(base_url=self.url, timeout=5,
                          headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            i = 0
            while not self.stop.is_set():
                account = ACCOUNTS[(n + i) % len(ACCOUNTS)]
                key = f"c{n}-{i}-{uuid.uuid4().hex[:6]}"
                i += 1
                try:
                    r = http.post(f"/api/v1/accounts/{account}/credits/deductions",
                                  json={"operation": "image_generation", "units": 1},
                                  headers={"Idempotency-Key": key})
                except httpx.HTTPError:
                    with self.lock:
                        self.unknown[key] = account
                    time.sleep(0.05)
                    continue
                with self.lock:
                    self.statuses.append(r.status_code)
                    if r.status_code == 201:
                        self.acked[key] = (account, r.json()["id"])
                    elif r.status_code == 402:
                        self.refused.add(key)
                    else:
                        self.unknown[key] = account

    def run(self, clients: int, during: float, disrupt: object) -> None:
        threads = [threading.Thread(target=self.client, args=(n,)) for n in range(clients)]
        for t in threads:
            t.start()
        time.sleep(during / 2)
        disrupt()  # type: ignore[operator]
        time.sleep(during / 2)
        self.stop.set()
        for t in threads:
            t.join()


@pytest.fixture
def schema() -> Iterator[str]:
    require_postgres()
    with PgSchema() as s:
        yield s.name


def _fund(url: str) -> None:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        for account in ACCOUNTS:
            http.post(f"/api/v1/accounts/{account}/credits/purchases",
                      json={"credits": CREDITS_EACH, "amount_usd": "6.00",
                            "payment_ref": f"fund-{account}"}).raise_for_status()


def _check_log(schema: str, load: Load, tmp_path: Path) -> None:
    """The log against what the clients were told."""
    store = LedgerStore(Settings(database_url=PG_URL, postgres_schema=schema,  # type: ignore[call-arg]
                                 var_dir=tmp_path, secret_key=SECRET_KEY))
    try:
        charged: dict[str, list[str]] = {}
        for account in ACCOUNTS:
            balance = 0
            for event in store.events_of(account_key(account)):
                if isinstance(event, CreditAccount.CreditsPurchased):
                    balance += event.credits
                elif isinstance(event, CreditAccount.CreditsDeducted):
                    balance -= event.credits
                    charged.setdefault(account, []).append(event.charge_id)
                assert balance >= 0, f"{account} went negative at v{event.originator_version}"
            acc = store.load(account_key(account))
            assert acc.balance == balance
            assert acc.held == 0
        for key, (account, charge_id) in load.acked.items():
            assert charge_id in charged.get(account, []), f"acknowledged {key} is lost"
        all_charges = [(a, c) for a, cs in charged.items() for c in cs]
        assert len(all_charges) == len(set(all_charges))
        # every charge in the log belongs to exactly one request (acked or unanswered)
        assert len(all_charges) >= len(load.acked)
        assert len(all_charges) <= len(load.acked) + len(load.unknown)
    finally:
        store.close()


def _retry_unknown(url: str, load: Load) -> None:
    """Clients retry what got no answer: applied at most once, acknowledged now."""
    with httpx.Client(base_url=url, timeout=10,
                      headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        for key, account in list(load.unknown.items()):
            r = http.post(f"/api/v1/accounts/{account}/credits/deductions",
                          json={"operation": "image_generation", "units": 1},
                          headers={"Idempotency-Key": key})
            assert r.status_code in (201, 402), r.text
            if r.status_code == 201:
                load.acked[key] = (account, r.json()["id"])
                load.unknown.pop(key)
        for key, (account, charge_id) in list(load.acked.items())[:50]:
            r = http.post(f"/api/v1/accounts/{account}/credits/deductions",
                          json={"operation": "image_generation", "units": 1},
                          headers={"Idempotency-Key": key})
            assert r.status_code == 201
            assert r.json()["id"] == charge_id


def test_server_sigkilled_under_load(schema: str, tmp_path: Path) -> None:
    server = Server(schema, tmp_path)
    server.start()
    try:
        _fund(server.url)
        load = Load(server.url)

        def crash() -> None:
            server.kill()
            server.start()

        load.run(clients=12, during=LOAD_SECONDS, disrupt=crash)
        assert load.acked, "the load never got through"
        assert set(load.statuses) <= {201, 402, 503}, set(load.statuses)
        _check_log(schema, load, tmp_path)
        _retry_unknown(server.url, load)
        _check_log(schema, load, tmp_path)
    finally:
        server.stop()


def _pg_restart() -> None:
    cluster = sorted(os.listdir("/etc/postgresql"))[0]
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", cluster, "main", "restart",
                    "-m", "fast"], check=True, capture_output=True)


@pytest.mark.skipif(shutil.which("pg_ctlcluster") is None or not os.path.isdir(
    "/etc/postgresql"), reason="needs a local PostgreSQL cluster it may restart")
def test_postgres_restarted_under_load(schema: str, tmp_path: Path) -> None:
    server = Server(schema, tmp_path)
    server.start()
    try:
        _fund(server.url)
        load = Load(server.url)
        load.run(clients=8, during=LOAD_SECONDS * 2, disrupt=_pg_restart)
        # the pool reconnects by itself: requests succeed again without a server restart
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"},
                          timeout=10) as http:
            deadline = time.monotonic() + 20
            while http.get("/healthz").status_code != 200:
                assert time.monotonic() < deadline, "the service did not reconnect"
                time.sleep(0.2)
        assert set(load.statuses) <= {201, 402, 503}, set(load.statuses)
        _check_log(schema, load, tmp_path)
        _retry_unknown(server.url, load)
        _check_log(schema, load, tmp_path)
    finally:
        server.stop()
