"""Fake AI providers: one Starlette app served by uvicorn on 127.0.0.1 (a free port, a
background thread) that speaks each provider's wire format closely enough for the
official SDKs, so the adapters are exercised over real HTTP without any monkeypatching.

    OpenAI     {url}/openai/v1            POST /chat/completions, /images/generations
    Anthropic  {url}/anthropic            POST /v1/messages
    Google     {url}/google               POST /v1beta/models/{model}:generateContent
    Runware    {url}/runware/v1           POST (a list of tasks)
    Bria       {url}/bria                 POST /v1/text-to-image/{pipeline}/{version}

Modes, switchable per test for all providers or one (`fake.set_mode("500", "openai")`):

    ok             a well-formed answer with the configured usage
    500            HTTP 500 every time (its body echoes the caller's credentials, so a
                   test can check that no key leaks from an error)
    429-then-ok    HTTP 429 on the first request, then ok
    timeout        no answer until the client gives up (it hangs up, or `hang_s` passes)
    malformed      HTTP 200 with a body that is not JSON
    missing-usage  a well-formed answer without its usage

Every request is recorded (provider, path, headers, JSON body) in `fake.requests`.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

MODES = ("ok", "500", "429-then-ok", "timeout", "malformed", "missing-usage")
PROVIDERS = ("openai", "anthropic", "google", "runware", "bria")
# a 1x1 transparent PNG, what the gpt-image models return as b64_json
PNG_B64 = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVO"
           "RK5CYII=")


@dataclass
class Recorded:
    provider: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeProviders:
    """The state the app answers from; tests change it between calls."""

    modes: dict[str, str] = field(default_factory=lambda: dict.fromkeys(PROVIDERS, "ok"))
    input_tokens: int = 1200
    output_tokens: int = 345
    hang_s: float = 30.0
    requests: list[Recorded] = field(default_factory=list)
    url: str = ""
    _served: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- what tests use --------------------------------------------------------------

    def set_mode(self, mode: str, provider: str | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        with self._lock:
            for name in [provider] if provider else PROVIDERS:
                self.modes[name] = mode
                self._served[name] = 0

    def base_urls(self) -> dict[str, str]:
        """The LEDGER_*_BASE_URL settings that point every adapter here."""
        return {"openai_base_url": f"{self.url}/openai/v1",
                "anthropic_base_url": f"{self.url}/anthropic",
                "google_base_url": f"{self.url}/google",
                "runware_base_url": f"{self.url}/runware/v1",
                "bria_base_url": f"{self.url}/bria"}

    def requests_to(self, provider: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.provider == provider]

    # -- the app ---------------------------------------------------------------------

    async def _record(self, provider: str, request: Request) -> tuple[str, Any]:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        with self._lock:
            self.requests.append(Recorded(provider, request.url.path,
                                          {k.lower(): v for k, v in request.headers.items()},
                                          body))
            served = self._served.get(provider, 0)
            self._served[provider] = served + 1
            mode = self.modes[provider]
        if mode == "429-then-ok":
            mode = "429" if served == 0 else "ok"
        return mode, body

    async def _failure(self, mode: str, request: Request,
                       error_body: dict[str, Any]) -> Response | None:
        if mode == "ok" or mode == "missing-usage":
            return None
        if mode == "timeout":
            deadline = time.monotonic() + self.hang_s
            while time.monotonic() < deadline and not await request.is_disconnected():
                await asyncio.sleep(0.05)
            return Response(status_code=504)
        if mode == "malformed":
            return Response(b'{"id": "broken", "choices": [', media_type="application/json")
        if mode == "429":
            return JSONResponse(error_body, status_code=429,
                                headers={"retry-after-ms": "10", "retry-after": "0"})
        # 500: the body echoes the credentials the request carried
        creds = " ".join(request.headers.get(h, "") for h in (
            "authorization", "x-api-key", "x-goog-api-key", "api_token"))
        echoed = json.loads(json.dumps(error_body).replace("SERVER_ERROR", f"boom {creds}"))
        return JSONResponse(echoed, status_code=500)

    async def openai_chat(self, request: Request) -> Response:
        mode, body = await self._record("openai", request)
        failure = await self._failure(mode, request, {"error": {
            "message": "SERVER_ERROR", "type": "server_error", "param": None, "code": None}})
        if failure is not None:
            return failure
        answer: dict[str, Any] = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "object": "chat.completion",
            "created": int(time.time()), "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                         "message": {"role": "assistant", "content": "Hello from the fake.",
                                     "refusal": None}}]}
        if mode != "missing-usage":
            answer["usage"] = {"prompt_tokens": self.input_tokens,
                               "completion_tokens": self.output_tokens,
                               "total_tokens": self.input_tokens + self.output_tokens}
        return JSONResponse(answer, headers={"x-request-id": "req_fake_openai"})

    async def openai_images(self, request: Request) -> Response:
        mode, body = await self._record("openai", request)
        failure = await self._failure(mode, request, {"error": {
            "message": "SERVER_ERROR", "type": "server_error", "param": None, "code": None}})
        if failure is not None:
            return failure
        n = int(body.get("n") or 1)
        if body.get("model") == "dall-e-3" and n != 1:
            return JSONResponse({"error": {"message": "n must be 1 for dall-e-3",
                                           "type": "invalid_request_error", "param": "n",
                                           "code": None}}, status_code=400)
        if str(body.get("model", "")).startswith("gpt-image"):
            data = [{"b64_json": PNG_B64} for _ in range(n)]
            answer: dict[str, Any] = {"created": int(time.time()), "data": data}
            if mode != "missing-usage":
                answer["usage"] = {"input_tokens": 50, "output_tokens": 4160 * n,
                                   "total_tokens": 50 + 4160 * n,
                                   "input_tokens_details": {"text_tokens": 50,
                                                            "image_tokens": 0}}
        else:
            data = [{"url": f"https://images.fake/{uuid.uuid4().hex}.png",
                     "revised_prompt": body.get("prompt")} for _ in range(n)]
            answer = {"created": int(time.time()), "data": data}
        return JSONResponse(answer, headers={"x-request-id": "req_fake_images"})

    async def anthropic_messages(self, request: Request) -> Response:
        mode, body = await self._record("anthropic", request)
        failure = await self._failure(mode, request, {"type": "error", "error": {
            "type": "api_error", "message": "SERVER_ERROR"}})
        if failure is not None:
            return failure
        answer: dict[str, Any] = {
            "id": f"msg_{uuid.uuid4().hex[:12]}", "type": "message", "role": "assistant",
            "model": body["model"], "content": [{"type": "text", "text": "Hello, Claude."}],
            "stop_reason": "end_turn", "stop_sequence": None}
        if mode != "missing-usage":
            answer["usage"] = {"input_tokens": self.input_tokens,
                               "output_tokens": self.output_tokens}
        return JSONResponse(answer, headers={"request-id": "req_fake_anthropic"})

    async def google_generate(self, request: Request) -> Response:
        mode, _body = await self._record("google", request)
        failure = await self._failure(mode, request, {"error": {
            "code": 500, "message": "SERVER_ERROR", "status": "INTERNAL"}})
        if failure is not None:
            return failure
        model = request.path_params["rest"].split(":")[0]
        answer: dict[str, Any] = {
            "candidates": [{"content": {"parts": [{"text": "Hello, Gemini."}],
                                        "role": "model"},
                            "finishReason": "STOP", "index": 0}],
            "modelVersion": model, "responseId": uuid.uuid4().hex[:16]}
        if mode != "missing-usage":
            answer["usageMetadata"] = {
                "promptTokenCount": self.input_tokens,
                "candidatesTokenCount": self.output_tokens,
                "totalTokenCount": self.input_tokens + self.output_tokens}
        return JSONResponse(answer)

    async def runware_tasks(self, request: Request) -> Response:
        mode, body = await self._record("runware", request)
        failure = await self._failure(mode, request, {"errors": [{
            "code": "internalError", "message": "SERVER_ERROR"}]})
        if failure is not None:
            return failure
        data = []
        for task in body:
            if task.get("taskType") != "imageInference":
                continue
            for _ in range(int(task.get("numberResults", 1))):
                data.append({"taskType": "imageInference", "taskUUID": task["taskUUID"],
                             "imageUUID": str(uuid.uuid4()), "cost": 0.0013,
                             "imageURL": f"https://im.runware.fake/{uuid.uuid4().hex}.jpg"})
        return JSONResponse({"data": data})

    async def bria_generate(self, request: Request) -> Response:
        mode, body = await self._record("bria", request)
        failure = await self._failure(mode, request, {"error": {"message": "SERVER_ERROR"}})
        if failure is not None:
            return failure
        results = [{"urls": [f"https://bria.fake/{uuid.uuid4().hex}.png"], "seed": 7 + i,
                    "uuid": str(uuid.uuid4())} for i in range(int(body.get("num_results", 1)))]
        return JSONResponse({"result": results}, headers={"x-request-id": "bria-req-1"})

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/openai/v1/chat/completions", self.openai_chat, methods=["POST"]),
            Route("/openai/v1/images/generations", self.openai_images, methods=["POST"]),
            Route("/anthropic/v1/messages", self.anthropic_messages, methods=["POST"]),
            Route("/google/{version}/models/{rest:path}", self.google_generate,
                  methods=["POST"]),
            Route("/runware/v1", self.runware_tasks, methods=["POST"]),
            Route("/bria/v1/text-to-image/{pipeline}/{version}", self.bria_generate,
                  methods=["POST"]),
        ])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_fake_providers() -> Iterator[FakeProviders]:
    """Run the fakes for as long as the generator is suspended (a fixture's body)."""
    fake = FakeProviders()
    port = _free_port()
    config = uvicorn.Config(fake.app(), host="127.0.0.1", port=port, log_level="warning",
                            access_log=False, lifespan="off", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True, name="fake-providers")
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the fake providers did not start")
        time.sleep(0.02)
    fake.url = f"http://127.0.0.1:{port}"
    try:
        yield fake
    finally:
        server.should_exit = True
        thread.join(timeout=10)
