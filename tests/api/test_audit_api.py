"""/audit/events and /audit/aggregates/{id}/events on SQLite and PostgreSQL: the whole log
in order with a cursor, as JSON pages and as streamed JSON lines, every event naming its
actor and request, secrets sealed in every form of the export."""

from __future__ import annotations

import json
from typing import Any
from uuid import uuid4

from fastapi.testclient import TestClient

from ledger.domain.credits import CreditAccount
from ledger.domain.settings import SEALED_PREFIX
from ledger.service import Ledger

API = "/api/v1"
EVENTS = f"{API}/audit/events"
PLAINTEXT_KEY = "sk-proj-audit-export-PLAINTEXT-7f3a9c"


def lines(r: Any) -> list[dict[str, Any]]:
    assert r.status_code == 200, r.text
    assert r.text.endswith("\n")
    return [json.loads(line) for line in r.text.splitlines()]


def token(client: TestClient, role: str, **ids: str) -> dict[str, str]:
    r = client.post(f"{API}/auth/keys", json={"role": role, **ids})
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def purchase(client: TestClient, account: str, ref: str, **headers: str) -> dict[str, Any]:
    r = client.post(f"{API}/accounts/{account}/credits/purchases", headers=headers,
                    json={"credits": 100, "amount_usd": "2.00", "payment_ref": ref})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def test_pages_follow_the_cursor_through_the_whole_log(client: TestClient) -> None:
    for i in range(3):
        purchase(client, "acme", f"pi_{i}")
    first = client.get(EVENTS, params={"limit": 5}).json()
    head = first["head"]
    seen = first["data"]
    assert first["count"] == 5
    while len(seen) < head:  # positions are 1..head: nothing was ever rolled back here
        page = client.get(EVENTS, params={"after": seen[-1]["position"], "limit": 7}).json()
        assert page["data"], page
        assert page["next_after"] == page["data"][-1]["position"]
        seen += page["data"]
    assert [e["position"] for e in seen] == list(range(1, head + 1))
    end = client.get(EVENTS, params={"after": head}).json()
    assert (end["data"], end["next_after"]) == ([], head)
    assert client.get(EVENTS, params={"limit": 10_001}).status_code == 422
    assert client.get(EVENTS, params={"after": -1}).status_code == 422


def test_json_lines_stream_the_log_up_to_its_head(client: TestClient) -> None:
    purchase(client, "acme", "pi_1")
    page = client.get(EVENTS, params={"limit": 10_000}).json()
    head = page["head"]

    by_accept = client.get(EVENTS, headers={"Accept": "application/x-ndjson"})
    assert by_accept.headers["content-type"] == "application/x-ndjson"
    assert by_accept.headers["x-head"] == str(head)
    assert lines(by_accept) == page["data"]  # the same events, the same form
    jsonl = client.get(EVENTS, headers={"Accept": "application/jsonl"})
    assert jsonl.headers["content-type"] == "application/jsonl"
    assert lines(jsonl) == page["data"]
    assert lines(client.get(EVENTS, params={"format": "jsonl"})) == page["data"]
    as_json = client.get(EVENTS, params={"format": "json"},
                         headers={"Accept": "application/x-ndjson"})
    assert as_json.json()["data"] == page["data"][:100]

    middle = lines(client.get(EVENTS, params={"format": "jsonl", "after": 3, "limit": 4}))
    assert [e["position"] for e in middle] == [4, 5, 6, 7]
    # longer than the stream's page (500) and than a JSON page may be: read in pages
    for i in range(2, 13):
        purchase(client, f"acct-{i % 3}", f"pi_{i}")
    everything = lines(client.get(EVENTS, params={"format": "jsonl"}))
    assert [e["position"] for e in everything] == list(range(1, len(everything) + 1))
    assert len(everything) == client.get(EVENTS).json()["head"]


def test_streams_longer_than_a_page(client: TestClient, ledger: Ledger,
                                    monkeypatch: Any) -> None:
    import ledger.audit

    monkeypatch.setattr(ledger.audit, "PAGE", 3)  # the paging, without 500 events
    for i in range(3):
        purchase(client, "acme", f"pi_{i}")
    head = client.get(EVENTS).json()["head"]
    streamed = lines(client.get(EVENTS, params={"format": "jsonl"}))
    assert [e["position"] for e in streamed] == list(range(1, head + 1))
    assert len(lines(client.get(EVENTS, params={"format": "jsonl", "limit": 7}))) == 7
    acme = str(CreditAccount.create_id("acme"))
    history = lines(client.get(f"{API}/audit/aggregates/{acme}/events",
                               params={"format": "jsonl"}))
    assert [e["originator_version"] for e in history] == list(range(1, len(history) + 1))
    assert len(history) >= 4  # opened, then three purchases


def test_one_aggregates_history(client: TestClient) -> None:
    purchase(client, "acme", "pi_1")
    purchase(client, "acme", "pi_2")
    acme = str(CreditAccount.create_id("acme"))
    url = f"{API}/audit/aggregates/{acme}/events"
    body = client.get(url).json()
    versions = [e["originator_version"] for e in body["data"]]
    assert versions == list(range(1, len(versions) + 1))
    assert {e["originator_id"] for e in body["data"]} == {acme}
    assert body["next_after_version"] == versions[-1]
    rest = client.get(url, params={"after_version": 1, "limit": 1}).json()
    assert [e["originator_version"] for e in rest["data"]] == [2]
    assert lines(client.get(url, headers={"Accept": "application/x-ndjson"})) == body["data"]
    missing = client.get(f"{API}/audit/aggregates/{uuid4()}/events",
                         params={"format": "jsonl"})
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


def test_every_event_names_its_actor_and_request(client: TestClient) -> None:
    service = token(client, "service")
    key_id = client.get(f"{API}/auth/me", headers=service).json()["key_id"]
    made = purchase(client, "acme", "pi_actor", **service, **{"X-Request-Id": "req-audit-1"})
    exported = lines(client.get(EVENTS, params={"format": "jsonl"}))
    for e in exported:
        assert all(e[k] for k in ("actor_id", "actor_role", "request_id")), e
        assert e["timestamp"].endswith("Z")
    [bought] = [e for e in exported if e["position"] == made["position"]]
    assert (bought["actor_id"], bought["actor_role"], bought["request_id"]) == (
        key_id, "service", "req-audit-1")
    seeded = [e for e in exported if e["actor_id"] == "system"]
    assert seeded
    assert all(e["actor_role"] == "system" for e in seeded)


def test_secrets_stay_sealed_in_every_export(client: TestClient, ledger: Ledger) -> None:
    r = client.put(f"{API}/system/settings/global", json={"openai_api_key": PLAINTEXT_KEY})
    assert r.status_code == 200, r.text
    issued = client.post(f"{API}/auth/keys", json={"role": "auditor"}).json()
    auditor = {"Authorization": f"Bearer {issued['token']}"}
    secret_part = issued["token"].rsplit("_", 1)[1]

    exports = [client.get(EVENTS, params={"limit": 10_000}, headers=auditor).text,
               client.get(EVENTS, params={"format": "jsonl"}, headers=auditor).text]
    stored = lines(client.get(EVENTS, params={"format": "jsonl"}, headers=auditor))
    aggregates = {e["originator_id"] for e in stored}
    for aggregate in aggregates:
        for fmt in ("json", "jsonl"):
            exports.append(client.get(f"{API}/audit/aggregates/{aggregate}/events",
                                      params={"format": fmt, "limit": 10_000},
                                      headers=auditor).text)
    for text in exports:
        assert PLAINTEXT_KEY not in text
        assert secret_part not in text
    masked = [e for e in stored if '"****"' in json.dumps(e["fields"])]
    [key_issued] = [e for e in stored if e["topic"].endswith("ApiKey.Issued")]
    assert key_issued["fields"]["token_sha256"] == "****"
    # the store holds the provider key sealed, and the export masks the sealed form too
    sealed = []
    for e in masked:
        raw = ledger.store.recorder.select_notifications(e["position"], 1)[0].state
        assert PLAINTEXT_KEY.encode() not in raw
        sealed += [v for v in _strings(json.loads(raw)) if v.startswith(SEALED_PREFIX)]
    assert sealed  # the PUT above stored one
    assert not [v for v in sealed if any(v in text for text in exports)]


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) else []


def test_only_auditors_and_admins_read_the_log(client: TestClient) -> None:
    user = token(client, "user", account_id="acme", user_id="u1")
    auditor = token(client, "auditor")
    assert client.get(EVENTS, headers=user).status_code == 403
    assert client.get(EVENTS, params={"format": "jsonl"}, headers=user).status_code == 403
    assert client.get(EVENTS, headers=auditor).status_code == 200
    assert client.post(EVENTS, headers=auditor).status_code == 405
