"""`ledger report --from --to --group-by provider` prints what GET /reports/revenue answers,
on both backends: the same rows and the same totals, in the terminal table and as JSON."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ledger.cli import main
from ledger.demo import Demo
from ledger.domain.base import utcnow
from ledger.service import Ledger
from tests.integration.test_projections_cli import env  # noqa: F401  (a fixture)


def columns(table: str) -> list[dict[str, str]]:
    """The rows of `ledger report`'s table as {column: cell}, cut where the dashes under
    the header say (a cell may be empty: the provider of breakage rows)."""
    header, dashes, *body = table.splitlines()
    spans, start = [], 0
    for width in map(len, dashes.split("  ")):
        spans.append((start, start + width))
        start += width + 2
    names = [header[a:b].strip() for a, b in spans]
    return [{n: line[a:b].strip() for n, (a, b) in zip(names, spans, strict=True)}
            for line in body]


def text(value: Any) -> str:
    return "" if value is None else str(value)


@pytest.mark.usefixtures("env")
def test_report_by_provider_prints_the_api_figures(
        ledger: Ledger, client: TestClient, capsys: pytest.CaptureFixture[str]) -> None:
    Demo(ledger, days=4, scale=0.1, seed=5).run()
    today = utcnow().date()
    since, until = (today - timedelta(days=3)).isoformat(), (today + timedelta(days=1)).isoformat()
    head = ledger.store.head()
    answer = client.get("/api/v1/reports/revenue", params={
        "from": since, "to": until, "group_by": "provider", "min_position": head})
    assert answer.status_code == 200
    api = answer.json()
    providers = {r["provider"] for r in api["data"]}
    assert {"openai", "anthropic"} <= providers  # the demo used several providers
    assert api["total"]["charges"] > 0

    assert main(["report", "--from", since, "--to", until, "--group-by", "provider"]) == 0
    rows = columns(capsys.readouterr().out)
    *lines, total = rows
    assert total["provider"] == "total"
    figures = [c for c in api["total"] if c != "provider"]
    assert {c: total[c] for c in figures} == {c: text(api["total"][c]) for c in figures}
    assert [{c: r[c] for c in ["provider", *figures]} for r in lines] == [
        {c: text(r[c]) for c in ["provider", *figures]} for r in api["data"]]

    assert main(["report", "--from", since, "--to", until, "--group-by", "provider",
                 "--format", "json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["total"] == api["total"]
    assert printed["data"] == api["data"]
