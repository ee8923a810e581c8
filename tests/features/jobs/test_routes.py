"""The jobs API over HTTP, against the real moto server (DynamoDB and SQS)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from app_lib.common.config import Settings
from app_lib.common.feature import Startup, feature_state
from app_lib.common.jobs import Progress
from app_lib.features.jobs import queue as queues
from app_lib.features.jobs import routes, runner
from app_lib.features.jobs.data_service import JobDataService
from app_lib.features.jobs.queue import JobQueue, default_queue_name
from app_lib.features.jobs.runner import Worker
from app_lib.features.jobs.settings import JobsSettings, get_jobs_settings
from app_lib.features.jobs.table import JobKeyTable, JobStatus, JobTable
from tests.conftest import bearer
from tests.factories import record_operations
from tests.features.jobs.conftest import (
    DEADLINE,
    NoParams,
    finished,
    message_counts,
    stored,
    use_queue,
    work_until,
)

JOBS = "/api/v1/jobs"


class AnyParams(BaseModel):
    blob: str


PROBLEM = "application/problem+json"


def count_rows(model: type[JobTable] | type[JobKeyTable]) -> int:
    return sum(1 for _ in model.scan())


def assert_nothing_written(queue: JobQueue | None, endpoint: str) -> None:
    assert count_rows(JobTable) == 0 and count_rows(JobKeyTable) == 0
    if queue is not None:
        assert message_counts(queue.url, endpoint) == (0, 0)


# ----- submit --------------------------------------------------------------------------------


def test_submit_answers_202_with_location_and_queues_one_message(
    client: TestClient, jobs_queue: JobQueue, echo_type: str, dynamodb_endpoint: str
) -> None:
    response = client.post(JOBS, json={"type": echo_type, "params": {"value": 1}})
    assert response.status_code == 202
    body = response.json()
    assert response.headers["Location"] == f"{JOBS}/{body['id']}"
    assert response.headers["ETag"] == '"1"'
    assert body["status"] == "PENDING" and body["progress"] == 0 and body["attempts"] == 0
    assert body["params"] == {"value": 1} and body["result"] is None
    assert "Idempotent-Replayed" not in response.headers
    messages = jobs_queue.receive(10, wait_seconds=1)
    assert [json.loads(m.body) for m in messages] == [{"job_id": body["id"]}]
    assert client.get(response.headers["Location"]).json()["id"] == body["id"]


def test_unknown_type_is_422_and_nothing_is_written(
    client: TestClient, jobs_queue: JobQueue, echo_type: str, dynamodb_endpoint: str
) -> None:
    response = client.post(JOBS, json={"type": "no.such.type", "params": {}})
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    assert "unknown job type 'no.such.type'" in response.json()["detail"]
    assert echo_type in response.json()["known_types"]
    assert_nothing_written(jobs_queue, dynamodb_endpoint)


def test_bad_params_are_422_naming_the_field_and_nothing_is_written(
    client: TestClient, jobs_queue: JobQueue, echo_type: str, dynamodb_endpoint: str
) -> None:
    response = client.post(JOBS, json={"type": echo_type, "params": {"value": "x"}})
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    assert [e["field"] for e in response.json()["errors"]] == ["params.value"]
    for bad in ({"params": {}}, {"type": echo_type, "params": [1]}, {"type": "", "params": {}}):
        assert client.post(JOBS, json=bad).status_code == 422
    assert_nothing_written(jobs_queue, dynamodb_endpoint)


def test_submit_without_a_queue_is_503_and_writes_nothing(
    app: FastAPI, client: TestClient, echo_type: str, dynamodb_endpoint: str
) -> None:
    assert feature_state(app, "jobs") is None
    response = client.post(JOBS, json={"type": echo_type, "params": {"value": 1}})
    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM
    assert "Retry-After" in response.headers
    assert_nothing_written(None, dynamodb_endpoint)


@pytest.mark.parametrize("key", [None, "key-1"])
def test_failed_send_is_503_and_leaves_no_job_or_key(
    app: FastAPI,
    client: TestClient,
    jobs_queue: JobQueue,
    settings: Settings,
    echo_type: str,
    dynamodb_endpoint: str,
    key: str | None,
) -> None:
    missing = JobQueue(jobs_queue.url + "-missing", region=settings.aws_region, retries=0)
    use_queue((app,), missing)
    headers = {"Idempotency-Key": key} if key else {}
    body = {"type": echo_type, "params": {"value": 1}}
    response = client.post(JOBS, json=body, headers=headers)
    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM
    assert_nothing_written(jobs_queue, dynamodb_endpoint)
    # With the queue back, the same request (and key) creates the job.
    use_queue((app,), jobs_queue)
    retry = client.post(JOBS, json=body, headers=headers)
    assert retry.status_code == 202 and "Idempotent-Replayed" not in retry.headers
    assert count_rows(JobTable) == 1


def test_failed_send_of_a_job_a_worker_already_took_keeps_the_job(
    data: JobDataService, jobs_queue: JobQueue, echo_type: str
) -> None:
    # An ambiguous failure: the message went out, a worker claimed the job, then send() raised.
    from app_lib.features.jobs.service import submit

    class LateQueue(JobQueue):
        def send(self, body: dict[str, Any]) -> str:
            job = data.get(body["job_id"])
            assert job is not None and data.claim(job, "worker", 30)
            raise ConnectionError("the answer was lost")

    late = LateQueue(jobs_queue.url, region="us-east-1")
    submission = submit(data, late, echo_type, {"value": 1}, "k")
    assert submission.created and submission.job.status == JobStatus.PROCESSING
    assert count_rows(JobTable) == 1 and count_rows(JobKeyTable) == 1


@pytest.mark.parametrize("key", [None, "big"])
def test_params_too_large_for_a_job_row_are_413_and_leave_nothing(
    client: TestClient,
    jobs_queue: JobQueue,
    echo_type: str,
    register: Callable[..., None],
    dynamodb_endpoint: str,
    key: str | None,
) -> None:
    register("test.any", AnyParams, lambda params, progress: {})
    headers = {"Idempotency-Key": key} if key else {}
    body = {"type": "test.any", "params": {"blob": "x" * 410_000}}
    response = client.post(JOBS, json=body, headers=headers)
    assert response.status_code == 413
    assert response.headers["content-type"] == PROBLEM
    assert_nothing_written(jobs_queue, dynamodb_endpoint)


# ----- idempotency ---------------------------------------------------------------------------


def test_same_key_and_body_returns_the_original_job_without_a_second_message(
    client: TestClient, jobs_queue: JobQueue, echo_type: str, dynamodb_endpoint: str
) -> None:
    headers = {"Idempotency-Key": "order-42"}
    first = client.post(JOBS, json={"type": echo_type, "params": {"value": 1}}, headers=headers)
    # Same body, other key order and spacing.
    raw = '{"params": {"value": 1},   "type": "' + echo_type + '"}'
    second = client.post(JOBS, content=raw, headers={**headers, "Content-Type": "application/json"})
    assert first.status_code == second.status_code == 202
    assert second.json()["id"] == first.json()["id"]
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.headers["Location"] == first.headers["Location"]
    assert count_rows(JobTable) == 1
    assert message_counts(jobs_queue.url, dynamodb_endpoint) == (1, 0)


def test_same_key_with_another_body_is_422(
    client: TestClient, jobs_queue: JobQueue, echo_type: str
) -> None:
    headers = {"Idempotency-Key": "order-43"}
    assert (
        client.post(
            JOBS, json={"type": echo_type, "params": {"value": 1}}, headers=headers
        ).status_code
        == 202
    )
    response = client.post(JOBS, json={"type": echo_type, "params": {"value": 2}}, headers=headers)
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    assert "different request body" in response.json()["detail"]
    assert count_rows(JobTable) == 1


def test_twenty_concurrent_submits_with_one_key_create_exactly_one_job(
    client: TestClient, jobs_queue: JobQueue, echo_type: str, dynamodb_endpoint: str
) -> None:
    start = threading.Barrier(20)

    def post(_: int) -> tuple[int, str]:
        start.wait()
        response = client.post(
            JOBS,
            json={"type": echo_type, "params": {"value": 5}},
            headers={"Idempotency-Key": "burst"},
        )
        return response.status_code, response.json()["id"]

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(post, range(20)))
    assert {status for status, _ in results} == {202}
    assert len({job_id for _, job_id in results}) == 1
    assert count_rows(JobTable) == 1 and count_rows(JobKeyTable) == 1
    assert message_counts(jobs_queue.url, dynamodb_endpoint) == (1, 0)


def test_malformed_idempotency_key_is_422(
    client: TestClient, jobs_queue: JobQueue, echo_type: str
) -> None:
    body = {"type": echo_type, "params": {"value": 1}}
    for key in ("", "x" * 256, "with space"):
        response = client.post(JOBS, json=body, headers={"Idempotency-Key": key})
        assert response.status_code == 422, key
    assert count_rows(JobTable) == 0


# ----- read, list, cancel --------------------------------------------------------------------


def test_missing_job_is_404_problem(client: TestClient) -> None:
    for path in (f"{JOBS}/nope", f"{JOBS}/nope/events"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.headers["content-type"] == PROBLEM
    assert client.delete(f"{JOBS}/nope").status_code == 404


def test_list_by_status_is_newest_first_through_the_index_in_full_pages(
    client: TestClient, jobs_queue: JobQueue, data: JobDataService, echo_type: str
) -> None:
    ids = [
        client.post(JOBS, json={"type": echo_type, "params": {"value": n}}).json()["id"]
        for n in range(5)
    ]
    data.cancel(stored(data, ids[2]))
    seen = []
    cursor = None
    with record_operations(JobTable) as calls:
        while True:
            params: dict[str, Any] = {"status": "PENDING", "limit": 2}
            if cursor:
                params["cursor"] = cursor
            page = client.get(JOBS, params=params).json()
            seen += [item["id"] for item in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
    assert seen == [ids[4], ids[3], ids[1], ids[0]]
    assert {name for name, _ in calls} == {"Query"}
    assert {params["IndexName"] for _, params in calls} == {"by-status"}
    cancelled = client.get(JOBS, params={"status": "CANCELLED"}).json()["items"]
    assert [item["id"] for item in cancelled] == [ids[2]]
    by_type = client.get(JOBS, params={"type": echo_type}).json()["items"]
    assert [item["id"] for item in by_type] == ids[::-1]
    assert len(client.get(JOBS).json()["items"]) == 5
    assert client.get(JOBS, params={"type": "other"}).json() == {"items": [], "next_cursor": None}
    assert client.get(JOBS, params={"status": "DONE"}).status_code == 422
    assert client.get(JOBS, params={"cursor": "forged.cursor"}).status_code == 400


def test_cancel_a_pending_job_then_409(
    client: TestClient, jobs_queue: JobQueue, echo_type: str
) -> None:
    created = client.post(JOBS, json={"type": echo_type, "params": {"value": 1}})
    location = created.headers["Location"]
    stale = client.delete(location, headers={"If-Match": '"7"'})
    assert stale.status_code == 412 and stale.headers["content-type"] == PROBLEM
    response = client.delete(location, headers={"If-Match": created.headers["ETag"]})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "CANCELLED" and body["finished_at"] and body["expires_at"]
    again = client.delete(location)
    assert again.status_code == 409 and again.headers["content-type"] == PROBLEM
    assert client.get(location).json()["status"] == "CANCELLED"


def test_cancel_of_a_running_job_is_409(
    client: TestClient, jobs_queue: JobQueue, data: JobDataService, echo_type: str
) -> None:
    job_id = client.post(JOBS, json={"type": echo_type, "params": {"value": 1}}).json()["id"]
    assert data.claim(stored(data, job_id), "w", 30)
    response = client.delete(f"{JOBS}/{job_id}")
    assert response.status_code == 409
    assert "PROCESSING" in response.json()["detail"]


# ----- Server-Sent Events --------------------------------------------------------------------


def read_events(lines: Iterator[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event, data) of each Server-Sent Event; comments (keep-alives) skipped."""
    name, data = "message", []
    for line in lines:
        if not line:
            if data:
                yield name, json.loads("\n".join(data))
            name, data = "message", []
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)


@pytest.fixture
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(routes, "POLL_SECONDS", 0.05)


def test_event_stream_shows_pending_processing_progress_completed_in_order(
    client: TestClient,
    jobs_queue: JobQueue,
    worker: Worker,
    register: Callable[..., None],
    fast_polls: None,
) -> None:
    # The handler waits for the test at each step, so every state is observed, none skipped.
    steps = [threading.Event(), threading.Event()]

    def handler(params: NoParams, progress: Progress) -> dict[str, Any]:
        assert steps[0].wait(DEADLINE)
        progress(50)
        assert steps[1].wait(DEADLINE)
        return {"ok": True}

    register("test.stepped", NoParams, handler)
    job_id = client.post(JOBS, json={"type": "test.stepped"}).json()["id"]
    runner = threading.Thread(target=worker.run_once, kwargs={"wait_seconds": 10})
    seen = []
    with client.stream("GET", f"{JOBS}/{job_id}/events") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = read_events(response.iter_lines())
        for name, data in events:
            assert name == "status" and data["id"] == job_id
            seen.append((data["status"], data["progress"]))
            if len(seen) == 1:
                runner.start()
            elif len(seen) in (2, 3):
                steps[len(seen) - 2].set()
        # The loop ended: the stream closed by itself after the final event.
    runner.join(DEADLINE)
    assert seen == [("PENDING", 0), ("PROCESSING", 0), ("PROCESSING", 50), ("COMPLETED", 100)]
    assert data["result"] == {"ok": True}


def test_event_stream_of_a_finished_job_is_one_event(
    client: TestClient, jobs_queue: JobQueue, echo_type: str
) -> None:
    location = client.post(JOBS, json={"type": echo_type, "params": {"value": 1}}).headers[
        "Location"
    ]
    client.delete(location)
    with client.stream("GET", f"{location}/events") as response:
        events = list(read_events(response.iter_lines()))
    assert [(name, data["status"]) for name, data in events] == [("status", "CANCELLED")]


def test_event_stream_reads_the_database_off_the_event_loop(
    app: FastAPI,
    client: TestClient,
    jobs_queue: JobQueue,
    data: JobDataService,
    echo_type: str,
    fast_polls: None,
) -> None:
    on_loop: list[bool] = []

    class Recording(JobDataService):
        def get(self, id: str) -> JobTable | None:
            try:
                asyncio.get_running_loop()
                on_loop.append(True)
            except RuntimeError:
                on_loop.append(False)
            return super().get(id)

    app.dependency_overrides[routes.get_job_service] = Recording
    job_id = client.post(JOBS, json={"type": echo_type, "params": {"value": 1}}).json()["id"]
    with client.stream("GET", f"{JOBS}/{job_id}/events") as response:
        for n, _ in enumerate(read_events(response.iter_lines())):
            if n == 0:
                while len(on_loop) < 4:  # a few polls of the PENDING job
                    time.sleep(0.01)
                data.cancel(stored(data, job_id))
    assert len(on_loop) >= 4 and not any(on_loop)


# ----- Lambda (Web Adapter pass-through) -----------------------------------------------------


def sqs_record(
    message_id: str, body: str, receive_count: int = 1, handle: str = ""
) -> dict[str, Any]:
    """A record as Lambda delivers it from SQS."""
    return {
        "messageId": message_id,
        "receiptHandle": handle or f"handle-{message_id}",
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": str(receive_count),
            "SentTimestamp": "1700000000000",
            "SenderId": "AIDAEXAMPLE",
            "ApproximateFirstReceiveTimestamp": "1700000000001",
        },
        "messageAttributes": {},
        "md5OfBody": "0" * 32,
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:test_jobs",
        "awsRegion": "us-east-1",
    }


def test_lambda_batch_reports_exactly_the_failed_record(
    client: TestClient,
    lambda_client: TestClient,
    jobs_queue: JobQueue,
    data: JobDataService,
    echo_type: str,
    failing_type: str,
    dynamodb_endpoint: str,
) -> None:
    good = client.post(JOBS, json={"type": echo_type, "params": {"value": 9}}).json()["id"]
    bad = client.post(JOBS, json={"type": failing_type}).json()["id"]
    # What Lambda's poller received: the two real messages, in flight.
    received = jobs_queue.receive(10, wait_seconds=1)
    while len(received) < 2:
        received += jobs_queue.receive(10, wait_seconds=1)
    records = [
        sqs_record(m.message_id, m.body, m.receive_count, m.receipt_handle) for m in received
    ]
    bad_id = next(m.message_id for m in received if json.loads(m.body)["job_id"] == bad)
    response = lambda_client.post("/events", json={"Records": records})
    assert response.status_code == 200
    assert response.json() == {"batchItemFailures": [{"itemIdentifier": bad_id}]}
    done = stored(data, good)
    assert done.status == JobStatus.COMPLETED and done.result == {"echo": 9}
    retried = stored(data, bad)
    assert retried.status == JobStatus.PROCESSING and retried.attempts == 1
    assert retried.error_code == "handler_failed"
    assert retried.error is not None and retried.error.startswith("attempt 1: ")
    # Lambda deletes the successful records itself: this path deleted nothing.
    assert message_counts(jobs_queue.url, dynamodb_endpoint) == (0, 2)
    # A redelivery of the good record (Lambda retried it) does nothing.
    good_record = next(r for r in records if r["messageId"] != bad_id)
    again = lambda_client.post(
        "/events", json={"Records": [{**good_record, "receiptHandle": "old"}]}
    )
    assert again.json() == {"batchItemFailures": []}
    assert stored(data, good).version == done.version


def test_lambda_events_refuses_requests_that_came_through_the_api(
    lambda_client: TestClient, jobs_queue: JobQueue
) -> None:
    event = {"Records": [sqs_record("m", json.dumps({"job_id": "x"}))]}
    response = lambda_client.post("/events", json=event, headers={"x-amzn-request-context": "{}"})
    assert response.status_code == 404
    assert lambda_client.post("/events", json={"Records": [{"body": "x"}]}).status_code == 422
    not_sqs = {"Records": [{**event["Records"][0], "eventSource": "aws:sns"}]}
    assert lambda_client.post("/events", json=not_sqs).status_code == 422


def test_lambda_events_exist_only_in_the_lambda_worker(
    client: TestClient, lambda_client: TestClient, jobs_queue: JobQueue
) -> None:
    event = {"Records": [sqs_record("m", json.dumps({"job_id": "nope"}))]}
    # Any other process (the API, `make run`, the container): no such route, not documented.
    response = client.post("/events", json=event)
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM
    assert "/events" not in client.get("/openapi.json").json()["paths"]
    # The worker Lambda (LAMBDA_WORKER=true) serves and documents it.
    assert lambda_client.post("/events", json=event).json() == {"batchItemFailures": []}
    assert "/events" in lambda_client.get("/openapi.json").json()["paths"]


# ----- start-up and the dev worker thread ----------------------------------------------------


def test_embedded_start_up_creates_the_queue_and_its_dead_letter_queue(
    settings: Settings, dynamodb_endpoint: str, tables: str
) -> None:
    embedded = settings.model_copy(update={"dynamodb_host": "embedded", "app_namespace": tables})
    jobs = get_jobs_settings()
    queue = queues.start(Startup(embedded, dynamodb_endpoint))
    try:
        assert queue is not None and queue.url.endswith("/" + default_queue_name(embedded))
        sqs = boto3.client("sqs", endpoint_url=dynamodb_endpoint, region_name="us-east-1")
        attributes = sqs.get_queue_attributes(QueueUrl=queue.url, AttributeNames=["All"])[
            "Attributes"
        ]
        assert attributes["VisibilityTimeout"] == str(jobs.jobs_visibility_timeout)
        redrive = json.loads(attributes["RedrivePolicy"])
        assert int(redrive["maxReceiveCount"]) == jobs.jobs_max_attempts + 1
        dead_letter = queue.dead_letter_url()
        assert dead_letter and dead_letter.endswith(default_queue_name(embedded) + "-dlq")
        # Not embedded and no JOBS_QUEUE_URL: no queue (submits answer 503).
        assert queues.start(Startup(settings, dynamodb_endpoint)) is None
    finally:
        if queue is not None:
            sqs.delete_queue(QueueUrl=queue.url)
            sqs.delete_queue(QueueUrl=str(queue.dead_letter_url()))


def test_dev_worker_thread_runs_jobs_end_to_end(
    client: TestClient, jobs_queue: JobQueue, settings: Settings, echo_type: str
) -> None:
    assert runner.start_background(Startup(settings, None, jobs_queue)) is None  # RUN_WORKER=false
    run_worker = JobsSettings(_env_file=None, run_worker=True)  # type: ignore[call-arg]
    # No queue in the state (none configured): no thread either.
    assert runner.start_background(Startup(settings, None, None), run_worker) is None
    stop = runner.start_background(Startup(settings, None, jobs_queue), run_worker)
    assert stop is not None
    try:
        location = client.post(
            JOBS, json={"type": echo_type, "params": {"value": 3, "steps": 2}}
        ).headers["Location"]
        end = time.monotonic() + DEADLINE
        while client.get(location).json()["status"] != "COMPLETED":
            assert time.monotonic() < end
            time.sleep(0.1)
        assert client.get(location).json()["result"] == {"echo": 3}
    finally:
        stop()


def test_worker_of_a_submitted_job_over_http(
    client: TestClient, jobs_queue: JobQueue, data: JobDataService, worker: Worker, echo_type: str
) -> None:
    job_id = client.post(JOBS, json={"type": echo_type, "params": {"value": 11}}).json()["id"]
    work_until(worker, finished(data, job_id))
    body = client.get(f"{JOBS}/{job_id}").json()
    assert body["status"] == "COMPLETED" and body["result"] == {"echo": 11}
    assert body["progress"] == 100 and body["finished_at"] and body["expires_at"]


def test_each_app_submits_to_the_queue_its_start_up_gave_it(
    app: FastAPI,
    client: TestClient,
    jobs_queue: JobQueue,
    settings: Settings,
    echo_type: str,
) -> None:
    from app_lib.main import create_app

    other_app = create_app(settings, manage_database=False)
    assert feature_state(other_app, "jobs") is None  # nothing shared between apps
    with TestClient(other_app, headers=bearer(other_app)) as other:
        # No queue in that app's state: 503, while this app's submit is queued.
        assert other.post(JOBS, json={"type": echo_type, "params": {"value": 1}}).status_code == 503
        job_id = client.post(JOBS, json={"type": echo_type, "params": {"value": 2}}).json()["id"]
    assert [json.loads(m.body)["job_id"] for m in jobs_queue.receive(10, wait_seconds=1)] == [
        job_id
    ]
