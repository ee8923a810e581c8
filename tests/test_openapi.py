"""The OpenAPI document is true: every operation is described and lists its error statuses, each
with the problem+json schema the server answers with; input constraints are JSON Schema."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient


def test_every_api_operation_has_a_docstring_and_its_problem_statuses(app: FastAPI) -> None:
    document = app.openapi()
    missing = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            name = f"{method.upper()} {path}"
            if not operation.get("description"):
                missing.append(f"{name}: no docstring")
            responses = operation.get("responses", {})
            if path.startswith("/api/v1") and "503" not in responses:
                missing.append(f"{name}: 503 not documented")
            if "{" in path and path.startswith("/api/v1") and "404" not in responses:
                missing.append(f"{name}: 404 not documented")
            if method in ("put", "patch", "delete") and "412" not in responses:
                missing.append(f"{name}: 412 not documented")
    assert missing == []


# ----- errors: problem+json with a real schema everywhere ---------------------------------------

PROBLEM = "application/problem+json"
SCHEMAS = "#/components/schemas/"


def schema_of(document: dict[str, Any], ref: str) -> dict[str, Any]:
    return {"$ref": ref, "components": document["components"]}


def all_keys(value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, child in value.items():
            yield key, child
            yield from all_keys(child)
    elif isinstance(value, list):
        for child in value:
            yield from all_keys(child)


def test_every_error_response_is_problem_json_with_a_schema(app: FastAPI) -> None:
    document = app.openapi()
    schemas = document["components"]["schemas"]
    wrong = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if status[0] not in "45":
                    continue
                content = response.get("content", {})
                ref = content.get(PROBLEM, {}).get("schema", {}).get("$ref", "")
                if list(content) != [PROBLEM] or ref.removeprefix(SCHEMAS) not in schemas:
                    wrong.append(f"{method.upper()} {path} {status}: {content}")
                elif status == "422" and "errors" not in schemas[ref.removeprefix(SCHEMAS)].get(
                    "properties", {}
                ):
                    wrong.append(f"{method.upper()} {path} 422 does not describe `errors`")
    assert wrong == []
    problem = schemas["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail"}
    assert {"instance", "request_id"} <= set(problem["properties"])
    assert schemas["ValidationProblem"]["required"][-1] == "errors"
    field = schemas["FieldProblem"]["properties"]
    assert set(field) == {"field", "message", "type"}


def test_fastapis_default_validation_schemas_appear_nowhere(app: FastAPI) -> None:
    text = json.dumps(app.openapi())
    assert "HTTPValidationError" not in text
    assert f'"{SCHEMAS}ValidationError"' not in text
    assert "ValidationError" not in app.openapi()["components"]["schemas"]


def test_a_route_documents_the_members_its_problems_add(app: FastAPI) -> None:
    document = app.openapi()
    ref = document["paths"]["/api/v1/jobs"]["post"]["responses"]["422"]["content"][PROBLEM]
    schema = document["components"]["schemas"][ref["schema"]["$ref"].removeprefix(SCHEMAS)]
    assert {"errors", "known_types"} <= set(schema["properties"])
    # Neither is required: an Idempotency-Key reused with another body has neither.
    assert not {"errors", "known_types"} & set(schema["required"])


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("GET", "/api/v1/passengers/by-ticket/" + "x" * 65, {}, 422),
        ("GET", "/api/v1/passengers/nobody", {}, 404),
        ("GET", "/api/v1/passengers", {"params": {"cursor": "forged.cursor"}}, 400),
        ("POST", "/api/v1/passengers", {"json": {"pclass": 9}}, 422),
        ("PATCH", "/api/v1/passengers/nobody", {"json": {}, "headers": {"If-Match": "x"}}, 404),
        ("POST", "/api/v1/jobs", {"json": {"type": "no.such.type"}}, 422),
        ("POST", "/api/v1/jobs", {"content": b"\xff"}, 422),
        ("POST", "/api/v1/jobs", {"content": "{}", "headers": {"Content-Type": "text/plain"}}, 415),
        ("GET", "/api/v1/jobs", {"params": {"type": ""}}, 422),
    ],
)
def test_error_responses_match_the_schema_the_document_gives_them(
    client: TestClient, method: str, path: str, kwargs: dict[str, Any], status: int
) -> None:
    document = client.get("/openapi.json").json()
    response = client.request(method, path, **kwargs)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    template = path if path in document["paths"] else None
    for documented in document["paths"]:
        prefix = documented.split("{")[0]
        if template is None and "{" in documented and path.startswith(prefix):
            template = documented
    assert template is not None
    content = document["paths"][template][method.lower()]["responses"][str(status)]["content"]
    jsonschema.validate(response.json(), schema_of(document, content[PROBLEM]["schema"]["$ref"]))


# ----- what the document says about input ------------------------------------------------------

# Pydantic's names for constraints: in a JSON Schema they constrain nothing (JSON Schema says
# minimum, maximum, exclusiveMinimum, ..., minLength), so a client or fuzzer ignores them.
PYDANTIC_ONLY = {"ge", "le", "gt", "lt", "multiple_of", "min_length", "max_length"}


def test_every_constraint_is_a_json_schema_keyword(app: FastAPI) -> None:
    document = app.openapi()
    found = [
        (key, value)
        for key, value in all_keys(document["components"]["schemas"])
        if key in PYDANTIC_ONLY and not isinstance(value, dict)
    ]
    found += [
        (key, value)
        for key, value in all_keys(document["paths"])
        if key in PYDANTIC_ONLY and not isinstance(value, dict)
    ]
    assert found == []


@pytest.mark.parametrize("model", ["PassengerCreate", "PassengerReplace", "PassengerUpdate"])
def test_age_and_fare_are_bounded_in_the_document(app: FastAPI, model: str) -> None:
    properties = app.openapi()["components"]["schemas"][model]["properties"]
    for field, high in (("age", 150), ("fare", 100_000)):
        number = next(s for s in properties[field]["anyOf"] if s.get("type") == "number")
        assert (number["minimum"], number["maximum"]) == (0, high)


def test_string_filters_that_reach_a_key_condition_may_not_be_empty(app: FastAPI) -> None:
    # DynamoDB refuses an empty string as a key value: the document says so, the server 422s.
    parameters = app.openapi()["paths"]["/api/v1/jobs"]["get"]["parameters"]
    job_type = next(p for p in parameters if p["name"] == "type")
    string = next(s for s in job_type["schema"]["anyOf"] if s.get("type") == "string")
    assert string["minLength"] == 1
