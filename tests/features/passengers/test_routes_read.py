"""Reading passengers through the app, against the seeded moto table."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app_lib.features.passengers.table import PassengerTable
from tests.factories import record_operations, titanic_rows

ROWS = titanic_rows()
URL = "/api/v1/passengers"


def walk(client: TestClient, limit: int, **params: Any) -> list[list[dict[str, Any]]]:
    pages = []
    cursor = None
    while True:
        query = {"limit": limit, **params, **({"cursor": cursor} if cursor else {})}
        response = client.get(URL, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages


def test_walk_returns_all_891_ids_exactly_once(seeded_client: TestClient) -> None:
    pages = walk(seeded_client, 100)
    ids = [p["passenger_id"] for page in pages for p in page]
    assert len(ids) == 891
    assert set(ids) == {row["PassengerId"] for row in ROWS}
    assert [len(page) for page in pages[:-1]] == [100] * 8 and len(pages[-1]) == 91


FILTERS = [
    {"pclass": 1},
    {"sex": "female"},
    {"survived": "true"},
    {"embarked": "Q"},
    {"pclass": 3, "sex": "male"},
    {"sex": "female", "survived": "false"},
    {"survived": "true", "embarked": "C"},
    {"embarked": "S", "pclass": 2},
    {"pclass": 1, "embarked": "C"},
    {"pclass": 2, "sex": "female", "survived": "true", "embarked": "S"},
]


def _matches(row: dict[str, str], filters: dict[str, Any]) -> bool:
    csv_value = {
        "pclass": lambda: int(row["Pclass"]),
        "sex": lambda: row["Sex"],
        "survived": lambda: "true" if row["Survived"] == "1" else "false",
        "embarked": lambda: row["Embarked"],
    }
    return all(csv_value[name]() == value for name, value in filters.items())


@pytest.mark.parametrize(
    "filters", FILTERS, ids=lambda f: "&".join(f"{k}={v}" for k, v in f.items())
)
def test_each_filter_gives_the_csv_count_in_full_pages(
    seeded_client: TestClient, filters: dict[str, Any]
) -> None:
    expected = {row["PassengerId"] for row in ROWS if _matches(row, filters)}
    pages = walk(seeded_client, 40, **filters)
    ids = [p["passenger_id"] for page in pages for p in page]
    assert len(ids) == len(set(ids)) and set(ids) == expected
    assert all(len(page) == 40 for page in pages[:-1])


@pytest.mark.parametrize(
    "filters", FILTERS, ids=lambda f: "&".join(f"{k}={v}" for k, v in f.items())
)
def test_filtered_list_is_a_query_never_a_scan(
    seeded_client: TestClient, filters: dict[str, Any]
) -> None:
    with record_operations(PassengerTable) as calls:
        assert seeded_client.get(URL, params={"limit": 10, **filters}).status_code == 200
    assert calls and {name for name, _ in calls} == {"Query"}
    assert all(params["IndexName"].startswith("by-") for _, params in calls)


def test_class_and_sex_is_served_by_key_conditions_alone(seeded_client: TestClient) -> None:
    with record_operations(PassengerTable) as calls:
        body = seeded_client.get(URL, params={"pclass": 1, "sex": "female", "limit": 50}).json()
    assert len(body["items"]) == 50
    (name, params), *_ = calls
    assert name == "Query" and params["IndexName"] == "by-pclass"
    assert "FilterExpression" not in params  # nothing is read and thrown away


def test_unfiltered_list_may_scan(seeded_client: TestClient) -> None:
    with record_operations(PassengerTable) as calls:
        seeded_client.get(URL, params={"limit": 5})
    assert [name for name, _ in calls] == ["Scan"]


def test_stats_equal_the_csv(seeded_client: TestClient) -> None:
    body = seeded_client.get(f"{URL}/stats").json()

    def counts(key: Any) -> dict[str, tuple[int, int]]:
        total: Counter[str] = Counter()
        survived: Counter[str] = Counter()
        for row in ROWS:
            total[key(row)] += 1
            survived[key(row)] += row["Survived"] == "1"
        return {k: (survived[k], total[k]) for k in total}

    def shown(group: dict[str, Any]) -> dict[str, tuple[int, int]]:
        return {k: (v["survived"], v["total"]) for k, v in group.items()}

    assert (body["overall"]["survived"], body["overall"]["total"]) == (342, 891)
    assert body["overall"]["rate"] == round(342 / 891, 4)
    assert shown(body["by_class"]) == counts(lambda r: r["Pclass"])
    assert shown(body["by_sex"]) == counts(lambda r: r["Sex"])
    assert shown(body["by_embarked"]) == counts(lambda r: r["Embarked"] or "unknown")
    pairs = {
        f"{c}/{s}": v
        for c, by_sex in body["by_class_and_sex"].items()
        for s, v in shown(by_sex).items()
    }
    assert pairs == counts(lambda r: f"{r['Pclass']}/{r['Sex']}")


def test_stats_read_only_the_attributes_they_need(seeded_client: TestClient) -> None:
    with record_operations(PassengerTable) as calls:
        seeded_client.get(f"{URL}/stats")
    assert calls and all(name == "Scan" for name, _ in calls)
    projection = calls[0][1]["ProjectionExpression"]
    names = set(calls[0][1]["ExpressionAttributeNames"].values())
    assert names == {"survived", "pclass", "sex", "embarked"} and projection


@pytest.mark.parametrize("ticket", ["A/5 21171", "STON/O2. 3101282", "CA. 2343", "347082"])
def test_ticket_lookup_returns_every_passenger_on_it(
    seeded_client: TestClient, ticket: str
) -> None:
    expected = {row["PassengerId"] for row in ROWS if row["Ticket"] == ticket}
    response = seeded_client.get(f"{URL}/by-ticket/{ticket}")
    assert response.status_code == 200, response.text
    assert {p["passenger_id"] for p in response.json()["items"]} == expected


def test_unknown_ticket_is_404(seeded_client: TestClient) -> None:
    response = seeded_client.get(f"{URL}/by-ticket/NO/SUCH 1")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_get_one_converts_numbers_and_keeps_nulls(seeded_client: TestClient) -> None:
    response = seeded_client.get(f"{URL}/6")  # Moran, Mr. James: no age, no cabin
    body = response.json()
    assert response.headers["etag"] == '"1"'
    assert body["age"] is None and body["cabin"] is None and body["embarked"] == "Q"
    assert isinstance(body["fare"], float) and isinstance(body["pclass"], int)
    assert body["survived"] is False and body["sibsp"] == 0
    assert seeded_client.get(f"{URL}/2").json()["age"] == 38.0


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"pclass": 4}, "query.pclass"),
        ({"sex": "x"}, "query.sex"),
        ({"limit": 0}, "query.limit"),
        ({"limit": 5000}, "query.limit"),
        ({"embarked": "X"}, "query.embarked"),
        ({"survived": "maybe"}, "query.survived"),
    ],
)
def test_bad_query_is_422_naming_the_field(
    seeded_client: TestClient, params: dict[str, Any], field: str
) -> None:
    response = seeded_client.get(URL, params=params)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in response.json()["errors"]] == [field]


def test_cursor_of_another_filter_is_400(seeded_client: TestClient) -> None:
    cursor = seeded_client.get(URL, params={"pclass": 1, "limit": 5}).json()["next_cursor"]
    response = seeded_client.get(URL, params={"pclass": 2, "limit": 5, "cursor": cursor})
    assert response.status_code == 400
    assert response.json()["title"] == "Invalid cursor"
