"""Mock-style tests in the seed's style: the service delegates to PynamoDB as intended."""

from __future__ import annotations

from unittest.mock import MagicMock, patch

from pynamodb.exceptions import DoesNotExist

from app_lib.features.passengers.data_service import STATS_ATTRIBUTES, PassengerDataService
from app_lib.features.passengers.table import PassengerTable


def _results(items: list[PassengerTable]) -> MagicMock:
    results = MagicMock()
    results.__iter__.return_value = iter(items)
    results.last_evaluated_key = None
    results.page_iter.total_scanned_count = len(items)
    return results


def passenger(pid: str = "1") -> PassengerTable:
    return PassengerTable(passenger_id=pid, survived=1, pclass=1, name="A", sex="female")


def test_get_delegates_to_model_get() -> None:
    with patch.object(PassengerTable, "get", return_value=passenger("5")) as get:
        assert PassengerDataService().get("5").passenger_id == "5"  # type: ignore[union-attr]
    get.assert_called_once_with("5")


def test_get_missing_is_none() -> None:
    with patch.object(PassengerTable, "get", side_effect=DoesNotExist()):
        assert PassengerDataService().get("nope") is None


def test_unfiltered_page_scans_with_the_limit() -> None:
    with patch.object(PassengerTable, "scan", return_value=_results([passenger()])) as scan:
        page = PassengerDataService().page(10)
    scan.assert_called_once_with(filter_condition=None, limit=10, last_evaluated_key=None)
    assert len(page.items) == 1 and page.next_cursor is None


def test_filtered_page_queries_the_class_index_with_a_sex_prefix() -> None:
    with (
        patch.object(PassengerTable, "query", return_value=_results([])) as query,
        patch.object(PassengerTable, "scan") as scan,
    ):
        PassengerDataService().page(50, None, pclass=1, sex="female")
    scan.assert_not_called()
    args, kwargs = query.call_args
    assert args[0] == 1 and kwargs["index_name"] == "by-pclass"
    assert kwargs["limit"] == 50 and kwargs["filter_condition"] is None
    assert "begins_with" in str(kwargs["range_key_condition"])
    assert "female#" in str(kwargs["range_key_condition"].values)


def test_residual_filters_become_a_filter_expression() -> None:
    with patch.object(PassengerTable, "query", return_value=_results([])) as query:
        PassengerDataService().query(limit=5, sex="male", embarked="Q")
    args, kwargs = query.call_args
    assert args[0] == "male" and kwargs["index_name"] == "by-sex"
    assert "embarked" in str(kwargs["filter_condition"])


def test_filtered_count_is_a_counting_query_on_the_index() -> None:
    with patch.object(PassengerTable, "count", return_value=94) as count:
        assert PassengerDataService().count(pclass=1, sex="female") == 94
    args, kwargs = count.call_args
    assert args[0] == 1 and kwargs["index_name"] == "by-pclass"


def test_by_ticket_queries_the_ticket_index() -> None:
    with patch.object(PassengerTable, "query", return_value=_results([passenger()])) as query:
        assert len(PassengerDataService().by_ticket("A/5 21171")) == 1
    args, kwargs = query.call_args
    assert args[0] == "A/5 21171" and kwargs["index_name"] == "by-ticket"


def test_stats_scan_projects_only_four_attributes() -> None:
    rows = [passenger("1"), PassengerTable(passenger_id="2", survived=0, pclass=3, sex="male")]
    with patch.object(PassengerTable, "scan", return_value=iter(rows)) as scan:
        stats = PassengerDataService().stats()
    assert scan.call_args.kwargs["attributes_to_get"] == STATS_ATTRIBUTES
    assert stats["overall"] == {"survived": 1, "total": 2, "rate": 0.5}
    assert stats["by_embarked"]["unknown"]["total"] == 2
