"""The whole access matrix, on SQLite and PostgreSQL: every route of /api/v1 x every role
x the caller's own account and another one.

The routes are enumerated from the app itself, so a route added later is in the matrix
without anyone listing it, and a route that does not name a POLICY action (through
`authorize("<action>")`) fails the test. What each answer must be comes from POLICY:

* the role is not among the rule's roles: 403;
* the rule is account scoped, the key is bound to an account (account_admin, user) and
  the request names another one: 404 with the policy's detail (no existence leak);
* otherwise the request gets past the policy: anything but 401, 403, the policy's 404 or
  a 500 (a 422 for the empty body, a 404 for a dummy id are fine).

The same table is also checked against what issue 6 says in words (auditor reads all and
writes nothing, only platform_admin configures, service acts for any account).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import APIRouter, Depends, FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient

from api.access import POLICY, Rule
from api.app import API
from api.deps import authorize, authorized_actions
from ledger.domain.keys import ACCOUNT_BOUND, Role

OWN, OTHER = "acme", "globex"
POLICY_404 = "no such account"  # the detail of api.deps' tenant refusal
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # the path template, e.g. /api/v1/accounts/{account_id}/credits/balance
    params: dict[str, Any]  # path parameter -> its type
    actions: frozenset[str]  # the POLICY actions its dependencies authorize

    def __str__(self) -> str:
        return f"{self.method} {self.path}"

    def url(self, account: str) -> str:
        values = {name: account if name == "account_id" else
                  uuid.uuid4() if kind is uuid.UUID else "x"
                  for name, kind in self.params.items()}
        return self.path.format(**values)


def endpoints(app: FastAPI, prefix: str = API) -> Iterator[Endpoint]:
    """Every (method, path) the app serves under `prefix`, with its actions."""
    for route in iter_route_contexts(app.routes):
        path = route.path
        dependant = getattr(route, "dependant", None)
        if not path or not (path == prefix or path.startswith(prefix + "/")):
            continue
        assert dependant is not None, f"{path}: not an API route, its access is unknown"
        params = {p.name: p.field_info.annotation for p in dependant.path_params}
        for method in sorted((route.methods or set()) - {"HEAD", "OPTIONS"}):
            yield Endpoint(method, path, params, frozenset(authorized_actions(dependant)))


def without_a_rule(app: FastAPI) -> list[str]:
    return [f"{e}: {sorted(e.actions) or 'no authorize()'}" for e in endpoints(app)
            if len(e.actions) != 1 or not e.actions <= POLICY.keys()]


def expected(rule: Rule, role: Role, account: str) -> int | None:
    """403 or 404 as the policy refuses, None when it lets the request through."""
    if role not in rule.roles:
        return 403
    if rule.account_scoped and role in ACCOUNT_BOUND and account != OWN:
        return 404
    return None


def issue(client: TestClient, role: Role) -> dict[str, str]:
    ids = {"account_id": OWN} if role in ACCOUNT_BOUND else {}
    if role is Role.USER:
        ids["user_id"] = "u1"
    r = client.post(f"{API}/auth/keys", json={"role": role.value, **ids,
                                              "label": "role matrix"})
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def test_the_matrix_of_every_route_role_and_account(client: TestClient) -> None:
    app = client.app
    assert isinstance(app, FastAPI)
    assert without_a_rule(app) == []
    every = list(endpoints(app))
    assert len(every) > 40
    assert {str(e) for e in every} >= {
        f"GET {API}/accounts/{{account_id}}/credits/balance", f"POST {API}/auth/keys",
        f"GET {API}/audit/events", f"PUT {API}/system/settings/global"}
    auditor_reads = {str(e) for e in every if Role.AUDITOR in POLICY[min(e.actions)].roles}
    assert auditor_reads == {str(e) for e in every if e.method not in WRITES}
    for account in (OWN, OTHER):  # both exist, so a 404 for either can only be policy
        r = client.post(f"{API}/accounts/{account}/credits/purchases",
                        json={"credits": 10, "amount_usd": "1.00", "payment_ref": account})
        assert r.status_code == 201, r.text
    tokens = {role: issue(client, role) for role in Role}

    wrong: list[str] = []
    for e in every:
        missing = client.request(e.method, e.url(OWN), headers={"Authorization": ""})
        bad = client.request(e.method, e.url(OWN),
                             headers={"Authorization": "Bearer lk_0000_not-a-token"})
        if (missing.status_code, bad.status_code) != (401, 401):
            wrong.append(f"{e} without a valid token: {missing.status_code}, "
                         f"{bad.status_code}")
        [action] = e.actions
        rule = POLICY[action]
        for role in Role:
            for account in (OWN, OTHER):
                body = {"account_id": account} if e.method in WRITES - {"DELETE"} else None
                r = client.request(e.method, e.url(account), headers=tokens[role],
                                   params={"account_id": account}, json=body)
                status = r.status_code
                policy_404 = status == 404 and r.json().get("detail") == POLICY_404
                want = expected(rule, role, account)
                if want == 403:
                    ok = status == 403
                elif want == 404:
                    ok = policy_404
                else:
                    ok = status not in (401, 403, 500) and not policy_404
                if not ok:
                    wrong.append(f"{e} [{action}] as {role.value} on {account}: {status} "
                                 f"(expected {want or 'allowed'}) {r.text[:120]}")
    assert wrong == []


def test_a_route_without_a_rule_fails_the_matrix() -> None:
    """The enumeration sees routes nobody listed, and names those without a rule."""
    router = APIRouter()

    @router.get("/ruled")
    def ruled(caller: Any = Depends(authorize("usage.read"))) -> None:
        return None

    @router.get("/forgotten/{thing_id}")
    def forgotten(thing_id: uuid.UUID) -> None:
        return None

    app = FastAPI()
    app.include_router(router, prefix=API)
    found = {str(e): e for e in endpoints(app)}
    assert found[f"GET {API}/ruled"].actions == {"usage.read"}
    assert found[f"GET {API}/forgotten/{{thing_id}}"].params == {"thing_id": uuid.UUID}
    assert without_a_rule(app) == [f"GET {API}/forgotten/{{thing_id}}: no authorize()"]


def test_an_unknown_action_cannot_even_be_declared() -> None:
    with pytest.raises(KeyError):
        authorize("nobody.wrote.this")


def test_the_policy_says_what_the_issue_says() -> None:
    """Issue 6 in words: auditor reads everything but secrets and writes nothing; only
    platform_admin touches global settings, models, credit costs and adjustments;
    service posts credit commands and AI calls for any account; user and account_admin
    are held to their account wherever an account is named."""
    for action, rule in POLICY.items():
        if action.endswith(("write", "issue", "revoke", "purchase", "grant", "adjust",
                            "charge", "refund")) or action in ("ai.call", "settings.user"):
            assert Role.AUDITOR not in rule.roles, action
    for action in ("settings.global.write", "models.write", "costs.write", "credits.adjust"):
        assert POLICY[action].roles == {Role.PLATFORM_ADMIN}, action
    for action in ("credits.purchase", "credits.grant", "credits.charge", "credits.refund",
                   "ai.call"):
        assert Role.SERVICE in POLICY[action].roles, action
    for action, rule in POLICY.items():
        if rule.roles & ACCOUNT_BOUND and action.startswith(("credits.", "usage.", "keys.",
                                                             "settings.account", "ai.")):
            assert rule.account_scoped, action

