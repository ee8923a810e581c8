"""The students routes against the real server: every generated route, with its errors."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

BASE = "/api/v1/students"
PROBLEM = "application/problem+json"


def body(n: int, **changes: Any) -> dict[str, Any]:
    """A valid student, different for each n."""
    return {
        "student_id": n,
        "first_name": f"first_name {n}",
        "last_name": f"last_name {n}",
        "grades": [n, n + 1],
        **changes,
    }


def create(client: TestClient, n: int, **changes: Any) -> dict[str, Any]:
    response = client.post(BASE, json=body(n, **changes))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def test_create_answers_201_with_location_and_etag_then_get_reads_it(client: TestClient) -> None:
    response = client.post(BASE, json=body(1))
    assert response.status_code == 201, response.text
    created = response.json()
    location = f"{BASE}/{created['student_id']}"
    assert response.headers["Location"] == location
    assert response.headers["ETag"] == '"1"'
    read = client.get(location)
    assert read.status_code == 200 and read.json() == created
    assert read.headers["ETag"] == '"1"'


def test_create_with_an_existing_id_is_409(client: TestClient) -> None:
    first = create(client, 1)
    again = client.post(BASE, json=body(2, student_id=first["student_id"]))
    assert again.status_code == 409 and again.headers["content-type"] == PROBLEM


def test_bodies_are_checked(client: TestClient) -> None:
    unknown = client.post(BASE, json=body(1, no_such_field=1))
    assert unknown.status_code == 422 and unknown.headers["content-type"] == PROBLEM
    missing = {key: value for key, value in body(1).items() if key != "first_name"}
    assert client.post(BASE, json=missing).status_code == 422
    assert client.get(BASE).json()["items"] == []


def test_a_missing_student_is_404_and_a_bad_id_422(client: TestClient) -> None:
    missing = client.get(f"{BASE}/987654321")
    assert missing.status_code == 404 and missing.headers["content-type"] == PROBLEM
    assert client.get(f"{BASE}/not-a-number").status_code == 422


def test_list_pages_through_every_student(client: TestClient) -> None:
    ids = {create(client, n)["student_id"] for n in (1, 2, 3)}
    first = client.get(BASE, params={"limit": 2}).json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    rest = client.get(BASE, params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert rest["next_cursor"] is None
    assert {item["student_id"] for item in first["items"] + rest["items"]} == ids


def test_list_filters_by_last_name(client: TestClient) -> None:
    wanted = create(client, 1)
    create(client, 2)
    page = client.get(BASE, params={"last_name": wanted["last_name"]}).json()
    found = [item["student_id"] for item in page["items"]]
    assert found == [wanted["student_id"]]


def test_put_replaces_every_field(client: TestClient) -> None:
    created = create(client, 1)
    url = f"{BASE}/{created['student_id']}"
    replacement = {key: value for key, value in body(2).items() if key != "student_id"}
    response = client.put(url, json=replacement, headers={"If-Match": '"1"'})
    assert response.status_code == 200, response.text
    grades = replacement["grades"]
    average = round(sum(grades) / len(grades), 2)
    assert response.json() == {
        **replacement,
        "student_id": created["student_id"],
        "average": average,
    }
    assert response.headers["ETag"] == '"2"'
    assert client.get(url).json() == response.json()


def test_patch_changes_only_the_given_field(client: TestClient) -> None:
    created = create(client, 1)
    url = f"{BASE}/{created['student_id']}"
    change = {"first_name": body(2)["first_name"]}
    response = client.patch(url, json=change)
    assert response.status_code == 200, response.text
    assert response.json() == {**created, **change}
    assert client.get(url).headers["ETag"] == '"2"'


def test_a_stale_if_match_is_412_and_changes_nothing(client: TestClient) -> None:
    created = create(client, 1)
    url = f"{BASE}/{created['student_id']}"
    change = {"first_name": body(2)["first_name"]}
    assert client.patch(url, json=change).status_code == 200
    stale = client.patch(
        url, json={"first_name": body(3)["first_name"]}, headers={"If-Match": '"1"'}
    )
    assert stale.status_code == 412 and stale.headers["content-type"] == PROBLEM
    assert client.get(url).json() == {**created, **change}


def test_delete_answers_204_then_404(client: TestClient) -> None:
    created = create(client, 1)
    url = f"{BASE}/{created['student_id']}"
    assert client.delete(url).status_code == 204
    assert client.get(url).status_code == 404
    assert client.delete(url).status_code == 404
