"""The shared HTTP pieces: If-Match parsing, through a route that honours it."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

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
