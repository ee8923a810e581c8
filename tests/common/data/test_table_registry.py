"""create_tables against servers that lack optional table settings (dynalite: no TTL)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import boto3
import pytest
from botocore.exceptions import ClientError
from pynamodb.exceptions import TableError
from pynamodb.models import Model

from app_lib.common.config import Settings
from app_lib.common.data import table_registry
from app_lib.common.errors import ServiceUnavailableError
from app_lib.features.jobs.table import JobKeyTable, JobTable
from tests.conftest import TEST_DYNAMODB, new_namespace, point_models
from tests.dynalite.server import DynaliteServer

JOBS_TABLES: list[type[Model]] = [JobTable, JobKeyTable]


@pytest.fixture(scope="module")
def dynalite_endpoint(dynamodb_endpoint: str) -> Iterator[str]:
    """dynalite: the session's database under TEST_DYNAMODB=dynalite, else one of our own."""
    if TEST_DYNAMODB == "dynalite":
        yield dynamodb_endpoint
        return
    with DynaliteServer() as server:
        yield server.url


@pytest.fixture
def jobs_on_dynalite(settings: Settings, dynalite_endpoint: str) -> Iterator[str]:
    point_models(settings, dynalite_endpoint, new_namespace(), JOBS_TABLES)
    yield dynalite_endpoint
    table_registry.delete_tables(JOBS_TABLES)


def update_ttl_error(code: str) -> TableError:
    """What PynamoDB raises when the server refuses UpdateTimeToLive with `code`."""
    cause = ClientError({"Error": {"Code": code, "Message": ""}}, "UpdateTimeToLive")
    return TableError(f"Failed to update TTL on table: {cause}", cause)


def test_create_tables_on_dynalite_warns_about_ttl_and_keeps_the_tables(
    jobs_on_dynalite: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger=table_registry.__name__):
        created = table_registry.create_tables(JOBS_TABLES)

    assert created == [JobTable.Meta.table_name, JobKeyTable.Meta.table_name]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    for record, model in zip(warnings, JOBS_TABLES, strict=True):
        message = record.getMessage()
        assert model.Meta.table_name in message and "UpdateTimeToLive" in message
    assert all(model.exists() for model in JOBS_TABLES)
    # Idempotent: nothing more to create, nothing more to warn about.
    caplog.clear()
    assert table_registry.create_tables(JOBS_TABLES) == []
    assert not caplog.records


def test_create_tables_treated_as_aws_still_fails_on_ttl(
    jobs_on_dynalite: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(table_registry, "is_aws", lambda host: True)
    with pytest.raises(TableError, match="UpdateTimeToLive"):
        table_registry.create_tables([JobKeyTable])


@pytest.mark.parametrize(
    ("host", "aws"),
    [
        (None, True),
        ("https://dynamodb.eu-west-1.amazonaws.com", True),
        ("https://dynamodb.cn-north-1.amazonaws.com.cn", True),
        ("http://127.0.0.1:8001", False),
        ("http://localhost:4567", False),
        ("https://amazonaws.com.example.org", False),
    ],
)
def test_is_aws(host: str | None, aws: bool) -> None:
    assert table_registry.is_aws(host) is aws


def test_only_a_refused_optional_setting_off_aws_is_ignored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(JobKeyTable.Meta, "host", "http://127.0.0.1:1")
    refused = table_registry.unsupported_optional_setting(
        JobKeyTable, update_ttl_error("UnknownOperationException")
    )
    assert refused is not None and refused.operation_name == "UpdateTimeToLive"
    # A throttle or outage while setting TTL is the database's fault: it stays an error (503).
    throttled = update_ttl_error("ThrottlingException")
    assert table_registry.unsupported_optional_setting(JobKeyTable, throttled) is None
    # A failure of CreateTable itself is never ignored.
    create_failed = TableError(
        "Failed to create table",
        ClientError({"Error": {"Code": "ValidationException"}}, "CreateTable"),
    )
    assert table_registry.unsupported_optional_setting(JobKeyTable, create_failed) is None
    # Against AWS nothing is ignored.
    monkeypatch.setattr(JobKeyTable.Meta, "host", None)
    assert (
        table_registry.unsupported_optional_setting(
            JobKeyTable, update_ttl_error("UnknownOperationException")
        )
        is None
    )


def test_a_throttled_ttl_update_is_a_503(
    settings: Settings, dynalite_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_models(settings, dynalite_endpoint, new_namespace(), [JobKeyTable])

    def throttled(cls: type[Model], ignore_update_ttl_errors: bool) -> None:
        raise update_ttl_error("ThrottlingException")

    monkeypatch.setattr(JobKeyTable, "update_ttl", classmethod(throttled))
    try:
        with pytest.raises(ServiceUnavailableError):
            table_registry.create_tables([JobKeyTable])
    finally:
        table_registry.delete_tables([JobKeyTable])


@pytest.mark.needs_ttl
def test_create_tables_enables_ttl_where_supported(settings: Settings, tables: str) -> None:
    """On the session's database (moto): the jobs tables expire items by `expires_at`."""
    client = boto3.client(
        "dynamodb", endpoint_url=settings.dynamodb_host, region_name=settings.aws_region
    )
    for model in JOBS_TABLES:
        ttl = client.describe_time_to_live(TableName=model.Meta.table_name)
        assert ttl["TimeToLiveDescription"] == {
            "AttributeName": "expires_at",
            "TimeToLiveStatus": "ENABLED",
        }


def test_a_table_another_process_just_created_counts_as_there(
    settings: Settings, dynamodb_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two uvicorn workers start at once: both see no table, both create it; the loser's
    ResourceInUseException means "it exists", not a failed start-up."""
    point_models(settings, dynamodb_endpoint, new_namespace(), [JobKeyTable])
    table_registry.create_tables([JobKeyTable])
    monkeypatch.setattr(JobKeyTable, "exists", classmethod(lambda cls: False))
    try:
        assert table_registry.create_tables([JobKeyTable]) == []
    finally:
        monkeypatch.undo()
        table_registry.delete_tables([JobKeyTable])
