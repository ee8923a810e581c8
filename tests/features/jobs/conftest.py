"""Jobs fixtures: a real SQS queue (+ dead-letter queue) on the session's moto server, test-only
job types, and a worker driven by the test (RUN_WORKER is false in tests)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel, ConfigDict

from app_lib.common import jobs as job_registry
from app_lib.common.config import Settings
from app_lib.common.jobs import JobType, Progress
from app_lib.features.jobs.data_service import JobDataService
from app_lib.features.jobs.processor import JobProcessor, WorkerConfig
from app_lib.features.jobs.queue import JobQueue, default_queue_name, ensure_queue
from app_lib.features.jobs.runner import Worker
from app_lib.features.jobs.table import JobStatus, JobTable
from app_lib.main import create_app

MAX_ATTEMPTS = 3
# Short, so that redeliveries happen within a test; the lease is then 1 s.
VISIBILITY = 2
# Generous bound for anything that waits on redelivery; tests end as soon as the state is reached.
DEADLINE = 60.0


class EchoParams(BaseModel):
    value: int
    steps: int = 1


class NoParams(BaseModel):
    pass


class EchoResult(BaseModel):
    echo: int


class AnyResult(BaseModel):
    """The result model of the test types that do not care: any JSON object."""

    model_config = ConfigDict(extra="allow")


@dataclass
class Calls:
    """What the test handlers did, so tests can count runs."""

    started: int = 0
    finished: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> int:
        with self.lock:
            self.started += 1
            return self.started

    def finish(self) -> None:
        with self.lock:
            self.finished += 1


@pytest.fixture
def calls() -> Calls:
    return Calls()


@pytest.fixture
def register(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Register a test-only job type for this test (removed afterwards); its result model is
    `AnyResult` unless given."""

    def add(
        name: str,
        params: type[BaseModel],
        handler: Callable[[Any, Progress], Any],
        result: type[BaseModel] = AnyResult,
    ) -> None:
        monkeypatch.setitem(job_registry._types, name, JobType(name, params, handler, result))

    return add


@pytest.fixture
def echo_type(register: Callable[..., None], calls: Calls) -> str:
    """`test.echo`: reports progress per step and returns {"echo": value}."""

    def handler(params: EchoParams, progress: Progress) -> dict[str, Any]:
        calls.start()
        for step in range(1, params.steps + 1):
            progress(step * 100 // (params.steps + 1))
        calls.finish()
        return {"echo": params.value}

    register("test.echo", EchoParams, handler, EchoResult)
    return "test.echo"


@pytest.fixture
def failing_type(register: Callable[..., None], calls: Calls) -> str:
    """`test.fail`: raises on every attempt."""

    def handler(params: NoParams, progress: Progress) -> dict[str, Any]:
        attempt = calls.start()
        raise RuntimeError(f"boom {attempt}")

    register("test.fail", NoParams, handler)
    return "test.fail"


def use_queue(apps: tuple[FastAPI, ...], queue: JobQueue | None) -> None:
    """Make `queue` the jobs feature's state in `apps`, as start-up does (None: no queue)."""
    for app in apps:
        app.state.features["jobs"] = queue


@pytest.fixture
def jobs_queue(
    settings: Settings,
    dynamodb_endpoint: str,
    tables: str,
    app: FastAPI,
    lambda_app: FastAPI,
) -> Iterator[JobQueue]:
    """A queue and its dead-letter queue of this test's own, set as the apps' jobs queue (the
    jobs feature's state, what its on_start returns)."""
    name = default_queue_name(settings, tables)
    url = ensure_queue(
        settings,
        dynamodb_endpoint,
        name,
        visibility_timeout=VISIBILITY,
        max_attempts=MAX_ATTEMPTS,
    )
    # Short long-polls, so that a worker thread notices `stop` quickly.
    queue = JobQueue(url, region=settings.aws_region, wait_seconds=1)
    use_queue((app, lambda_app), queue)
    yield queue
    use_queue((app, lambda_app), None)
    sqs = boto3.client("sqs", endpoint_url=dynamodb_endpoint, region_name=settings.aws_region)
    dead_letter = queue.dead_letter_url()
    sqs.delete_queue(QueueUrl=url)
    if dead_letter:
        sqs.delete_queue(QueueUrl=dead_letter)


@pytest.fixture(scope="session")
def lambda_app(settings: Settings) -> FastAPI:
    """The app as the jobs worker Lambda runs it (LAMBDA_WORKER=true): POST /events mounted."""
    return create_app(settings.model_copy(update={"lambda_worker": True}), manage_database=False)


@pytest.fixture
def lambda_client(lambda_app: FastAPI, tables: str) -> Iterator[TestClient]:
    with TestClient(lambda_app) as test_client:
        yield test_client


@pytest.fixture
def data(tables: str) -> JobDataService:
    return JobDataService()


@pytest.fixture
def processor(data: JobDataService, jobs_queue: JobQueue) -> JobProcessor:
    return JobProcessor(data, jobs_queue, WorkerConfig(MAX_ATTEMPTS, VISIBILITY))


@pytest.fixture
def worker(processor: JobProcessor, jobs_queue: JobQueue) -> Worker:
    return Worker(processor, jobs_queue)


def work_until(
    worker: Worker, done: Callable[[], bool], deadline: float = DEADLINE, wait_seconds: int = 1
) -> None:
    """Run the worker's receive loop until `done()` (bounded by `deadline`, not a timing test)."""
    end = time.monotonic() + deadline
    while not done():
        assert time.monotonic() < end, "the worker did not get there"
        worker.run_once(wait_seconds=wait_seconds)


def job_status(data: JobDataService, job_id: str) -> JobStatus | None:
    job = data.get(job_id)
    return JobStatus(job.status) if job else None


def finished(data: JobDataService, job_id: str) -> Callable[[], bool]:
    def check() -> bool:
        status = job_status(data, job_id)
        return status is not None and status.finished

    return check


def message_counts(queue_url: str, endpoint: str) -> tuple[int, int]:
    """(visible, in flight) messages of a queue."""
    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1")
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesNotVisible"]),
    )


def dead_letters(queue: JobQueue, endpoint: str) -> list[dict[str, Any]]:
    """Bodies (as JSON) of the messages in the dead-letter queue, with their attributes."""
    url = queue.dead_letter_url()
    assert url
    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1")
    out = []
    while True:
        messages = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, MessageAttributeNames=["All"]
        ).get("Messages", [])
        if not messages:
            return out
        for message in messages:
            attributes = {
                k: v["StringValue"] for k, v in message.get("MessageAttributes", {}).items()
            }
            out.append({**json.loads(message["Body"]), "attributes": attributes})
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def stored(data: JobDataService, job_id: str) -> JobTable:
    job = data.get(job_id)
    assert job is not None
    return job
