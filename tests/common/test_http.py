"""The shared HTTP pieces: If-Match parsing, through the routes that honour it."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from app_lib.common.config import get_settings
from tests.factories import passenger_body

URL = "/api/v1/passengers"


@pytest.mark.parametrize(
    "if_match",
    [
        '"' + "9" * 5000 + '"',  # past Python's limit on digits in int("...")
        'W/"' + "1" * 5000 + '"',
        '"' + "1" * 19 + '"',
        '"1", "' + "2" * 5000 + '"',
    ],
)
def test_if_match_with_a_huge_version_is_412_and_changes_nothing(
    client: TestClient, if_match: str
) -> None:
    assert client.post(URL, json=passenger_body(passenger_id="h1")).status_code == 201
    for response in (
        client.patch(f"{URL}/h1", json={"age": 50}, headers={"If-Match": if_match}),
        client.delete(f"{URL}/h1", headers={"If-Match": if_match}),
    ):
        assert response.status_code == 412, response.text
        assert response.headers["content-type"] == "application/problem+json"
    current = client.get(f"{URL}/h1")
    assert current.headers["etag"] == '"1"' and current.json()["age"] == 31.5


def test_if_match_with_leading_zeros_still_names_the_version(client: TestClient) -> None:
    assert client.post(URL, json=passenger_body(passenger_id="z1")).status_code == 201
    response = client.patch(
        f"{URL}/z1", json={"age": 50}, headers={"If-Match": '"' + "0" * 5000 + '1"'}
    )
    assert response.status_code == 200 and response.headers["etag"] == '"2"'


def test_a_long_malformed_if_match_is_412_with_a_short_message(client: TestClient) -> None:
    assert client.post(URL, json=passenger_body(passenger_id="m1")).status_code == 201
    response = client.delete(f"{URL}/m1", headers={"If-Match": "x" * 5000})
    assert response.status_code == 412
    assert len(response.json()["detail"]) < 200


@pytest.mark.parametrize("if_match", ["x", '"1", "2"', '"' + "1" * 19 + '"', None])
@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("DELETE", f"{URL}/a%20b", None, "path.passenger_id"),
        ("PATCH", f"{URL}/a%20b", {"age": 50}, "path.passenger_id"),
        ("PATCH", f"{URL}/v1", {"age": -1}, "body.age"),
        ("PUT", f"{URL}/v1", {"name": "No, Mr. Class"}, "body.survived"),
        ("DELETE", "/api/v1/jobs/" + "j" * 65, None, "path.job_id"),
    ],
)
def test_an_invalid_request_is_422_whatever_its_if_match(
    client: TestClient,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    field: str,
    if_match: str | None,
) -> None:
    # RFC 9110 13.2.1: preconditions are evaluated after the request is found valid. A malformed
    # If-Match (or none, where one is required) is a 412 (428) only for a valid request.
    assert client.post(URL, json=passenger_body(passenger_id="v1")).status_code == 201
    settings = get_settings()
    settings.require_if_match = True
    try:
        response = client.request(
            method,
            path,
            json=body,
            headers={} if if_match is None else {"If-Match": if_match},
        )
    finally:
        settings.require_if_match = False
    assert response.status_code == 422, response.text
    assert field in [error["field"] for error in response.json()["errors"]]
    assert client.get(f"{URL}/v1").headers["etag"] == '"1"'


def test_a_malformed_if_match_on_a_valid_request_is_still_412(client: TestClient) -> None:
    assert client.post(URL, json=passenger_body(passenger_id="v2")).status_code == 201
    for method, body in (("DELETE", None), ("PATCH", {"age": 5}), ("PUT", passenger_body())):
        response = client.request(method, f"{URL}/v2", json=body, headers={"If-Match": "x"})
        assert response.status_code == 412, (method, response.text)
        assert "'x' is not an ETag" in response.json()["detail"]
    assert client.get(f"{URL}/v2").headers["etag"] == '"1"'
