"""Ownership in commerce: a token's `sub` is a user's `user_id`. A user signs up themselves,
reads and changes only their own record and orders, lists only their own orders, and orders
only for themselves; another user's order or record is a 404 (its existence is not revealed);
an admin sees all. The catalogue is public to read; changing it needs commerce:write."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.conftest import bearer
from tests.features.commerce.conftest import API, create_product, place, user_body


def test_users_sign_up_themselves_and_see_only_their_own(app: FastAPI, client: TestClient) -> None:
    alice, bob = bearer(app, "alice", ""), bearer(app, "bob", "")
    signed = client.post(
        f"{API}/users", json=user_body("ignored-id") | {"user_id": None}, headers=alice
    )
    assert signed.status_code == 201, signed.text
    assert signed.json()["user_id"] == "alice"
    assert client.post(f"{API}/users", json=user_body("carol"), headers=bob).status_code == 403
    assert client.post(f"{API}/users", json=user_body("bob"), headers=bob).status_code == 201

    assert client.get(f"{API}/users/alice", headers=alice).status_code == 200
    hidden = client.get(f"{API}/users/alice", headers=bob)
    assert hidden.status_code == 404
    change = {"first_name": "Eve"}
    assert client.patch(f"{API}/users/alice", json=change, headers=bob).status_code == 404
    assert client.delete(f"{API}/users/alice", headers=bob).status_code == 404
    assert client.get(f"{API}/users", headers=bob).status_code == 403
    # The admin (the `client` fixture's token) reads and lists everyone.
    assert client.get(f"{API}/users/alice").json()["first_name"] == "Ada"
    assert {u["user_id"] for u in client.get(f"{API}/users").json()["items"]} == {"alice", "bob"}
    assert client.get(f"{API}/users/alice").status_code == 200
    assert client.get(f"{API}/users", headers={"Authorization": ""}).status_code == 401


def test_orders_belong_to_their_user(app: FastAPI, client: TestClient) -> None:
    alice, bob = bearer(app, "alice", ""), bearer(app, "bob", "")
    for who, token in (("alice", alice), ("bob", bob)):
        body = user_body(who)
        assert client.post(f"{API}/users", json=body, headers=token).status_code == 201
    create_product(client, "p1", stock=10)
    items = [{"product_id": "p1", "quantity": 1}]

    mine = client.post(f"{API}/orders", json={"user_id": "alice", "items": items}, headers=alice)
    assert mine.status_code == 201, mine.text
    order_id = mine.json()["order_id"]
    # Bob can neither order for Alice, nor read, list, cancel or advance her order.
    for_alice = client.post(f"{API}/orders", json={"user_id": "alice", "items": items}, headers=bob)
    assert for_alice.status_code == 403
    assert client.get(f"{API}/orders/{order_id}", headers=bob).status_code == 404
    assert client.get(f"{API}/users/alice/orders", headers=bob).status_code == 404
    assert client.post(f"{API}/orders/{order_id}/cancel", headers=bob).status_code == 404
    listed = client.get(f"{API}/users/alice/orders", headers=alice).json()["items"]
    assert [o["order_id"] for o in listed] == [order_id]
    assert client.get(f"{API}/users/bob/orders", headers=bob).json()["items"] == []
    # Paying and shipping are staff work; cancelling her own order is Alice's.
    paid = client.patch(f"{API}/orders/{order_id}", json={"status": "paid"}, headers=alice)
    assert paid.status_code == 403
    assert client.patch(f"{API}/orders/{order_id}", json={"status": "paid"}).status_code == 200
    assert client.post(f"{API}/orders/{order_id}/cancel", headers=alice).status_code == 200
    # The admin reads any order, and may order for anyone.
    assert client.get(f"{API}/orders/{order_id}").status_code == 200
    assert place(client, "bob", ("p1", 1)).status_code == 201


def test_the_catalogue_is_public_to_read_and_changed_with_the_scope(
    app: FastAPI, client: TestClient, anonymous: TestClient
) -> None:
    create_product(client, "p1")
    assert anonymous.get(f"{API}/products").status_code == 200
    assert anonymous.get(f"{API}/products/p1").status_code == 200
    user = bearer(app, "alice", "")
    assert client.patch(f"{API}/products/p1", json={"stock": 1}, headers=user).status_code == 403
    staff = bearer(app, "staff", "commerce:write")
    assert client.patch(f"{API}/products/p1", json={"stock": 1}, headers=staff).status_code == 200
    assert anonymous.get(f"{API}/users/alice").status_code == 401
