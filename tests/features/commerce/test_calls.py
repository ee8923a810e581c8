"""Which DynamoDB calls each route makes, recorded by a botocore event hook on the client every
commerce model uses: an order with its items is ONE Query; placing an order is one
BatchGetItem then ONE TransactWriteItems; filtered listings are Queries, never Scans."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app_lib.common.data import pynamodb_adapter as adapter
from app_lib.features.commerce.table import (
    CommerceTable,
    OrderLineRecord,
    OrderRecord,
    ProductRecord,
    UserRecord,
)
from tests.features.commerce.conftest import API, place

pytestmark = pytest.mark.needs_transactions


class Calls:
    def __init__(self) -> None:
        self.operations: list[str] = []
        self.params: list[dict[str, Any]] = []

    def __call__(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.operations.append(model.name)
        self.params.append(params)

    def during(self, action: Any) -> list[str]:
        self.operations.clear()
        self.params.clear()
        action()
        return list(self.operations)


@pytest.fixture
def calls(shop: TestClient) -> Iterator[Calls]:
    events = adapter.botocore_client(CommerceTable).meta.events
    recorder = Calls()
    events.register("provide-client-params.dynamodb.*", recorder, unique_id="commerce-calls")
    yield recorder
    events.unregister("provide-client-params.dynamodb.*", unique_id="commerce-calls")


def test_every_entity_class_uses_the_tables_one_client(shop: TestClient) -> None:
    """The subclasses share the registered model's connection (its endpoint, time budget and
    this hook): none has one of its own."""
    client = adapter.botocore_client(CommerceTable)
    for model in (ProductRecord, UserRecord, OrderRecord, OrderLineRecord):
        assert adapter.botocore_client(model) is client


def test_an_order_with_its_items_is_one_query(shop: TestClient, calls: Calls) -> None:
    order_id = place(shop, "u1", ("p1", 2), ("p2", 1)).json()["order_id"]
    read: list[Any] = []
    assert calls.during(lambda: read.append(shop.get(f"{API}/orders/{order_id}"))) == ["Query"]
    assert len(read[0].json()["items"]) == 2
    assert "IndexName" not in calls.params[0]


def test_placing_an_order_is_one_batch_read_then_one_transaction(
    shop: TestClient, calls: Calls
) -> None:
    operations = calls.during(lambda: place(shop, "u1", ("p1", 2), ("p2", 1)))
    assert operations == ["BatchGetItem", "TransactWriteItems"]
    actions = calls.params[1]["TransactItems"]
    # The user check, the order, two lines and two stock decrements: all or nothing.
    assert [next(iter(action)) for action in actions] == [
        "ConditionCheck",
        "Put",
        "Put",
        "Put",
        "Update",
        "Update",
    ]


def test_a_short_stock_order_writes_nothing_but_the_refused_transaction(
    shop: TestClient, calls: Calls
) -> None:
    assert calls.during(lambda: place(shop, "u1", ("p1", 99))) == [
        "BatchGetItem",
        "TransactWriteItems",
    ]


def test_filtered_listings_are_queries_never_scans(shop: TestClient, calls: Calls) -> None:
    for path, params in (
        ("products", {}),
        ("products", {"category": "kitchen"}),
        ("users", {}),
        ("users", {"status": "active"}),
        ("users", {"last_name": "lov"}),
        ("users", {"status": "active", "last_name": "lov"}),
        ("users/u1/orders", {}),
    ):
        operations = calls.during(lambda p=path, q=params: shop.get(f"{API}/{p}", params=q))
        assert "Scan" not in operations and operations[-1] == "Query", (path, params, operations)
        query = calls.params[-1]
        assert query["IndexName"] in ("by-collection", "by-group")
    # The email lookup reads the email's claim, then the user: two GetItems by key.
    by_email = calls.during(lambda: shop.get(f"{API}/users", params={"email": "u1@example.com"}))
    assert by_email == ["GetItem", "GetItem"]


def test_cancelling_is_one_query_and_one_transaction(shop: TestClient, calls: Calls) -> None:
    order_id = place(shop, "u1", ("p1", 2)).json()["order_id"]
    operations = calls.during(lambda: shop.post(f"{API}/orders/{order_id}/cancel"))
    assert operations == ["Query", "TransactWriteItems"]
