"""Commerce test helpers: bodies and creators over the API, and the racing-client fixtures of
tests/concurrency (a real uvicorn over this test's tables, one HTTP client per racer)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.concurrency.conftest import http_clients, live_url

__all__ = ["http_clients", "live_url"]

API = "/api/v1"
PROBLEM = "application/problem+json"


def product_body(product_id: str, **changes: Any) -> dict[str, Any]:
    return {
        "product_id": product_id,
        "name": f"Product {product_id}",
        "category": "kitchen",
        "price": "10.00",
        "is_taxable": True,
        "stock": 10,
        "description": "",
        **changes,
    }


def user_body(user_id: str, **changes: Any) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": f"{user_id}@example.com",
        **changes,
    }


def create_product(client: TestClient, product_id: str, **changes: Any) -> dict[str, Any]:
    response = client.post(f"{API}/products", json=product_body(product_id, **changes))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def create_user(client: TestClient, user_id: str, **changes: Any) -> dict[str, Any]:
    response = client.post(f"{API}/users", json=user_body(user_id, **changes))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def place(client: TestClient, user_id: str, *lines: tuple[str, int]) -> Any:
    items = [{"product_id": p, "quantity": q} for p, q in lines]
    return client.post(f"{API}/orders", json={"user_id": user_id, "items": items})


@pytest.fixture
def shop(client: TestClient) -> TestClient:
    """A user `u1` and products: `p1` (10.00, taxable, 10 in stock), `p2` (3.50, untaxed, 10)."""
    create_user(client, "u1")
    create_product(client, "p1", price="10.00", is_taxable=True, stock=10)
    create_product(client, "p2", name="Tea", category="pantry", price="3.50", is_taxable=False)
    return client
