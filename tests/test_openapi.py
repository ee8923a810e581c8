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


# ----- what client generators read: ids, tags, headers, required fields, examples ------------


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def test_operation_ids_are_the_route_functions_names(app: FastAPI) -> None:
    from fastapi.routing import APIRoute, iter_route_contexts

    document = app.openapi()
    ids = [operation["operationId"] for _, _, operation in operations(document)]
    assert len(ids) == len(set(ids)), sorted(ids)
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute) and route.include_in_schema:
            for method in context.methods or route.methods:
                operation = document["paths"][context.path_format][method.lower()]
                assert operation["operationId"] == route.name
    assert document["paths"]["/api/v1/passengers"]["get"]["operationId"] == "list_passengers"


def test_every_tag_has_a_description(app: FastAPI) -> None:
    document = app.openapi()
    used = {tag for _, _, operation in operations(document) for tag in operation.get("tags", [])}
    described = {tag["name"]: tag.get("description") for tag in document.get("tags", [])}
    assert used <= set(described)
    assert all(described[tag] for tag in used), described
    assert described["jobs"].startswith("Long work off the request path.")


def test_every_response_declares_its_request_id_and_every_503_its_retry_after(
    app: FastAPI,
) -> None:
    missing = []
    for path, method, operation in operations(app.openapi()):
        for status, response in operation["responses"].items():
            declared = response.get("headers", {})
            wanted = ["X-Request-ID"] + (["Retry-After"] if status == "503" else [])
            missing += [
                f"{method} {path} {status} {name}" for name in wanted if name not in declared
            ]
    assert missing == []


# Operations that answer one item, with the status whose response carries its ETag (and, for a
# create, its Location).
ETAGGED = [
    ("/api/v1/passengers/{passenger_id}", "get", "200"),
    ("/api/v1/passengers/{passenger_id}", "put", "200"),
    ("/api/v1/passengers/{passenger_id}", "patch", "200"),
    ("/api/v1/passengers", "post", "201"),
    ("/api/v1/students/{student_id}", "get", "200"),
    ("/api/v1/students/{student_id}", "put", "200"),
    ("/api/v1/students/{student_id}", "patch", "200"),
    ("/api/v1/students", "post", "201"),
    ("/api/v1/students/{student_id}/grades", "post", "200"),
    ("/api/v1/students/{student_id}/grades/{index}", "delete", "200"),
    ("/api/v1/jobs", "post", "202"),
    ("/api/v1/jobs/{job_id}", "get", "200"),
    ("/api/v1/jobs/{job_id}", "delete", "200"),
]


@pytest.mark.parametrize(("path", "method", "status"), ETAGGED)
def test_reads_and_writes_declare_their_etag_and_creates_their_location(
    app: FastAPI, path: str, method: str, status: str
) -> None:
    declared = app.openapi()["paths"][path][method]["responses"][status]["headers"]
    assert declared["ETag"]["required"] is True
    assert declared["ETag"]["schema"]["pattern"] == '^"[0-9]+"$'
    if status in ("201", "202"):
        assert declared["Location"]["required"] is True


@pytest.mark.parametrize("feature", ["passengers", "students"])
def test_every_created_response_declares_its_location(app: FastAPI, feature: str) -> None:
    created = [
        (path, method, operation["responses"]["201"].get("headers", {}))
        for path, method, operation in operations(app.openapi())
        if "201" in operation["responses"] and path.startswith(f"/api/v1/{feature}")
    ]
    assert created
    assert [(p, m) for p, m, headers in created if "Location" not in headers] == []


def test_declared_headers_are_sent(client: TestClient) -> None:
    """Every header the document marks required for a status is in the response, as described."""
    document = client.get("/openapi.json").json()
    url = "/api/v1/passengers"
    created = client.post(url, json={"survived": True, "pclass": 1, "name": "A", "sex": "male"})
    item = created.headers["location"]
    patched = client.patch(item, json={"age": 3}, headers={"If-Match": created.headers["etag"]})
    replaced = client.put(
        item,
        json={"survived": False, "pclass": 2, "name": "B", "sex": "female"},
        headers={"If-Match": patched.headers["etag"]},
    )
    one = f"{url}/{{passenger_id}}"
    calls = [
        ("post", url, created),
        ("get", url, client.get(url)),
        ("get", one, client.get(item)),
        ("patch", one, patched),
        ("put", one, replaced),
        ("put", one, client.put(item, json=replaced.json(), headers={"If-Match": '"1"'})),
        ("delete", one, client.delete(item, headers={"If-Match": replaced.headers["etag"]})),
        ("get", one, client.get(f"{url}/nobody")),
        ("post", url, client.post(url, json={"pclass": 9})),
    ]
    for method, template, response in calls:
        described = document["paths"][template][method]["responses"][str(response.status_code)]
        for name, header in described.get("headers", {}).items():
            if header.get("required"):
                assert name in response.headers, (method, template, response.status_code, name)
                jsonschema.validate(response.headers[name], header["schema"])
    statuses = [response.status_code for _, _, response in calls]
    assert statuses == [201, 200, 200, 200, 200, 422, 204, 404, 422]


def test_optional_header_parameters_are_plain_strings_not_nullable(app: FastAPI) -> None:
    nullable = []
    if_match = []
    for path, method, operation in operations(app.openapi()):
        for parameter in operation.get("parameters", []):
            if parameter["in"] != "header":
                continue
            if "anyOf" in parameter["schema"] or "null" in json.dumps(parameter["schema"]):
                nullable.append(f"{method} {path} {parameter['name']}")
            if parameter["name"].lower() == "if-match":
                if_match.append((method, parameter["required"], parameter["schema"]["type"]))
    assert nullable == []
    assert if_match and all(entry[1:] == (False, "string") for entry in if_match)
    assert {entry[0] for entry in if_match} >= {"put", "patch", "delete"}


def referenced(value: Any) -> set[str]:
    return {
        child.removeprefix(SCHEMAS)
        for key, child in all_keys(value)
        if key == "$ref" and isinstance(child, str)
    }


def test_response_schemas_require_every_field_they_always_send(app: FastAPI) -> None:
    document = app.openapi()
    schemas = document["components"]["schemas"]
    names = {
        name
        for _, _, operation in operations(document)
        for status, response in operation["responses"].items()
        if status.startswith("2")
        for name in referenced(response)
    }
    pending, seen = list(names), set()
    while pending:
        name = pending.pop()
        if name not in seen:
            seen.add(name)
            pending += referenced(schemas[name])
    assert {"JobOut", "JobPage", "PassengerRead", "StudentRead", "PassengerStats"} <= seen
    optional = {
        name: sorted(
            set(schemas[name].get("properties", {})) - set(schemas[name].get("required", []))
        )
        for name in seen
    }
    assert {name: fields for name, fields in optional.items() if fields} == {}


# What makes two schemas the same type for a client: constraints, titles and texts do not.
NOT_A_TYPE = {
    "title",
    "description",
    "examples",
    "default",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "not",
    "maxItems",
    "minItems",
}


def shape(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: shape(child) for key, child in value.items() if key not in NOT_A_TYPE}
    if isinstance(value, list):
        return [shape(child) for child in value]
    return value


@pytest.mark.parametrize(
    ("read", "write"),
    [
        ("PassengerRead", "PassengerReplace"),
        ("PassengerRead", "PassengerCreate"),
        ("StudentRead", "StudentReplace"),
        ("StudentRead", "StudentCreate"),
    ],
)
def test_a_read_has_the_types_of_the_write_bodies(app: FastAPI, read: str, write: str) -> None:
    schemas = app.openapi()["components"]["schemas"]
    read_fields = schemas[read]["properties"]
    write_fields = schemas[write]["properties"]
    for name, schema in write_fields.items():
        # A create's id may be left out or null (the server makes one); a read always has one.
        if name in read_fields and not (write.endswith("Create") and name == "passenger_id"):
            assert shape(read_fields[name]) == shape(schema), name
    # What a read has and the body lacks: only the id (in the path) and computed values.
    extra = set(read_fields) - set(write_fields)
    assert all(name.endswith("_id") or read_fields[name].get("readOnly") for name in extra)
    assert schemas["Sex"]["enum"] == ["male", "female"]


def test_examples_match_their_schemas(app: FastAPI) -> None:
    document = app.openapi()
    checked = 0
    for _, _, operation in operations(document):
        contents = [operation.get("requestBody", {}).get("content", {})]
        contents += [response.get("content", {}) for response in operation["responses"].values()]
        for content in contents:
            for media in content.values():
                if "example" in media and "$ref" in media.get("schema", {}):
                    ref = media["schema"]["$ref"]
                    jsonschema.validate(media["example"], schema_of(document, ref))
                    checked += 1
    assert checked > 50
