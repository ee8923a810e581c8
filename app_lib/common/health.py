"""Liveness, readiness and version."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool

from app_lib import __version__
from app_lib.common.config import get_settings
from app_lib.common.data import table_registry
from app_lib.common.http import problems
from app_lib.common.routing import GatedRouter

router = GatedRouter(tags=["health"])


@router.get("/health")
async def health() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/ready", responses=problems())
async def ready() -> dict[str, Any]:
    """Readiness: the database answers for every registered table."""
    tables = await run_in_threadpool(table_registry.table_status)
    return {"status": "ready", "tables": tables}


@router.get("/version")
async def version() -> dict[str, str]:
    """The running version and environment."""
    settings = get_settings()
    return {"version": __version__, "env": settings.app_env, "namespace": settings.app_namespace}
