"""The shared DTO types: numbers DynamoDB can store, free-form JSON it can store and we can show."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from app_lib.common.dto import (
    MAX_JSON_DEPTH,
    DynamoNumber,
    JsonObject,
    dynamo_number_problem,
    renderable_json_object,
)


class Numbers(BaseModel):
    value: DynamoNumber


class Document(BaseModel):
    doc: JsonObject


def nested(depth: int) -> dict[str, Any]:
    """An object `depth` levels deep (the outer object is level 1)."""
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    "value",
    [0, 0.0, -0.0, 1e-130, -1e-130, 1.5, 12345.678, 9.99e125, -9.99e125, 2**60],
)
def test_numbers_dynamodb_stores_are_accepted(value: float) -> None:
    assert Numbers(value=value).value == value


@pytest.mark.parametrize(
    "value",
    [1e-131, 5e-324, -1e-200, 1e126, 1.7976931348623157e308, float("inf"), float("nan")],
)
def test_numbers_dynamodb_cannot_store_are_refused_naming_the_field(value: float) -> None:
    with pytest.raises(ValidationError) as caught:
        Numbers(value=value)
    assert [error["loc"] for error in caught.value.errors()] == [("value",)]


def test_precision_is_checked_for_exact_numbers() -> None:
    assert dynamo_number_problem(Decimal("1." + "1" * 37)) is None  # 38 digits
    assert dynamo_number_problem(Decimal("1." + "1" * 38)) is not None  # 39
    assert dynamo_number_problem(Decimal("9.9999999999999999999999999999999999999E+125")) is None
    assert dynamo_number_problem(Decimal("1E+126")) is not None


def test_json_objects_nest_at_most_32_levels() -> None:
    assert Document(doc=nested(MAX_JSON_DEPTH)).doc == nested(MAX_JSON_DEPTH)
    for depth in (MAX_JSON_DEPTH + 1, 254, 5000):
        with pytest.raises(ValidationError) as caught:
            Document(doc=nested(depth))
        assert "deeper than 32 levels" in str(caught.value)
    # Lists count as levels too.
    assert renderable_json_object({"a": [[[1]]]})
    deep_list: Any = 1
    for _ in range(MAX_JSON_DEPTH):
        deep_list = [deep_list]
    assert not renderable_json_object({"a": deep_list})


@pytest.mark.parametrize("doc", [{"a": "x\ud800"}, {"\udfff": 1}, {"a": [{"b": ["\udc00"]}]}])
def test_json_objects_hold_valid_unicode_only(doc: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as caught:
        Document(doc=doc)
    assert "surrogate" in str(caught.value)
    assert not renderable_json_object(doc)


def test_renderable_json_object() -> None:
    assert renderable_json_object({"a": [1, "é", {"b": None}], "emoji": "\U0001f600"})
    assert not renderable_json_object([1, 2])
    assert not renderable_json_object("text")
    assert not renderable_json_object(None)
