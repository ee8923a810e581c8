"""Racing clients against a real uvicorn (tests/concurrency's fixtures): stock and email
uniqueness hold because DynamoDB evaluates the conditions inside each transaction, never because
of a read before it. 20 clients released together per round, several rounds."""

from __future__ import annotations

from collections import Counter

import httpx
import pytest

from tests.concurrency.conftest import CLIENTS, race
from tests.features.commerce.conftest import API, product_body, user_body

ROUNDS = 3
STOCK = 5
pytestmark = pytest.mark.needs_transactions


def test_concurrent_orders_never_oversell(http_clients: list[httpx.Client]) -> None:
    """20 orders of 1 against a stock of 5: exactly 5 placed, 15 refused with a 409 naming the
    product, the stock ends at 0 (never below), each round."""
    main = http_clients[0]
    assert main.post(f"{API}/users", json=user_body("buyer")).status_code == 201
    outcomes: list[dict[int, int]] = []
    finals: list[tuple[int, int, set[str]]] = []
    for round_ in range(ROUNDS):
        product_id = f"scarce-{round_}"
        created = main.post(f"{API}/products", json=product_body(product_id, stock=STOCK))
        assert created.status_code == 201, created.text

        def order(index: int, product_id: str = product_id) -> tuple[int, str]:
            body = {"user_id": "buyer", "items": [{"product_id": product_id, "quantity": 1}]}
            response = http_clients[index].post(f"{API}/orders", json=body)
            return response.status_code, response.json().get("product_id", "")

        results = race(order)
        outcomes.append(dict(Counter(status for status, _ in results)))
        stock = main.get(f"{API}/products/{product_id}").json()["stock"]
        named = {named for status, named in results if status == 409}
        placed = main.get(f"{API}/users/buyer/orders", params={"limit": 1000}).json()["items"]
        finals.append((stock, len(placed), named))
    expected = {201: STOCK, 409: CLIENTS - STOCK}
    assert outcomes == [expected] * ROUNDS, f"statuses per round {outcomes}"
    assert finals == [(0, STOCK * (n + 1), {f"scarce-{n}"}) for n in range(ROUNDS)], (
        f"(stock, orders so far, products named by the 409s) per round: {finals}"
    )


def test_concurrent_sign_ups_with_one_email_have_one_winner(
    http_clients: list[httpx.Client],
) -> None:
    """20 sign-ups with the same email in 20 spellings of its case: one 201, nineteen 409s, and
    the email's holder is the winner."""
    outcomes: list[dict[int, int]] = []
    wrong: list[str] = []
    for round_ in range(ROUNDS):
        email = f"race{round_}@example.com"

        def sign_up(index: int, email: str = email, round_: int = round_) -> tuple[int, str]:
            spelled = "".join(
                c.upper() if (index >> (n % 5)) & 1 else c for n, c in enumerate(email)
            )
            body = user_body(f"r{round_}-{index}", email=spelled)
            return http_clients[index].post(f"{API}/users", json=body).status_code, spelled

        results = race(sign_up)
        outcomes.append(dict(Counter(status for status, _ in results)))
        winners = [f"r{round_}-{n}" for n, (status, _) in enumerate(results) if status == 201]
        holder = http_clients[0].get(f"{API}/users", params={"email": email}).json()["items"]
        if [u["user_id"] for u in holder] != winners:
            wrong.append(f"round {round_}: 201 for {winners}, holder {holder}")
        losers = [f"r{round_}-{n}" for n, (status, _) in enumerate(results) if status != 201]
        wrong += [u for u in losers if http_clients[0].get(f"{API}/users/{u}").status_code != 404]
    expected = {201: 1, 409: CLIENTS - 1}
    assert (outcomes, wrong) == ([expected] * ROUNDS, []), f"per round {outcomes}; {wrong}"


def test_concurrent_cancels_restore_the_stock_once(http_clients: list[httpx.Client]) -> None:
    """20 clients cancel the same order: one 200, nineteen 409s, the stock back exactly once."""
    main = http_clients[0]
    assert main.post(f"{API}/users", json=user_body("buyer")).status_code == 201
    outcomes: list[dict[int, int]] = []
    stocks: list[int] = []
    for round_ in range(ROUNDS):
        product_id = f"p{round_}"
        assert main.post(f"{API}/products", json=product_body(product_id, stock=10)).is_success
        body = {"user_id": "buyer", "items": [{"product_id": product_id, "quantity": 4}]}
        order_id = main.post(f"{API}/orders", json=body).json()["order_id"]

        def cancel(index: int, order_id: str = order_id) -> int:
            return http_clients[index].post(f"{API}/orders/{order_id}/cancel").status_code

        outcomes.append(dict(Counter(race(cancel))))
        stocks.append(main.get(f"{API}/products/{product_id}").json()["stock"])
    assert (outcomes, stocks) == ([{200: 1, 409: CLIENTS - 1}] * ROUNDS, [10] * ROUNDS), (
        f"statuses per round {outcomes}; stock after each round {stocks}"
    )
