"""A webhook receiver on 127.0.0.1 that checks each request's signature, and answers
as told: "ok" (204), "500", or "timeout" (holds the request longer than the sender
waits). It records every request it got, verified or not."""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request, Response

from ledger.webhooks import ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature
from tests.conftest import LiveServer


@dataclass(frozen=True)
class Received:
    delivery_id: str
    timestamp: str
    signature: str
    body: bytes
    verified: bool  # the signature matches the body and the secret, the timestamp is recent
    answer: str  # what the receiver did: ok, 500, timeout

    @property
    def payload(self) -> Any:
        return json.loads(self.body)


class Receiver:
    def __init__(self, hang_s: float = 1.5) -> None:
        self.hang_s = hang_s
        self.plan: list[str] = []  # answers for the next requests, then "ok"
        self.secrets: list[str] = []  # a request verifies against any of them
        self.received: list[Received] = []
        self._lock = threading.Lock()
        app = FastAPI()

        @app.post("/hook")
        async def hook(request: Request) -> Response:
            body = await request.body()
            h = request.headers
            ts, sig = h.get(TIMESTAMP_HEADER, ""), h.get(SIGNATURE_HEADER, "")
            verified = any(verify_signature(s, ts, body, sig) for s in self.secrets)
            with self._lock:
                answer = self.plan.pop(0) if self.plan else "ok"
                self.received.append(Received(h.get(ID_HEADER, ""), ts, sig, body, verified,
                                              answer))
            if answer == "timeout":
                await asyncio.sleep(self.hang_s)
            if answer == "500":
                return Response(status_code=500)
            return Response(status_code=204 if verified else 401)

        self.server = LiveServer(app)
        self.url = f"{self.server.url}/hook"

    def requests(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def __enter__(self) -> Receiver:
        self.server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.__exit__(*exc)
