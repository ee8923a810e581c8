"""The OpenAPI document as client generators read it (openapi-python-client, openapi-typescript).

- `operation_id`: the app's `generate_unique_id_function`: an operation's id is its route
  function's name (`list_passengers`, not `list_passengers_api_v1_passengers_get`), so generated
  functions read well. Route function names are unique across the app (tests/test_openapi.py).
- `install_openapi`: finishes the document when it is built (after the problem schemas of
  `problems.install_error_handlers`):
  - `X-Request-ID` declared on every response, `Retry-After` on every 503 (the server sends them
    on every one: `RequestIdMiddleware`, `ServiceUnavailableError`);
  - an optional header parameter is a plain string (or whatever its type is), never
    `anyOf [..., null]`: a header is absent or has a value, and a generated client would send
    `None` as text;
  - every field of a response model is marked required: FastAPI sends every field (it renders
    responses with no `exclude_unset`/`exclude_defaults`/`exclude_none` unless a route asks),
    but pydantic leaves fields with a default out of `required`, and a generated client would
    type them "maybe missing". Only schemas that no request uses (and no route that leaves
    fields out returns) are changed; problem schemas (error responses) are not;
  - each tag gets a description: `app.openapi_tags` when the app names one, else the first
    paragraph of the docstring of the feature package the tag's routes live in
    (`app_lib/features/<name>/__init__.py`: a feature declares its description there), or of
    the routes' module outside features (`health`).
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

from app_lib.common.http import headers

_EVERY_RESPONSE = ("X-Request-ID",)
_BY_STATUS = {"503": ("Retry-After",)}
_FEATURES_PACKAGE = "app_lib.features"
_SCHEMAS = "#/components/schemas/"


def operation_id(route: APIRoute) -> str:
    """`FastAPI(generate_unique_id_function=operation_id)`: the route function's name."""
    return route.name


def install_openapi(app: FastAPI) -> None:
    """Finish the document each time it is built (see the module's docstring). Call once the
    routers are included (the tags are read from the routes when the document is built)."""
    openapi: Callable[[], dict[str, Any]] = app.openapi

    def finished_openapi() -> dict[str, Any]:
        fresh = app.openapi_schema is None
        document = openapi()
        if fresh:
            finish_document(document, tag_descriptions(app), _leaving_fields_out(app))
        return document

    setattr(app, "openapi", finished_openapi)  # noqa: B010 (mypy refuses assigning a method)


def finish_document(
    document: dict[str, Any],
    descriptions: dict[str, str],
    leaving_fields_out: frozenset[tuple[str, str]] = frozenset(),
) -> None:
    """Response headers, optional headers not nullable, response fields required, tag
    descriptions (in place). `leaving_fields_out`: (path, method) of the operations whose
    responses may leave fields out."""
    _require_response_fields(document, leaving_fields_out)
    used_tags: list[str] = []
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            for tag in operation.get("tags", ()):
                if tag not in used_tags:
                    used_tags.append(tag)
            for status, response in operation.get("responses", {}).items():
                names = (*_EVERY_RESPONSE, *_BY_STATUS.get(str(status), ()))
                declared = response.setdefault("headers", {})
                for name, header in headers(*names).items():
                    declared.setdefault(name, header)
            for parameter in operation.get("parameters", ()):
                if parameter.get("in") == "header" and not parameter.get("required"):
                    parameter["schema"] = _not_nullable(parameter.get("schema", {}))
    tags = {tag["name"]: tag for tag in document.get("tags", [])}
    for name in used_tags:
        tag = tags.setdefault(name, {"name": name})
        if not tag.get("description") and descriptions.get(name):
            tag["description"] = descriptions[name]
    if tags:
        document["tags"] = list(tags.values())


def _leaving_fields_out(app: FastAPI) -> frozenset[tuple[str, str]]:
    """(path, method) of every operation whose route renders its response leaving fields out."""
    found = set()
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute) and (
            route.response_model_exclude_unset
            or route.response_model_exclude_defaults
            or route.response_model_exclude_none
        ):
            path = context.path_format or route.path_format
            found |= {(path, method.lower()) for method in context.methods or route.methods or ()}
    return frozenset(found)


def _refs(value: Any) -> set[str]:
    """The component names `value` refers to (`#/components/schemas/<name>`), at any depth."""
    found: set[str] = set()
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str) and ref.startswith(_SCHEMAS):
                found.add(ref.removeprefix(_SCHEMAS))
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return found


def _closure(names: set[str], schemas: dict[str, Any]) -> set[str]:
    """`names` and every schema they refer to, transitively."""
    seen: set[str] = set()
    pending = list(names)
    while pending:
        name = pending.pop()
        if name in seen or name not in schemas:
            continue
        seen.add(name)
        pending.extend(_refs(schemas[name]) - seen)
    return seen


def _require_response_fields(
    document: dict[str, Any], leaving_fields_out: frozenset[tuple[str, str]]
) -> None:
    """Mark every property required in the schemas only successful responses use."""
    schemas = document.get("components", {}).get("schemas", {})
    inputs: set[str] = set()
    outputs: set[str] = set()
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            inputs |= _refs(operation.get("parameters", [])) | _refs(operation.get("requestBody"))
            for status, response in operation.get("responses", {}).items():
                if not str(status).startswith("2"):
                    continue
                if (path, method) in leaving_fields_out:
                    inputs |= _refs(response)  # left alone, like the schemas of requests
                else:
                    outputs |= _refs(response)
    for name in _closure(outputs, schemas) - _closure(inputs, schemas):
        schema = schemas[name]
        properties = schema.get("properties")
        if isinstance(properties, dict) and properties:
            schema["required"] = list(properties)


def _not_nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """`anyOf [X, {"type": "null"}]` as X (keeping the outer description, title, ...)."""
    choices = schema.get("anyOf")
    if not isinstance(choices, list):
        return schema
    rest = [choice for choice in choices if choice != {"type": "null"}]
    if len(rest) != 1 or len(rest) == len(choices):
        return schema
    outer = {key: value for key, value in schema.items() if key not in ("anyOf", "default")}
    return {**rest[0], **outer}


def tag_descriptions(app: FastAPI) -> dict[str, str]:
    """Each tag's description: the app's `openapi_tags`, else the docstring of the feature
    package of the tag's first route (or of its module, outside features)."""
    found: dict[str, str] = {
        tag["name"]: tag["description"]
        for tag in app.openapi_tags or []
        if isinstance(tag, dict) and tag.get("description")
    }
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if not isinstance(route, APIRoute):
            continue
        for tag in route.tags:
            name = tag.value if hasattr(tag, "value") else str(tag)
            if name not in found:
                text = _docstring_of(route.endpoint)
                if text:
                    found[name] = text
    return found


def _docstring_of(endpoint: Callable[..., Any]) -> str | None:
    """The docstring of the feature package `endpoint` belongs to, or of its own module."""
    module_name = getattr(endpoint, "__module__", "") or ""
    parts = module_name.split(".")
    depth = len(_FEATURES_PACKAGE.split("."))
    if module_name.startswith(_FEATURES_PACKAGE + ".") and len(parts) > depth:
        module_name = ".".join(parts[: depth + 1])
    module = sys.modules.get(module_name)
    text = inspect.getdoc(module) if module is not None else None
    if not text:
        return None
    first = " ".join(text.strip().split("\n\n", 1)[0].split())  # its first paragraph
    return _without_name_prefix(first, parts)


def _without_name_prefix(text: str, parts: list[str]) -> str:
    """`passengers: the reference feature` as `The reference feature` (the tag says the name)."""
    head, colon, rest = text.partition(":")
    if colon and head.strip().lower() in {part.lower() for part in parts} and rest.strip():
        rest = rest.strip()
        return rest[0].upper() + rest[1:]
    return text
