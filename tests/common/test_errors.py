"""Translation of database failures to domain errors (the statuses clients see), and how the
errors FastAPI and Starlette raise themselves are answered."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, ConnectTimeoutError, ReadTimeoutError
from fastapi.testclient import TestClient
from pynamodb.exceptions import GetError, PutError
from starlette.types import Receive, Scope, Send

from app_lib.common.aws_errors import is_condition_failure, translate
from app_lib.common.errors import (
    AppError,
    BadRequestError,
    ConflictError,
    InvalidCursorError,
    ItemTooLargeError,
    NotFoundError,
    PreconditionFailedError,
    PreconditionRequiredError,
    ServiceUnavailableError,
    UnprocessableError,
    UnsupportedMediaTypeError,
)
from app_lib.common.middleware import RequestIdMiddleware


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


def test_client_errors_are_permanent_and_faults_are_not() -> None:
    # The job worker stops retrying on a permanent error (features/jobs/worker.describe).
    assert not AppError.permanent and not ServiceUnavailableError.permanent
    for error in (
        BadRequestError,
        InvalidCursorError,
        NotFoundError,
        ConflictError,
        PreconditionFailedError,
        ItemTooLargeError,
        UnsupportedMediaTypeError,
        UnprocessableError,
        PreconditionRequiredError,
    ):
        assert error.status < 500 and error.permanent, error


def test_a_crash_is_a_500_problem_with_the_request_id() -> None:
    async def crash(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("boom")

    client = TestClient(RequestIdMiddleware(crash), raise_server_exceptions=False)
    response = client.get("/somewhere", headers={"X-Request-ID": "req-1"})
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-request-id"] == "req-1"
    assert response.json() == {
        "type": "about:blank",
        "title": "Internal Server Error",
        "status": 500,
        "detail": "an unexpected error occurred; quote the request id to report it",
        "instance": "/somewhere",
        "request_id": "req-1",
    }
