"""The job type registry: features register their job types; names are unique."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from app_lib.common import jobs


class Params(BaseModel):
    pass


class Result(BaseModel):
    done: int


class OtherResult(BaseModel):
    done: int


def first(params: Params, progress: jobs.Progress) -> dict[str, Any]:
    return {}


def second(params: Params, progress: jobs.Progress) -> dict[str, Any]:
    return {}


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs, "_types", dict(jobs._types))


def test_registering_the_same_type_again_is_harmless() -> None:
    jobs.register_job_type("test.same", Params, first, Result)
    jobs.register_job_type("test.same", Params, first, result=Result)
    found = jobs.job_type("test.same")
    assert found is not None and found.handler is first and found.result is Result


def test_another_handler_under_a_taken_name_is_refused() -> None:
    jobs.register_job_type("test.taken", Params, first, Result)
    with pytest.raises(jobs.DuplicateJobTypeError, match="already registered by"):
        jobs.register_job_type("test.taken", Params, second, Result)
    # The same handler with another result model is another registration too.
    with pytest.raises(jobs.DuplicateJobTypeError, match="already registered by"):
        jobs.register_job_type("test.taken", Params, first, OtherResult)
    found = jobs.job_type("test.taken")
    assert found is not None and found.handler is first and found.result is Result


def test_the_features_register_their_types() -> None:
    from app_lib.common import feature

    feature.discover()
    found = jobs.job_types()
    assert {"passengers.import", "passengers.stats"} <= set(found)
    # Each declares its result model; stats has the figures of GET /passengers/stats.
    assert found["passengers.stats"].result.__name__ == "PassengerStats"
    assert set(found["passengers.import"].result.model_fields) == {"written"}
