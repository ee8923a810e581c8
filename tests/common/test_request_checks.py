"""What every route checks before its own parameters: unknown query parameters (422), bodies
that are not JSON (415), JSON with lone surrogates (422); through the real app and database."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from pydantic import BaseModel

from app_lib.common.problems import install_error_handlers
from app_lib.common.request_checks import (
    CheckedRoute,
    check_body,
    check_request,
    checked,
    is_json_media_type,
)
from app_lib.common.routing import GatedRouter, gated
from app_lib.features.passengers.table import PassengerTable
from tests.factories import passenger_body

PASSENGERS = "/api/v1/passengers"
JOBS = "/api/v1/jobs"
PROBLEM = "application/problem+json"
TEXT = {"content-type": "text/plain"}


def passenger_count() -> int:
    return sum(1 for _ in PassengerTable.scan())


def fields(response: Any) -> list[str]:
    return [error["field"] for error in response.json()["errors"]]


# ----- unknown query parameters ----------------------------------------------------------------


def test_a_misspelled_filter_is_422_naming_it_not_an_unfiltered_page(client: TestClient) -> None:
    client.post(PASSENGERS, json=passenger_body(passenger_id="1", pclass=2))
    response = client.get(PASSENGERS, params={"pclas": 1})
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    assert fields(response) == ["query.pclas"]
    assert "query.pclas" in response.json()["detail"]
    assert "pclass" in response.json()["errors"][0]["message"]  # what the route does take
    # Every unknown name is listed, once; the declared ones still work.
    both = client.get(f"{PASSENGERS}?pclas=1&sexx=male&pclas=2&limit=5")
    assert both.status_code == 422 and fields(both) == ["query.pclas", "query.sexx"]
    assert client.get(PASSENGERS, params={"pclass": 2, "limit": 5}).status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/health",
        "/ready",
        f"{PASSENGERS}/stats",
        f"{PASSENGERS}/1",
        f"{PASSENGERS}/by-ticket/A/5 21171",
        JOBS,
        f"{JOBS}/some-id",
    ],
)
def test_every_route_refuses_query_parameters_it_does_not_declare(
    client: TestClient, path: str
) -> None:
    response = client.get(path, params={"unexpected": "1"})
    assert response.status_code == 422, response.text
    assert fields(response) == ["query.unexpected"]


def test_aliases_and_dependency_parameters_count_as_declared(client: TestClient) -> None:
    # jobs' `type` is the alias of its `job_type` parameter; limit and cursor are shared aliases.
    response = client.get(JOBS, params={"type": "x", "status": "PENDING", "limit": 5})
    assert response.status_code == 200
    assert client.get(JOBS, params={"job_type": "x"}).status_code == 422


# ----- bodies that are not JSON ----------------------------------------------------------------


def test_a_text_plain_body_is_415_and_nothing_is_written(client: TestClient) -> None:
    body = json.dumps(passenger_body(passenger_id="t1"))
    for content_type in ("text/plain", "text/plain; charset=utf-8", "application/xml"):
        response = client.post(PASSENGERS, content=body, headers={"Content-Type": content_type})
        assert response.status_code == 415, content_type
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["title"] == "Unsupported Media Type"
    assert passenger_count() == 0
    job = client.post(JOBS, content='{"type": "x"}', headers={"Content-Type": "text/plain"})
    assert job.status_code == 415


def test_json_media_types_are_accepted(client: TestClient) -> None:
    body = json.dumps(passenger_body(passenger_id="j1"))
    for n, content_type in enumerate(
        ("application/json", "application/json; charset=utf-8", "application/vnd.api+json")
    ):
        created = client.post(
            PASSENGERS,
            content=body.replace('"j1"', f'"j{n}"'),
            headers={"Content-Type": content_type},
        )
        assert created.status_code == 201, (content_type, created.text)
    patched = client.patch(
        f"{PASSENGERS}/j0",
        content='{"age": 40}',
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert patched.status_code == 200 and patched.json()["age"] == 40


def test_is_json_media_type() -> None:
    assert is_json_media_type("application/json")
    assert is_json_media_type("Application/JSON; charset=utf-8")
    assert is_json_media_type("application/problem+json")
    assert not is_json_media_type("text/plain")
    assert not is_json_media_type("text/json+xml")
    assert not is_json_media_type("application/jsonx")


def test_openapi_documents_415_on_routes_with_a_body_only(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    # And 422 everywhere: any route refuses query parameters it does not declare.
    for path, operations in paths.items():
        for method, operation in operations.items():
            assert "422" in operation["responses"], (method, path)
            problem = operation["responses"]["422"]["content"]
            assert "application/problem+json" in problem, (method, path)
    assert "415" in paths[PASSENGERS]["post"]["responses"]
    assert "415" in paths[f"{PASSENGERS}/{{passenger_id}}"]["patch"]["responses"]
    assert "415" in paths[JOBS]["post"]["responses"]
    assert "415" not in paths[PASSENGERS]["get"]["responses"]
    assert "415" not in paths[f"{PASSENGERS}/{{passenger_id}}"]["delete"]["responses"]


# ----- lone surrogates -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ('"name": "Doe\\ud800, Mrs. Jane"', "body.name"),
        ('"name": "Doe\\uDFFF, Mrs. Jane"', "body.name"),
        ('"name": "Doe, Mrs. Jane", "\\udc00": 1', "body"),
    ],
)
def test_a_lone_surrogate_anywhere_in_a_json_body_is_422_naming_the_place(
    client: TestClient, raw: str, field: str
) -> None:
    body = json.dumps(passenger_body(passenger_id="s1"))
    body = body.replace('"name": "Doe, Mrs. Jane"', raw)
    response = client.post(PASSENGERS, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    assert fields(response) == [field]
    assert "surrogate" in response.json()["errors"][0]["message"]
    assert passenger_count() == 0


@pytest.mark.parametrize(
    ("encoding", "raw"),
    [
        # json.loads decodes bytes with "surrogatepass": encoded surrogates get through too.
        ("utf-8", b'{"type": "x", "params": {"k": "a\xed\xa0\x80b"}}'),
        (
            "utf-16",
            '{"type": "x", "params": {"k": "a\ud800b"}}'.encode("utf-16-le", "surrogatepass"),
        ),
    ],
)
def test_a_surrogate_encoded_as_raw_bytes_is_422_too(
    client: TestClient, encoding: str, raw: bytes
) -> None:
    response = client.post(JOBS, content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert fields(response) == ["body.params.k"]


def test_escaped_surrogate_pairs_and_escaped_backslashes_are_fine(client: TestClient) -> None:
    body = json.dumps(passenger_body(passenger_id="e1", name="Smile \U0001f600 \\ud800"))
    assert "\\ud83d\\ude00" in body  # the emoji, as an escaped surrogate pair
    response = client.post(PASSENGERS, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "Smile \U0001f600 \\ud800"


# ----- bodies FastAPI cannot parse -------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\xff", "UTF-8"),
        (b'{"name": "Doe, Mrs. \xc3"}', "UTF-8"),  # a truncated two-byte sequence
        (b"[" * 100_000, "nested too deeply"),  # past the parser's recursion limit
    ],
    ids=["0xff", "truncated-utf8", "too-deep"],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", PASSENGERS),
        ("PUT", f"{PASSENGERS}/b1"),
        ("PATCH", f"{PASSENGERS}/b1"),
        ("POST", JOBS),
    ],
)
def test_a_json_body_that_cannot_be_parsed_is_422_naming_the_body(
    client: TestClient, raw: bytes, message: str, method: str, path: str
) -> None:
    # FastAPI answers these with an undocumented 400 "There was an error parsing the body".
    assert client.post(PASSENGERS, json=passenger_body(passenger_id="b1")).status_code == 201
    before = client.get(f"{PASSENGERS}/b1").json()
    response = client.request(
        method, path, content=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    assert fields(response) == ["body"]
    assert message in response.json()["errors"][0]["message"]
    assert response.json()["errors"][0]["type"] == "json_invalid"
    assert client.get(f"{PASSENGERS}/b1").json() == before
    assert passenger_count() == 1


# ----- how the checks are attached ---------------------------------------------------------------


class Thing(BaseModel):
    name: str


def _calls(route: Any) -> set[Any]:
    return {dependency.call for dependency in route.dependant.dependencies}


def test_gated_routes_check_themselves_without_a_dependency_to_solve() -> None:
    router = GatedRouter()

    @router.get("/things/{thing_id}")
    async def read_thing(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    @router.post("/things")
    async def make_thing(body: Thing) -> dict[str, str]:
        return {"name": body.name}

    read, make = router.routes
    assert isinstance(read, CheckedRoute) and isinstance(make, CheckedRoute)
    assert _calls(read).isdisjoint({check_request, check_body})  # the handler checks the query
    assert check_body in _calls(make)  # the body checks need the body FastAPI reads first
    assert checked(router) == []

    app = FastAPI()
    install_error_handlers(app)
    app.include_router(router, dependencies=checked(router))
    with TestClient(app) as client:
        assert client.get("/things/1").status_code == 200
        assert client.get("/things/1?color=red").status_code == 422
        assert client.post("/things", content="name=x", headers=TEXT).status_code == 415
        assert client.post("/things?color=red", json={"name": "x"}).status_code == 422
        assert client.post("/things", json={"name": "x"}).status_code == 200


def test_a_plain_router_gets_the_checks_as_a_dependency() -> None:
    plain = APIRouter()

    @plain.get("/plain")
    async def read_plain() -> dict[str, str]:
        return {}

    outer = GatedRouter()
    outer.include_router(plain)  # a plain router inside a gated one counts too
    for router in (plain, outer):
        assert [dependency.dependency for dependency in checked(router)] == [check_request]
    app = FastAPI()
    app.include_router(gated(outer), dependencies=checked(outer))
    with TestClient(app) as client:
        assert client.get("/plain").status_code == 200
        assert client.get("/plain?color=red").status_code == 422


def test_every_route_of_the_app_is_checked(client: TestClient) -> None:
    app = client.app
    assert isinstance(app, FastAPI)
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute):
            dependencies = {call for call in _calls(context) if call is not None}
            assert isinstance(route, CheckedRoute) or check_request in dependencies, route.path
