"""Domain exceptions, raised by services, and their one mapping to RFC 9457 problem details:
the responses (`install_error_handlers`) and their description in the OpenAPI document (the
`Problem` models, `problem_response`)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Sequence
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
from fastapi.openapi.utils import validation_error_definition, validation_error_response_definition
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema
from pynamodb.exceptions import PynamoDBException
from starlette.exceptions import HTTPException as StarletteHTTPException

from app_lib.common.logging import current_request_id

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
# What FastAPI answers (400) when it cannot parse a JSON body for a reason other than a JSON
# syntax error: bytes that are not UTF-8, nesting too deep for the parser. A 422 here.
_BODY_NOT_PARSED = "There was an error parsing the body"
_METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT")
_SCHEMAS = "#/components/schemas/"


def _no_default(json_schema: dict[str, Any]) -> None:
    json_schema.pop("default", None)


def optional_member(description: str | None = None) -> Any:
    """A problem member that is left out when there is nothing to say (never null): not
    required, and no `null` default in the schema. (`Any`: its type is the annotation's.)"""
    return Field(None, description=description, json_schema_extra=_no_default)


class FieldProblem(BaseModel):
    """One invalid input of a 422."""

    field: str = Field(
        description="where: body.<field>, query.<name>, path.<name>, header.<name>",
        examples=["body.pclass"],
    )
    message: str = Field(examples=["Input should be less than or equal to 3"])
    type: str = Field(description="a stable code for the kind of error", examples=["le"])


class Problem(BaseModel):
    """An error, as RFC 9457 problem details (`application/problem+json`). A route may add
    members of its own (see its 4xx schemas)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="always about:blank: `status` says it all")
    title: str = Field(description="the status's name", examples=["Not Found"])
    status: int = Field(ge=400, le=599, examples=[404])
    detail: str = Field(description="what went wrong, for people", examples=["no passenger 7"])
    instance: str = optional_member("the request's path")
    request_id: str = optional_member("the X-Request-ID of the request, as in the logs")


class ValidationProblem(Problem):
    """A 422: invalid body, query, path or header, each named in `errors`."""

    errors: list[FieldProblem]


# The problem models `problem_response` was given, by name: their schemas go into the document's
# components (install_error_handlers).
_PROBLEM_MODELS: dict[str, type[Problem]] = {}


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


def is_error_code(error: BaseException, code: str) -> bool:
    """True when the database's answer behind `error` has this error code."""
    return _error_code(error) == code


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


def problem_response(description: str, model: type[Problem] = Problem) -> dict[str, Any]:
    """A `responses=` entry: `application/problem+json` with `model`'s schema."""
    known = _PROBLEM_MODELS.setdefault(model.__name__, model)
    if known is not model:
        raise TypeError(f"two problem models are named {model.__name__}")
    return {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": _SCHEMAS + model.__name__}}},
    }


def _document_problems(document: dict[str, Any]) -> None:
    """Make every error response of the document problem+json with a real schema: add the
    schemas of the problem models it names; an error response that names none (FastAPI's
    default 422, a hand-written entry) gets `ValidationProblem` (422) or `Problem`; FastAPI's
    HTTPValidationError, which the server never sends, goes."""
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            for status, response in operation.get("responses", {}).items():
                if str(status)[0] not in "45":
                    continue
                schema = (response.get("content") or {}).get(PROBLEM_JSON, {}).get("schema")
                if not (isinstance(schema, dict) and schema.get("$ref", "").startswith(_SCHEMAS)):
                    model = ValidationProblem if str(status) == "422" else Problem
                    schema = problem_response("", model)["content"][PROBLEM_JSON]["schema"]
                response["content"] = {PROBLEM_JSON: {"schema": schema}}
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name, default in (
        ("HTTPValidationError", validation_error_response_definition),
        ("ValidationError", validation_error_definition),
    ):
        if schemas.get(name) == default:
            del schemas[name]
    paths = json.dumps(document.get("paths", {}))
    used = [model for name, model in _PROBLEM_MODELS.items() if f'"{_SCHEMAS}{name}"' in paths]
    _, definitions = models_json_schema(
        [(model, "serialization") for model in used], ref_template=_SCHEMAS + "{model}"
    )
    for name, schema in definitions.get("$defs", {}).items():
        if schemas.setdefault(name, schema) != schema:
            raise RuntimeError(f"two schemas are named {name}: rename the problem model")


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves on this path (RFC 9110 15.5.6: a 405's Allow lists them
    all; Starlette's names only those of the first route whose path matched)."""
    path, root = request.scope["path"], request.scope.get("root_path", "")
    if root and path.startswith(root + "/"):
        path = path[len(root) :]  # routes match the path below the app's root path
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.routes):
        regex = getattr(route, "path_regex", None)
        if route.methods and regex is not None and regex.match(path):
            methods |= route.methods
    order = {method: n for n, method in enumerate(_METHOD_ORDER)}
    return sorted(methods, key=lambda method: (order.get(method, len(order)), method))


def _body_problem(error: BaseException | None) -> str:
    if isinstance(error, UnicodeError):
        return "the body is not valid UTF-8 (JSON text must be UTF-8)"
    if isinstance(error, RecursionError):
        return "the body is nested too deeply to parse"
    return "the body could not be parsed as JSON"


def install_error_handlers(app: FastAPI) -> None:
    """The one place where domain errors become HTTP responses, and where the OpenAPI document
    learns their shape (`_document_problems`)."""
    openapi: Callable[[], dict[str, Any]] = app.openapi

    def problem_openapi() -> dict[str, Any]:
        fresh = app.openapi_schema is None
        document = openapi()
        if fresh:
            _document_problems(document)
        return document

    setattr(app, "openapi", problem_openapi)  # noqa: B010 (mypy refuses assigning a method)

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
        if error.status_code == 400 and error.detail == _BODY_NOT_PARSED:
            # FastAPI could not parse a JSON body (not UTF-8, too deep): like malformed JSON.
            reason = _body_problem(error.__cause__)
            return await _invalid(
                request,
                RequestValidationError([{"type": "json_invalid", "loc": ("body",), "msg": reason}]),
            )
        headers = dict(error.headers or {})
        detail = str(error.detail)
        if error.status_code == 405:
            allowed = _allowed_methods(request)
            if allowed:
                headers["Allow"] = ", ".join(allowed)
                detail = f"{request.method} is not allowed here; allowed: {headers['Allow']}"
        title = {404: "Not Found", 405: "Method Not Allowed"}.get(error.status_code, "Error")
        return problem(error.status_code, title, detail, request, headers)
