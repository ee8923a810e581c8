"""Bulk load (seed path vs one save() per item) and items examined per filtered page, 1k vs 100k.

Both run in this process against the shared moto server, through app-lib's own data layer.
"""

from __future__ import annotations

import time
from typing import Any

from app_lib.common.config import Settings
from app_lib.common.data import table_registry
from app_lib.features.passengers import seed
from app_lib.features.passengers.data_service import PassengerDataService
from app_lib.features.passengers.table import PassengerTable
from bench.common import FILTER, PAGE_LIMIT, CallRecorder, Data, ms_since, point, say
from bench.procs import median

EXAMINED_TARGET = 2.0  # items examined per filtered page at 100k within 2x of that at 1k


def page_plan(settings: Settings, endpoint: str, namespace: str, pages: int) -> dict[str, Any]:
    """Follow the filtered listing in this process through the data service, recording every
    DynamoDB call: operation, index, key condition, ScannedCount per page."""
    table_registry.configure_model(PassengerTable, settings, endpoint, namespace)
    service = PassengerDataService()
    recorder = CallRecorder().attach()
    found: list[dict[str, Any]] = []
    cursor = None
    try:
        for _ in range(pages):
            before = len(recorder.calls)
            page = service.page(PAGE_LIMIT, cursor, **FILTER)
            calls = recorder.calls[before:]
            assert all(i.pclass == 1 and i.sex == "female" for i in page.items)
            found.append(
                {
                    "items": len(page.items),
                    "scanned_count": page.scanned_count,
                    "calls": [
                        {
                            "operation": call["operation"],
                            "index": call["params"].get("IndexName"),
                            "key_condition": call["params"].get("KeyConditionExpression"),
                            "filter": call["params"].get("FilterExpression"),
                            "scanned_count": call.get("scanned_count"),
                        }
                        for call in calls
                    ],
                }
            )
            cursor = page.next_cursor
            if cursor is None:
                break
        first_query = next((c["params"] for c in recorder.calls if c["operation"] == "Query"), None)
    finally:
        recorder.detach()
    return {"pages": found, "first_query_params": first_query}


def _load(settings: Settings, endpoint: str, data: Data, namespace: str, rows: int) -> float:
    """Load `rows` sampled rows through the seed path (BatchWriteItem x25); items per second."""
    point(settings, endpoint, namespace)
    items = data.sample(rows, "r", seed=rows)
    step = max(25, rows // 5 // 25 * 25)
    began = time.perf_counter()

    def progress(done: int) -> None:
        if rows >= 10_000 and (done % step == 0 or done == rows):
            rate = done / (time.perf_counter() - began)
            say(f"  {done:>7,}/{rows:,} ({rate:,.0f} items/s)")

    written = seed.write(items, progress)
    assert written == rows
    return rows / (time.perf_counter() - began)


def _bare_query_ms(bare: Any, query: dict[str, Any], calls: int) -> float:
    timed = []
    for _ in range(calls):
        start = time.perf_counter_ns()
        bare.query(**query)
        timed.append(ms_since(start))
    return median(timed)


def bulk_and_read_cost(
    settings: Settings,
    endpoint: str,
    data: Data,
    run: str,
    bare: Any,
    *,
    sizes: tuple[int, int],
    save_items: int,
) -> dict[str, Any]:
    small, large = sizes
    out: dict[str, Any] = {"sizes": {}}

    say(f"bulk: {small:,} rows through the seed path, {save_items:,} through save()")
    seed_rate = _load(settings, endpoint, data, f"{run}-r{small}", small)
    point(settings, endpoint, f"{run}-save")
    service = PassengerDataService()
    rows = data.sample(save_items, "v", seed=12)
    began = time.perf_counter()
    for row in rows:
        service.save(row.to_model(row.passenger_id or service.new_id()))
    save_rate = save_items / (time.perf_counter() - began)
    out["bulk_load"] = {
        "seed_path_items": small,
        "seed_path_items_per_s": round(seed_rate, 1),
        "save_items": save_items,
        "save_items_per_s": round(save_rate, 1),
        "ratio": round(seed_rate / save_rate, 2),
    }

    say(f"read cost: loading {large:,} rows through the seed path")
    large_rate = _load(settings, endpoint, data, f"{run}-r{large}", large)
    for rows_count, rate in ((small, seed_rate), (large, large_rate)):
        namespace = f"{run}-r{rows_count}"
        plan = page_plan(settings, endpoint, namespace, pages=3)
        query = plan["first_query_params"]
        assert query is not None, "the filtered page sent no Query"
        full = [p["scanned_count"] for p in plan["pages"] if p["items"] == PAGE_LIMIT]
        out["sizes"][str(rows_count)] = {
            "rows": rows_count,
            "load_items_per_s": round(rate, 1),
            "pages": plan["pages"],
            "examined_per_full_page": sum(full) / len(full) if full else None,
            "bare_query_p50_ms": round(
                _bare_query_ms(bare, query, 5 if rows_count <= 10_000 else 3), 1
            ),
        }
        say(f"read cost: {rows_count:,} rows: examined per page {full}")
    s, lg = out["sizes"][str(small)], out["sizes"][str(large)]
    examined = (
        lg["examined_per_full_page"] / s["examined_per_full_page"]
        if lg["examined_per_full_page"] and s["examined_per_full_page"]
        else None
    )
    out["examined_ratio"] = round(examined, 3) if examined is not None else None
    out["examined_target"] = EXAMINED_TARGET
    out["met"] = examined is not None and examined <= EXAMINED_TARGET
    return out
