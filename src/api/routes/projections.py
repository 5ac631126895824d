"""/projections/status: how fresh the views are. (Whether they are what a replay of the
log gives is /audit/verify, in api.routes.audit, beside the audit chain.)"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool

from api.deps import Caller, authorize
from api.reads import ProjectionsDep

router = APIRouter(tags=["projections"])


@router.get("/projections/status")
async def status(projections: ProjectionsDep,
                 caller: Annotated[Caller, Depends(authorize("projections.read"))]
                 ) -> dict[str, Any]:
    """Each view's position, the log's head and the lag between them (in notifications);
    `runner` is this process's part: running, standby (another process runs them) or
    stopped."""
    return await run_in_threadpool(projections.status)

