"""The one place that touches PynamoDB's private API (names that start with an underscore).

PynamoDB keeps one connection per model class and exposes its botocore client and key schema
only through private methods. Everything else in the project goes through these functions, so a
PynamoDB upgrade that renames them is a change here alone.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pynamodb.attributes import (
    Attribute,
    DiscriminatorAttribute,
    NumberAttribute,
    VersionAttribute,
)
from pynamodb.connection import TableConnection
from pynamodb.constants import NULL
from pynamodb.models import Model

_M = TypeVar("_M", bound=Model)


def table_connection(model: type[Model]) -> TableConnection:
    """The model's table connection (made on first use)."""
    connection: TableConnection = model._get_connection()
    return connection


def botocore_client(model: type[Model]) -> Any:
    """The botocore DynamoDB client the model's calls go through."""
    return table_connection(model).connection.client


def has_connection(model: type[Model]) -> bool:
    return model._connection is not None


def drop_connection(model: type[Model]) -> None:
    """Forget the cached connection, so the next call uses the model's current Meta."""
    model._connection = None


def hash_key_attribute(model: type[Model]) -> Attribute[Any]:
    attribute: Attribute[Any] = model._hash_key_attribute()  # type: ignore[no-untyped-call]
    return attribute


def hash_key_name(model: type[Model]) -> str:
    return str(hash_key_attribute(model).attr_name)


def describe_table(model: type[Model]) -> dict[str, Any]:
    description: dict[str, Any] = table_connection(model).describe_table()
    return description


def batch_write(model: type[Model], put_items: list[dict[str, Any]]) -> dict[str, Any]:
    """BatchWriteItem of already serialized items; the answer as botocore gives it."""
    answer: dict[str, Any] = table_connection(model).batch_write_item(put_items=put_items)
    return answer or {}


def _number(text: str) -> int | float:
    # NumberAttribute.deserialize is json.loads: int for integral text, float otherwise.
    try:
        return int(text)
    except ValueError:
        return float(text)


_FAST_NUMBERS = (NumberAttribute, VersionAttribute)


def instantiate(model: type[_M], data: dict[str, Any]) -> _M:
    """`model.from_raw_data(data)` for a model without a discriminator, about twice as fast:
    PynamoDB sets each attribute through its descriptor and parses every number with
    json.loads; pages of items are read far more often than anything else is done."""
    if any(isinstance(a, DiscriminatorAttribute) for a in model.get_attributes().values()):
        return model._instantiate(data)
    instance = model.__new__(model)
    instance.attribute_values = {}
    instance._set_defaults(_user_instantiated=False)
    values = instance.attribute_values
    for name, attribute in model._attributes.items():
        raw = data.get(attribute.attr_name)
        if not raw or NULL in raw:
            continue
        value = raw.get(attribute.attr_type)
        if value is None:
            value = attribute.get_value(raw)  # raises PynamoDB's own error
        if type(attribute) in _FAST_NUMBERS:
            values[name] = _number(value)
        else:
            values[name] = attribute.deserialize(value)
    return instance
