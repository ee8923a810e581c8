"""Passenger fixtures: a table seeded once per module with the bundled 891 rows."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app_lib.common.config import Settings
from app_lib.common.data import table_registry
from app_lib.features.passengers.seed import load_file
from app_lib.features.passengers.table import PassengerTable
from tests.conftest import new_namespace


@pytest.fixture(scope="module")
def seeded_client(app: FastAPI, settings: Settings, dynamodb_endpoint: str) -> Iterator[TestClient]:
    """Read-only tests share one seeded table; tests that write use `client` (empty tables)."""
    table_registry.configure(settings, dynamodb_endpoint, new_namespace())
    table_registry.create_tables([PassengerTable])
    assert load_file() == 891
    with TestClient(app) as client:
        yield client
    table_registry.delete_tables([PassengerTable])
