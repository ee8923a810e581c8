"""Products against the real server: CRUD, money as exact decimal strings, listings by name
(Queries of the two indexes), ETags and If-Match. No transactions: these run on dynalite too."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from app_lib.common.data import pynamodb_adapter as adapter
from app_lib.features.commerce.table import CommerceTable
from tests.features.commerce.conftest import API, PROBLEM, create_product, product_body

URL = f"{API}/products"


def raw_item(pk: str, sk: str) -> dict[str, Any]:
    """The item as stored (botocore, not the API): to see its keys."""
    client = adapter.botocore_client(CommerceTable)
    answer = client.get_item(
        TableName=CommerceTable.Meta.table_name, Key={"pk": {"S": pk}, "sk": {"S": sk}}
    )
    item: dict[str, Any] = answer.get("Item", {})
    return {name: next(iter(value.values())) for name, value in item.items()}


def test_create_answers_201_with_location_and_etag_and_get_reads_it(client: TestClient) -> None:
    response = client.post(URL, json=product_body("p1", price=10.5))
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["price"] == "10.50"  # a decimal string, always two places
    assert response.headers["Location"] == f"{URL}/p1" and response.headers["ETag"] == '"1"'
    read = client.get(f"{URL}/p1")
    assert read.status_code == 200 and read.json() == created and read.headers["ETag"] == '"1"'


def test_the_server_makes_an_id_and_a_taken_id_is_409(client: TestClient) -> None:
    body = product_body("x")
    del body["product_id"]
    made = client.post(URL, json=body)
    assert made.status_code == 201 and len(made.json()["product_id"]) == 32
    create_product(client, "p1")
    again = client.post(URL, json=product_body("p1", name="Other"))
    assert again.status_code == 409 and again.headers["content-type"] == PROBLEM
    assert client.get(f"{URL}/p1").json()["name"] == "Product p1"


def test_money_and_stock_are_checked(client: TestClient) -> None:
    for bad in (
        {"price": "10.001"},  # a fraction of a cent
        {"price": 10.001},  # as a number too
        {"price": -1},
        {"price": True},
        {"price": "NaN"},
        {"price": "abc"},
        {"stock": -1},
        {"stock": 1.5},
        {"name": ""},
        {"unknown": 1},
    ):
        response = client.post(URL, json=product_body("p1", **bad))
        assert response.status_code == 422, (bad, response.text)
        assert response.headers["content-type"] == PROBLEM
    assert client.get(URL).json()["items"] == []
    exact = create_product(client, "p2", price="0.10")
    assert exact["price"] == "0.10" and create_product(client, "p3", price=7)["price"] == "7.00"
    # A JSON number is a binary float: one within float rounding of a cent amount is that amount.
    assert create_product(client, "p4", price=0.1 + 0.2)["price"] == "0.30"
    assert create_product(client, "p5", price=999998.9999999999)["price"] == "999999.00"


def test_a_missing_product_is_404(client: TestClient) -> None:
    missing = client.get(f"{URL}/nope")
    assert missing.status_code == 404 and missing.headers["content-type"] == PROBLEM
    assert client.patch(f"{URL}/nope", json={"stock": 1}).status_code == 404
    assert client.delete(f"{URL}/nope").status_code == 404


def test_listing_is_by_name_in_any_case_in_cursor_pages(client: TestClient) -> None:
    for product_id, name in (("a", "pear"), ("b", "Apple"), ("c", "banana"), ("d", "Cherry")):
        create_product(client, product_id, name=name)
    first = client.get(URL, params={"limit": 3}).json()
    assert [p["name"] for p in first["items"]] == ["Apple", "banana", "Cherry"]
    rest = client.get(URL, params={"limit": 3, "cursor": first["next_cursor"]}).json()
    assert [p["name"] for p in rest["items"]] == ["pear"] and rest["next_cursor"] is None


def test_category_filter_is_its_own_listing(client: TestClient) -> None:
    create_product(client, "k1", name="Kettle", category="kitchen")
    create_product(client, "k2", name="Bowl", category="kitchen")
    create_product(client, "t1", name="Tea", category="pantry")
    kitchen = client.get(URL, params={"category": "kitchen", "limit": 1}).json()
    assert [p["product_id"] for p in kitchen["items"]] == ["k2"]
    rest = client.get(
        URL, params={"category": "kitchen", "limit": 1, "cursor": kitchen["next_cursor"]}
    ).json()
    assert [p["product_id"] for p in rest["items"]] == ["k1"]
    assert client.get(URL, params={"category": "none"}).json()["items"] == []
    # A cursor belongs to its listing: another category's (or the whole list's) is a 400.
    foreign = client.get(URL, params={"category": "pantry", "cursor": kitchen["next_cursor"]})
    assert foreign.status_code == 400 and foreign.headers["content-type"] == PROBLEM


def test_patch_changes_fields_and_moves_the_keys_with_them(client: TestClient) -> None:
    create_product(client, "p1", name="Zebra mug", category="kitchen")
    etag = client.get(f"{URL}/p1").headers["ETag"]
    response = client.patch(
        f"{URL}/p1",
        json={"name": "Aardvark mug", "category": "gifts", "price": "12.30"},
        headers={"If-Match": etag},
    )
    assert response.status_code == 200, response.text
    assert response.json()["price"] == "12.30" and response.headers["ETag"] == '"2"'
    stored = raw_item("PRODUCT#p1", "PRODUCT")
    assert (stored["gsi1_sk"], stored["gsi2_pk"], stored["gsi2_sk"]) == (
        "aardvark mug#p1",
        "CATEGORY#gifts",
        "aardvark mug#p1",
    )
    assert client.get(URL, params={"category": "kitchen"}).json()["items"] == []
    gifts = client.get(URL, params={"category": "gifts"}).json()["items"]
    assert [p["name"] for p in gifts] == ["Aardvark mug"]


def test_patch_with_a_stale_etag_is_412_and_null_for_a_required_field_422(
    client: TestClient,
) -> None:
    create_product(client, "p1")
    assert client.patch(f"{URL}/p1", json={"stock": 3}).status_code == 200
    stale = client.patch(f"{URL}/p1", json={"stock": 4}, headers={"If-Match": '"1"'})
    assert stale.status_code == 412 and stale.headers["content-type"] == PROBLEM
    assert client.patch(f"{URL}/p1", json={"name": None}).status_code == 422
    assert client.get(f"{URL}/p1").json()["stock"] == 3


def test_delete_honours_if_match_then_the_product_is_gone(client: TestClient) -> None:
    create_product(client, "p1")
    assert client.delete(f"{URL}/p1", headers={"If-Match": '"7"'}).status_code == 412
    assert client.delete(f"{URL}/p1", headers={"If-Match": '"1"'}).status_code == 204
    assert client.get(f"{URL}/p1").status_code == 404
    assert client.get(URL).json()["items"] == []
