"""The generic data service against the real moto server, through a test-only model."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app_lib.common.config import Settings
from app_lib.common.data.abstract_data_service import Page
from app_lib.common.errors import (
    ConflictError,
    InvalidCursorError,
    ItemTooLargeError,
    PreconditionFailedError,
    ServiceUnavailableError,
)
from tests.common.data.widget_table import WidgetDataService, WidgetTable, widget
from tests.conftest import new_namespace, point_models
from tests.factories import record_operations


@pytest.fixture
def service(settings: Settings, dynamodb_endpoint: str) -> Iterator[WidgetDataService]:
    point_models(settings, dynamodb_endpoint, new_namespace(), [WidgetTable])
    WidgetTable.create_table(billing_mode="PAY_PER_REQUEST", wait=True)
    yield WidgetDataService()
    WidgetTable.delete_table()


def fill(service: WidgetDataService, count: int) -> None:
    colors = ["red", "green", "blue"]
    with WidgetTable.batch_write() as batch:
        for n in range(count):
            item = widget(f"w{n:04d}", colors[n % 3], n % 5, shape="round" if n % 2 else "square")
            item.derive_keys()
            item.version = 1
            batch.save(item)


def walk(service: WidgetDataService, limit: int, **filters: object) -> list[Page[WidgetTable]]:
    pages = [service.page(limit, None, **filters)]
    while pages[-1].next_cursor:
        pages.append(service.page(limit, pages[-1].next_cursor, **filters))
    return pages


def test_get_save_delete_round_trip(service: WidgetDataService) -> None:
    assert service.get("nope") is None
    service.save(widget("a", size=3))
    loaded = service.get("a")
    assert loaded is not None and loaded.size == 3 and loaded.version == 1
    assert service.delete("a") is True
    assert service.delete("a") is False
    assert service.get("a") is None


def test_page_walk_returns_every_item_exactly_once(service: WidgetDataService) -> None:
    fill(service, 95)
    pages = walk(service, 20)
    assert len(pages) == 5
    ids = [item.widget_id for page in pages for item in page.items]
    assert sorted(ids) == [f"w{n:04d}" for n in range(95)]
    assert [len(page.items) for page in pages] == [20, 20, 20, 20, 15]


def test_filtered_walk_uses_the_index_and_fills_pages(service: WidgetDataService) -> None:
    fill(service, 300)
    # red = every third widget (100); "round" is a filter expression on top of the key condition.
    pages = walk(service, 7, color="red", shape="round")
    sizes = [len(page.items) for page in pages]
    assert all(size == 7 for size in sizes[:-1]) and sizes[-1] <= 7
    ids = [item.widget_id for page in pages for item in page.items]
    expected = [f"w{n:04d}" for n in range(300) if n % 3 == 0 and n % 2 == 1]
    assert sorted(ids) == expected and len(ids) == len(set(ids))


def test_query_with_limit_returns_a_full_page(service: WidgetDataService) -> None:
    fill(service, 300)
    # Matching items are sparse: an implementation that read `limit` items, then filtered, fails.
    items = service.query(limit=10, color="blue", size=4, shape="square")
    assert len(items) == 10
    assert all(i.color == "blue" and i.size == 4 and i.shape == "square" for i in items)


def test_range_prefix_becomes_a_key_condition(service: WidgetDataService) -> None:
    fill(service, 150)
    with record_operations(WidgetTable) as calls:
        page = service.page(100, None, color="green", size=2)
    assert len(page.items) == 10
    assert [name for name, _ in calls] == ["Query"]
    params = calls[0][1]
    assert params["IndexName"] == "by-color"
    assert "begins_with" in params["KeyConditionExpression"]
    assert page.scanned_count == 10  # examined == returned: nothing filtered after reading


def test_count_is_exact(service: WidgetDataService) -> None:
    assert service.count() == 0
    fill(service, 123)
    assert service.count() == 123
    assert service.count(color="red") == 41
    assert service.count(color="red", size=0) == 9
    assert service.count(shape="round") == 61


def test_tampered_or_foreign_cursor_is_refused(service: WidgetDataService) -> None:
    fill(service, 30)
    cursor = service.page(10).next_cursor
    assert cursor
    payload, mac = cursor.split(".")
    tampered = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1] + "." + mac
    with pytest.raises(InvalidCursorError):
        service.page(10, tampered)
    with pytest.raises(InvalidCursorError):
        service.page(10, "garbage")
    # A genuine cursor of another listing (other filters) is refused too.
    red_cursor = service.page(3, None, color="red").next_cursor
    assert red_cursor
    with pytest.raises(InvalidCursorError):
        service.page(3, red_cursor, color="blue")


def test_duplicate_create_is_a_conflict(service: WidgetDataService) -> None:
    service.create(widget("dup", size=1))
    with pytest.raises(ConflictError):
        service.create(widget("dup", size=2))
    stored = service.get("dup")
    assert stored is not None and stored.size == 1


def test_stale_version_is_refused_and_changes_nothing(service: WidgetDataService) -> None:
    service.create(widget("v", size=1))
    first = service.get("v")
    second = service.get("v")
    assert first is not None and second is not None
    service.update(first, {"size": 2})
    with pytest.raises(PreconditionFailedError):
        service.update(second, {"size": 3})
    with pytest.raises(PreconditionFailedError):
        service.save(widget("v", size=9))  # a new object: version None, item exists
    stored = service.get("v")
    assert stored is not None and stored.size == 2 and stored.version == 2
    with pytest.raises(PreconditionFailedError):
        service.update(stored, {"size": 5}, expected_version=1)
    assert service.get("v").size == 2  # type: ignore[union-attr]


def test_update_rewrites_derived_keys(service: WidgetDataService) -> None:
    service.create(widget("d", color="red", size=1))
    item = service.get("d")
    assert item is not None
    service.update(item, {"size": 4, "shape": "round"})
    assert [w.widget_id for w in service.query(color="red", size=4)] == ["d"]
    assert service.query(color="red", size=1) == []
    service.update(item, {"shape": None})
    assert service.get("d").shape is None  # type: ignore[union-attr]


def test_item_over_400kb_is_too_large_and_not_written(service: WidgetDataService) -> None:
    with pytest.raises(ItemTooLargeError):
        service.create(widget("big", blob="x" * 410_000))
    assert service.get("big") is None


def test_endpoint_down_is_unavailable(settings: Settings) -> None:
    point_models(settings, "http://127.0.0.1:9", new_namespace(), [WidgetTable])
    with pytest.raises(ServiceUnavailableError):
        WidgetDataService().get("x")


def test_record_operations_sees_scans(service: WidgetDataService) -> None:
    fill(service, 5)
    with record_operations(WidgetTable) as calls:
        service.page(10)
    assert [name for name, _ in calls] == ["Scan"]
