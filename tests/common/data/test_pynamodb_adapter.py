"""The adapter's item construction equals PynamoDB's own, attribute for attribute."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pynamodb.models import Model

from app_lib.common.data import pynamodb_adapter as adapter
from app_lib.features.jobs.table import JobTable
from app_lib.features.passengers.table import PassengerTable

NOW = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)


def passenger(**overrides: Any) -> PassengerTable:
    values: dict[str, Any] = {
        "passenger_id": "12",
        "survived": 1,
        "pclass": 1,
        "name": "Doe, Mrs. Jane ☃",
        "sex": "female",
        "age": 31.5,
        "sibsp": 1,
        "parch": 0,
        "ticket": "PC 17599",
        "fare": 71.2833,
        "cabin": None,
        "embarked": "C",
        "version": 3,
    }
    values.update(overrides)
    item = PassengerTable(**values)
    item.derive_keys()
    return item


def job() -> JobTable:
    item = JobTable(
        job_id="j1",
        job_type="passengers.stats",
        params={"nested": {"list": [1, 2.5, "x", None, True]}},
        status="COMPLETED",
        progress=100,
        result={"survived": 342},
        attempts=1,
        created_at=NOW,
        updated_at=NOW,
        finished_at=NOW,
        expires_at=NOW + timedelta(days=7),
        version=2,
    )
    item.derive_keys()
    return item


@pytest.mark.parametrize(
    "item",
    [
        passenger(),
        passenger(age=None, fare=None, ticket=None, embarked=None, sibsp=0),
        passenger(age=1e-130, fare=9.9e125, pclass=3),
        passenger(age=-0.0, fare=12345678901234567890.5),
        job(),
    ],
    ids=["full", "sparse", "extremes", "odd-numbers", "job"],
)
def test_the_same_item_as_pynamodb_builds(item: Model) -> None:
    raw = item.serialize()
    model = type(item)
    theirs = Model.from_raw_data.__func__(model, raw)  # type: ignore[attr-defined]
    ours = adapter.instantiate(model, raw)
    assert ours.attribute_values == theirs.attribute_values
    for name, value in theirs.attribute_values.items():
        assert type(ours.attribute_values[name]) is type(value), name
    assert model.from_raw_data(raw).attribute_values == theirs.attribute_values
    assert ours.serialize() == raw
