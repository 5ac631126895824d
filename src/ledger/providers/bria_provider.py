"""Bria images over its REST API with httpx. LEDGER_BRIA_BASE_URL is the API root
(https://engine.prod.bria-api.com); the adapter appends the version path of the model:
`bria-2.3` -> /v1/text-to-image/base/2.3, `bria-2.3-fast` -> /v1/text-to-image/fast/2.3.
The key goes in Bria's `api_token` header. Retries as the other REST adapter."""

from __future__ import annotations

import math
from typing import Any

import httpx

from ledger.providers.base import (
    HttpProvider,
    ImageRequest,
    ImageResult,
    Usage,
    post_json,
    size_of,
)

ASPECT_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9")


def model_path(model_id: str) -> str:
    """The version path of a Bria model id: bria-<version>[-<pipeline>]."""
    rest = model_id.removeprefix("bria-")
    version, _, pipeline = rest.partition("-")
    return f"/v1/text-to-image/{pipeline or 'base'}/{version}"


def aspect_ratio(size: str | None) -> str:
    width, height = size_of(size)
    divisor = math.gcd(width, height)
    ratio = f"{width // divisor}:{height // divisor}"
    return ratio if ratio in ASPECT_RATIOS else "1:1"


class BriaProvider(HttpProvider):
    name = "bria"
    kinds = frozenset({"image"})

    def generate_images(self, request: ImageRequest, api_key: str) -> ImageResult:
        url = self.config.base_url.rstrip("/") + model_path(request.model)
        body = {"prompt": request.prompt, "num_results": request.n, "sync": True,
                "aspect_ratio": aspect_ratio(request.size)}

        def parse(answer: Any, response: httpx.Response) -> ImageResult:
            urls = tuple(str(u) for r in answer["result"] for u in r["urls"])
            if not urls:
                raise ValueError("no images")
            return ImageResult(urls, Usage(images=len(urls), size=request.size),
                               response.headers.get("x-request-id"))

        return post_json(self.http, self.config, self.name, url, api_key,
                         headers={"api_token": api_key}, body=body, parse=parse)
