"""The passengers job types, run by the jobs feature's worker (registered through common)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app_lib.common.jobs import Progress, register_job_type
from app_lib.features.passengers import seed
from app_lib.features.passengers.data_service import PassengerDataService
from app_lib.features.passengers.dto import PassengerStats

MAX_ROWS = 100_000


class ImportParams(BaseModel):
    """Exactly one of `rows` (passenger objects with their ids) or `csv` (Kaggle CSV text)."""

    model_config = ConfigDict(extra="forbid")

    rows: list[dict[str, Any]] | None = Field(default=None, max_length=MAX_ROWS)
    csv: str | None = Field(default=None, max_length=50_000_000)

    @model_validator(mode="after")
    def _exactly_one(self) -> ImportParams:
        if (self.rows is None) == (self.csv is None):
            raise ValueError("give exactly one of 'rows' or 'csv'")
        return self


class StatsParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ImportResult(BaseModel):
    """What a `passengers.import` job stores: how many passengers it wrote."""

    written: int = Field(ge=0)


def run_import(params: ImportParams, progress: Progress) -> ImportResult:
    passengers = (
        seed.parse_csv(params.csv) if params.csv is not None else seed.parse_rows(params.rows or [])
    )
    total = len(passengers) or 1
    written = seed.write(passengers, lambda done: progress(min(99, done * 100 // total)))
    progress(100)
    return ImportResult(written=written)


def run_stats(params: StatsParams, progress: Progress) -> PassengerStats:
    """The figures of GET /passengers/stats (the same model; an empty table has empty groups)."""
    progress(10)
    stats = PassengerDataService().stats()
    progress(100)
    empty: dict[str, Any] = {"by_class": {}, "by_sex": {}, "by_embarked": {}}
    return PassengerStats.model_validate({**empty, **stats})


def register() -> None:
    register_job_type("passengers.import", ImportParams, run_import, result=ImportResult)
    register_job_type("passengers.stats", StatsParams, run_stats, result=PassengerStats)
