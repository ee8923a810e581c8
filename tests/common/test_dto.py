"""The shared DTO types: numbers DynamoDB can store, free-form JSON it can store and we can show,
PATCH bodies derived from a fields model."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from app_lib.common.dto import (
    DYNAMO_MAX_FLOAT,
    MAX_JSON_DEPTH,
    DynamoNumber,
    DynamoStorable,
    JsonBool,
    JsonObject,
    Patch,
    dynamo_number_problem,
    renderable_json_object,
)


class Numbers(BaseModel):
    value: DynamoNumber


class Bounded(BaseModel):
    age: Annotated[float, Field(ge=0, le=150), DynamoStorable()] | None = None
    delta: Annotated[float, Field(gt=-10, lt=10), DynamoStorable()]


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


# ----- what the document says about DynamoDB numbers --------------------------------------------


def test_an_unbounded_dynamo_number_documents_dynamodbs_range() -> None:
    schema = Numbers.model_json_schema()["properties"]["value"]
    assert schema["type"] == "number"
    assert schema["minimum"] == -DYNAMO_MAX_FLOAT and schema["maximum"] == DYNAMO_MAX_FLOAT
    assert dynamo_number_problem(DYNAMO_MAX_FLOAT) is None  # the documented bound is accepted
    assert Numbers(value=DYNAMO_MAX_FLOAT).value == DYNAMO_MAX_FLOAT
    # Magnitudes below 1e-130, on both sides of 0, are excluded.
    assert {"exclusiveMinimum": 0, "exclusiveMaximum": 1e-130} in schema["not"]["anyOf"]
    assert {"exclusiveMinimum": -1e-130, "exclusiveMaximum": 0} in schema["not"]["anyOf"]


def test_bounds_of_a_dynamo_number_are_json_schema_minimum_and_maximum() -> None:
    properties = Bounded.model_json_schema()["properties"]
    age = next(option for option in properties["age"]["anyOf"] if option.get("type") == "number")
    assert (age["minimum"], age["maximum"]) == (0, 150)
    assert age["not"] == {"exclusiveMinimum": 0, "exclusiveMaximum": 1e-130}
    delta = properties["delta"]
    assert (delta["exclusiveMinimum"], delta["exclusiveMaximum"]) == (-10, 10)
    for schema in (age, delta):
        assert not {"ge", "le", "gt", "lt"} & set(schema)
    # And they hold, as does DynamoDB's range.
    bad_values = [
        {"age": -1, "delta": 0},
        {"age": 151, "delta": 0},
        {"delta": 10},
        {"delta": 1e-200},
    ]
    for bad in bad_values:
        with pytest.raises(ValidationError):
            Bounded.model_validate(bad)
    assert Bounded(age=0, delta=-9.5).delta == -9.5


class Typed(BaseModel):
    flag: JsonBool
    count: Annotated[int, Field(ge=0, le=9), DynamoStorable()]
    amount: DynamoNumber


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"flag": True, "count": True, "amount": 1}, "count"),
        ({"flag": True, "count": 1, "amount": False}, "amount"),
        ({"flag": 1, "count": 1, "amount": 1}, "flag"),
        ({"flag": 0.0, "count": 1, "amount": 1}, "flag"),
        ({"flag": True, "count": 1.5, "amount": 1}, "count"),
    ],
)
def test_json_booleans_and_numbers_do_not_stand_in_for_each_other(
    data: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        Typed.model_validate(data)
    assert [error["loc"] for error in caught.value.errors()] == [(field,)]


def test_whole_floats_and_text_still_read_as_pydantic_does() -> None:
    # 3.0 is a JSON Schema integer; text is what a data file (CSV) sends for every value.
    typed = Typed.model_validate({"flag": "true", "count": 3.0, "amount": "2.5"})
    assert (typed.flag, typed.count, typed.amount) == (True, 3, 2.5)
    count = Typed.model_json_schema()["properties"]["count"]
    assert (count["type"], count["minimum"], count["maximum"]) == ("integer", 0, 9)
    assert "not" not in count  # no integer lies between 0 and 1e-130


# ----- PATCH bodies ----------------------------------------------------------------------------


class ThingFields(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: Annotated[str, Field(min_length=1, max_length=10, description="what it is called")]
    kind: Literal["a", "b"]
    count: Annotated[int, Field(ge=0)] = 0
    note: Annotated[str, Field(max_length=5)] | None = None
    weight: Annotated[float, Field(ge=0, le=9), DynamoStorable()] | None = None

    @field_validator("name")
    @classmethod
    def _title(cls, value: str) -> str:
        return value.title()


class ThingUpdate(Patch[ThingFields]):
    pass


def test_a_patch_takes_any_subset_of_the_fields_and_reports_only_those() -> None:
    assert ThingUpdate.model_validate({}).changes() == {}
    assert ThingUpdate.model_validate({"count": 3}).changes() == {"count": 3}
    # The fields model's validators, config (str_strip_whitespace) and constraints apply.
    assert ThingUpdate.model_validate({"name": "  big box "}).changes() == {"name": "Big Box"}
    for bad in ({"name": ""}, {"kind": "c"}, {"count": -1}, {"note": "toolong"}, {"weight": 10}):
        with pytest.raises(ValidationError):
            ThingUpdate.model_validate(bad)
    with pytest.raises(ValidationError) as caught:
        ThingUpdate.model_validate({"colour": "red"})
    assert caught.value.errors()[0]["type"] == "extra_forbidden"


def test_null_clears_a_nullable_field_and_is_refused_for_the_others() -> None:
    assert ThingUpdate.model_validate({"note": None, "weight": None}).changes() == {
        "note": None,
        "weight": None,
    }
    for name in ("name", "kind", "count"):  # required, or with a default, but never null
        with pytest.raises(ValidationError) as caught:
            ThingUpdate.model_validate({name: None})
        assert [(e["loc"], e["msg"]) for e in caught.value.errors()] == [
            ((name,), "Value error, may not be null")
        ]


def test_the_patch_schema_is_nullable_exactly_where_null_is_accepted() -> None:
    schema = ThingUpdate.model_json_schema()
    assert "required" not in schema and schema["additionalProperties"] is False
    properties = schema["properties"]
    for name in ("name", "kind", "count"):
        assert "anyOf" not in properties[name] and "null" not in str(properties[name])
        assert "default" not in properties[name]
    assert properties["name"]["description"] == "what it is called"
    assert (properties["name"]["minLength"], properties["count"]["minimum"]) == (1, 0)
    for name in ("note", "weight"):
        assert {"type": "null"} in properties[name]["anyOf"]
    weight = properties["weight"]["anyOf"][0]
    assert (weight["minimum"], weight["maximum"]) == (0, 9)


def test_patch_is_derived_once_per_fields_model_and_only_from_a_model() -> None:
    assert Patch[ThingFields] is Patch[ThingFields]
    assert Patch[ThingFields].fields_model is ThingFields  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        Patch[int]  # type: ignore[type-var]
