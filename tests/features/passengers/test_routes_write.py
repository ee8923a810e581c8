"""Writing passengers through the app: create, replace, patch, delete, with ETags."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from app_lib.common.config import get_settings
from app_lib.features.passengers.table import PassengerTable
from tests.factories import passenger_body, record_operations

URL = "/api/v1/passengers"


def create(client: TestClient, **overrides: Any) -> dict[str, Any]:
    response = client.post(URL, json=passenger_body(**overrides))
    assert response.status_code == 201, response.text
    return response.json()


def test_create_returns_201_location_and_etag(client: TestClient) -> None:
    response = client.post(URL, json=passenger_body(passenger_id="1000"))
    assert response.status_code == 201
    assert response.headers["location"] == f"{URL}/1000"
    assert response.headers["etag"] == '"1"'
    fetched = client.get(response.headers["location"])
    assert fetched.json() == response.json()


def test_create_without_id_gets_a_server_id(client: TestClient) -> None:
    first, second = create(client), create(client)
    assert first["passenger_id"] and first["passenger_id"] != second["passenger_id"]
    assert client.get(f"{URL}/{first['passenger_id']}").status_code == 200


def test_create_with_existing_id_is_409_and_keeps_the_original(client: TestClient) -> None:
    create(client, passenger_id="7", name="First, Mr. A")
    response = client.post(URL, json=passenger_body(passenger_id="7", name="Second, Mr. B"))
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert client.get(f"{URL}/7").json()["name"] == "First, Mr. A"


def test_new_passenger_is_found_by_its_filters_and_ticket(client: TestClient) -> None:
    create(client, passenger_id="p1", pclass=1, sex="male", embarked="C", ticket="A/4 99")
    listed = client.get(URL, params={"pclass": 1, "sex": "male"}).json()["items"]
    assert [p["passenger_id"] for p in listed] == ["p1"]
    by_ticket = client.get(f"{URL}/by-ticket/A/4 99").json()["items"]
    assert [p["passenger_id"] for p in by_ticket] == ["p1"]


def test_replace_rewrites_every_field_and_the_indexes(client: TestClient) -> None:
    create(client, passenger_id="r1", pclass=3, cabin="C85")
    body = passenger_body(pclass=1, sex="male", name="New, Mr. N")
    body.pop("cabin")
    response = client.put(f"{URL}/r1", json=body, headers={"If-Match": '"1"'})
    assert response.status_code == 200, response.text
    assert response.headers["etag"] == '"2"'
    got = client.get(f"{URL}/r1").json()
    assert got["pclass"] == 1 and got["cabin"] is None and got["name"] == "New, Mr. N"
    assert client.get(URL, params={"pclass": 3}).json()["items"] == []
    assert [p["passenger_id"] for p in client.get(URL, params={"pclass": 1}).json()["items"]] == [
        "r1"
    ]


def test_patch_changes_only_the_given_fields_with_update_actions(client: TestClient) -> None:
    create(client, passenger_id="u1", age=30, cabin="B5", fare=10.5)
    with record_operations(PassengerTable) as calls:
        response = client.patch(f"{URL}/u1", json={"age": 31, "cabin": None})
    assert response.status_code == 200, response.text
    assert response.headers["etag"] == '"2"'
    body = response.json()
    assert body["age"] == 31.0 and body["cabin"] is None and body["fare"] == 10.5
    update = [params for name, params in calls if name == "UpdateItem"]
    assert len(update) == 1 and [name for name, _ in calls] == ["GetItem", "UpdateItem"]
    names = set(update[0]["ExpressionAttributeNames"].values())
    assert {"age", "cabin", "version"} <= names and "fare" not in names and "name" not in names
    assert client.get(f"{URL}/u1").json() == body


def test_patch_of_a_filter_field_moves_the_item_between_pages(client: TestClient) -> None:
    create(client, passenger_id="m1", pclass=2, sex="female")
    client.patch(f"{URL}/m1", json={"sex": "male"})
    assert client.get(URL, params={"pclass": 2, "sex": "female"}).json()["items"] == []
    males = client.get(URL, params={"pclass": 2, "sex": "male"}).json()["items"]
    assert [p["passenger_id"] for p in males] == ["m1"]


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_stale_if_match_is_412_and_changes_nothing(client: TestClient, method: str) -> None:
    create(client, passenger_id="s1", name="Kept, Mr. K")
    assert client.patch(f"{URL}/s1", json={"age": 40}).headers["etag"] == '"2"'
    kwargs: dict[str, Any] = {"headers": {"If-Match": '"1"'}}
    if method == "put":
        kwargs["json"] = passenger_body(name="Lost, Mr. L")
    if method == "patch":
        kwargs["json"] = {"name": "Lost, Mr. L"}
    response = client.request(method.upper(), f"{URL}/s1", **kwargs)
    assert response.status_code == 412
    assert response.headers["content-type"] == "application/problem+json"
    after = client.get(f"{URL}/s1")
    assert after.json()["name"] == "Kept, Mr. K" and after.headers["etag"] == '"2"'


def test_matching_if_match_and_star_are_accepted(client: TestClient) -> None:
    create(client, passenger_id="e1")
    assert (
        client.patch(f"{URL}/e1", json={"age": 1}, headers={"If-Match": '"1"'}).status_code == 200
    )
    assert client.patch(f"{URL}/e1", json={"age": 2}, headers={"If-Match": "*"}).status_code == 200
    assert (
        client.patch(f"{URL}/e1", json={"age": 3}, headers={"If-Match": "garbage"}).status_code
        == 412
    )


def test_if_match_is_required_when_configured(client: TestClient) -> None:
    create(client, passenger_id="q1")
    settings = get_settings()
    settings.require_if_match = True
    try:
        response = client.patch(f"{URL}/q1", json={"age": 5})
        assert response.status_code == 428
        assert client.delete(f"{URL}/q1").status_code == 428
        assert (
            client.patch(f"{URL}/q1", json={"age": 5}, headers={"If-Match": '"1"'}).status_code
            == 200
        )
    finally:
        settings.require_if_match = False


def test_delete_is_204_then_404(client: TestClient) -> None:
    create(client, passenger_id="d1")
    assert client.delete(f"{URL}/d1").status_code == 204
    assert client.get(f"{URL}/d1").status_code == 404
    response = client.delete(f"{URL}/d1")
    assert response.status_code == 404
    assert response.json()["status"] == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (passenger_body(pclass=4), "body.pclass"),
        (passenger_body(sex="x"), "body.sex"),
        (passenger_body(age=-1), "body.age"),
        (passenger_body(name="x" * 1_000_000), "body.name"),
        (passenger_body(nickname="Molly"), "body.nickname"),
        (passenger_body(passenger_id="a/b"), "body.passenger_id"),
        ({k: v for k, v in passenger_body().items() if k != "name"}, "body.name"),
        # JSON's types are distinct: true/false is not a number, 0/1 is not a boolean.
        (passenger_body(fare=False), "body.fare"),
        (passenger_body(pclass=True), "body.pclass"),
        (passenger_body(sibsp=True), "body.sibsp"),
        (passenger_body(survived=1), "body.survived"),
        # Text is stripped of surrounding whitespace: blank text is empty text.
        (passenger_body(ticket="\u00a0"), "body.ticket"),
        (passenger_body(name=" \t "), "body.name"),
    ],
    ids=[
        *("pclass", "sex", "age", "1MB-name", "unknown-field", "bad-id", "missing-name"),
        *("fare-false", "pclass-true", "sibsp-true", "survived-1", "blank-ticket", "blank-name"),
    ],
)
def test_bad_body_is_422_naming_the_field_and_writes_nothing(
    client: TestClient, body: dict[str, Any], field: str
) -> None:
    response = client.post(URL, json=body)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert field in [e["field"] for e in response.json()["errors"]]
    assert client.get(URL).json()["items"] == []


@pytest.mark.parametrize(
    "patch", [{"name": None}, {"pclass": None}, {"age": -3}, {"shoe_size": 9}, {"sex": "x"}]
)
def test_bad_patch_is_422_and_changes_nothing(client: TestClient, patch: dict[str, Any]) -> None:
    before = create(client, passenger_id="b1")
    response = client.patch(f"{URL}/b1", json=patch)
    assert response.status_code == 422
    assert client.get(f"{URL}/b1").json() == before


def test_malformed_json_and_bad_path_id_are_422(client: TestClient) -> None:
    response = client.post(URL, content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert client.get(f"{URL}/has%20space").status_code == 422


@pytest.mark.parametrize("field", ["age", "fare"])
@pytest.mark.parametrize("value", [1e-131, 1e-200, 5e-324])
def test_numbers_dynamodb_cannot_store_are_422_on_every_write(
    client: TestClient, field: str, value: float
) -> None:
    # Below DynamoDB's smallest magnitude (1e-130): the database would refuse the write (POST,
    # PUT) or, on an emulator, store it and break the stats (PATCH).
    create(client, passenger_id="n1")
    before = client.get(f"{URL}/n1").json()
    writes = [
        client.post(URL, json=passenger_body(passenger_id="n2", **{field: value})),
        client.put(f"{URL}/n1", json=passenger_body(**{field: value})),
        client.patch(f"{URL}/n1", json={field: value}),
    ]
    for response in writes:
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert [e["field"] for e in response.json()["errors"]] == [f"body.{field}"]
    assert client.get(f"{URL}/n1").json() == before
    assert client.get(f"{URL}/n2").status_code == 404
    assert client.get(f"{URL}/stats").status_code == 200


def test_the_smallest_number_dynamodb_stores_is_accepted(client: TestClient) -> None:
    created = create(client, passenger_id="n3", fare=1e-130, age=0)
    assert (created["fare"], created["age"]) == (1e-130, 0)
    assert client.patch(f"{URL}/n3", json={"age": 1e-130}).json()["age"] == 1e-130
    assert client.get(f"{URL}/stats").json()["overall"]["total"] == 1


def test_whole_floats_are_integers_and_blank_is_documented(client: TestClient) -> None:
    # JSON Schema counts 3.0 as an integer, so the server does too.
    created = client.post(URL, json=passenger_body(passenger_id="w1", pclass=3.0, sibsp=1.0))
    assert created.status_code == 201, created.text
    assert (created.json()["pclass"], created.json()["sibsp"]) == (3, 1)
    properties = client.get("/openapi.json").json()["components"]["schemas"]["PassengerCreate"]
    ticket = properties["properties"]["ticket"]["anyOf"][0]
    blank = "[^\\s\\u0085\\ufeff]"  # not \S: see NOT_BLANK in app_lib/common/dto.py
    assert ticket["pattern"] == blank and properties["properties"]["name"]["pattern"] == blank
    # What the strip removes and what JSON Schema's \s counts, both refused as blank.
    for name in ("\u0085", "\ufeff", " \t"):
        body = passenger_body(passenger_id="w2", name=name)
        assert client.post(URL, json=body).status_code == 422, repr(name)


@pytest.mark.parametrize("field", ["survived", "pclass", "name", "sex", "sibsp", "parch"])
def test_patch_null_of_a_field_that_cannot_be_empty_is_422_and_the_document_agrees(
    client: TestClient, field: str
) -> None:
    before = create(client, passenger_id="nn1")
    response = client.patch(f"{URL}/nn1", json={field: None})
    assert response.status_code == 422
    assert [(e["field"], e["message"]) for e in response.json()["errors"]] == [
        (f"body.{field}", "Value error, may not be null")
    ]
    assert client.get(f"{URL}/nn1").json() == before
    schema = client.get("/openapi.json").json()["components"]["schemas"]["PassengerUpdate"]
    assert "null" not in str(schema["properties"][field])  # not nullable in the document either


@pytest.mark.parametrize("field", ["age", "ticket", "fare", "cabin", "embarked"])
def test_patch_null_clears_an_optional_field_as_the_document_says(
    client: TestClient, field: str
) -> None:
    create(client, passenger_id="nc1", age=30, ticket="T 1", fare=7.25, cabin="B5", embarked="S")
    response = client.patch(f"{URL}/nc1", json={field: None})
    assert response.status_code == 200, response.text
    assert response.json()[field] is None
    assert client.get(f"{URL}/nc1").json()[field] is None
    schema = client.get("/openapi.json").json()["components"]["schemas"]["PassengerUpdate"]
    assert {"type": "null"} in schema["properties"][field]["anyOf"]
