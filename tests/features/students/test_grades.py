"""What students adds to the generated CRUD: the average, grades appended and removed in one
UpdateItem each, the list bound, and the boto3 seed's own sequence replayed over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app_lib.common.data import pynamodb_adapter as adapter
from app_lib.features.students.dto import MAX_GRADES
from app_lib.features.students.table import StudentTable

BASE = "/api/v1/students"
PROBLEM = "application/problem+json"
ALICE = {"student_id": 3098390, "first_name": "Alice", "last_name": "Wonderland"}


@pytest.fixture
def update_calls() -> Iterator[list[dict[str, Any]]]:
    """The UpdateItem requests the students table receives (botocore's own event hook)."""
    calls: list[dict[str, Any]] = []
    events = adapter.botocore_client(StudentTable).meta.events

    def record(params: dict[str, Any], **_: Any) -> None:
        calls.append(params)

    events.register("provide-client-params.dynamodb.UpdateItem", record)
    yield calls
    events.unregister("provide-client-params.dynamodb.UpdateItem", record)


def test_the_seed_sequence_over_http(
    client: TestClient, update_calls: list[dict[str, Any]]
) -> None:
    # The seed: put Alice with four grades, get her, set her grades, delete her.
    created = client.post(BASE, json={**ALICE, "grades": [90, 85, 100, 94]})
    assert created.status_code == 201, created.text
    url = f"{BASE}/3098390"
    read = client.get(url).json()
    assert read == {**ALICE, "grades": [90, 85, 100, 94], "average": 92.25}
    update_calls.clear()
    updated = client.patch(url, json={"grades": [90, 100, 100, 100]})
    assert updated.status_code == 200, updated.text
    assert updated.json()["grades"] == [90, 100, 100, 100] and updated.json()["average"] == 97.5
    # Exactly the seed's `SET grades = :grades` (plus the version PynamoDB keeps), one call.
    [call] = update_calls
    names = call["ExpressionAttributeNames"]
    assert "grades" in names.values() and "first_name" not in names.values()
    assert call["UpdateExpression"].startswith("SET ") and "list_append" not in str(call)
    assert client.delete(url).status_code == 204
    assert client.get(url).status_code == 404


def test_average_is_null_without_grades_and_ids_are_numbers(client: TestClient) -> None:
    assert client.post(BASE, json=ALICE).json()["average"] is None
    assert client.get(f"{BASE}/abc").status_code == 422
    assert client.post(BASE, json={**ALICE, "student_id": "x"}).status_code == 422
    assert client.post(BASE, json={**ALICE, "student_id": 7, "grades": [101]}).status_code == 422
    stored = StudentTable.get(3098390)
    assert stored.student_id == 3098390 and isinstance(stored.student_id, int)


def test_a_grade_is_appended_with_list_append(
    client: TestClient, update_calls: list[dict[str, Any]]
) -> None:
    client.post(BASE, json={**ALICE, "grades": [90]})
    update_calls.clear()
    response = client.post(f"{BASE}/3098390/grades", json={"grade": 95})
    assert response.status_code == 200, response.text
    assert response.json()["grades"] == [90, 95]
    assert response.headers["ETag"] == '"2"'
    [call] = update_calls
    assert "list_append" in call["UpdateExpression"]
    assert client.post(f"{BASE}/3098390/grades", json={"grade": -1}).status_code == 422
    assert client.post(f"{BASE}/42/grades", json={"grade": 1}).status_code == 404


def test_a_grade_is_removed_by_index_when_it_exists(client: TestClient) -> None:
    client.post(BASE, json={**ALICE, "grades": [90, 85, 100]})
    url = f"{BASE}/3098390/grades"
    removed = client.delete(f"{url}/1")
    assert removed.status_code == 200 and removed.json()["grades"] == [90, 100]
    missing = client.delete(f"{url}/2")
    assert missing.status_code == 404 and missing.headers["content-type"] == PROBLEM
    stale = client.delete(f"{url}/0", headers={"If-Match": '"1"'})
    assert stale.status_code == 412
    assert client.get(f"{BASE}/3098390").json()["grades"] == [90, 100]
    assert client.delete(f"{url}/{MAX_GRADES}").status_code == 422


def test_the_grade_list_is_bounded_before_any_write(client: TestClient) -> None:
    too_many = client.post(BASE, json={**ALICE, "grades": [50] * (MAX_GRADES + 1)})
    assert too_many.status_code == 422 and too_many.headers["content-type"] == PROBLEM
    assert client.get(f"{BASE}/3098390").status_code == 404
    client.post(BASE, json={**ALICE, "grades": [50] * MAX_GRADES})
    full = client.post(f"{BASE}/3098390/grades", json={"grade": 1})
    assert full.status_code == 409 and full.headers["content-type"] == PROBLEM
    assert len(client.get(f"{BASE}/3098390").json()["grades"]) == MAX_GRADES
