"""Every feature's models, so start-up and tests can point them all at one endpoint."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from urllib.parse import urlparse

from botocore.exceptions import ClientError
from pynamodb.exceptions import PynamoDBException
from pynamodb.models import Model

from app_lib.common.aws import install_time_budget
from app_lib.common.aws_errors import aws_errors, is_error_code, translate
from app_lib.common.config import Settings
from app_lib.common.data import pynamodb_adapter as adapter
from app_lib.common.errors import ServiceUnavailableError
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
    name = PynamodbUtil.table_name(base_name(model), ns, settings.app_env)
    wanted: tuple[object, ...] = (
        name,
        host,
        settings.aws_region,
        settings.dynamodb_connect_timeout,
        settings.dynamodb_read_timeout,
        settings.dynamodb_max_retries,
        settings.dynamodb_request_timeout,
    )
    if getattr(model, "_app_lib_configured", None) == wanted and adapter.has_connection(model):
        # Unchanged (a repair after a restart): keep the connection that requests are using.
        return
    meta.table_name = name
    meta.host = host
    meta.region = settings.aws_region
    meta.connect_timeout_seconds = settings.dynamodb_connect_timeout  # type: ignore[assignment]
    meta.read_timeout_seconds = settings.dynamodb_read_timeout  # type: ignore[assignment]
    meta.max_retry_attempts = settings.dynamodb_max_retries
    # PynamoDB caches one connection per model; drop it so the new endpoint is used.
    adapter.drop_connection(model)
    # Make the client now, to give every call one time budget, retries included. (PynamoDB
    # makes a new client only when this one has no credentials: then every call fails anyway.)
    install_time_budget(
        adapter.botocore_client(model),
        settings.dynamodb_request_timeout,
        settings.dynamodb_read_timeout,
    )
    model._app_lib_configured = wanted  # type: ignore[attr-defined]


# Table settings PynamoDB applies after CreateTable, which some DynamoDB-compatible servers do not
# implement (dynalite has no UpdateTimeToLive). Off AWS the table is usable without them.
OPTIONAL_TABLE_SETTINGS = frozenset({"UpdateTimeToLive"})


def is_aws(host: str | None) -> bool:
    """None (the SDK's default endpoint) or an explicit *.amazonaws.com[.cn] endpoint."""
    if host is None:
        return True
    hostname = (urlparse(host).hostname or "").lower()
    return hostname.endswith((".amazonaws.com", ".amazonaws.com.cn"))


def unsupported_optional_setting(model: type[Model], error: BaseException) -> ClientError | None:
    """The server's refusal of an optional table setting, when that may be ignored: off AWS,
    and not a throttle, outage or network fault (those stay errors: 503)."""
    if is_aws(model.Meta.host) or translate(error) is not None:
        return None
    current: object = error
    for _ in range(8):
        if isinstance(current, ClientError):
            operation = getattr(current, "operation_name", None)
            return current if operation in OPTIONAL_TABLE_SETTINGS else None
        current = getattr(current, "cause", None) or getattr(current, "__cause__", None)
    return None


def create_tables(selected: Iterable[type[Model]] | None = None) -> list[str]:
    """Create the missing tables (idempotent); returns the names it created.

    Off AWS, an optional setting the server does not support (TTL on dynalite) is logged as a
    warning and the table is kept without it; against AWS every failure is an error."""
    created = []
    for model in selected or _models:
        with aws_errors():
            if model.exists():
                continue
            try:
                model.create_table(billing_mode="PAY_PER_REQUEST", wait=True)
            except PynamoDBException as error:
                if is_error_code(error, "ResourceInUseException"):
                    # Another process (a second uvicorn worker) created it first: wait for it.
                    _wait_until_active(model)
                    continue
                refused = unsupported_optional_setting(model, error)
                if refused is None:
                    raise
                log.warning(
                    "table %s: the database refused %s (%s); the table works without it",
                    model.Meta.table_name,
                    refused.operation_name,
                    refused.response.get("Error", {}).get("Code", "unknown error"),
                    extra={"table": model.Meta.table_name, "operation": refused.operation_name},
                )
        created.append(model.Meta.table_name)
        log.info("created table", extra={"table": model.Meta.table_name})
    return created


def delete_tables(selected: Iterable[type[Model]] | None = None) -> None:
    for model in selected or _models:
        with aws_errors():
            if model.exists():
                model.delete_table()


def table_status() -> dict[str, str]:
    """DescribeTable for every registered table: the readiness check."""
    status = {}
    for model in _models:
        with aws_errors():
            description = adapter.describe_table(model)
        status[model.Meta.table_name] = str(description.get("TableStatus", "UNKNOWN"))
    return status


def _wait_until_active(model: type[Model], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while adapter.describe_table(model).get("TableStatus") != "ACTIVE":
        if time.monotonic() > deadline:
            raise ServiceUnavailableError(f"table {model.Meta.table_name} is not ACTIVE")
        time.sleep(0.2)


def missing_tables() -> list[str]:
    """Names of the registered tables the endpoint does not have (raises when it is down).
    One ListTables (a page per 100 tables), not a DescribeTable per table: it runs every few
    seconds off AWS."""
    if not _models:
        return []
    client = adapter.botocore_client(_models[0])
    existing: set[str] = set()
    kwargs: dict[str, str] = {}
    with aws_errors():
        while True:
            answer = client.list_tables(**kwargs)
            existing.update(answer.get("TableNames", []))
            if "LastEvaluatedTableName" not in answer:
                break
            kwargs = {"ExclusiveStartTableName": answer["LastEvaluatedTableName"]}
    return [str(m.Meta.table_name) for m in _models if m.Meta.table_name not in existing]
