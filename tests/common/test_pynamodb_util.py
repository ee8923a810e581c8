from __future__ import annotations

from app_lib.common.util.pynamodb_util import PynamodbUtil


def test_table_name_with_and_without_namespace() -> None:
    assert PynamodbUtil.table_name("passengers", "acme", "prod") == "acme_prod_passengers"
    assert PynamodbUtil.table_name("passengers", "", "prod") == "prod_passengers"
    assert PynamodbUtil.table_name("passengers", "", "") == "dev_passengers"
    assert PynamodbUtil.table_name("jobs", "acme", "prod").base == "jobs"


def test_env_table_name_reads_the_settings() -> None:
    # The test session runs with APP_ENV=test and no namespace.
    assert PynamodbUtil.env_table_name("passengers") == "test_passengers"
