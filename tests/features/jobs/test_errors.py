"""A failed job's error is a stable code and a sentence of ours, never upstream text; the whole
exception goes to the log. Against the moto server (DynamoDB and SQS)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError
from fastapi.testclient import TestClient
from pydantic import BaseModel
from pynamodb.exceptions import PutError

from app_lib.common.errors import ConflictError
from app_lib.common.jobs import Progress
from app_lib.features.jobs.data_service import JobDataService
from app_lib.features.jobs.processor import ErrorCode, describe
from app_lib.features.jobs.queue import JobQueue
from app_lib.features.jobs.runner import Worker
from tests.features.jobs.conftest import MAX_ATTEMPTS, Calls, NoParams, finished, work_until

JOBS = "/api/v1/jobs"
# What a proxy in front of the database answered once, with a table name in it.
UPSTREAM_PAGE = "<html><body><h1>502 Bad Gateway</h1>table prod_passengers</body></html>"


def upstream_error(code: str) -> PutError:
    cause = ClientError({"Error": {"Code": code, "Message": UPSTREAM_PAGE}}, "PutItem")
    return PutError("Failed to put item", cause=cause)


def run_failing(
    client: TestClient,
    worker: Worker,
    data: JobDataService,
    register: Callable[..., None],
    error: Exception,
) -> dict[str, Any]:
    def handler(params: NoParams, progress: Progress) -> dict[str, Any]:
        raise error

    register("test.raises", NoParams, handler)
    job_id = client.post(JOBS, json={"type": "test.raises"}).json()["id"]
    work_until(worker, finished(data, job_id))
    response = client.get(f"{JOBS}/{job_id}")
    assert "502 Bad Gateway" not in response.text and "prod_passengers" not in response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (upstream_error("InternalServerError"), "database_unavailable"),
        (upstream_error("ValidationException"), "handler_failed"),
        (RuntimeError(UPSTREAM_PAGE), "handler_failed"),
    ],
    ids=["database-down", "database-refused", "plain-exception"],
)
def test_a_failed_job_shows_a_code_and_a_sentence_never_the_upstream_text(
    client: TestClient,
    jobs_queue: JobQueue,
    worker: Worker,
    data: JobDataService,
    register: Callable[..., None],
    caplog: pytest.LogCaptureFixture,
    error: Exception,
    code: str,
) -> None:
    with caplog.at_level(logging.WARNING, logger="app_lib.features.jobs.processor"):
        job = run_failing(client, worker, data, register, error)
    assert job["status"] == "FAILED" and job["attempts"] == MAX_ATTEMPTS
    assert job["error"]["code"] == code
    assert job["error"]["message"] and "<" not in job["error"]["message"]
    # The operator still sees everything, in the log.
    assert "502 Bad Gateway" in caplog.text


def test_a_domain_error_keeps_the_clients_own_details(
    client: TestClient,
    jobs_queue: JobQueue,
    worker: Worker,
    data: JobDataService,
    register: Callable[..., None],
) -> None:
    error = ConflictError("passenger 7 changed meanwhile", rows=[7])
    job = run_failing(client, worker, data, register, error)
    assert job["attempts"] == 1  # a client-side error does not get better on a retry
    assert job["error"] == {
        "code": "rejected",
        "message": 'passenger 7 changed meanwhile {"rows": [7]}',
    }


def test_a_retried_attempt_records_its_code_and_the_event_stream_shows_it(
    client: TestClient,
    jobs_queue: JobQueue,
    worker: Worker,
    data: JobDataService,
    failing_type: str,
    calls: Calls,
) -> None:
    job_id = client.post(JOBS, json={"type": failing_type}).json()["id"]
    while calls.started < 1:
        worker.run_once(wait_seconds=1)
    body = client.get(f"{JOBS}/{job_id}").json()
    assert body["status"] == "PROCESSING"
    assert body["error"] == {
        "code": "handler_failed",
        "message": "attempt 1: the job's handler failed",
    }
    assert "boom" not in client.get(f"{JOBS}/{job_id}").text
    work_until(worker, finished(data, job_id))
    with client.stream("GET", f"{JOBS}/{job_id}/events") as response:
        text = "".join(response.iter_text())
    assert '"error":{"code":"handler_failed","message":"the job\'s handler failed"}' in text


class StrictParams(BaseModel):
    value: int


def test_params_that_became_invalid_fail_with_invalid_params(
    data: JobDataService,
    jobs_queue: JobQueue,
    worker: Worker,
    register: Callable[..., None],
    client: TestClient,
) -> None:
    register("test.strict", StrictParams, lambda params, progress: {"ok": True})
    job_id = client.post(JOBS, json={"type": "test.strict", "params": {"value": 1}}).json()["id"]
    # The job type changed its params between submit and run (a deploy in between).

    class Renamed(BaseModel):
        amount: int

    register("test.strict", Renamed, lambda params, progress: {"ok": True})
    work_until(worker, finished(data, job_id))
    body = client.get(f"{JOBS}/{job_id}").json()
    assert body["attempts"] == 1 and body["error"]["code"] == "invalid_params"
    assert "params.amount" in body["error"]["message"]


def test_describe_never_quotes_foreign_exception_text() -> None:
    for error in (upstream_error("InternalServerError"), RuntimeError("secret"), KeyError("x")):
        failure = describe(error)
        assert "502" not in failure.message and "secret" not in failure.message
        assert failure.code in set(ErrorCode)
