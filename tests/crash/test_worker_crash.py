"""Crash safety of the read side on PostgreSQL: the projection worker is SIGKILLed under load.

The server takes deductions from many clients with its in-process projections off; a
separate `ledger projections run` worker keeps the views. Midway the worker is killed
with SIGKILL (perhaps inside a view's transaction) and a new one is started. Once the
load stops and the worker has applied the whole log, every view equals a fresh
rebuild from the log, the verifier finds no difference, and the log itself holds every
acknowledged deduction exactly once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ledger.config import Settings
from ledger.store import LedgerStore
from projections.service import Projections
from projections.verify import verify
from tests.conftest import PG_URL, SECRET_KEY
from tests.crash.test_crash import Load, Server, _check_log, _fund, schema
from tests.integration.test_projections import snapshots

pytestmark = pytest.mark.crash
__all__ = ["schema"]  # the fixture, imported for this module's tests

LOAD_SECONDS = float(os.environ.get("CRASH_LOAD_SECONDS", "2.5"))


class Worker:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("ledger")), "projections", "run"],
            env=self.env, start_new_session=True, stderr=subprocess.DEVNULL)

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)  # no cleanup, maybe mid-transaction
        self.proc.wait(timeout=10)

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            raise


def test_projection_worker_sigkilled_under_load(schema: str, tmp_path: Path) -> None:
    server = Server(schema, tmp_path)
    server.env["LEDGER_RUN_PROJECTIONS"] = "false"  # the worker alone keeps the views
    worker = Worker(server.env)
    store = LedgerStore(Settings(database_url=PG_URL, postgres_schema=schema,  # type: ignore[call-arg]
                                 var_dir=tmp_path, secret_key=SECRET_KEY))
    server.start()
    try:
        projections = Projections(store, store.settings)
        worker.start()
        _fund(server.url)
        load = Load(server.url)
        killed_at: dict[str, int] = {}

        def crash() -> None:
            worker.kill()
            killed_at.update(projections.positions())
            worker.start()

        load.run(clients=8, during=LOAD_SECONDS * 2, disrupt=crash)
        assert load.acked, "the load never got through"
        assert set(load.statuses) <= {201, 402, 503}, set(load.statuses)
        assert min(killed_at.values()) > 0, "the worker was killed before it applied anything"

        head = store.head()
        deadline = time.monotonic() + 120  # a guard against a worker that never catches up
        while min(projections.positions().values()) < head:
            assert time.monotonic() < deadline, f"the worker is stuck at {projections.positions()}"
            time.sleep(0.1)
        assert worker.stop() == 0
        assert set(projections.positions().values()) == {head}

        followed = snapshots(projections)
        projections.rebuild()
        assert snapshots(projections) == followed
        result = verify(projections)
        assert result.ok, result.differences[:10]
        _check_log(schema, load, tmp_path)
    finally:
        worker.stop()
        server.stop()
        store.close()
