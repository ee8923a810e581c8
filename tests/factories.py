"""Data factories and recorders shared by the tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pynamodb.models import Model

from app_lib.common.data import pynamodb_adapter as adapter


@contextmanager
def record_operations(model: type[Model]) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Every DynamoDB operation `model` sends, with its parameters, via a botocore event hook."""
    calls: list[tuple[str, dict[str, Any]]] = []
    client = adapter.botocore_client(model)

    def hook(model: Any, params: dict[str, Any], **kwargs: Any) -> None:
        calls.append((model.name, params))

    client.meta.events.register("provide-client-params.dynamodb.*", hook)
    try:
        yield calls
    finally:
        client.meta.events.unregister("provide-client-params.dynamodb.*", hook)


def titanic_rows() -> list[dict[str, str]]:
    """The bundled CSV, read independently of the code under test."""
    import csv

    from app_lib.features.passengers.seed import BUNDLED

    with BUNDLED.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def passenger_body(**overrides: Any) -> dict[str, Any]:
    """A valid PassengerCreate body."""
    body: dict[str, Any] = {
        "survived": True,
        "pclass": 2,
        "name": "Doe, Mrs. Jane",
        "sex": "female",
        "age": 31.5,
        "sibsp": 1,
        "parch": 0,
        "ticket": "STON/O2. 3101282",
        "fare": 13.0,
        "cabin": None,
        "embarked": "S",
    }
    body.update(overrides)
    return body
