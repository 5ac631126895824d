"""The dashboard at /dashboard: static HTML, JS and CSS shipped in this package.

It has no build step and loads nothing from the internet: the page is a shell that asks
for a token (kept in the tab's sessionStorage) and reads everything else from the JSON
API with it, so it sees exactly what the token's role may see. Charts are SVG drawn in
the browser by `static/charts.js` (no charting library). The shell itself needs no token.
"""

from __future__ import annotations

from importlib import resources

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATIC = resources.files("api.dashboard") / "static"
# Scripts, styles and data from this origin only; no inline code, no framing.
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; connect-src 'self'; "
                               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


class Hardened:
    """The dashboard's security headers on every response of the wrapped app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []),
                                      *((k.lower().encode(), v.encode())
                                        for k, v in HEADERS.items())]
            await send(message)

        await self.app(scope, receive, with_headers)


def install(app: FastAPI) -> None:
    """Serve the dashboard at /dashboard and its files under /dashboard/static."""
    index = str(STATIC / "index.html")

    @app.get("/dashboard", include_in_schema=False)
    def dashboard() -> FileResponse:
        return FileResponse(index, media_type="text/html", headers=HEADERS)

    app.mount("/dashboard/static", Hardened(StaticFiles(directory=str(STATIC))),
              name="dashboard-static")
