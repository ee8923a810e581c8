"""Orders against the real server: prices from the products, exact money, one transaction for
the order, its items and the stock (all or nothing), the status flow and cancellation."""

from __future__ import annotations

from decimal import Decimal

import pytest
from fastapi.testclient import TestClient

from app_lib.features.commerce.data_service import OrderData, ProductData
from app_lib.features.commerce.service import MAX_LINES
from app_lib.features.commerce.table import ProductRecord
from tests.features.commerce.conftest import (
    API,
    PROBLEM,
    create_user,
    place,
)

URL = f"{API}/orders"
pytestmark = pytest.mark.needs_transactions


def stock(client: TestClient, product_id: str) -> int:
    value: int = client.get(f"{API}/products/{product_id}").json()["stock"]
    return value


def test_the_order_is_priced_from_the_products_exactly(shop: TestClient) -> None:
    """2 x 10.00 taxable + 1 x 3.50 untaxed: subtotal 23.50, tax 8% of 20.00 = 1.60, 25.10."""
    response = place(shop, "u1", ("p1", 2), ("p2", 1))
    assert response.status_code == 201, response.text
    order = response.json()
    assert (order["subtotal"], order["tax_total"], order["total"]) == ("23.50", "1.60", "25.10")
    assert order["status"] == "pending" and order["user_id"] == "u1"
    assert order["items"] == [
        {"product_id": "p1", "quantity": 2, "unit_price": "10.00", "line_total": "20.00"},
        {"product_id": "p2", "quantity": 1, "unit_price": "3.50", "line_total": "3.50"},
    ]
    assert response.headers["Location"] == f"{URL}/{order['order_id']}"
    assert response.headers["ETag"] == '"1"'
    read = shop.get(f"{URL}/{order['order_id']}")
    assert read.status_code == 200 and read.json() == order and read.headers["ETag"] == '"1"'
    assert (stock(shop, "p1"), stock(shop, "p2")) == (8, 9)
    # The stock decrement is a write of the product: its ETag moved on.
    assert shop.get(f"{API}/products/p1").headers["ETag"] == '"2"'


def test_a_client_cannot_set_prices_and_bodies_are_checked(shop: TestClient) -> None:
    line = {"product_id": "p1", "quantity": 1}
    for body in (
        {"user_id": "u1", "items": [{**line, "unit_price": "0.01"}]},
        {"user_id": "u1", "items": []},
        {"user_id": "u1", "items": [{**line, "quantity": 0}]},
        {"user_id": "u1", "items": [line, line]},  # one transaction cannot touch p1 twice
        {"user_id": "u1", "items": [line], "total": "1.00"},
    ):
        response = shop.post(URL, json=body)
        assert response.status_code == 422, body
        assert response.headers["content-type"] == PROBLEM
    assert stock(shop, "p1") == 10


def test_short_stock_is_409_naming_the_product_and_nothing_changes(shop: TestClient) -> None:
    response = place(shop, "u1", ("p1", 1), ("p2", 11))
    assert response.status_code == 409 and response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["product_id"] == "p2" and "p2" in problem["detail"]
    assert problem["available"] == 10
    # p1's decrement was in the same transaction: it did not happen either; no order exists.
    assert (stock(shop, "p1"), stock(shop, "p2")) == (10, 10)
    assert shop.get(f"{API}/users/u1/orders").json()["items"] == []


def test_unknown_user_or_product_is_422_naming_the_field(shop: TestClient) -> None:
    unknown_product = place(shop, "u1", ("p1", 1), ("nope", 1))
    assert unknown_product.status_code == 422
    assert [e["field"] for e in unknown_product.json()["errors"]] == ["body.items.1.product_id"]
    unknown_user = place(shop, "nobody", ("p1", 1))
    assert unknown_user.status_code == 422
    assert [e["field"] for e in unknown_user.json()["errors"]] == ["body.user_id"]
    assert stock(shop, "p1") == 10


def test_an_inactive_user_cannot_order(shop: TestClient) -> None:
    assert shop.delete(f"{API}/users/u1").status_code == 204
    response = place(shop, "u1", ("p1", 1))
    assert response.status_code == 409 and "inactive" in response.json()["detail"]
    assert stock(shop, "p1") == 10


def test_a_user_deactivated_after_the_read_is_refused_by_the_transaction(
    shop: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ConditionCheck on the user: a deactivation between the read and the write."""
    read = OrderData.read_for_order

    def read_then_deactivate(self: OrderData, user_id: str, ids: list[str]) -> object:
        found = read(self, user_id, ids)
        assert shop.delete(f"{API}/users/{user_id}").status_code == 204
        return found

    monkeypatch.setattr(OrderData, "read_for_order", read_then_deactivate)
    response = place(shop, "u1", ("p1", 1))
    assert response.status_code == 409 and "no longer active" in response.json()["detail"]
    assert stock(shop, "p1") == 10


def test_a_price_change_after_the_read_refuses_the_order(
    shop: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The order is charged at the price read, on condition that it is still the price."""
    read = OrderData.read_for_order

    def read_then_reprice(self: OrderData, user_id: str, ids: list[str]) -> object:
        found = read(self, user_id, ids)
        assert shop.patch(f"{API}/products/p1", json={"price": "11.00"}).status_code == 200
        return found

    monkeypatch.setattr(OrderData, "read_for_order", read_then_reprice)
    response = place(shop, "u1", ("p1", 1))
    assert response.status_code == 409 and "price of product p1" in response.json()["detail"]
    assert stock(shop, "p1") == 10


def test_a_product_deleted_after_the_read_is_422(
    shop: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    read = OrderData.read_for_order

    def read_then_delete(self: OrderData, user_id: str, ids: list[str]) -> object:
        found = read(self, user_id, ids)
        assert shop.delete(f"{API}/products/p2").status_code == 204
        return found

    monkeypatch.setattr(OrderData, "read_for_order", read_then_delete)
    response = place(shop, "u1", ("p1", 1), ("p2", 1))
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["body.items.1.product_id"]
    assert stock(shop, "p1") == 10 and shop.get(f"{API}/products/p2").status_code == 404


def test_an_order_fills_a_transaction_and_one_line_more_is_422(client: TestClient) -> None:
    """2 + 2 x 49 = 100 actions, DynamoDB's limit."""
    create_user(client, "u1")
    ProductData().batch_put(
        ProductRecord(
            product_id=f"p{n}",
            name=f"P{n}",
            category="bulk",
            price=Decimal("1.00"),
            is_taxable=n % 2 == 0,
            stock=5,
        )
        for n in range(MAX_LINES + 1)
    )
    lines = [(f"p{n}", 1) for n in range(MAX_LINES)]
    full = place(client, "u1", *lines)
    assert full.status_code == 201, full.text
    order = full.json()
    assert len(order["items"]) == 49 and order["subtotal"] == "49.00"
    assert order["tax_total"] == "2.00"  # 25 taxable lines of 1.00 at 8%
    assert len(client.get(f"{URL}/{order['order_id']}").json()["items"]) == 49
    too_many = place(client, "u1", *lines, (f"p{MAX_LINES}", 1))
    assert too_many.status_code == 422
    assert stock(client, f"p{MAX_LINES}") == 5


def test_a_missing_order_is_404(client: TestClient) -> None:
    missing = client.get(f"{URL}/nope")
    assert missing.status_code == 404 and missing.headers["content-type"] == PROBLEM
    assert client.post(f"{URL}/nope/cancel").status_code == 404
    assert client.patch(f"{URL}/nope", json={"status": "paid"}).status_code == 404
    assert client.get(f"{API}/users/nobody/orders").status_code == 404


def test_a_users_orders_are_newest_first_in_cursor_pages(shop: TestClient) -> None:
    ids = [place(shop, "u1", ("p1", 1)).json()["order_id"] for _ in range(3)]
    create_user(shop, "u2")
    place(shop, "u2", ("p2", 1))
    first = shop.get(f"{API}/users/u1/orders", params={"limit": 2}).json()
    rest = shop.get(
        f"{API}/users/u1/orders", params={"limit": 2, "cursor": first["next_cursor"]}
    ).json()
    assert [o["order_id"] for o in first["items"] + rest["items"]] == ids[::-1]
    assert rest["next_cursor"] is None and "items" not in first["items"][0]


def test_status_moves_only_forward_with_if_match(shop: TestClient) -> None:
    order_id = place(shop, "u1", ("p1", 1)).json()["order_id"]
    url = f"{URL}/{order_id}"
    assert shop.patch(url, json={"status": "shipped"}).status_code == 409  # skips paid
    assert shop.patch(url, json={"status": "pending"}).status_code == 409
    assert shop.patch(url, json={"status": "cancelled"}).status_code == 409  # POST .../cancel
    assert shop.patch(url, json={"status": "lost"}).status_code == 422
    stale = shop.patch(url, json={"status": "paid"}, headers={"If-Match": '"9"'})
    assert stale.status_code == 412
    paid = shop.patch(url, json={"status": "paid"}, headers={"If-Match": '"1"'})
    assert paid.status_code == 200 and paid.json()["status"] == "paid"
    assert paid.headers["ETag"] == '"2"' and len(paid.json()["items"]) == 1
    assert shop.patch(url, json={"status": "paid"}).status_code == 409  # already paid
    assert (
        shop.patch(url, json={"status": "shipped"}, headers={"If-Match": '"1"'}).status_code == 412
    )
    shipped = shop.patch(url, json={"status": "shipped"}, headers={"If-Match": '"2"'})
    assert shipped.status_code == 200 and shipped.json()["status"] == "shipped"
    assert shop.patch(url, json={"status": "paid"}).status_code == 409  # never backwards
    assert shop.post(f"{url}/cancel").status_code == 409  # shipped: too late


def test_cancel_restores_the_stock_once(shop: TestClient) -> None:
    order = place(shop, "u1", ("p1", 3), ("p2", 2)).json()
    url = f"{URL}/{order['order_id']}"
    assert (stock(shop, "p1"), stock(shop, "p2")) == (7, 8)
    assert shop.post(f"{url}/cancel", headers={"If-Match": '"7"'}).status_code == 412
    cancelled = shop.post(f"{url}/cancel", headers={"If-Match": '"1"'})
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert cancelled.headers["ETag"] == '"2"'
    assert (stock(shop, "p1"), stock(shop, "p2")) == (10, 10)
    twice = shop.post(f"{url}/cancel")
    assert twice.status_code == 409 and twice.headers["content-type"] == PROBLEM
    assert (stock(shop, "p1"), stock(shop, "p2")) == (10, 10)
    assert shop.patch(url, json={"status": "paid"}).status_code == 409


def test_cancel_skips_a_deleted_product_and_never_recreates_it(shop: TestClient) -> None:
    order_id = place(shop, "u1", ("p1", 3), ("p2", 2)).json()["order_id"]
    assert shop.delete(f"{API}/products/p2").status_code == 204
    cancelled = shop.post(f"{URL}/{order_id}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert stock(shop, "p1") == 10
    assert shop.get(f"{API}/products/p2").status_code == 404
