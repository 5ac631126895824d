"""schemathesis against the service's own OpenAPI document, as each role, on both backends.

Every operation found in `/openapi.json` at run time (routes added later are covered
without touching this file) gets generated requests, valid ones and schema-violating
ones, sent over HTTP to the app served by uvicorn, with a bearer token of the role. Each answer
must

* not be a server error (see `no_server_error` for the one designed 5xx),
* have a documented status and content type, and a body that matches its schema
  (success bodies their model, errors the Problem schema of problem+json),
* refuse schema-violating input with a 4xx.

The number of examples per operation is bounded so that the whole run stays short in
CI; the examples are derandomized, so a run is reproducible.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import FailedHealthCheck, Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from ledger.config import Settings
from ledger.service import Ledger
from tests.conftest import ADMIN_TOKEN, LiveServer

pytestmark = [
    pytest.mark.slow,
    # schemathesis' own strategies draw from `random` (its concern, not a flaw here)
    pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies"),
]

ROLES = ("platform_admin", "service", "account_admin", "user", "auditor")
# (valid, schema-violating) examples per operation, small enough for CI (about 30 ms an
# example): the admin reaches every handler and its validation; the other roles mostly
# meet the access rules (tests/api/test_role_matrix.py goes through those route by
# route), so one valid request per operation each.
# FUZZ_SCALE=10 multiplies them for a deeper run by hand.
SCALE = int(os.environ.get("FUZZ_SCALE", "1"))
EXAMPLES = {"platform_admin": (3 * SCALE, 2 * SCALE)}
OTHERS = (SCALE, 0)
ACCOUNT = "fuzz-acme"
SUPPRESSED = [h for h in HealthCheck if h is not HealthCheck.filter_too_much]
ACCOUNT = "fuzz-acme"


def no_server_error(ctx: Any, response: Any, case: Any) -> bool | None:
    """No 5xx, except the one a request may rightly meet here: no provider API key is
    configured in this service, and an AI call answers 503 provider-not-configured
    (before holding any credits)."""
    if response.status_code < 500:
        return None
    kind = ""
    if response.headers.get("content-type", [""])[0].startswith("application/problem+json"):
        kind = str(response.json().get("type", "")).rsplit("/", 1)[-1]
    if response.status_code == 503 and kind == "provider-not-configured":
        return None
    raise AssertionError(f"server error {response.status_code}: {response.text[:500]}")


CHECKS: list[Callable[..., bool | None]] = [
    no_server_error, status_code_conformance, content_type_conformance,
    response_headers_conformance, response_schema_conformance, negative_data_rejection]


@dataclass
class Findings:
    failures: dict[tuple[str, str, str], str] = field(default_factory=dict)
    calls: int = 0

    def add(self, label: str, mode: str, exc: BaseException, case: Any) -> None:
        errors = exc.exceptions if isinstance(exc, BaseExceptionGroup) else (exc,)
        for e in errors:
            first_line = str(e).strip().splitlines()[0] if str(e).strip() else ""
            key = (label, mode, f"{type(e).__name__}: {first_line}")
            self.failures.setdefault(key, f"{e}\n  reproduce: {case.as_curl_command()}")

    def report(self) -> str:
        return "\n\n".join(f"{label} [{mode}] {what}\n{detail}"
                           for (label, mode, what), detail in self.failures.items())


def _token(url: str, role: str) -> str:
    if role == "platform_admin":
        return ADMIN_TOKEN
    body: dict[str, str] = {"role": role}
    if role in ("account_admin", "user"):
        body["account_id"] = ACCOUNT
    if role == "user":
        body["user_id"] = "fuzz-user"
    r = httpx.post(f"{url}/api/v1/auth/keys", json=body,
                   headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert r.status_code == 201, r.text
    return str(r.json()["token"])


def _has_inputs(op: Any) -> bool:
    return any(len(p) for p in (op.path_parameters, op.query, op.headers, op.body))


def _fuzz(op: Any, mode: GenerationMode, examples: int, url: str, session: requests.Session,
          headers: dict[str, str], findings: Findings) -> None:
    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=SUPPRESSED)
    @given(case=op.as_strategy(mode))
    def run(case: Any) -> None:
        findings.calls += 1
        try:
            case.call_and_validate(base_url=url, session=session, headers=headers,
                                   checks=CHECKS)
        except BaseException as exc:  # collected, and reported at the end
            findings.add(op.label, mode.value, exc, case)

    try:
        run()
    except (Unsatisfiable, FailedHealthCheck):
        # no input of this operation can break its schema (free strings, say): nothing
        # to send in this mode (the filter health check says so after a few tries)
        if not mode.is_negative:
            raise


@pytest.fixture
def server(settings: Settings, ledger: Ledger) -> Iterator[LiveServer]:
    """The app over real HTTP (uvicorn in a thread; its lifespan runs the projections)."""
    with LiveServer(create_app(settings, ledger)) as live, httpx.Client(
            base_url=live.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as http:
        # something to find: an account with credits, a charge and an open hold
        base = f"/api/v1/accounts/{ACCOUNT}/credits"
        for path, payload in ((f"{base}/purchases", {"credits": 500, "amount_usd": "10.00",
                                                     "payment_ref": "fuzz-1"}),
                              (f"{base}/deductions", {"operation": "image_generation",
                                                      "units": 1}),
                              (f"{base}/reservations", {"operation": "image_generation",
                                                        "credits": 10})):
            assert http.post(path, json=payload).status_code == 201
        yield live


@pytest.mark.parametrize("role", ROLES)
def test_every_operation_answers_within_its_schema(server: LiveServer, role: str) -> None:
    token = _token(server.url, role)
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    headers = {"Authorization": f"Bearer {token}"}
    valid, invalid = EXAMPLES.get(role, OTHERS)
    findings = Findings()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 30, "the OpenAPI document lost its operations"

    with requests.Session() as session:
        for op in operations:
            modes = [(GenerationMode.POSITIVE, valid)]
            if invalid and _has_inputs(op):
                modes.append((GenerationMode.NEGATIVE, invalid))
            for mode, examples in modes:
                _fuzz(op, mode, examples, server.url, session, headers, findings)

    assert findings.calls >= len(operations) * valid
    assert not findings.failures, (
        f"{len(findings.failures)} problem(s) as {role}:\n\n{findings.report()}")
