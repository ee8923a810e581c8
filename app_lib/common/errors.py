"""Domain exceptions, raised by services: what went wrong, in the client's terms. Nothing here
knows HTTP frameworks or AWS: `aws_errors` turns botocore/PynamoDB failures into these, and
`problems` renders them as RFC 9457 problem details."""

from __future__ import annotations

from typing import Any, TypeVar

_T = TypeVar("_T")


class AppError(Exception):
    """Base of every error a client may see; `status` and `title` say what it is.

    `permanent` says whether trying the same thing again can succeed: True for a client error
    (a 4xx: the input or the state is wrong, and stays so), False for a fault of ours or of a
    dependency (a 500, a 503) that may pass. A job worker stops retrying on a permanent error.
    A subclass with a 4xx status sets `permanent = True` itself."""

    status = 500
    title = "Internal Server Error"
    permanent = False

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra

    def headers(self) -> dict[str, str]:
        return {}


class BadRequestError(AppError):
    status = 400
    title = "Bad Request"
    permanent = True


class InvalidCursorError(BadRequestError):
    title = "Invalid cursor"


class UnauthorizedError(AppError):
    """No valid bearer token (RFC 6750: the challenge says why)."""

    status = 401
    title = "Unauthorized"
    permanent = True

    def headers(self) -> dict[str, str]:
        return {
            "WWW-Authenticate": 'Bearer error="invalid_token", '
            f'error_description="{_quoted(self.detail)}"'
        }


class ForbiddenError(AppError):
    """A valid token without the scope the operation needs (`scope` names it)."""

    status = 403
    title = "Forbidden"
    permanent = True

    def headers(self) -> dict[str, str]:
        scope = self.extra.get("scope", "")
        return {"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{_quoted(scope)}"'}


def _quoted(text: str) -> str:
    """Text for a quoted-string of a header (no quotes, backslashes or control characters)."""
    return "".join(c for c in str(text) if c.isprintable() and c not in '"\\')


class NotFoundError(AppError):
    status = 404
    title = "Not Found"
    permanent = True


def require_found(item: _T | None, detail: str) -> _T:
    """`item`, or NotFoundError(detail) when it is None: the body of a `valid_<x>` dependency."""
    if item is None:
        raise NotFoundError(detail)
    return item


class ConflictError(AppError):
    status = 409
    title = "Conflict"
    permanent = True


class PreconditionFailedError(AppError):
    status = 412
    title = "Precondition Failed"
    permanent = True


class ItemTooLargeError(AppError):
    status = 413
    title = "Content Too Large"
    permanent = True


class UnsupportedMediaTypeError(AppError):
    status = 415
    title = "Unsupported Media Type"
    permanent = True


class UnprocessableError(AppError):
    status = 422
    title = "Unprocessable Content"
    permanent = True


class PreconditionRequiredError(AppError):
    status = 428
    title = "Precondition Required"
    permanent = True


class ServiceUnavailableError(AppError):
    status = 503
    title = "Service Unavailable"
    permanent = False

    def __init__(self, detail: str | None = None, retry_after: int = 1, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class ConditionFailedError(Exception):
    """A write's condition did not hold (raised by `aws_errors.conditional_write` unless told
    otherwise)."""
