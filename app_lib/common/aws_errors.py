"""The translation of AWS failures (botocore and PynamoDB; DynamoDB and SQS alike) into domain
errors: `translate`, and `aws_errors()` / `conditional_write()` around the calls."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ReadTimeoutError,
)
from pynamodb.exceptions import PynamoDBException

from app_lib.common.errors import (
    AppError,
    ConditionFailedError,
    ItemTooLargeError,
    ServiceUnavailableError,
)

log = logging.getLogger(__name__)

_UNAVAILABLE_CODES = {
    "ProvisionedThroughputExceededException": "the database is throttling requests",
    "ThrottlingException": "the database is throttling requests",
    "RequestLimitExceeded": "the database is throttling requests",
    "LimitExceededException": "the database is throttling requests",
    "ResourceNotFoundException": "a table is missing",
    "ResourceInUseException": "a table is being changed",
    "InternalServerError": "the database failed",
    "ServiceUnavailable": "the database is unavailable",
    "AWS.SimpleQueueService.NonExistentQueue": "the queue is missing",
    "QueueDoesNotExist": "the queue is missing",
}
_SETUP_ERRORS = (
    NoCredentialsError,
    PartialCredentialsError,
    CredentialRetrievalError,
    NoRegionError,
)
_NETWORK_ERRORS = (
    EndpointConnectionError,
    ConnectTimeoutError,
    ReadTimeoutError,
    ConnectionClosedError,
)


def _cause_chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        nxt = getattr(current, "cause", None) or current.__cause__ or current.__context__
        current = nxt if isinstance(nxt, BaseException) else None


def _error_code(error: BaseException) -> str | None:
    for item in _cause_chain(error):
        response = getattr(item, "response", None)
        if isinstance(response, dict):
            code = response.get("Error", {}).get("Code")
            if code:
                return str(code)
        code = getattr(item, "cause_response_code", None)
        if code:
            return str(code)
    return None


def _error_message(error: BaseException) -> str:
    for item in _cause_chain(error):
        response = getattr(item, "response", None)
        if isinstance(response, dict):
            return str(response.get("Error", {}).get("Message", ""))
    return str(error)


def is_error_code(error: BaseException, code: str) -> bool:
    """True when the AWS answer behind `error` has this error code."""
    return _error_code(error) == code


def is_condition_failure(error: BaseException) -> bool:
    return _error_code(error) in (
        "ConditionalCheckFailedException",
        "TransactionCanceledException",
    )


def _network_detail(errors: Sequence[BaseException]) -> str:
    """Say what happened: a timeout (it may be hung or overloaded), a refusal (it is not there),
    a dropped connection. (ConnectTimeoutError is also an EndpointConnectionError.)"""
    if any(isinstance(item, (ConnectTimeoutError, ReadTimeoutError)) for item in errors):
        return "the database did not answer in time"
    if any(isinstance(item, ConnectionClosedError) for item in errors):
        return "the database closed the connection"
    return "the database refused the connection (is it running?)"


def translate(error: BaseException) -> AppError | None:
    """The domain error for a PynamoDB/botocore failure, or None when it is a bug of ours."""
    if isinstance(error, AppError):
        return error
    network = [item for item in _cause_chain(error) if isinstance(item, _NETWORK_ERRORS)]
    if network:
        return ServiceUnavailableError(_network_detail(network), retry_after=2)
    if any(isinstance(item, _SETUP_ERRORS) for item in _cause_chain(error)):
        # A deployment fault (no role, no region), not a bug: not ready, and say so in the logs.
        log.error("cannot call the database: %s", error)
        return ServiceUnavailableError("the service cannot reach its database", retry_after=5)
    code = _error_code(error)
    if code in _UNAVAILABLE_CODES:
        return ServiceUnavailableError(_UNAVAILABLE_CODES[code], retry_after=1)
    if code == "ValidationException":
        message = _error_message(error).lower()
        if "size" in message and ("exceed" in message or "too large" in message):
            return ItemTooLargeError("the item is larger than DynamoDB's 400 KB limit")
    if code == "ItemCollectionSizeLimitExceededException":
        return ItemTooLargeError("the item collection is larger than DynamoDB allows")
    return None


@contextmanager
def aws_errors() -> Iterator[None]:
    """Turn what DynamoDB or SQS says into domain errors; anything unknown stays a bug (500)."""
    try:
        yield
    except (PynamoDBException, *_NETWORK_ERRORS, *_SETUP_ERRORS) as error:
        mapped = translate(error)
        if mapped is None:
            raise
        raise mapped from error
    except Exception as error:
        # botocore ClientError from direct client calls (SQS, describe_table).
        mapped = translate(error) if hasattr(error, "response") else None
        if mapped is None:
            raise
        raise mapped from error


@contextmanager
def conditional_write(on_failure: Exception | None = None) -> Iterator[None]:
    """`aws_errors()` for a conditional write: a condition that did not hold raises
    `on_failure` (default ConditionFailedError), for the caller to turn into its own answer."""
    try:
        with aws_errors():
            yield
    except PynamoDBException as error:
        if is_condition_failure(error):
            raise (on_failure or ConditionFailedError()) from error
        raise
