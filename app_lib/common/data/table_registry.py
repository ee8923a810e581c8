"""Every feature's models, so start-up and tests can point them all at one endpoint."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from pynamodb.models import Model

from app_lib.common.config import Settings
from app_lib.common.errors import dynamo_errors
from app_lib.common.util.pynamodb_util import PynamodbUtil, TableName

log = logging.getLogger(__name__)

_models: list[type[Model]] = []


def register(model: type[Model]) -> type[Model]:
    """Register a model (usable as a class decorator); registering twice is harmless."""
    if not isinstance(model.Meta.table_name, TableName):
        raise TypeError(f"{model.__name__}: use PynamodbUtil.env_table_name() for Meta.table_name")
    if model not in _models:
        _models.append(model)
    return model


def models() -> list[type[Model]]:
    return list(_models)


def base_name(model: type[Model]) -> str:
    name = model.Meta.table_name
    return name.base if isinstance(name, TableName) else name


def configure(settings: Settings, host: str | None, namespace: str | None = None) -> None:
    """Re-point every model: endpoint (None = AWS), table names, timeouts and retries."""
    for model in _models:
        configure_model(model, settings, host, namespace)


def configure_model(
    model: type[Model], settings: Settings, host: str | None, namespace: str | None = None
) -> None:
    ns = settings.app_namespace if namespace is None else namespace
    meta = model.Meta
    meta.table_name = PynamodbUtil.table_name(base_name(model), ns, settings.app_env)
    meta.host = host
    meta.region = settings.aws_region
    meta.connect_timeout_seconds = settings.dynamodb_connect_timeout  # type: ignore[assignment]
    meta.read_timeout_seconds = settings.dynamodb_read_timeout  # type: ignore[assignment]
    meta.max_retry_attempts = settings.dynamodb_max_retries
    # PynamoDB caches one connection per model; drop it so the new endpoint is used.
    model._connection = None


def create_tables(selected: Iterable[type[Model]] | None = None) -> list[str]:
    """Create the missing tables (idempotent); returns the names it created."""
    created = []
    for model in selected or _models:
        with dynamo_errors():
            if model.exists():
                continue
            model.create_table(billing_mode="PAY_PER_REQUEST", wait=True)
        created.append(model.Meta.table_name)
        log.info("created table", extra={"table": model.Meta.table_name})
    return created


def delete_tables(selected: Iterable[type[Model]] | None = None) -> None:
    for model in selected or _models:
        with dynamo_errors():
            if model.exists():
                model.delete_table()


def table_status() -> dict[str, str]:
    """DescribeTable for every registered table: the readiness check."""
    status = {}
    for model in _models:
        with dynamo_errors():
            description = model._get_connection().describe_table()
        status[model.Meta.table_name] = str(description.get("TableStatus", "UNKNOWN"))
    return status
