"""The app factory: one FastAPI app with every feature's router under /api/v1."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.concurrency import run_in_threadpool

from app_lib import __version__
from app_lib.common import feature as features
from app_lib.common.auth import install_auth
from app_lib.common.config import Settings, get_settings
from app_lib.common.docs import install_docs
from app_lib.common.feature import Startup
from app_lib.common.health import router as health_router
from app_lib.common.lifecycle import open_database
from app_lib.common.logging import AccessLog, configure_logging
from app_lib.common.middleware import RequestIdMiddleware
from app_lib.common.openapi import operation_id
from app_lib.common.problems import install_error_handlers
from app_lib.common.request_checks import CheckedRoute, checked, document_request_checks
from app_lib.common.routing import gated

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"


def create_app(settings: Settings | None = None, *, manage_database: bool = True) -> FastAPI:
    """Build the app. With `manage_database`, start-up connects (or starts the embedded server),
    creates and seeds tables and keeps them (`lifecycle`); tests pass False and point the
    registry themselves."""
    settings = settings or get_settings()
    found = features.discover()
    access_log = AccessLog()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = None
        if manage_database:
            database = await run_in_threadpool(open_database, settings, found)
            app.state.dynamodb_endpoint = database.host
            app.state.features = database.states
        states = app.state.features
        host = database.host if database else None
        # Access lines in bursts (AccessLog), but on Lambda, where the process is frozen once the
        # response is out, and at a terminal, where someone watches them: there each at once.
        if "AWS_LAMBDA_FUNCTION_NAME" not in os.environ and not sys.stderr.isatty():
            access_log.start()
        stops = [
            start(Startup(settings, host, states.get(feature.name)))
            for feature in found
            for start in feature.background
        ]
        try:
            yield
        finally:
            try:
                for stop in stops:
                    if callable(stop):
                        await run_in_threadpool(stop)
                if database is not None:
                    await run_in_threadpool(database.close)
            finally:
                await run_in_threadpool(access_log.stop)

    app = FastAPI(
        title="app-lib",
        version=__version__,
        lifespan=lifespan,
        description="A FastAPI service on DynamoDB, one folder per feature.",
        # Served by install_docs from local assets: FastAPI's own pages need a CDN.
        docs_url=None,
        redoc_url=None,
        # Operation ids are the route functions' names (list_passengers): readable client code.
        generate_unique_id_function=operation_id,
    )
    # Every route: unknown query parameters (422), non-JSON bodies (415), lone surrogates.
    # A CheckedRoute checks its requests itself; a router with other routes gets the checks as
    # a dependency (`checked`).
    app.router.route_class = CheckedRoute
    # Each feature's on_start result, by name (`feature_state`); tests may fill it themselves.
    app.state.features = {}
    install_error_handlers(app)
    app.add_middleware(RequestIdMiddleware, access_log=access_log)
    if settings.cors_origin_list:
        # Outermost, so preflights are answered before anything else; listed origins only, and
        # no credentials (bearer tokens travel in a header the browser sends when told to).
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "If-Match", "Last-Event-ID"],
            expose_headers=["ETag", "Location", "Retry-After", "X-Request-ID"],
            allow_credentials=False,
            max_age=600,
        )
    # The features' routers first: routes are tried in order on every request, and the API's
    # are the ones that serve traffic (no path of theirs overlaps the probes' or the docs').
    for feature in found:
        app.include_router(
            gated(feature.router),
            prefix=API_PREFIX,
            dependencies=[*checked(feature.router), *feature.dependencies],
        )
        # Root routes serve the Lambda worker (the adapter's pass-through POST /events): only a
        # process that runs as that worker mounts them (LAMBDA_WORKER=true).
        if feature.root_router is not None and settings.lambda_worker:
            app.include_router(feature.root_router, dependencies=checked(feature.root_router))
    app.include_router(health_router)
    install_docs(app)
    install_auth(app, settings)
    document_request_checks(app)
    return app


def app_factory() -> FastAPI:
    """For `uvicorn --factory app_lib.main:app_factory`."""
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    return create_app(settings)
