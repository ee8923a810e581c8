"""Input that could poison the jobs listing: refused at submit (422, nothing written), and rows
that hold it anyway (written by hand, an older version, a lenient database) still render."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel, ConfigDict

from app_lib.features.jobs.data_service import JobDataService, utcnow
from app_lib.features.jobs.dto import UNRENDERABLE, JobEvent, JobOut
from app_lib.features.jobs.queue import JobQueue
from app_lib.features.jobs.table import JobKeyTable, JobStatus, JobTable
from tests.features.jobs.conftest import message_counts

JOBS = "/api/v1/jobs"
PROBLEM = "application/problem+json"


class FreeParams(BaseModel):
    """A job type that takes any params (the worst case for what a submit may store)."""

    model_config = ConfigDict(extra="allow")


@pytest.fixture
def free_type(register: Callable[..., None]) -> str:
    register("test.free", FreeParams, lambda params, progress: {"ok": True})
    return "test.free"


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def assert_nothing_written(queue: JobQueue, endpoint: str) -> None:
    assert sum(1 for _ in JobTable.scan()) == 0 and sum(1 for _ in JobKeyTable.scan()) == 0
    assert message_counts(queue.url, endpoint) == (0, 0)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ('{"x": "\\ud800"}', "body.params.x"),
        ('{"\\ud800": 1}', "body.params"),
        ('{"x": ["ok", {"y": "a\\udfffb"}]}', "body.params.x.1.y"),
    ],
    ids=["value", "key", "deep-value"],
)
def test_a_lone_surrogate_in_params_is_422_and_nothing_is_written(
    client: TestClient,
    jobs_queue: JobQueue,
    free_type: str,
    dynamodb_endpoint: str,
    params: str,
    field: str,
) -> None:
    raw = '{"type": "' + free_type + '", "params": ' + params + "}"
    for headers in ({}, {"Idempotency-Key": "k1"}):
        response = client.post(
            JOBS, content=raw, headers={"Content-Type": "application/json", **headers}
        )
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == PROBLEM
        assert [e["field"] for e in response.json()["errors"]] == [field]
    assert_nothing_written(jobs_queue, dynamodb_endpoint)
    assert client.get(JOBS).status_code == 200


@pytest.mark.parametrize("depth", [33, 254, 900])
def test_params_nested_deeper_than_32_levels_are_422_and_nothing_is_written(
    client: TestClient, jobs_queue: JobQueue, free_type: str, dynamodb_endpoint: str, depth: int
) -> None:
    response = client.post(JOBS, json={"type": free_type, "params": nested(depth)})
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["body.params"]
    assert "32 levels" in response.json()["errors"][0]["message"]
    assert_nothing_written(jobs_queue, dynamodb_endpoint)


def test_params_32_levels_deep_are_accepted_and_listed(
    client: TestClient, jobs_queue: JobQueue, free_type: str
) -> None:
    response = client.post(JOBS, json={"type": free_type, "params": nested(32)})
    assert response.status_code == 202, response.text
    assert client.get(JOBS).json()["items"][0]["params"] == nested(32)


def test_a_lone_surrogate_in_the_type_is_422(client: TestClient, jobs_queue: JobQueue) -> None:
    raw = '{"type": "test.\\ud800", "params": {}}'
    response = client.post(JOBS, content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["body.type"]


def deep(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


def write_row(data: JobDataService, status: JobStatus = JobStatus.PENDING, **values: Any) -> str:
    """A job row written directly through the model, as nothing in the API would."""
    now = utcnow()
    job = JobTable(
        job_id=data.new_id(),
        job_type=values.pop("job_type", "test.free"),
        params=values.pop("params", {}),
        status=status.value,
        created_at=now,
        updated_at=now,
        **values,
    )
    data.create(job)
    return job.job_id


def test_no_stored_row_can_make_a_listing_fail(client: TestClient, data: JobDataService) -> None:
    poisoned = [
        write_row(data, params={"x": "\ud800"}),
        write_row(data, params={"\udc00": 1}),
        write_row(data, params=deep(300)),
        write_row(data, params=[1, 2]),
        write_row(data, params="text"),
        write_row(data, params=42),
        write_row(data, JobStatus.COMPLETED, result=[1, 2], progress=100),
        write_row(data, JobStatus.COMPLETED, result={"x": "\udfff"}, progress=250),
        write_row(data, JobStatus.COMPLETED, result=deep(300)),
        # Written before error codes: its raw text is not shown.
        write_row(data, JobStatus.FAILED, error="<html>502 Bad Gateway</html> dev_jobs"),
    ]
    for path, query in (
        (JOBS, {}),
        (JOBS, {"status": "PENDING"}),
        (JOBS, {"status": "COMPLETED"}),
        (JOBS, {"status": "FAILED"}),
        (JOBS, {"type": "test.free"}),
        (JOBS, {"limit": 3}),
    ):
        response = client.get(path, params=query)
        assert response.status_code == 200, (query, response.text)
    items = {item["id"]: item for item in client.get(JOBS).json()["items"]}
    assert set(items) == set(poisoned)
    for job_id in poisoned:
        response = client.get(f"{JOBS}/{job_id}")
        assert response.status_code == 200, response.text
        assert response.json() == items[job_id]
    shown = [items[job_id] for job_id in poisoned]
    assert [item["params"] for item in shown[:6]] == [UNRENDERABLE] * 6
    assert [item["result"] for item in shown[6:9]] == [UNRENDERABLE] * 3
    assert shown[7]["progress"] == 100
    assert shown[9]["error"] == {"code": "unknown", "message": "the job failed"}
    # The event stream renders them too (finished: one event, then the end).
    with client.stream("GET", f"{JOBS}/{poisoned[7]}/events") as response:
        assert response.status_code == 200
        text = "".join(response.iter_text())
    assert '"unavailable"' in text


def test_rows_no_database_would_store_still_render() -> None:
    # Text attributes with lone surrogates (DynamoDB and moto refuse them; another store might
    # not): rendered with a replacement character, never a 500.
    now = utcnow()
    job = JobTable(
        job_id="j\ud800",
        job_type="test.\ud800",
        params={"\ud800": deep(300)},
        status=JobStatus.FAILED.value,
        error_code="handler_failed",
        error="bad \udfff text",
        progress=-5,
        created_at=now,
        updated_at=now,
    )
    out = JobOut.from_model(job)
    assert out.type == "test.?" and out.params == UNRENDERABLE and out.progress == 0
    assert out.error is not None and out.error.message == "bad ? text"
    out.model_dump_json()
    JobEvent.from_model(job).model_dump_json()


@pytest.mark.parametrize("name", ["type", "status", "cursor", "limit"])
def test_an_empty_filter_is_422_or_ignored_never_a_500(client: TestClient, name: str) -> None:
    # DynamoDB refuses an empty string as a key value: an empty `type` never reaches the index.
    response = client.get(JOBS, params={name: ""})
    if name == "cursor":
        assert response.status_code == 200  # no cursor: the first page
        return
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    assert [error["field"] for error in response.json()["errors"]] == [f"query.{name}"]
