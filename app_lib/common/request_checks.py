"""Checks every route's request passes before its own parameters are validated.

No feature has to list anything: the routes of a `GatedRouter` are `CheckedRoute`s, and
`create_app` adds `check_request` as a dependency to a router that has other routes.
- query parameters the route does not declare are a 422 naming them (a misspelled filter must
  not silently return unfiltered data);
- a route that takes a JSON body refuses another declared Content-Type with 415;
- a JSON body whose strings or keys hold a lone UTF-16 surrogate (`"\\ud800"`) is a 422 naming
  the place: such text cannot be stored as UTF-8 nor rendered in a response. The extra work is
  done only when the raw body contains a surrogate escape or is not plain UTF-8.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Union, get_args, get_origin

from fastapi import APIRouter, Depends, FastAPI, Request, Response, params
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import AliasChoices, BaseModel

from app_lib.common.dto import json_problem
from app_lib.common.errors import UnsupportedMediaTypeError
from app_lib.common.http import problems
from app_lib.common.openapi import install_openapi

# A JSON escape of a UTF-16 surrogate, \ud800 .. \udfff (either case).
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SHAPE_ATTRIBUTE = "_app_lib_request_shape"
_DOCUMENTED = problems(415, 422)
UNSUPPORTED_MEDIA_TYPE, INVALID_INPUT = _DOCUMENTED[415], _DOCUMENTED[422]


@dataclass(frozen=True)
class _Shape:
    """What a route accepts, worked out once per route."""

    query: frozenset[str]
    json_body: bool


def is_json_media_type(content_type: str) -> bool:
    """`application/json` or `application/<anything>+json`, parameters (charset) ignored."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/json":
        return True
    kind, _, subtype = media.partition("/")
    return kind == "application" and subtype.endswith("+json")


async def check_request(request: Request) -> None:
    """Every check, as a dependency (async: no threadpool hop; the body is already read and
    cached by FastAPI when the route takes one)."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    shape = _shape(route)
    _check_query(request, shape)
    await _check_body(request, shape)


async def check_body(request: Request) -> None:
    """The body checks, as the dependency of a CheckedRoute that takes a JSON body."""
    route = request.scope.get("route")
    if isinstance(route, APIRoute):
        await _check_body(request, _shape(route))


class CheckedRoute(APIRoute):
    """An APIRoute whose requests pass the checks without a dependency to solve (FastAPI
    spends ~13 us of CPU a request on each, some 1% of a read served from DynamoDB): its
    handler checks the query first. A route that takes a JSON body gets `check_body` as a
    dependency: that check needs the body, which FastAPI reads (within its size limit) before
    it solves the dependencies."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        if _shape(self).json_body:
            kwargs["dependencies"] = [*(kwargs.get("dependencies") or ()), Depends(check_body)]
            super().__init__(path, endpoint, **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        shape = _shape(self)

        async def check_then_handle(request: Request) -> Response:
            _check_query(request, shape)
            return await handler(request)

        return check_then_handle


def checked(router: APIRouter) -> list[Any]:
    """The dependencies to include `router` with: none when every route of it (included
    routers too) is a CheckedRoute, else `check_request`."""
    checks_itself = all(
        isinstance(context.original_route, CheckedRoute)
        for context in iter_route_contexts(router.routes)
        if isinstance(context.original_route, APIRoute)
    )
    return [] if checks_itself else [Depends(check_request)]


def _check_query(request: Request, shape: _Shape) -> None:
    unknown = (
        [name for name in dict.fromkeys(request.query_params.keys()) if name not in shape.query]
        if request.scope.get("query_string")
        else None
    )
    if unknown:
        takes = ", ".join(sorted(shape.query)) or "none"
        raise RequestValidationError(
            [
                {
                    "type": "extra_forbidden",
                    "loc": ("query", name),
                    "msg": f"unknown query parameter (this route takes: {takes})",
                }
                for name in unknown
            ]
        )


async def _check_body(request: Request, shape: _Shape) -> None:
    if not shape.json_body:
        return
    content_type = request.headers.get("content-type")
    if content_type is not None and not is_json_media_type(content_type):
        raise UnsupportedMediaTypeError(
            f"send the body as application/json (got {content_type[:100]!r})"
        )
    body = await request.body()
    if body and _may_hold_surrogates(body):
        _refuse_surrogates(body)


def _may_hold_surrogates(body: bytes) -> bool:
    """Cheap: an escape `\\udXXX`, or bytes that are not plain UTF-8 (json.loads decodes bytes
    with "surrogatepass", so raw surrogates in UTF-8, UTF-16 or UTF-32 get through too)."""
    if _SURROGATE_ESCAPE.search(body):
        return True
    if body.isascii():
        return False
    try:
        body.decode("utf-8")  # strict UTF-8 refuses encoded surrogates
    except UnicodeDecodeError:
        return True
    return False


def _refuse_surrogates(body: bytes) -> None:
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return  # not JSON after all: FastAPI's own parsing answers for it
    found = json_problem(value, max_depth=sys.maxsize)
    if found is None:
        return  # escaped surrogate pairs: valid Unicode
    path, reason = found
    raise RequestValidationError(
        [{"type": "string_unicode", "loc": ("body", *path), "msg": f"the value {reason}"}]
    )


def _shape(route: APIRoute) -> _Shape:
    shape = getattr(route, _SHAPE_ATTRIBUTE, None)
    if isinstance(shape, _Shape):
        return shape
    query: set[str] = set()
    has_body = False
    pending = [route.dependant]
    while pending:
        dependant = pending.pop()
        for field in dependant.query_params:
            query |= _query_names(field.field_info.annotation, field.field_info, field.name)
        has_body = has_body or any(
            not isinstance(field.field_info, params.Form) for field in dependant.body_params
        )
        pending.extend(dependant.dependencies)
    shape = _Shape(frozenset(query), has_body)
    setattr(route, _SHAPE_ATTRIBUTE, shape)
    return shape


def _query_names(annotation: Any, info: Any, name: str) -> set[str]:
    """The query keys a parameter reads: its alias (or name), its validation aliases; for a
    pydantic model of query parameters, those of each of its fields."""
    model = _model_type(annotation)
    if model is not None:
        names: set[str] = set()
        by_name = bool(
            model.model_config.get("validate_by_name") or model.model_config.get("populate_by_name")
        )
        for field_name, field in model.model_fields.items():
            names |= _aliases(field, field_name, by_name)
        return names
    return _aliases(info, name, by_name=False)


def _aliases(info: Any, name: str, by_name: bool) -> set[str]:
    alias = getattr(info, "alias", None)
    names = {alias or name}
    if by_name:
        names.add(name)
    validation = getattr(info, "validation_alias", None)
    if isinstance(validation, str):
        names.add(validation)
    elif isinstance(validation, AliasChoices):
        names |= {choice for choice in validation.choices if isinstance(choice, str)}
    return names


def _model_type(annotation: Any) -> type[BaseModel] | None:
    if get_origin(annotation) is Union or type(annotation).__name__ == "UnionType":
        args = [arg for arg in get_args(annotation) if arg is not type(None)]
        annotation = args[0] if len(args) == 1 else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def document_request_checks(app: FastAPI) -> None:
    """Document what `check_request` answers: 422 on every route (unknown query parameters),
    415 on every route that takes a JSON body; and have the document finished when it is built
    (`openapi.install_openapi`: response headers, plain optional headers, tag descriptions)."""
    install_openapi(app)
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if not isinstance(route, APIRoute):
            continue
        added: dict[int | str, dict[str, Any]] = {422: INVALID_INPUT}
        if _shape(route).json_body:
            added[415] = UNSUPPORTED_MEDIA_TYPE
        # The route itself (for inclusions built later) and this app's copy of its responses.
        responses = getattr(context, "responses", None)
        for target in (route.responses, responses):
            if isinstance(target, dict):
                for status, response in added.items():
                    if status not in target and str(status) not in target:
                        target[status] = response
