"""The app's shared behaviour: health, readiness, request ids, problem details, embedded DB."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app_lib.common.config import Settings
from app_lib.common.data import table_registry
from app_lib.common.logging import JsonFormatter, set_request_id
from app_lib.features.passengers.routes import get_passenger_service
from app_lib.main import create_app
from tests.conftest import new_namespace


def test_health_and_version(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    body = client.get("/version").json()
    assert body["version"] and body["env"] == "test"


def test_ready_lists_every_table_and_fails_when_one_is_missing(client: TestClient) -> None:
    response = client.get("/ready")
    assert response.status_code == 200
    assert set(response.json()["tables"]) == {m.Meta.table_name for m in table_registry.models()}
    table_registry.models()[0].delete_table()
    response = client.get("/ready")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert "Retry-After" in response.headers


def test_request_id_is_echoed_or_made(client: TestClient) -> None:
    assert (
        client.get("/health", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"]
        == "abc-123"
    )
    made = client.get("/health").headers["x-request-id"]
    assert len(made) == 32
    # A header that could forge log lines is replaced, not echoed.
    forged = client.get("/health", headers={"X-Request-ID": 'x" injected'}).headers["x-request-id"]
    assert forged != 'x" injected' and len(forged) == 32


def test_unexpected_error_is_500_problem_without_internals(
    app: FastAPI, client: TestClient
) -> None:
    def broken() -> None:
        raise RuntimeError("secret internals: password=hunter2")

    app.dependency_overrides[get_passenger_service] = broken
    response = client.get("/api/v1/passengers/1", headers={"X-Request-ID": "req-500"})
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-request-id"] == "req-500"
    body = response.json()
    assert body["request_id"] == "req-500" and "hunter2" not in response.text
    assert "Traceback" not in response.text


def test_unknown_route_and_method_are_problems(client: TestClient) -> None:
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert client.put("/health").status_code == 405


def test_database_down_is_503_with_retry_after_quickly(
    client: TestClient, settings: Settings
) -> None:
    table_registry.configure(settings, "http://127.0.0.1:9", new_namespace())
    response = client.get("/api/v1/passengers/1")
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) >= 1
    body = response.json()
    assert body["status"] == 503 and "botocore" not in response.text.lower()
    assert "127.0.0.1" not in response.text


def test_log_lines_are_json_with_the_request_id() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello %s", ("you",), None)
    set_request_id("rid-1")
    try:
        line = json.loads(JsonFormatter().format(record))
    finally:
        set_request_id(None)
    assert line["message"] == "hello you" and line["request_id"] == "rid-1"


@pytest.mark.parametrize(
    ("name", "value"),
    [("PORT", "abc"), ("LOG_LEVEL", "LOUD"), ("DYNAMODB_HOST", "ftp://x"), ("APP_ENV", "a_b")],
)
def test_bad_setting_stops_start_up_with_one_line(name: str, value: str) -> None:
    env = {**os.environ, name: value}
    result = subprocess.run(
        [sys.executable, "-m", "app_lib", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("invalid configuration: ")
    assert name in lines[0] and "Traceback" not in result.stderr


def test_embedded_database_starts_seeds_and_stops_with_the_app(settings: Settings) -> None:
    embedded = settings.model_copy(update={"dynamodb_host": "embedded", "seed_on_start": True})
    app = create_app(embedded)
    with TestClient(app) as client:
        url = app.state.dynamodb_endpoint
        assert url.startswith("http://127.0.0.1:")
        assert client.get("/ready").status_code == 200
        assert len(client.get("/api/v1/passengers", params={"limit": 5}).json()["items"]) == 5
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url, timeout=5)


def test_missing_credentials_are_503_not_a_crash(
    client: TestClient, settings: Settings, dynamodb_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    # Fresh connections, so botocore looks for credentials again (and finds none).
    table_registry.configure(settings, dynamodb_endpoint, new_namespace())
    for path in ("/api/v1/passengers/1", "/ready"):
        response = client.get(path)
        assert response.status_code == 503, response.text
        assert response.json()["detail"] == "the service cannot reach its database"
        assert "credentials" not in response.text.lower()
