"""`ledger projections run|rebuild|status`, `ledger verify` and `ledger report`, on both backends.

The CLI reads its configuration from LEDGER_* like a deployment, so the tests set them.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

from ledger.cli import main
from ledger.config import Settings
from ledger.domain.base import SYSTEM, utcnow
from ledger.domain.credits import CreditAccount
from ledger.service import Ledger
from projections.service import Projections
from projections.verify import verify
from tests.conftest import PG_URL, SECRET_KEY
from tests.integration.test_projections import DALLE, history, snapshots


@pytest.fixture
def env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {"LEDGER_VAR_DIR": str(settings.var_dir), "LEDGER_SECRET_KEY": SECRET_KEY}
    if settings.is_postgres:
        values.update(LEDGER_DATABASE_URL=PG_URL,
                      LEDGER_POSTGRES_SCHEMA=str(settings.postgres_schema))
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return {**os.environ, **values}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


@pytest.mark.usefixtures("env")
def test_report_rebuild_status_and_verify(ledger: Ledger, settings: Settings,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    history(ledger)
    code, out = run(capsys, "report", "--group-by", "account", "--format", "json")
    report = json.loads(out)
    assert code == 0
    assert [(r["account"], r["credits_used"], r["cost_usd"]) for r in report["data"]] == [
        ("acme", 15, "0.042200"), ("globex", 15, "0.042200")]
    _, out = run(capsys, "report", "--group-by", "model", "--format", "csv")
    assert [r["model"] for r in csv.DictReader(io.StringIO(out))] == ["dall-e-3",
                                                                      "gpt-4o-mini"]
    _, out = run(capsys, "report", "--group-by", "day,account")
    assert out.splitlines()[-1].startswith("total ")

    code, out = run(capsys, "projections", "rebuild", "usage")
    assert (code, out.split(" from ")[0]) == (0, "rebuilt usage")
    _, out = run(capsys, "projections", "status", "--json")
    assert {p["lag"] for p in json.loads(out)["projections"]} == {0}

    assert run(capsys, "verify")[0] == 0
    view = Projections(ledger.store, settings).usage
    with view.writing() as c:
        c.execute(view.sql("UPDATE {proj_usage} SET cost_usd = '9.99' WHERE kind = 'charge'"))
    code, out = run(capsys, "verify")
    assert code == 1
    assert "usage position=" in out
    assert "cost_usd: the log gives Decimal('0.040'), the view holds Decimal('9.99')" in out


def many_events(ledger: Ledger, accounts: int = 20, deductions: int = 150) -> int:
    """A long log, written straight to the store (faster than commands)."""
    price = ledger.credits.price("image_generation", units=1)
    for a in range(accounts):
        account = CreditAccount.open(f"bulk-{a}", SYSTEM)
        account.purchase(10**6, Decimal("20000"), "bulk", SYSTEM, utcnow())
        for _ in range(deductions):
            account.deduct(price, DALLE, SYSTEM, utcnow())
        ledger.store.record(account)
    return ledger.store.head()


def worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([str(Path(sys.executable).with_name("ledger")), "projections",
                             "run"], env=env, start_new_session=True,
                            stderr=subprocess.DEVNULL)


def until(check: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.002)


@pytest.mark.slow
def test_a_worker_killed_mid_stream_resumes_and_equals_a_rebuild(
        ledger: Ledger, settings: Settings, env: dict[str, str]) -> None:
    head = many_events(ledger)
    projections = Projections(ledger.store, settings)

    first = worker(env)
    try:
        until(lambda: max(projections.positions().values()) > 0)
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # no cleanup, maybe inside a transaction
        first.wait(timeout=10)
    killed_at = projections.positions()
    assert min(killed_at.values()) < head

    second = worker(env)
    try:
        until(lambda: set(projections.positions().values()) == {head})
    finally:
        os.killpg(second.pid, signal.SIGTERM)
        assert second.wait(timeout=10) == 0
    resumed = snapshots(projections)
    projections.rebuild()
    assert snapshots(projections) == resumed
    assert verify(projections).ok
