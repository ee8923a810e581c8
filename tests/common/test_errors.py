"""Translation of database failures to domain errors (the statuses clients see), and how the
errors FastAPI and Starlette raise themselves are answered."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, ConnectTimeoutError, ReadTimeoutError
from fastapi.testclient import TestClient
from pynamodb.exceptions import GetError, PutError

from app_lib.common.errors import (
    ItemTooLargeError,
    ServiceUnavailableError,
    is_condition_failure,
    translate,
)


def client_error(code: str, message: str = "") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "PutItem")


@pytest.mark.parametrize(
    "code",
    [
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "ResourceNotFoundException",
        "InternalServerError",
    ],
)
def test_throttling_missing_tables_and_server_faults_are_503(code: str) -> None:
    mapped = translate(PutError("Failed to put item", client_error(code)))
    assert isinstance(mapped, ServiceUnavailableError)
    assert int(mapped.headers()["Retry-After"]) >= 1


@pytest.mark.parametrize(
    "cause",
    [ConnectTimeoutError(endpoint_url="http://x"), ReadTimeoutError(endpoint_url="http://x")],
)
def test_timeouts_are_503(cause: Exception) -> None:
    assert isinstance(translate(GetError("Failed to get item", cause)), ServiceUnavailableError)


def test_item_size_is_413_and_other_validation_is_a_bug() -> None:
    too_big = client_error("ValidationException", "Item size has exceeded the maximum allowed size")
    assert isinstance(translate(PutError("x", too_big)), ItemTooLargeError)
    # Any other ValidationException means our request was wrong: a 500, not the client's fault.
    assert translate(PutError("x", client_error("ValidationException", "bad expression"))) is None


def test_condition_failures_are_recognised() -> None:
    assert is_condition_failure(PutError("x", client_error("ConditionalCheckFailedException")))
    assert not is_condition_failure(PutError("x", client_error("ThrottlingException")))


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/api/v1/passengers", "GET, POST"),
        ("/api/v1/passengers/1", "GET, PUT, PATCH, DELETE"),
        # /stats is also a passenger id as far as the routes go: PUT /passengers/stats is served.
        ("/api/v1/passengers/stats", "GET, PUT, PATCH, DELETE"),
        ("/api/v1/passengers/by-ticket/A/5 21171", "GET"),
        ("/api/v1/jobs", "GET, POST"),
        ("/api/v1/jobs/some-id", "GET, DELETE"),
        ("/api/v1/jobs/some-id/events", "GET"),
        ("/health", "GET"),
    ],
)
def test_405_allow_lists_every_method_the_path_serves(
    client: TestClient, path: str, allowed: str
) -> None:
    # RFC 9110 15.5.6. Starlette names only the methods of the first route whose path matched.
    for method in ("OPTIONS", "TRACE"):
        response = client.request(method, path)
        assert response.status_code == 405
        assert response.headers["allow"] == allowed
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["title"] == "Method Not Allowed"
    for method in allowed.split(", "):
        assert client.request(method, path).status_code != 405, method
