"""Processing job messages (and the polling worker that feeds it) against the real moto server:
DynamoDB for jobs, SQS for messages."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel, Field

from app_lib.common.errors import UnprocessableError
from app_lib.common.jobs import Progress
from app_lib.features.jobs.data_service import JobDataService
from app_lib.features.jobs.processor import JobProcessor, Outcome
from app_lib.features.jobs.queue import JobQueue
from app_lib.features.jobs.runner import Worker
from app_lib.features.jobs.service import submit
from app_lib.features.jobs.table import JobStatus
from tests.features.jobs.conftest import (
    MAX_ATTEMPTS,
    Calls,
    EchoParams,
    NoParams,
    dead_letters,
    finished,
    message_counts,
    stored,
    work_until,
)


class Killed(BaseException):
    """Stands for the process dying: nothing after it runs (no final write, no delete)."""


def test_submitted_job_completes_and_its_message_is_deleted(
    data: JobDataService,
    jobs_queue: JobQueue,
    worker: Worker,
    echo_type: str,
    calls: Calls,
    dynamodb_endpoint: str,
) -> None:
    job = submit(data, jobs_queue, echo_type, {"value": 7, "steps": 3}).job
    work_until(worker, finished(data, job.job_id))
    done = stored(data, job.job_id)
    assert done.status == JobStatus.COMPLETED
    assert done.result == {"echo": 7}
    assert done.progress == 100 and done.attempts == 1 and done.error is None
    assert done.claim_token is None and done.finished_at is not None
    assert done.expires_at is not None and done.expires_at > done.finished_at
    assert calls.finished == 1
    assert message_counts(jobs_queue.url, dynamodb_endpoint) == (0, 0)


def test_failing_handler_ends_failed_after_max_attempts_in_the_dead_letter_queue(
    data: JobDataService,
    jobs_queue: JobQueue,
    worker: Worker,
    failing_type: str,
    calls: Calls,
    dynamodb_endpoint: str,
) -> None:
    job = submit(data, jobs_queue, failing_type, {}).job
    work_until(worker, finished(data, job.job_id))
    failed = stored(data, job.job_id)
    assert failed.status == JobStatus.FAILED
    assert failed.attempts == MAX_ATTEMPTS and calls.started == MAX_ATTEMPTS
    # A stable code and a sentence; the exception's own text stays in the log.
    assert failed.error_code == "handler_failed"
    assert failed.error == "the job's handler failed"
    assert failed.result is None and failed.expires_at is not None
    letters = dead_letters(jobs_queue, dynamodb_endpoint)
    assert [letter["job_id"] for letter in letters] == [job.job_id]
    assert letters[0]["attributes"]["error"] == f"handler_failed: {failed.error}"
    assert message_counts(jobs_queue.url, dynamodb_endpoint) == (0, 0)


def test_worker_killed_between_claim_and_completion_leads_to_one_completed_run(
    data: JobDataService,
    jobs_queue: JobQueue,
    worker: Worker,
    register: Callable[..., None],
    calls: Calls,
    dynamodb_endpoint: str,
) -> None:
    def handler(params: EchoParams, progress: Progress) -> dict[str, Any]:
        if calls.start() == 1:
            progress(30)
            raise Killed  # the first worker dies mid-job, after its claim and some progress
        calls.finish()
        return {"echo": params.value}

    register("test.dies-once", EchoParams, handler)
    job = submit(data, jobs_queue, "test.dies-once", {"value": 1}).job
    with pytest.raises(Killed):
        work_until(worker, lambda: False)
    crashed = stored(data, job.job_id)
    assert crashed.status == JobStatus.PROCESSING and crashed.attempts == 1
    assert crashed.progress == 30

    # The message reappears after the visibility timeout; the lease has run out by then.
    work_until(worker, finished(data, job.job_id))
    done = stored(data, job.job_id)
    assert done.status == JobStatus.COMPLETED and done.result == {"echo": 1}
    assert done.attempts == 2
    assert (calls.started, calls.finished) == (2, 1)
    assert message_counts(jobs_queue.url, dynamodb_endpoint) == (0, 0)


def test_worker_dying_on_every_attempt_ends_failed_in_the_dead_letter_queue(
    data: JobDataService,
    jobs_queue: JobQueue,
    worker: Worker,
    register: Callable[..., None],
    calls: Calls,
    dynamodb_endpoint: str,
) -> None:
    def handler(params: NoParams, progress: Progress) -> dict[str, Any]:
        calls.start()
        raise Killed

    register("test.always-dies", NoParams, handler)
    job = submit(data, jobs_queue, "test.always-dies", {}).job
    for _ in range(MAX_ATTEMPTS):
        with pytest.raises(Killed):
            work_until(worker, lambda: False)
    # The next delivery finds the attempts used up: FAILED, without running the handler again.
    work_until(worker, finished(data, job.job_id))
    failed = stored(data, job.job_id)
    assert failed.status == JobStatus.FAILED and failed.attempts == MAX_ATTEMPTS
    assert failed.error_code == "gave_up"
    assert failed.error is not None and "gave up after 3 attempts" in failed.error
    assert calls.started == MAX_ATTEMPTS
    assert [d["job_id"] for d in dead_letters(jobs_queue, dynamodb_endpoint)] == [job.job_id]


def test_duplicate_delivery_of_a_finished_job_does_nothing(
    data: JobDataService,
    jobs_queue: JobQueue,
    worker: Worker,
    processor: JobProcessor,
    echo_type: str,
    calls: Calls,
) -> None:
    job = submit(data, jobs_queue, echo_type, {"value": 2}).job
    work_until(worker, finished(data, job.job_id))
    before = stored(data, job.job_id)
    body = json.dumps({"job_id": job.job_id})
    assert processor.process_message(body, receive_count=2) is Outcome.DONE
    after = stored(data, job.job_id)
    assert after.version == before.version and after.attempts == 1
    assert calls.started == 1


def test_delivery_while_another_worker_holds_the_lease_changes_nothing(
    data: JobDataService, jobs_queue: JobQueue, processor: JobProcessor, echo_type: str
) -> None:
    job = submit(data, jobs_queue, echo_type, {"value": 3}).job
    holder = stored(data, job.job_id)
    assert data.claim(holder, "other-worker", lease_seconds=60)
    body = json.dumps({"job_id": job.job_id})
    assert processor.process_message(body) is Outcome.RETRY
    current = stored(data, job.job_id)
    assert current.claim_token == "other-worker" and current.version == holder.version


def test_heartbeat_keeps_a_job_longer_than_its_lease(
    data: JobDataService,
    jobs_queue: JobQueue,
    worker: Worker,
    register: Callable[..., None],
    calls: Calls,
    dynamodb_endpoint: str,
) -> None:
    # The handler runs past the lease (1 s) and the visibility timeout (2 s) while a second
    # worker polls: the heartbeat extends both, so nobody else runs it.
    release = threading.Event()

    def handler(params: NoParams, progress: Progress) -> dict[str, Any]:
        calls.start()
        release.wait(30)
        return {"ok": True}

    register("test.slow", NoParams, handler)
    job = submit(data, jobs_queue, "test.slow", {}).job
    first = threading.Thread(target=worker.run_once, kwargs={"wait_seconds": 5})
    first.start()
    work_until(worker, lambda: calls.started >= 1)
    # A second worker keeps polling for three visibility timeouts and never gets the message.
    for _ in range(3):
        for message, outcome in worker.run_once(wait_seconds=2):
            pytest.fail(f"the message reappeared ({outcome}): {message}")
    release.set()
    first.join(30)
    done = stored(data, job.job_id)
    assert done.status == JobStatus.COMPLETED and done.attempts == 1 and calls.started == 1
    assert message_counts(jobs_queue.url, dynamodb_endpoint) == (0, 0)


def test_client_error_in_a_handler_fails_at_once(
    data: JobDataService,
    jobs_queue: JobQueue,
    worker: Worker,
    register: Callable[..., None],
    calls: Calls,
    dynamodb_endpoint: str,
) -> None:
    def handler(params: NoParams, progress: Progress) -> dict[str, Any]:
        calls.start()
        raise UnprocessableError("row 3: age is not a number")

    register("test.bad-input", NoParams, handler)
    job = submit(data, jobs_queue, "test.bad-input", {}).job
    work_until(worker, finished(data, job.job_id))
    failed = stored(data, job.job_id)
    assert failed.status == JobStatus.FAILED and failed.attempts == 1 and calls.started == 1
    assert failed.error_code == "invalid_params"
    assert failed.error == "row 3: age is not a number"
    assert len(dead_letters(jobs_queue, dynamodb_endpoint)) == 1


def test_message_of_a_missing_job_is_dropped_and_a_malformed_one_kept(
    processor: JobProcessor,
) -> None:
    assert processor.process_message(json.dumps({"job_id": "nope"})) is Outcome.DONE
    # Left in the queue: redrive moves it to the dead-letter queue after maxReceiveCount.
    assert processor.process_message("not json") is Outcome.RETRY
    assert processor.process_message(json.dumps({"id": 1})) is Outcome.RETRY


def test_cancelled_job_is_not_run(
    data: JobDataService,
    jobs_queue: JobQueue,
    worker: Worker,
    echo_type: str,
    calls: Calls,
    dynamodb_endpoint: str,
) -> None:
    job = submit(data, jobs_queue, echo_type, {"value": 4}).job
    data.cancel(stored(data, job.job_id))
    worker.run_once(wait_seconds=2)
    assert stored(data, job.job_id).status == JobStatus.CANCELLED
    assert calls.started == 0
    assert message_counts(jobs_queue.url, dynamodb_endpoint) == (0, 0)


# ----- results: validated against the job type's result model ----------------------------------


class Counted(BaseModel):
    count: int = Field(ge=0)


def test_a_result_that_does_not_fit_its_model_fails_the_job_at_once(
    data: JobDataService,
    jobs_queue: JobQueue,
    worker: Worker,
    register: Callable[..., None],
    dynamodb_endpoint: str,
) -> None:
    register("test.bad-result", NoParams, lambda params, progress: {"count": -1}, Counted)
    job = submit(data, jobs_queue, "test.bad-result", {}).job
    work_until(worker, finished(data, job.job_id))
    failed = stored(data, job.job_id)
    # Permanent: the same handler returns the same thing next time, so no second attempt.
    assert failed.status == JobStatus.FAILED and failed.attempts == 1
    assert failed.error_code == "invalid_result" and failed.result is None
    assert failed.error is not None
    assert failed.error.startswith("the result is not a valid Counted: result.count: ")
    assert "-1" not in failed.error  # where and what, never the value
    assert [letter["job_id"] for letter in dead_letters(jobs_queue, dynamodb_endpoint)] == [
        job.job_id
    ]


def test_a_result_model_instance_is_stored_as_its_json(
    data: JobDataService,
    jobs_queue: JobQueue,
    worker: Worker,
    register: Callable[..., None],
) -> None:
    register("test.model-result", NoParams, lambda params, progress: Counted(count=3), Counted)
    job = submit(data, jobs_queue, "test.model-result", {}).job
    work_until(worker, finished(data, job.job_id))
    done = stored(data, job.job_id)
    assert done.status == JobStatus.COMPLETED and done.result == {"count": 3}


def test_a_result_is_validated_and_dumped_through_its_model() -> None:
    from app_lib.common.jobs import JobType
    from app_lib.features.jobs.processor import _InvalidResultError, valid_result

    found = JobType("test.x", NoParams, lambda params, progress: {}, Counted)
    assert valid_result(found, {"count": "4"}) == {"count": 4}
    assert valid_result(found, Counted(count=2)) == {"count": 2}
    for bad in ({}, {"count": "many"}, [1], None):
        with pytest.raises(_InvalidResultError):
            valid_result(found, bad)
