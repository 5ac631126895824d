"""Runware images over its REST API with httpx: a list of tasks is POSTed to
LEDGER_RUNWARE_BASE_URL (https://api.runware.ai/v1), the key in `Authorization: Bearer`.
Retries of 429/5xx/connection errors are bounded, with exponential backoff (tenacity)."""

from __future__ import annotations

import uuid
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


class RunwareProvider(HttpProvider):
    name = "runware"
    kinds = frozenset({"image"})

    def generate_images(self, request: ImageRequest, api_key: str) -> ImageResult:
        task_uuid = str(uuid.uuid4())
        width, height = size_of(request.size)
        task = {"taskType": "imageInference", "taskUUID": task_uuid,
                "positivePrompt": request.prompt, "model": request.model,
                "width": width, "height": height, "numberResults": request.n,
                "outputType": "URL", "includeCost": True}

        def parse(body: Any, response: httpx.Response) -> ImageResult:
            results = [d for d in body["data"] if d.get("taskUUID") == task_uuid]
            urls = tuple(str(d["imageURL"]) for d in results)
            if not urls:
                raise ValueError("no images")
            return ImageResult(urls, Usage(images=len(urls), size=request.size), task_uuid)

        return post_json(self.http, self.config, self.name, self.config.base_url, api_key,
                         headers={"Authorization": f"Bearer {api_key}"}, body=[task],
                         parse=parse)
