"""/api/v1/jobs: submit (202), list, read, follow (Server-Sent Events), cancel; and POST /events,
the Lambda Web Adapter pass-through path that runs SQS batches (mounted only in the Lambda worker,
LAMBDA_WORKER=true)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from app_lib.common.config import get_settings
from app_lib.common.errors import AppError, NotFoundError
from app_lib.common.http import Cursor, IfMatch, Limit, expected_version, problems, set_etag
from app_lib.features.jobs import queue as queues
from app_lib.features.jobs.data_service import JobDataService
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
from app_lib.features.jobs.queue import JobQueue
from app_lib.features.jobs.service import submit
from app_lib.features.jobs.table import JobStatus, JobTable
from app_lib.features.jobs.worker import PROCESS_SWEEPER, JobProcessor, Outcome, WorkerConfig

# How often an event stream re-reads its job, and how long it may stay silent (proxies close
# idle connections; a comment line keeps it open).
POLL_SECONDS = 0.5
KEEPALIVE_SECONDS = 15.0


def get_job_service() -> JobDataService:
    return JobDataService(ttl=timedelta(days=get_settings().jobs_ttl_days))


def get_job_queue() -> JobQueue | None:
    return queues.current()


JobService = Annotated[JobDataService, Depends(get_job_service)]
JobQueueDep = Annotated[JobQueue | None, Depends(get_job_queue)]


def get_processor(service: JobService, queue: JobQueueDep) -> JobProcessor:
    return JobProcessor(service, queue, WorkerConfig.from_settings(get_settings()))


Processor = Annotated[JobProcessor, Depends(get_processor)]
JobId = Annotated[str, Path(min_length=1, max_length=64)]


def valid_job(job_id: JobId, service: JobService) -> JobTable:
    return service.load(job_id)


ValidJob = Annotated[JobTable, Depends(valid_job)]
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

router = APIRouter(prefix="/jobs", tags=["jobs"])
root_router = APIRouter(tags=["jobs"])


@router.post(
    "",
    status_code=202,
    response_model=JobOut,
    responses=problems(413, 415, 422, models={422: SubmitProblem}),
)
def submit_job(
    body: JobSubmit,
    service: JobService,
    queue: JobQueueDep,
    request: Request,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> JobOut:
    """Queue a job and answer at once (202, Location of the job); follow it there."""
    submission = submit(service, queue, body.type, body.params, idempotency_key)
    job = submission.job
    response.headers["Location"] = request.url_for("get_job", job_id=job.job_id).path
    if not submission.created:
        response.headers["Idempotent-Replayed"] = "true"
    set_etag(response, job.version)
    return JobOut.from_model(job)


@router.get("", response_model=JobPage, responses=problems(400, 422))
def list_jobs(
    service: JobService,
    status: Annotated[JobStatus | None, Query()] = None,
    # An empty type can name no job (and DynamoDB refuses an empty key value): 422.
    job_type: Annotated[str | None, Query(alias="type", min_length=1, max_length=100)] = None,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> JobPage:
    """A page of jobs; with `status` (or `type`) newest first, through an index."""
    page = service.page(limit, cursor, status=status.value if status else None, job_type=job_type)
    return JobPage(
        items=[JobOut.from_model(job) for job in page.items], next_cursor=page.next_cursor
    )


@router.get("/{job_id}", response_model=JobOut, responses=problems(404, 422))
def get_job(job: ValidJob, response: Response) -> JobOut:
    """One job: status, progress, and its result or error once it has finished."""
    set_etag(response, job.version)
    return JobOut.from_model(job)


@router.get(
    "/{job_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "`event: status` with a JobEvent as data, per change, until the end",
            "content": {"text/event-stream": {}},
        },
        **problems(404, 422),
    },
)
def job_events(job: ValidJob, service: JobService) -> StreamingResponse:
    """Server-Sent Events: one per change of status or progress; ends when the job does."""
    return StreamingResponse(
        _events(service, job),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _events(service: JobService, job: JobTable) -> AsyncIterator[str]:
    last: tuple[str, int] | None = None
    silent = 0.0
    while True:
        state = (job.status, int(job.progress or 0))
        if state != last:
            last, silent = state, 0.0
            data = JobEvent.from_model(job).model_dump_json()
            yield f"event: status\nid: {job.version}\ndata: {data}\n\n"
        if JobStatus(job.status).finished:
            return
        await anyio.sleep(POLL_SECONDS)
        silent += POLL_SECONDS
        if silent >= KEEPALIVE_SECONDS:
            silent = 0.0
            yield ": keep-alive\n\n"
        try:
            # PynamoDB blocks: read in a worker thread, never on the event loop.
            fresh = await run_in_threadpool(service.get, job.job_id)
        except AppError as error:
            problem = json.dumps({"status": error.status, "detail": error.detail})
            yield f"event: error\ndata: {problem}\n\n"
            return
        if fresh is None:
            return  # deleted (expired) meanwhile
        job = fresh


@router.delete("/{job_id}", response_model=JobOut, responses=problems(404, 409, 412, 422, 428))
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
