"""Commerce figures: fetching an order with its items as ONE Query against one GetItem per item,
and order placement throughput (one BatchGetItem + one TransactWriteItems per order).

`python -m bench.commerce` on its own (it starts an embedded database), or `main(endpoint)` from
the bench runner (an endpoint it already serves). `main()` prints the figures and returns them.
The calls go through the feature's data service in this process (no HTTP): what is compared is
the database round trips, which is what the single-table layout decides.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

# Standalone: the settings are read once, at first import of app_lib; the runner sets its own.
for _name, _value in {
    "APP_ENV": "bench",
    "LOG_LEVEL": "WARNING",
    "SEED_ON_START": "false",
    "RUN_WORKER": "false",
    # Give a slow database time rather than measure timeouts.
    "DYNAMODB_READ_TIMEOUT": "30",
    "DYNAMODB_REQUEST_TIMEOUT": "60",
}.items():
    os.environ.setdefault(_name, _value)

from app_lib.common.config import get_settings  # noqa: E402
from app_lib.common.data import table_registry  # noqa: E402
from app_lib.features.commerce import service  # noqa: E402
from app_lib.features.commerce.data_service import OrderData, ProductData, UserData  # noqa: E402
from app_lib.features.commerce.table import (  # noqa: E402
    CommerceTable,
    OrderLineRecord,
    OrderRecord,
    ProductRecord,
    UserRecord,
)

LINES = 10  # items of the order fetched: 1 Query vs 1 + 10 GetItems
FETCH_ROUNDS = 300
PLACE_BLOCKS = 4  # sequential orders in blocks of PLACE_BLOCK: throughput as the table grows
PLACE_BLOCK = 50
PLACE_THREADS = 4
PLACE_CONCURRENT = 100


def _say(message: str) -> None:
    print(f"[commerce] {message}", file=sys.stderr, flush=True)


def _timed_ms(action: Callable[[], object]) -> float:
    start = time.perf_counter_ns()
    action()
    return (time.perf_counter_ns() - start) / 1e6


def _prepare(endpoint: str) -> list[str]:
    settings = get_settings()
    namespace = f"bench{uuid.uuid4().hex[:8]}"
    table_registry.configure_model(CommerceTable, settings, endpoint, namespace)
    table_registry.create_tables([CommerceTable])
    UserData().create(
        UserRecord(
            user_id="bench",
            first_name="Bench",
            last_name="Mark",
            email="bench@example.com",
            status="active",
        )
    )
    ids = [f"b{n:02d}" for n in range(LINES)]
    ProductData().batch_put(
        ProductRecord(
            product_id=product_id,
            name=f"Bench product {product_id}",
            category="bench",
            price=Decimal("2.50"),
            is_taxable=n % 2 == 0,
            stock=1_000_000,
        )
        for n, product_id in enumerate(ids)
    )
    return ids


def _by_get_items(order_id: str, product_ids: list[str]) -> int:
    """The same order read with one GetItem per item (what a table per entity would do)."""
    order = OrderRecord.get(*OrderRecord.key(order_id), consistent_read=True)
    lines = [
        OrderLineRecord.get(order.pk, f"ITEM#{product_id}", consistent_read=True)
        for product_id in product_ids
    ]
    return len(lines)


def _fetch(product_ids: list[str]) -> dict[str, Any]:
    data = OrderData()
    lines = [service.LineRequest(product_id, 1) for product_id in product_ids]
    order_id = service.place_order(data, "bench", lines).order.order_id
    query_ms: list[float] = []
    get_ms: list[float] = []
    for _ in range(FETCH_ROUNDS):  # side by side, turn about
        query_ms.append(_timed_ms(lambda: data.get(order_id)))
        get_ms.append(_timed_ms(lambda: _by_get_items(order_id, product_ids)))
    query = statistics.median(query_ms)
    gets = statistics.median(get_ms)
    return {
        "items": len(product_ids),
        "query_ms_p50": round(query, 3),
        "get_items_ms_p50": round(gets, 3),
        "get_items_calls": 1 + len(product_ids),
        "ratio_get_items_vs_query": round(gets / query, 2),
    }


def _place(product_ids: list[str]) -> dict[str, Any]:
    """Orders of one line, sequential (in blocks, as the table grows) and on threads. The
    blocks show whether a transaction's cost grows with the table: moto's own rollback copies
    the whole table per action; the embedded server backs up only the items touched."""
    data = OrderData()

    def one(n: int) -> None:
        line = service.LineRequest(product_ids[n % len(product_ids)], 1)
        service.place_order(data, "bench", [line])

    blocks = []
    for block in range(PLACE_BLOCKS):
        start = time.perf_counter()
        for n in range(PLACE_BLOCK):
            one(block * PLACE_BLOCK + n)
        blocks.append(round(PLACE_BLOCK / (time.perf_counter() - start), 1))
    start = time.perf_counter()
    with ThreadPoolExecutor(PLACE_THREADS) as pool:
        list(pool.map(one, range(PLACE_CONCURRENT)))
    concurrent = PLACE_CONCURRENT / (time.perf_counter() - start)
    return {
        "orders_per_s_sequential_by_block": blocks,
        "orders_per_s_sequential": round(statistics.mean(blocks), 1),
        f"orders_per_s_{PLACE_THREADS}_threads": round(concurrent, 1),
        "orders": PLACE_BLOCKS * PLACE_BLOCK + PLACE_CONCURRENT,
    }


def main(endpoint: str | None = None) -> dict[str, Any]:
    """Measure against `endpoint` (None: start an embedded database for the run)."""
    if endpoint is None:
        from app_lib.common.embedded import EmbeddedServer

        with EmbeddedServer() as server:
            return main(server.url)
    _say(f"preparing a commerce table at {endpoint}")
    product_ids = _prepare(endpoint)
    try:
        _say(f"order fetch: 1 Query vs {1 + LINES} GetItems, {FETCH_ROUNDS} rounds")
        fetch = _fetch(product_ids)
        sequential = PLACE_BLOCKS * PLACE_BLOCK
        _say(f"placement: {sequential} sequential, {PLACE_CONCURRENT} on {PLACE_THREADS} threads")
        place = _place(product_ids)
    finally:
        table_registry.delete_tables([CommerceTable])
    results = {"order_fetch": fetch, "order_placement": place}
    print(
        f"order + {fetch['items']} items: 1 Query {fetch['query_ms_p50']} ms vs "
        f"{fetch['get_items_calls']} GetItems {fetch['get_items_ms_p50']} ms (p50): "
        f"{fetch['ratio_get_items_vs_query']}x"
    )
    print(
        f"order placement (BatchGetItem + TransactWriteItems): "
        f"{place['orders_per_s_sequential']} orders/s sequential "
        f"(by block of {PLACE_BLOCK}: {place['orders_per_s_sequential_by_block']}), "
        f"{place[f'orders_per_s_{PLACE_THREADS}_threads']} orders/s on {PLACE_THREADS} threads"
    )
    return results


if __name__ == "__main__":
    main()
