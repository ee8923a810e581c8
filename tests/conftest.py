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
from app_lib.common.embedded import EmbeddedServer, use_fake_credentials
from app_lib.main import create_app

# The database the session runs against: "moto" (default) or "dynalite" (`make test-dynalite`,
# which runs only the suites dynalite supports).
TEST_DYNAMODB = os.environ.get("TEST_DYNAMODB", "moto").strip().lower() or "moto"
if TEST_DYNAMODB not in ("moto", "dynalite"):
    raise pytest.UsageError(f"TEST_DYNAMODB must be moto or dynalite (got {TEST_DYNAMODB!r})")

# Operations dynalite does not implement: tests marked with these are skipped on dynalite only.
DYNALITE_LACKS = {
    "needs_transactions": "dynalite has no TransactWriteItems/TransactGetItems",
    "needs_ttl": "dynalite has no UpdateTimeToLive",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if TEST_DYNAMODB != "dynalite":
        return
    for item in items:
        for marker, reason in DYNALITE_LACKS.items():
            if item.get_closest_marker(marker):
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def dynamodb_endpoint() -> Iterator[str]:
    """moto's server mode (or dynalite, with TEST_DYNAMODB=dynalite) on 127.0.0.1 and a free
    port, for the whole session."""
    if TEST_DYNAMODB == "dynalite":
        from tests.dynalite.server import DynaliteServer

        use_fake_credentials()
        server: EmbeddedServer | DynaliteServer = DynaliteServer()
    else:
        # The moto process switches threads as often as it can, so races show on every run.
        server = EmbeddedServer(switch_interval=1e-6)
    with server:
        os.environ["DYNAMODB_HOST"] = server.url
        # Auth on, as the app's default off AWS: the app is its own (dev) issuer, its key kept
        # in memory (no DATA_DIR). `client` calls as an admin; tests of refusals make their own.
        os.environ["AUTH_MODE"] = "dev"
        os.environ["DATA_DIR"] = ""
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


def token(app: FastAPI, sub: str = "tester", scopes: str = "admin", ttl: int = 3600) -> str:
    """A token of the app's dev issuer."""
    issuer = app.state.auth.dev
    assert issuer is not None, "the tests run with AUTH_MODE=dev"
    signed: str = issuer.sign(sub, scopes, ttl)
    return signed


def bearer(app: FastAPI, sub: str = "tester", scopes: str = "admin") -> dict[str, str]:
    return {"Authorization": f"Bearer {token(app, sub, scopes)}"}


@pytest.fixture
def client(app: FastAPI, tables: str) -> Iterator[TestClient]:
    """The app over this test's tables, calling as an admin (every earlier test runs with auth
    on: reads public, writes with a token)."""
    with TestClient(app, headers=bearer(app)) as test_client:
        yield test_client
    app.dependency_overrides.clear()


@pytest.fixture
def anonymous(app: FastAPI, tables: str) -> Iterator[TestClient]:
    """The app over this test's tables, with no token."""
    with TestClient(app) as test_client:
        yield test_client
