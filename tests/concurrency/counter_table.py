"""A test-only model without a version attribute: plain PutItem and UpdateItem, no conditions."""

from __future__ import annotations

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.models import Model

from app_lib.common.util.pynamodb_util import PynamodbUtil
from tests.concurrency.conftest import CLIENTS


class CounterTable(Model):
    class Meta:
        table_name = PynamodbUtil.env_table_name("counters")
        # One connection per racing thread (PynamoDB's default pool holds 10).
        max_pool_connections = CLIENTS + 5

    name = UnicodeAttribute(hash_key=True)
    value = NumberAttribute(default=0)
