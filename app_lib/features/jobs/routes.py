"""/api/v1/jobs: submit (202), list, read, follow (Server-Sent Events), cancel; and POST /events,
the Lambda Web Adapter pass-through path that runs SQS batches (mounted only in the Lambda worker,
LAMBDA_WORKER=true)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Annotated, cast

import anyio
from fastapi import Depends, Header, Path, Query, Request, Response
from fastapi.sse import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from app_lib.common.auth import Authorize, Caller
from app_lib.common.errors import AppError, NotFoundError
from app_lib.common.feature import feature_state
from app_lib.common.http import Cursor, IfMatch, Limit, expected_version, problems, set_etag
from app_lib.common.routing import GatedRouter
from app_lib.features.jobs.data_service import JobDataService, history_of
from app_lib.features.jobs.dto import (
    BatchItemFailure,
    BatchResponse,
    JobEvent,
    JobOut,
    JobPage,
    JobSubmit,
    ScheduledEvent,
    SqsEvent,
    SubmitProblem,
)
from app_lib.features.jobs.processor import JobProcessor, Outcome, WorkerConfig
from app_lib.features.jobs.queue import JobQueue
from app_lib.features.jobs.runner import PROCESS_SWEEPER
from app_lib.features.jobs.service import submit
from app_lib.features.jobs.settings import get_jobs_settings
from app_lib.features.jobs.table import JobStatus, JobTable

# How often an event stream re-reads its job, and how long it may stay silent: a comment line
# at least this often keeps proxies (and clients with a 5 s read timeout, httpx's default) from
# closing it, even while a read of the database is slow.
POLL_SECONDS = 0.5
KEEPALIVE_SECONDS = 3.0
# The reconnection delay a client is told (`retry:`, on the first event), in milliseconds.
RETRY_MILLISECONDS = 2000


def get_job_service() -> JobDataService:
    return JobDataService(ttl=timedelta(days=get_jobs_settings().jobs_ttl_days))


def get_job_queue(request: Request) -> JobQueue | None:
    """The queue the jobs feature's start-up returned (None: not configured, submits 503)."""
    queue = feature_state(request.app, "jobs")
    return queue if isinstance(queue, JobQueue) else None


JobService = Annotated[JobDataService, Depends(get_job_service)]
JobQueueDep = Annotated[JobQueue | None, Depends(get_job_queue)]


def get_processor(service: JobService, queue: JobQueueDep) -> JobProcessor:
    return JobProcessor(service, queue, WorkerConfig.from_settings(get_jobs_settings()))


Processor = Annotated[JobProcessor, Depends(get_processor)]
JobId = Annotated[str, Path(min_length=1, max_length=64)]


def valid_job(job_id: JobId, service: JobService, caller: Caller) -> JobTable:
    job = service.load(job_id)
    # Another caller's job does not exist for this one (a 404 tells nothing about it).
    if not caller.is_admin and job.owner != caller.sub:
        raise NotFoundError(f"job {job_id} does not exist")
    return job


ValidJob = Annotated[JobTable, Depends(valid_job)]
LastEventId = Annotated[
    str | None,
    Header(
        alias="Last-Event-ID",
        max_length=64,
        description="the `id` of the last event received (EventSource sends it when it "
        "reconnects): only later events are sent. Anything but a number counts as none.",
    ),
]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="retries with the same key and body return the original job",
    ),
]

# Every route needs a token: a caller sees only their own jobs (admin: all); submitting and
# cancelling need jobs:write.
router = GatedRouter(
    prefix="/jobs",
    tags=["jobs"],
    dependencies=[Depends(Authorize("jobs:write", public_reads=False))],
)
root_router = GatedRouter(tags=["jobs"])


@router.post(
    "",
    status_code=202,
    response_model=JobOut,
    responses=problems(
        413,
        415,
        422,
        models={422: SubmitProblem},
        sends={202: ["ETag", "Location", "Idempotent-Replayed"]},
    ),
)
def submit_job(
    body: JobSubmit,
    service: JobService,
    queue: JobQueueDep,
    request: Request,
    response: Response,
    caller: Caller,
    idempotency_key: IdempotencyKey = None,
) -> JobOut:
    """Queue a job and answer at once (202, Location of the job); follow it there."""
    submission = submit(service, queue, body.type, body.params, idempotency_key, caller.sub)
    job = submission.job
    response.headers["Location"] = request.url_for("get_job", job_id=job.job_id).path
    if not submission.created:
        response.headers["Idempotent-Replayed"] = "true"
    set_etag(response, job.version)
    return JobOut.from_model(job)


@router.get("", response_model=JobPage, responses=problems(400, 422))
def list_jobs(
    service: JobService,
    caller: Caller,
    status: Annotated[JobStatus | None, Query()] = None,
    # An empty type can name no job (and DynamoDB refuses an empty key value): 422.
    job_type: Annotated[str | None, Query(alias="type", min_length=1, max_length=100)] = None,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> JobPage:
    """A page of the caller's jobs (an admin's: everyone's); with `status` (or `type`) newest
    first, through an index."""
    owner = None if caller.is_admin else caller.sub
    page = service.page(
        limit, cursor, status=status.value if status else None, job_type=job_type, owner=owner
    )
    return JobPage(
        items=[JobOut.from_model(job) for job in page.items], next_cursor=page.next_cursor
    )


@router.get("/{job_id}", response_model=JobOut, responses=problems(404, 422, sends={200: ["ETag"]}))
def get_job(job: ValidJob, response: Response) -> JobOut:
    """One job: status, progress, and its result or error once it has finished."""
    set_etag(response, job.version)
    return JobOut.from_model(job)


@router.get(
    "/{job_id}/events",
    response_class=EventSourceResponse,
    response_description="`event: status` with a JobEvent as `data` and the change's `id`, per "
    "change of status or progress, until the job ends; `event: error` (a problem's `status` and "
    "`detail`) if the database fails meanwhile",
    responses=problems(404, 422),
)
async def job_events(
    job: ValidJob, service: JobService, last_event_id: LastEventId = None
) -> AsyncIterator[JobEvent]:
    """Server-Sent Events: one per change of status or progress, each with an `id` that orders
    the job's changes; ends when the job does. Without `Last-Event-ID` the stream starts with
    the job's current state; with it, with every change after that id that the job still keeps
    (its last 100), so a client that reconnects misses none and gets none twice."""
    async for frame in _frames(service, job, _event_id(last_event_id)):
        # FastAPI documents each event's `data` from this function's annotation (JobEvent) and
        # sends ServerSentEvent items as they are (their `data` is a JobEvent).
        yield cast(JobEvent, frame)


def _event_id(header: str | None) -> int | None:
    text = (header or "").strip()
    return int(text) if text.isascii() and text.isdigit() else None


async def _frames(
    service: JobDataService, job: JobTable, after: int | None
) -> AsyncIterator[ServerSentEvent]:
    """The events of `job` from its history: after `after` (an event id), or from its current
    state; a keep-alive comment whenever KEEPALIVE_SECONDS passed without a frame."""
    retry: int | None = RETRY_MILLISECONDS
    last = after
    ping_at = time.monotonic() + KEEPALIVE_SECONDS
    while True:
        history = history_of(job)
        new = history[-1:] if last is None else [c for c in history if int(c.id) > last]
        for change in new:
            data = JobEvent.from_change(job, change, latest=change is history[-1])
            yield ServerSentEvent(event="status", id=str(int(change.id)), data=data, retry=retry)
            retry = None
            ping_at = time.monotonic() + KEEPALIVE_SECONDS
        if new:
            last = int(new[-1].id)
        if JobStatus(job.status).finished:
            return
        await anyio.sleep(POLL_SECONDS)
        # PynamoDB blocks: read in a worker thread, never on the event loop; keep-alives go out
        # while a slow read is under way.
        read = asyncio.ensure_future(run_in_threadpool(service.get, job.job_id))
        try:
            while True:
                wait = max(0.0, ping_at - time.monotonic())
                done, _ = await asyncio.wait({read}, timeout=wait)
                if done:
                    break
                yield ServerSentEvent(comment="keep-alive")
                ping_at = time.monotonic() + KEEPALIVE_SECONDS
        finally:
            if not read.done():
                read.cancel()
        try:
            fresh = read.result()
        except AppError as error:
            yield ServerSentEvent(
                event="error", data={"status": error.status, "detail": error.detail}
            )
            return
        if fresh is None:
            return  # deleted (expired) meanwhile
        job = fresh


@router.delete(
    "/{job_id}",
    response_model=JobOut,
    responses=problems(404, 409, 412, 422, 428, sends={200: ["ETag"]}),
)
def cancel_job(job: ValidJob, service: JobService, if_match: IfMatch, response: Response) -> JobOut:
    """Cancel a PENDING job (409 once a worker has it); the job stays readable as CANCELLED."""
    cancelled = service.cancel(job, expected_version(if_match))
    set_etag(response, cancelled.version)
    return JobOut.from_model(cancelled)


@root_router.post("/events", response_model=BatchResponse, responses=problems(404, 415, 422))
def lambda_events(
    event: SqsEvent | ScheduledEvent,
    processor: Processor,
    request_context: Annotated[str | None, Header(alias="x-amzn-request-context")] = None,
) -> BatchResponse:
    """Lambda Web Adapter pass-through: run an SQS batch and answer the records to retry; a
    scheduled event (the sweep schedule) only sweeps."""
    if request_context is not None:
        # The adapter adds this header to requests that came through API Gateway; a pass-through
        # event has none. Clients of the HTTP API must not be able to feed the worker.
        raise NotFoundError("not found")
    failures = []
    for record in event.records if isinstance(event, SqsEvent) else []:
        # Lambda deletes the records not reported here: nothing is deleted on this path.
        outcome = processor.process_message(
            record.body, record.receive_count, record.receipt_handle
        )
        if outcome is Outcome.RETRY:
            failures.append(BatchItemFailure(item_identifier=record.message_id))
    # At most once per visibility timeout in this process: unfinished jobs whose message was lost.
    PROCESS_SWEEPER.maybe_sweep(processor)
    return BatchResponse(batch_item_failures=failures)
