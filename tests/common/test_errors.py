"""Translation of database failures to domain errors (the statuses clients see)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, ConnectTimeoutError, ReadTimeoutError
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
