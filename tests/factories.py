"""Data factories and recorders shared by the tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pynamodb.models import Model


@contextmanager
def record_operations(model: type[Model]) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Every DynamoDB operation `model` sends, with its parameters, via a botocore event hook."""
    calls: list[tuple[str, dict[str, Any]]] = []
    client = model._get_connection().connection.client

    def hook(model: Any, params: dict[str, Any], **kwargs: Any) -> None:
        calls.append((model.name, params))

    client.meta.events.register("provide-client-params.dynamodb.*", hook)
    try:
        yield calls
    finally:
        client.meta.events.unregister("provide-client-params.dynamodb.*", hook)
