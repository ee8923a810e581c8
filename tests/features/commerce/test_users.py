"""Users against the real server: emails unique in any case (a claim item written in the same
transaction as the user), lookups and listings, email changes, deactivation."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.features.commerce.conftest import API, PROBLEM, create_user, user_body

URL = f"{API}/users"
pytestmark = pytest.mark.needs_transactions


def names(client: TestClient, **params: str) -> list[str]:
    items = client.get(URL, params=params).json()["items"]
    return [f"{u['first_name']} {u['last_name']}" for u in items]


def test_sign_up_answers_201_with_location_and_the_server_can_make_the_id(
    client: TestClient,
) -> None:
    response = client.post(URL, json=user_body("u1"))
    assert response.status_code == 201, response.text
    assert response.headers["Location"] == f"{URL}/u1" and response.headers["ETag"] == '"1"'
    assert response.json()["status"] == "active"
    assert client.get(f"{URL}/u1").json() == response.json()
    body = user_body("x", email="made@example.com")
    del body["user_id"]
    made = client.post(URL, json=body)
    assert made.status_code == 201 and len(made.json()["user_id"]) == 32


def test_a_taken_email_is_409_in_any_case_and_nothing_is_written(client: TestClient) -> None:
    create_user(client, "u1", email="Ada@Example.com")
    taken = client.post(URL, json=user_body("u2", email="ADA@example.COM"))
    assert taken.status_code == 409 and taken.headers["content-type"] == PROBLEM
    assert "ADA@example.COM" in taken.json()["detail"]
    assert client.get(f"{URL}/u2").status_code == 404


def test_a_taken_id_is_409_and_leaves_the_email_free(client: TestClient) -> None:
    create_user(client, "u1")
    again = client.post(URL, json=user_body("u1", email="fresh@example.com"))
    assert again.status_code == 409
    # The transaction wrote neither the user nor the claim: the email is still free.
    create_user(client, "u2", email="fresh@example.com")


def test_bodies_are_checked(client: TestClient) -> None:
    for bad in ({"email": "not-an-email"}, {"status": "gone"}, {"first_name": " "}, {"x": 1}):
        response = client.post(URL, json=user_body("u1", **bad))
        assert response.status_code == 422, bad
    assert client.get(f"{URL}/u1").status_code == 404
    assert client.get(f"{URL}/nobody").status_code == 404


def test_email_lookup_is_exact_in_any_case(client: TestClient) -> None:
    create_user(client, "u1", email="ada@example.com")
    create_user(client, "u2", email="adam@example.com")
    found = client.get(URL, params={"email": "ADA@example.com"}).json()
    assert [u["user_id"] for u in found["items"]] == ["u1"] and found["next_cursor"] is None
    assert client.get(URL, params={"email": "ad@example.com"}).json()["items"] == []
    inactive = client.get(URL, params={"email": "ada@example.com", "status": "inactive"})
    assert inactive.json()["items"] == []


def test_last_name_is_a_prefix_in_any_case_sorted_by_last_then_first_name(
    client: TestClient,
) -> None:
    for n, (first, last) in enumerate(
        [("Zoe", "Smith"), ("Adam", "Smith"), ("Bea", "Smithers"), ("Carl", "Jones")]
    ):
        create_user(client, f"u{n}", first_name=first, last_name=last)
    assert names(client, last_name="smi") == ["Adam Smith", "Zoe Smith", "Bea Smithers"]
    assert names(client) == ["Carl Jones", "Adam Smith", "Zoe Smith", "Bea Smithers"]
    first = client.get(URL, params={"last_name": "SMITH", "limit": 2}).json()
    rest = client.get(
        URL, params={"last_name": "SMITH", "limit": 2, "cursor": first["next_cursor"]}
    ).json()
    assert [u["user_id"] for u in first["items"] + rest["items"]] == ["u1", "u0", "u2"]


def test_status_filter_and_delete_deactivates(client: TestClient) -> None:
    create_user(client, "u1", last_name="Adams")
    create_user(client, "u2", last_name="Brown")
    deleted = client.delete(f"{URL}/u1", headers={"If-Match": '"1"'})
    assert deleted.status_code == 204
    read = client.get(f"{URL}/u1")
    assert read.status_code == 200 and read.json()["status"] == "inactive"
    assert read.headers["ETag"] == '"2"'
    assert [u["user_id"] for u in client.get(URL, params={"status": "active"}).json()["items"]] == [
        "u2"
    ]
    inactive = client.get(URL, params={"status": "inactive", "last_name": "ad"}).json()["items"]
    assert [u["user_id"] for u in inactive] == ["u1"]
    # The email stays reserved.
    assert client.post(URL, json=user_body("u3", email="U1@example.com")).status_code == 409
    assert client.delete(f"{URL}/u1", headers={"If-Match": '"1"'}).status_code == 412


def test_an_email_change_swaps_the_claims(client: TestClient) -> None:
    create_user(client, "u1", email="old@example.com")
    changed = client.patch(f"{URL}/u1", json={"email": "New@example.com"})
    assert changed.status_code == 200 and changed.json()["email"] == "New@example.com"
    assert changed.headers["ETag"] == '"2"'
    # The old email is free again, the new one is taken (in any case).
    create_user(client, "u2", email="OLD@example.com")
    assert client.post(URL, json=user_body("u3", email="new@EXAMPLE.com")).status_code == 409
    found = client.get(URL, params={"email": "new@example.com"}).json()["items"]
    assert [u["user_id"] for u in found] == ["u1"]


def test_an_email_change_to_a_taken_email_is_409_and_changes_nothing(client: TestClient) -> None:
    create_user(client, "u1", email="one@example.com")
    create_user(client, "u2", email="two@example.com")
    taken = client.patch(f"{URL}/u1", json={"email": "TWO@example.com", "first_name": "X"})
    assert taken.status_code == 409 and taken.headers["content-type"] == PROBLEM
    read = client.get(f"{URL}/u1")
    assert read.json()["email"] == "one@example.com" and read.json()["first_name"] == "Ada"
    assert read.headers["ETag"] == '"1"'
    found = client.get(URL, params={"email": "one@example.com"}).json()["items"]
    assert [u["user_id"] for u in found] == ["u1"]


def test_a_change_of_case_only_keeps_the_claim(client: TestClient) -> None:
    create_user(client, "u1", email="ada@example.com")
    changed = client.patch(f"{URL}/u1", json={"email": "ADA@example.com"})
    assert changed.status_code == 200 and changed.json()["email"] == "ADA@example.com"
    found = client.get(URL, params={"email": "ada@EXAMPLE.com"}).json()["items"]
    assert [u["user_id"] for u in found] == ["u1"]


def test_patch_honours_if_match_and_moves_the_name_keys(client: TestClient) -> None:
    create_user(client, "u1", last_name="Zed")
    create_user(client, "u2", last_name="Young")
    stale = client.patch(f"{URL}/u1", json={"last_name": "Able"}, headers={"If-Match": '"5"'})
    assert stale.status_code == 412
    moved = client.patch(f"{URL}/u1", json={"last_name": "Able"}, headers={"If-Match": '"1"'})
    assert moved.status_code == 200
    assert [u["user_id"] for u in client.get(URL).json()["items"]] == ["u1", "u2"]
    assert client.get(URL, params={"last_name": "zed"}).json()["items"] == []
