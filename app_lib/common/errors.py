"""Domain exceptions, raised by services, and their one mapping to RFC 9457 problem details."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

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
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pynamodb.exceptions import PynamoDBException
from starlette.exceptions import HTTPException as StarletteHTTPException

from app_lib.common.logging import current_request_id

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


class AppError(Exception):
    """Base of every error a client may see; `status` and `title` say what it is."""

    status = 500
    title = "Internal Server Error"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra

    def headers(self) -> dict[str, str]:
        return {}


class BadRequestError(AppError):
    status = 400
    title = "Bad Request"


class InvalidCursorError(BadRequestError):
    title = "Invalid cursor"


class NotFoundError(AppError):
    status = 404
    title = "Not Found"


class ConflictError(AppError):
    status = 409
    title = "Conflict"


class PreconditionFailedError(AppError):
    status = 412
    title = "Precondition Failed"


class ItemTooLargeError(AppError):
    status = 413
    title = "Content Too Large"


class UnsupportedMediaTypeError(AppError):
    status = 415
    title = "Unsupported Media Type"


class UnprocessableError(AppError):
    status = 422
    title = "Unprocessable Content"


class PreconditionRequiredError(AppError):
    status = 428
    title = "Precondition Required"


class ServiceUnavailableError(AppError):
    status = 503
    title = "Service Unavailable"

    def __init__(self, detail: str | None = None, retry_after: int = 1, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


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


class ConditionFailedError(Exception):
    """A write's condition did not hold (raised by `conditional_write` unless told otherwise)."""


def is_condition_failure(error: BaseException) -> bool:
    return _error_code(error) in (
        "ConditionalCheckFailedException",
        "TransactionCanceledException",
    )


def translate(error: BaseException) -> AppError | None:
    """The domain error for a PynamoDB/botocore failure, or None when it is a bug of ours."""
    if isinstance(error, AppError):
        return error
    if any(isinstance(item, _NETWORK_ERRORS) for item in _cause_chain(error)):
        return ServiceUnavailableError("the database did not answer in time", retry_after=2)
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
def dynamo_errors() -> Iterator[None]:
    """Turn what the database says into domain errors; anything unknown stays a bug (500)."""
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
    """`dynamo_errors()` for a conditional write: a condition that did not hold raises
    `on_failure` (default ConditionFailedError), for the caller to turn into its own answer."""
    try:
        with dynamo_errors():
            yield
    except PynamoDBException as error:
        if is_condition_failure(error):
            raise (on_failure or ConditionFailedError()) from error
        raise


def problem(
    status: int,
    title: str,
    detail: str,
    request: Request | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    body["detail"] = detail
    if request is not None:
        body["instance"] = request.url.path
    request_id = current_request_id()
    if request_id:
        body["request_id"] = request_id
    body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def _validation_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    out = []
    for item in errors:
        loc = [str(part) for part in item.get("loc", ())]
        out.append(
            {"field": ".".join(loc), "message": item.get("msg", ""), "type": item.get("type")}
        )
    return out


def install_error_handlers(app: FastAPI) -> None:
    """The one place where domain errors become HTTP responses."""

    @app.exception_handler(AppError)
    async def _app_error(request: Request, error: AppError) -> JSONResponse:
        if error.status >= 500:
            log.warning("request failed: %s", error.detail, extra={"status": error.status})
        return problem(
            error.status, error.title, error.detail, request, error.headers(), **error.extra
        )

    @app.exception_handler(PynamoDBException)
    async def _dynamo_error(request: Request, error: PynamoDBException) -> JSONResponse:
        mapped = translate(error)
        if mapped is None:
            raise error
        return await _app_error(request, mapped)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        errors = _validation_errors(error.errors())
        fields = ", ".join(item["field"] for item in errors)
        return problem(
            422, "Unprocessable Content", f"invalid input: {fields}", request, errors=errors
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        title = {404: "Not Found", 405: "Method Not Allowed"}.get(error.status_code, "Error")
        return problem(
            error.status_code,
            title,
            str(error.detail),
            request,
            dict(error.headers or {}),
        )
