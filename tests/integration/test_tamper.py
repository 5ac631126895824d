"""Tamper evidence: rows edited, deleted, reordered or inserted straight in the database
(SQLite and PostgreSQL) are each detected by the audit chain, and located."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from ledger.cli import main
from ledger.config import Settings
from ledger.domain.base import Actor
from ledger.domain.credits import CreditAccount
from ledger.integrity import ChainReport, verify_chain
from ledger.service import Ledger
from tests.conftest import PG_URL, SECRET_KEY

ACTOR = Actor("tamper-test", "platform_admin", "req-1")


class Raw:
    """The store's tables through a plain connection: what someone with database access
    but without LEDGER_SECRET_KEY can do."""

    def __init__(self, settings: Settings) -> None:
        self.pg = settings.is_postgres
        if self.pg:
            schema = f'"{settings.postgres_schema}"'
            self.names = {"events": f"{schema}.ledger_events",
                          "chain": f"{schema}.ledger_chain", "id": "notification_id"}
            self.pg_conn = psycopg.connect(PG_URL, autocommit=True)
        else:
            self.names = {"events": "stored_events", "chain": "stored_chain", "id": "rowid"}
            self.lite = sqlite3.connect(settings.sqlite_path(), isolation_level=None)

    def sql(self, text: str, *params: Any) -> list[tuple[Any, ...]]:
        statement = text.format(**self.names)
        if self.pg:
            with self.pg_conn.cursor() as c:
                c.execute(statement.replace("?", "%s").encode(), params)
                return c.fetchall() if c.description else []
        return self.lite.execute(statement, params).fetchall()

    def event(self, n: int) -> tuple[Any, ...]:
        return self.sql("SELECT originator_id, originator_version, topic, state "
                        "FROM {events} WHERE {id} = ?", n)[0]

    def aggregate(self, n: int) -> str:
        """The id of the aggregate stored at `n`, as the verifier names it."""
        return str(UUID(str(self.event(n)[0])))

    def ids(self) -> list[int]:
        return [r[0] for r in self.sql("SELECT {id} FROM {events} ORDER BY {id}")]

    def swap_ids(self, a: int, b: int) -> None:
        for old, new in ((a, -1), (b, a), (-1, b)):
            self.sql("UPDATE {events} SET {id} = ? WHERE {id} = ?", new, old)

    def close(self) -> None:
        if self.pg:
            self.pg_conn.close()
        else:
            self.lite.close()


@pytest.fixture
def raw(settings: Settings, ledger: Ledger) -> Iterator[Raw]:
    r = Raw(settings)  # after `ledger`, which creates the database
    yield r
    r.close()


@pytest.fixture
def positions(ledger: Ledger) -> dict[str, int]:
    """A few credit events after the seed; where each was stored."""
    c = ledger.credits
    return {"purchase": c.purchase("acme", 100, Decimal("2.00"), "pay-1", ACTOR).position,
            "grant": c.grant("globex", 20, "welcome", ACTOR).position,
            "adjust": c.adjust("acme", -3, "correction", ACTOR).position,
            "purchase2": c.purchase("globex", 50, Decimal("1.00"), "pay-2", ACTOR).position}


def found(report: ChainReport) -> set[tuple[str, int, str | None]]:
    return {(p.kind, p.notification_id, p.originator_id) for p in report.problems}


def test_an_untouched_log_verifies(ledger: Ledger, positions: dict[str, int]) -> None:
    report = verify_chain(ledger.store)
    head = ledger.store.head()
    assert (report.ok, report.events, report.links) == (True, head, head)
    assert report.head is not None
    assert report.head.notification_id == head


def test_an_edited_state_is_located(ledger: Ledger, raw: Raw,
                                    positions: dict[str, int]) -> None:
    n = positions["purchase"]
    state = bytes(raw.event(n)[3])
    assert b'"credits":100,' in state
    raw.sql("UPDATE {events} SET state = ? WHERE {id} = ?",
            state.replace(b'"credits":100,', b'"credits":900,'), n)
    assert found(verify_chain(ledger.store)) == {("edited", n, raw.aggregate(n))}


def test_an_edited_topic_is_located(ledger: Ledger, raw: Raw,
                                    positions: dict[str, int]) -> None:
    n = positions["grant"]
    raw.sql("UPDATE {events} SET topic = ? WHERE {id} = ?",
            CreditAccount.CreditsPurchased.__module__ + ":CreditAccount.CreditsPurchased", n)
    assert found(verify_chain(ledger.store)) == {("edited", n, raw.aggregate(n))}


def test_a_deleted_row_is_located_by_its_link(ledger: Ledger, raw: Raw,
                                              positions: dict[str, int]) -> None:
    n = positions["adjust"]
    oid, version = raw.aggregate(n), raw.event(n)[1]
    raw.sql("DELETE FROM {events} WHERE {id} = ?", n)
    [problem] = verify_chain(ledger.store).problems
    assert (problem.kind, problem.notification_id, problem.originator_id,
            problem.originator_version) == ("deleted", n, oid, version)


def test_a_row_deleted_with_its_link_breaks_the_chain(ledger: Ledger, raw: Raw,
                                                      positions: dict[str, int]) -> None:
    n = positions["grant"]
    following = next(i for i in raw.ids() if i > n)
    raw.sql("DELETE FROM {events} WHERE {id} = ?", n)
    raw.sql("DELETE FROM {chain} WHERE notification_id = ?", n)
    [problem] = verify_chain(ledger.store).problems
    assert (problem.kind, problem.notification_id) == ("break", following)
    assert f"notification {n - 1}:" in problem.detail  # the last link that still follows


def test_swapped_rows_are_both_located(ledger: Ledger, raw: Raw,
                                       positions: dict[str, int]) -> None:
    a, b = positions["purchase"], positions["grant"]
    oid_a, oid_b = raw.aggregate(a), raw.aggregate(b)
    raw.swap_ids(a, b)
    report = verify_chain(ledger.store)
    assert found(report) == {("moved", a, oid_b), ("moved", b, oid_a)}
    assert f"{oid_a} v" in next(p.detail for p in report.problems if p.notification_id == a)


def test_swapped_states_are_both_located(ledger: Ledger, raw: Raw,
                                         positions: dict[str, int]) -> None:
    a, b = positions["purchase"], positions["purchase2"]
    state_a, state_b = raw.event(a)[3], raw.event(b)[3]
    raw.sql("UPDATE {events} SET state = ? WHERE {id} = ?", state_b, a)
    raw.sql("UPDATE {events} SET state = ? WHERE {id} = ?", state_a, b)
    assert found(verify_chain(ledger.store)) == {("edited", a, raw.aggregate(a)),
                                                 ("edited", b, raw.aggregate(b))}


def _forge(raw: Raw, n: int, with_link: bool) -> str:
    """A copy of the purchase at `n`, as version 99 of its account, stored at the end."""
    oid, _, topic, state = raw.event(n)
    at = max(raw.ids()) + 1
    raw.sql("INSERT INTO {events} ({id}, originator_id, originator_version, topic, state) "
            "VALUES (?, ?, 99, ?, ?)", at, oid, topic, state)
    if with_link:
        raw.sql("INSERT INTO {chain} VALUES (?, ?, 99, ?, ?, ?)", at, oid,
                raw.sql("SELECT key_id FROM {chain} WHERE notification_id = ?", n)[0][0],
                b"\x01" * 32, b"\x02" * 32)
    return raw.aggregate(at)


def test_an_inserted_row_with_a_forged_link_is_located(ledger: Ledger, raw: Raw,
                                                        positions: dict[str, int]) -> None:
    oid = _forge(raw, positions["purchase"], with_link=True)
    forged = max(raw.ids())
    assert found(verify_chain(ledger.store)) == {("forged", forged, oid)}


def test_an_inserted_row_without_a_link_is_located(ledger: Ledger, raw: Raw,
                                                   positions: dict[str, int]) -> None:
    oid = _forge(raw, positions["purchase"], with_link=False)
    assert found(verify_chain(ledger.store)) == {("unchained", max(raw.ids()), oid)}


def test_later_writes_do_not_hide_a_forged_row(ledger: Ledger, raw: Raw,
                                               positions: dict[str, int]) -> None:
    oid = _forge(raw, positions["purchase"], with_link=True)
    forged = max(raw.ids())
    # acme now holds a forged version 99, which the writer refuses to fold; write elsewhere
    ledger.credits.grant("globex", 5, "after the forgery", ACTOR)
    report = verify_chain(ledger.store)
    assert found(report) == {("forged", forged, oid)}
    assert report.links == len(raw.ids())


def test_a_truncated_tail_is_caught_by_an_anchor(ledger: Ledger, raw: Raw,
                                                 positions: dict[str, int]) -> None:
    head = verify_chain(ledger.store).head
    assert head is not None
    anchor = (head.notification_id, head.hash)
    assert verify_chain(ledger.store, anchors=[anchor]).ok
    raw.sql("DELETE FROM {events} WHERE {id} >= ?", positions["purchase2"])
    raw.sql("DELETE FROM {chain} WHERE notification_id >= ?", positions["purchase2"])
    assert verify_chain(ledger.store).ok  # without an anchor, a cut tail leaves no trace
    assert found(verify_chain(ledger.store, anchors=[anchor])) == {
        ("anchor", head.notification_id, None)}


def test_a_link_sealed_with_a_retired_key_is_unverifiable(
        settings: Settings, ledger: Ledger, positions: dict[str, int]) -> None:
    other = Ledger(settings.model_copy(update={"secret_key": SecretStr("Zm9v" + SECRET_KEY[4:])}))
    try:
        report = verify_chain(other.store)
    finally:
        other.close()
    [problem] = report.problems
    assert (problem.kind, problem.notification_id) == ("unverifiable", 1)
    assert f"{ledger.store.head()} link(s)" in problem.detail


# -- the API and the CLI ------------------------------------------------------------------


def tamper_with_purchase(raw: Raw, positions: dict[str, int]) -> int:
    n = positions["purchase"]
    raw.sql("UPDATE {events} SET state = ? WHERE {id} = ?",
            bytes(raw.event(n)[3]).replace(b'"credits":100,', b'"credits":900,'), n)
    return n


def test_audit_verify_reports_the_chain(client: TestClient, raw: Raw,
                                        positions: dict[str, int]) -> None:
    body = client.get("/api/v1/audit/verify").json()
    assert (body["ok"], body["chain"]["ok"], body["chain"]["problems"]) == (True, True, [])
    n = tamper_with_purchase(raw, positions)
    body = client.get("/api/v1/audit/verify").json()
    assert body["ok"] is False
    assert [(p["kind"], p["notification_id"]) for p in body["chain"]["problems"]] == [
        ("edited", n)]


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    monkeypatch.setenv("LEDGER_VAR_DIR", str(settings.var_dir))
    monkeypatch.setenv("LEDGER_SECRET_KEY", SECRET_KEY)
    if settings.is_postgres:
        monkeypatch.setenv("LEDGER_DATABASE_URL", PG_URL)
        monkeypatch.setenv("LEDGER_POSTGRES_SCHEMA", str(settings.postgres_schema))

    def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
        code = main(list(argv))
        return code, capsys.readouterr().out
    return run


def test_ledger_verify_exits_1_and_names_the_row(
        cli_env: Callable[..., tuple[int, str]], raw: Raw, positions: dict[str, int],
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out = cli_env(capsys, "verify", "--chain-only")
    assert (code, out.split(":")[0]) == (0, "chain ok")
    head = re.search(r"head (\d+:[0-9a-f]{64})$", out.strip())
    assert head is not None
    n = tamper_with_purchase(raw, positions)
    code, out = cli_env(capsys, "verify", "--chain-only", "--anchor", head[1])
    assert code == 1
    assert out.startswith(f"edited at notification {n} (")
    assert "anchor" not in out  # the anchored link itself still holds
    assert cli_env(capsys, "verify")[0] == 1  # with the views too
