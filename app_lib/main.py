"""The app factory: one FastAPI app with every feature's router under /api/v1."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from app_lib import __version__
from app_lib.common import feature as features
from app_lib.common.config import Settings, get_settings
from app_lib.common.data import table_registry
from app_lib.common.errors import install_error_handlers
from app_lib.common.health import router as health_router
from app_lib.common.logging import configure_logging
from app_lib.common.middleware import RequestIdMiddleware

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"


def prepare_database(settings: Settings, found: list[features.Feature], host: str | None) -> None:
    """Point every model at `host`; off AWS, create missing tables and seed empty ones."""
    table_registry.configure(settings, host)
    if host is not None:  # On AWS the tables belong to the CloudFormation stacks.
        table_registry.create_tables()
    start_features(settings, found, host)
    if host is None or not settings.seed_on_start:
        return
    for feature in found:
        if feature.seed and all(_is_empty(table) for table in feature.tables):
            written = feature.seed(None)
            log.info("seeded %s", feature.name, extra={"feature": feature.name, "items": written})


def start_features(settings: Settings, found: list[features.Feature], host: str | None) -> None:
    """Each feature's `on_start` hook (queues and the like), once its tables exist."""
    for feature in found:
        if feature.on_start is not None:
            feature.on_start(settings, host)


def _is_empty(table: type) -> bool:
    return next(iter(table.scan(limit=1)), None) is None  # type: ignore[attr-defined]


def create_app(settings: Settings | None = None, *, manage_database: bool = True) -> FastAPI:
    """Build the app. With `manage_database`, start-up connects (or starts the embedded server),
    creates and seeds tables; tests pass False and point the registry themselves."""
    settings = settings or get_settings()
    found = features.discover()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        embedded = None
        if manage_database:
            host: str | None = settings.dynamodb_host or None
            if settings.embedded:
                from app_lib.common.embedded import EmbeddedServer

                embedded = EmbeddedServer()
                host = await run_in_threadpool(embedded.start)
            try:
                await run_in_threadpool(prepare_database, settings, found, host)
            except BaseException:
                if embedded:
                    embedded.stop()
                raise
            app.state.dynamodb_endpoint = host
        stops = [start() for feature in found for start in feature.background]
        try:
            yield
        finally:
            for stop in stops:
                if callable(stop):
                    await run_in_threadpool(stop)
            if embedded:
                await run_in_threadpool(embedded.stop)

    app = FastAPI(
        title="app-lib",
        version=__version__,
        lifespan=lifespan,
        description="A FastAPI service on DynamoDB, one folder per feature.",
    )
    install_error_handlers(app)
    app.add_middleware(RequestIdMiddleware)
    app.include_router(health_router)
    for feature in found:
        app.include_router(feature.router, prefix=API_PREFIX)
        if feature.root_router is not None:
            app.include_router(feature.root_router)
    return app


def app_factory() -> FastAPI:
    """For `uvicorn --factory app_lib.main:app_factory`."""
    settings = get_settings()
    configure_logging(settings.log_level)
    return create_app(settings)
