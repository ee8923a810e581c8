"""The sweep: a PENDING job whose message was lost is sent again (once per period, whoever
sweeps), runs once, or in the end is FAILED; unfinished jobs expire too. On the moto server."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app_lib.common.errors import ServiceUnavailableError
from app_lib.features.jobs import routes
from app_lib.features.jobs.data_service import JobDataService, utcnow
from app_lib.features.jobs.processor import JobProcessor
from app_lib.features.jobs.queue import JobQueue
from app_lib.features.jobs.runner import MAX_RESENDS, Sweeper, Worker, sweep
from app_lib.features.jobs.service import submit
from app_lib.features.jobs.table import JobStatus, JobTable
from tests.features.jobs.conftest import (
    VISIBILITY,
    Calls,
    finished,
    message_counts,
    stored,
    work_until,
)

JOBS = "/api/v1/jobs"
# The sweep's period with the tests' visibility timeout: 2 x VISIBILITY.
PERIOD = timedelta(seconds=2 * VISIBILITY)


def orphan(data: JobDataService, job_type: str, age: timedelta = timedelta(minutes=5)) -> JobTable:
    """A PENDING job row without a message: what a submit leaves when it can neither queue the
    message nor withdraw the row (it answered 503)."""
    then = utcnow() - age
    job = JobTable(
        job_id=data.new_id(),
        job_type=job_type,
        params={"value": 5},
        status=JobStatus.PENDING.value,
        created_at=then,
        updated_at=then,
        expires_at=then + data.unfinished_ttl,
    )
    data.create(job)
    return job


def drain(worker: Worker) -> None:
    """Receive until the queue answers nothing (every message processed)."""
    while worker.run_once(wait_seconds=1):
        pass


def test_a_pending_job_without_a_message_is_sent_again_and_completes(
    data: JobDataService,
    jobs_queue: JobQueue,
    processor: JobProcessor,
    worker: Worker,
    echo_type: str,
    calls: Calls,
    dynamodb_endpoint: str,
) -> None:
    job = orphan(data, echo_type)
    assert message_counts(jobs_queue.url, dynamodb_endpoint) == (0, 0)
    result = sweep(processor)
    assert result.resent == [job.job_id] and result.failed == []
    assert stored(data, job.job_id).resends == 1
    work_until(worker, finished(data, job.job_id))
    done = stored(data, job.job_id)
    assert done.status == JobStatus.COMPLETED and done.result == {"echo": 5}
    assert calls.started == 1
    assert message_counts(jobs_queue.url, dynamodb_endpoint) == (0, 0)


def test_a_processing_job_whose_message_was_lost_is_sent_again_once_its_lease_ran_out(
    data: JobDataService,
    jobs_queue: JobQueue,
    processor: JobProcessor,
    worker: Worker,
    echo_type: str,
    calls: Calls,
) -> None:
    # A worker claimed the job, then died and its message was lost (a queue without
    # persistence restarted): PROCESSING, nobody holds it, nothing will deliver it.
    job = orphan(data, echo_type)
    assert data.claim(stored(data, job.job_id), "dead-worker", lease_seconds=0.2)
    lease_until = stored(data, job.job_id).lease_until
    assert lease_until is not None
    while time.time() <= lease_until:
        time.sleep(0.05)
    # While the row is recent (the claim just wrote it), it is left alone; later it is not.
    assert sweep(processor).resent == []
    assert sweep(processor, now=utcnow() + timedelta(minutes=5)).resent == [job.job_id]
    work_until(worker, finished(data, job.job_id))
    done = stored(data, job.job_id)
    assert done.status == JobStatus.COMPLETED and done.attempts == 2 and calls.started == 1


def test_a_running_job_is_never_sent_again(
    data: JobDataService, jobs_queue: JobQueue, processor: JobProcessor, echo_type: str
) -> None:
    job = orphan(data, echo_type)
    assert data.claim(stored(data, job.job_id), "live-worker", lease_seconds=60)
    # Even when its row looks old (a heartbeat is late), a running lease keeps it.
    assert sweep(processor, now=utcnow() + timedelta(seconds=30)).resent == []


def test_of_several_sweepers_one_sends_per_period(
    data: JobDataService,
    jobs_queue: JobQueue,
    processor: JobProcessor,
    echo_type: str,
    dynamodb_endpoint: str,
) -> None:
    job = orphan(data, echo_type)
    now = utcnow()
    # Two sweepers (processes) read the same row; the conditional update lets one send.
    first, second = sweep(processor, now=now), sweep(processor, now=now)
    assert first.resent == [job.job_id] and second.resent == []
    assert message_counts(jobs_queue.url, dynamodb_endpoint) == (1, 0)
    # Within the next period (which doubles after each re-send) nothing is sent again.
    assert sweep(processor, now=now + PERIOD).resent == []
    assert sweep(processor, now=now + 2 * PERIOD + timedelta(seconds=1)).resent == [job.job_id]


def test_a_job_whose_message_is_sent_twice_runs_once(
    data: JobDataService,
    jobs_queue: JobQueue,
    processor: JobProcessor,
    worker: Worker,
    echo_type: str,
    calls: Calls,
    dynamodb_endpoint: str,
) -> None:
    # A healthy job whose message merely waits (a backlog): the sweep sends a duplicate.
    job = submit(data, jobs_queue, echo_type, {"value": 8}).job
    assert sweep(processor, now=utcnow() + timedelta(hours=1)).resent == [job.job_id]
    assert message_counts(jobs_queue.url, dynamodb_endpoint) == (2, 0)
    work_until(worker, finished(data, job.job_id))
    drain(worker)
    done = stored(data, job.job_id)
    assert done.status == JobStatus.COMPLETED and done.attempts == 1
    assert calls.started == 1
    assert message_counts(jobs_queue.url, dynamodb_endpoint) == (0, 0)


def test_a_job_no_worker_ever_takes_ends_failed_with_a_stable_code(
    client: TestClient,
    data: JobDataService,
    jobs_queue: JobQueue,
    processor: JobProcessor,
    echo_type: str,
) -> None:
    job = orphan(data, echo_type)
    now = utcnow()
    for n in range(MAX_RESENDS):
        assert sweep(processor, now=now).resent == [job.job_id], n
        now += PERIOD * 2 ** (n + 1) + timedelta(seconds=1)
    result = sweep(processor, now=now)
    assert result.resent == [] and result.failed == [job.job_id]
    failed = stored(data, job.job_id)
    assert failed.status == JobStatus.FAILED and failed.error_code == "timed_out_unqueued"
    assert failed.expires_at is not None and failed.finished_at is not None
    assert abs(failed.expires_at - (failed.finished_at + data.ttl)) < timedelta(seconds=2)
    body = client.get(f"{JOBS}/{job.job_id}").json()
    assert body["status"] == "FAILED" and body["error"]["code"] == "timed_out_unqueued"
    assert body["error"]["message"]
    # A finished job is left alone by later sweeps.
    assert sweep(processor, now=now + timedelta(days=1)).failed == []


def test_recent_running_and_finished_jobs_are_left_alone(
    data: JobDataService,
    jobs_queue: JobQueue,
    processor: JobProcessor,
    echo_type: str,
    dynamodb_endpoint: str,
) -> None:
    fresh = submit(data, jobs_queue, echo_type, {"value": 1}).job
    running = orphan(data, echo_type)
    assert data.claim(stored(data, running.job_id), "w", 30)
    cancelled = orphan(data, echo_type)
    data.cancel(stored(data, cancelled.job_id))
    assert sweep(processor).resent == []
    assert message_counts(jobs_queue.url, dynamodb_endpoint) == (1, 0)  # fresh's own
    assert stored(data, fresh.job_id).resends is None


def test_a_submit_that_could_neither_queue_nor_withdraw_is_run_by_the_sweep(
    data: JobDataService,
    jobs_queue: JobQueue,
    processor: JobProcessor,
    worker: Worker,
    echo_type: str,
    calls: Calls,
) -> None:
    class DownQueue(JobQueue):
        def send(self, body: dict[str, Any]) -> str:
            raise ConnectionError("the queue is away")

    class DownDatabase(JobDataService):
        def withdraw(self, job: JobTable, key: str | None) -> bool:
            raise ServiceUnavailableError("the database did not answer in time")

    with pytest.raises(ServiceUnavailableError) as caught:
        submit(
            DownDatabase(), DownQueue(jobs_queue.url, region="us-east-1"), echo_type, {"value": 2}
        )
    job_id = caught.value.extra["job_id"]
    assert stored(data, job_id).status == JobStatus.PENDING  # written, never queued
    assert sweep(processor, now=utcnow() + timedelta(minutes=5)).resent == [job_id]
    work_until(worker, finished(data, job_id))
    assert stored(data, job_id).status == JobStatus.COMPLETED and calls.started == 1


def test_unfinished_jobs_expire_too(
    data: JobDataService, jobs_queue: JobQueue, worker: Worker, echo_type: str
) -> None:
    job = submit(data, jobs_queue, echo_type, {"value": 1}).job
    pending = stored(data, job.job_id)
    assert pending.expires_at is not None
    assert abs(pending.expires_at - (pending.created_at + 2 * data.ttl)) < timedelta(seconds=2)
    work_until(worker, finished(data, job.job_id))
    done = stored(data, job.job_id)
    assert done.expires_at is not None and done.finished_at is not None
    assert abs(done.expires_at - (done.finished_at + data.ttl)) < timedelta(seconds=2)


def test_the_sweeper_runs_at_most_once_per_visibility_timeout(
    data: JobDataService, processor: JobProcessor, echo_type: str
) -> None:
    clock = [1000.0]
    sweeper = Sweeper(clock=lambda: clock[0])
    job = orphan(data, echo_type)
    first = sweeper.maybe_sweep(processor)
    assert first is not None and first.resent == [job.job_id]
    orphan(data, echo_type)
    assert sweeper.maybe_sweep(processor) is None  # within the visibility timeout
    clock[0] += VISIBILITY
    second = sweeper.maybe_sweep(processor)
    assert second is not None and len(second.resent) == 1


def test_the_lambda_path_sweeps_after_its_batch(
    lambda_client: TestClient,
    data: JobDataService,
    jobs_queue: JobQueue,
    echo_type: str,
    monkeypatch: pytest.MonkeyPatch,
    dynamodb_endpoint: str,
) -> None:
    monkeypatch.setattr(routes, "PROCESS_SWEEPER", Sweeper())
    job = orphan(data, echo_type)
    record = {
        "messageId": "m1",
        "receiptHandle": "h1",
        "body": json.dumps({"job_id": "gone"}),
        "attributes": {"ApproximateReceiveCount": "1"},
        "eventSource": "aws:sqs",
    }
    response = lambda_client.post("/events", json={"Records": [record]})
    assert response.json() == {"batchItemFailures": []}
    messages = jobs_queue.receive(10, wait_seconds=1)
    assert [json.loads(m.body) for m in messages] == [{"job_id": job.job_id}]


def test_the_sweep_schedule_sweeps_through_the_lambda_path(
    lambda_client: TestClient,
    data: JobDataService,
    jobs_queue: JobQueue,
    echo_type: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With Lambda workers only, an idle queue invokes nothing: the queue stack's EventBridge
    schedule does, and the adapter passes its event to POST /events."""
    monkeypatch.setattr(routes, "PROCESS_SWEEPER", Sweeper())
    job = orphan(data, echo_type)
    scheduled = {
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-11-23T06:00:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/sweep"],
        "detail": {},
    }
    response = lambda_client.post("/events", json=scheduled)
    assert response.status_code == 200
    assert response.json() == {"batchItemFailures": []}
    messages = jobs_queue.receive(10, wait_seconds=1)
    assert [json.loads(m.body) for m in messages] == [{"job_id": job.job_id}]
    # Anything else that is neither an SQS batch nor a scheduled event is refused.
    other = lambda_client.post("/events", json={"source": "aws.s3", "detail-type": "Object"})
    assert other.status_code == 422
