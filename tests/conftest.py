"""Fixtures: one real moto server per session, fresh tables per test, the app on top."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

# Settings are read once per process: fix the environment before app_lib is imported.
os.environ["APP_ENV"] = "test"
os.environ["APP_NAMESPACE"] = ""
os.environ["LOG_LEVEL"] = "WARNING"
os.environ["SEED_ON_START"] = "false"
os.environ["RUN_WORKER"] = "false"
os.environ["DYNAMODB_MAX_RETRIES"] = "1"
os.environ["CURSOR_SECRET"] = "test-secret"
os.environ.pop("JOBS_QUEUE_URL", None)

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pynamodb.models import Model

from app_lib.common.config import Settings, get_settings
from app_lib.common.data import table_registry
from app_lib.common.embedded import EmbeddedServer
from app_lib.main import create_app


@pytest.fixture(scope="session")
def dynamodb_endpoint() -> Iterator[str]:
    """moto's server mode on 127.0.0.1 and a free port, for the whole session."""
    with EmbeddedServer() as server:
        os.environ["DYNAMODB_HOST"] = server.url
        get_settings.cache_clear()
        yield server.url


@pytest.fixture(scope="session")
def settings(dynamodb_endpoint: str) -> Settings:
    return get_settings()


@pytest.fixture(scope="session")
def app(settings: Settings) -> FastAPI:
    return create_app(settings, manage_database=False)


def new_namespace() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


def point_models(
    settings: Settings, endpoint: str, namespace: str, models: list[type[Model]]
) -> None:
    for model in models:
        table_registry.configure_model(model, settings, endpoint, namespace)


@pytest.fixture
def tables(app: FastAPI, settings: Settings, dynamodb_endpoint: str) -> Iterator[str]:
    """Every registered table, created empty under a namespace of this test's own."""
    namespace = new_namespace()
    table_registry.configure(settings, dynamodb_endpoint, namespace)
    table_registry.create_tables()
    yield namespace
    # The test may have re-pointed the models (e.g. at a dead endpoint): clean up our own tables.
    table_registry.configure(settings, dynamodb_endpoint, namespace)
    table_registry.delete_tables()


@pytest.fixture
def client(app: FastAPI, tables: str) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client
    app.dependency_overrides.clear()
