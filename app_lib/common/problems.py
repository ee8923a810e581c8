"""HTTP rendering of errors as RFC 9457 problem details: the responses
(`install_error_handlers`, and `internal_error_body` for the request-id middleware's last-resort
500) and their description in the OpenAPI document (the `Problem` models, `problem_response`)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import validation_error_definition, validation_error_response_definition
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema
from pynamodb.exceptions import PynamoDBException
from starlette.exceptions import HTTPException as StarletteHTTPException

from app_lib.common.aws_errors import translate
from app_lib.common.errors import AppError
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


def problem(
    status: int,
    title: str,
    detail: str,
    request: Request | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = problem_body(
        status,
        title,
        detail,
        request.url.path if request is not None else None,
        current_request_id(),
        extra,
    )
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def problem_body(
    status: int,
    title: str,
    detail: str,
    instance: str | None = None,
    request_id: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The members of a problem, in their order; `instance` and `request_id` when known, then
    `extra` (which may override any of them)."""
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    body["detail"] = detail
    if instance is not None:
        body["instance"] = instance
    if request_id:
        body["request_id"] = request_id
    body.update(extra or {})
    return body


def internal_error_body(instance: str, request_id: str) -> bytes:
    """The 500 a crash ends in (RequestIdMiddleware), as problem+json bytes."""
    detail = "an unexpected error occurred; quote the request id to report it"
    body = problem_body(500, "Internal Server Error", detail, instance, request_id)
    return json.dumps(body).encode()


def _validation_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    out = []
    for item in errors:
        loc = [str(part) for part in item.get("loc", ())]
        out.append(
            {"field": ".".join(loc), "message": item.get("msg", ""), "type": item.get("type")}
        )
    return out


def problem_response(
    description: str, model: type[Problem] = Problem, example: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A `responses=` entry: `application/problem+json` with `model`'s schema (and `example`,
    a body as the server sends it, when given)."""
    known = _PROBLEM_MODELS.setdefault(model.__name__, model)
    if known is not model:
        raise TypeError(f"two problem models are named {model.__name__}")
    media: dict[str, Any] = {"schema": {"$ref": _SCHEMAS + model.__name__}}
    if example is not None:
        media["example"] = dict(example)
    return {"description": description, "content": {PROBLEM_JSON: media}}


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
                media = (response.get("content") or {}).get(PROBLEM_JSON) or {}
                schema = media.get("schema")
                if not (isinstance(schema, dict) and schema.get("$ref", "").startswith(_SCHEMAS)):
                    model = ValidationProblem if str(status) == "422" else Problem
                    media = problem_response("", model)["content"][PROBLEM_JSON]
                response["content"] = {PROBLEM_JSON: media}
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
