"""Submitting a job: validate, write the row, then queue the message; never half of it."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from app_lib.common.dto import json_problem
from app_lib.common.errors import (
    AppError,
    ItemTooLargeError,
    ServiceUnavailableError,
    UnprocessableError,
)
from app_lib.common.jobs import JobType, job_type, job_types
from app_lib.features.jobs.data_service import JobDataService, change, utcnow
from app_lib.features.jobs.queue import JobQueue
from app_lib.features.jobs.table import JobStatus, JobTable

log = logging.getLogger(__name__)

# The most a job's params may take in its row (as stored: JSON text). A DynamoDB item holds
# 400 KB; the rest is left for the job's other attributes (an error text up to 4 KB) and its
# history (table.HISTORY_LIMIT changes, about 8 KB; counted twice while a write replaces it, as
# moto does), so that no later write of the job can make the row too large. A result is on top:
# one too large fails the job (`result_too_large`).
MAX_PARAMS_BYTES = 370 * 1024


@dataclass(frozen=True)
class Submission:
    job: JobTable
    # False when an Idempotency-Key replayed an earlier submit.
    created: bool


def validate(type_name: str, params: dict[str, Any]) -> JobType:
    """The job type, or a 422 naming what is wrong (before anything is written or queued)."""
    problem = json_problem(params)
    if problem is not None:
        # The HTTP body was checked already (JobSubmit.params); this guards other callers.
        path, reason = problem
        field = ".".join(["params", *(str(part) for part in path)])
        raise UnprocessableError(
            f"invalid params: {field}",
            errors=[{"field": field, "message": f"the value {reason}", "type": "value_error"}],
        )
    found = job_type(type_name)
    if found is None:
        raise UnprocessableError(f"unknown job type {type_name!r}", known_types=sorted(job_types()))
    try:
        found.params.model_validate(params)
    except ValidationError as error:
        errors = [
            {
                "field": ".".join(["params", *(str(part) for part in item["loc"])]),
                "message": item["msg"],
                "type": item["type"],
            }
            for item in error.errors()
        ]
        fields = ", ".join(item["field"] for item in errors)
        raise UnprocessableError(f"invalid params: {fields}", errors=errors) from None
    return found


def body_hash(type_name: str, params: dict[str, Any]) -> str:
    """The same request body gives the same hash, whatever its key order or spacing."""
    canonical = json.dumps(
        {"type": type_name, "params": params},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def submit(
    data: JobDataService,
    queue: JobQueue | None,
    type_name: str,
    params: dict[str, Any],
    idempotency_key: str | None = None,
    owner: str | None = None,
) -> Submission:
    """Write a PENDING job, then send its message. If the send fails, the job (and its key)
    are deleted again and the client gets a 503: a job row without a message would never run."""
    validate(type_name, params)
    if len((JobTable.params.serialize(params) or "").encode()) > MAX_PARAMS_BYTES:
        raise ItemTooLargeError(
            f"the params are larger than a job can store ({MAX_PARAMS_BYTES} bytes as JSON)"
        )
    if queue is None:
        raise ServiceUnavailableError("the jobs queue is not configured (JOBS_QUEUE_URL)")
    now = utcnow()
    job = JobTable(
        job_id=data.new_id(),
        job_type=type_name,
        # Stored as submitted (validated again by the worker, with the same model).
        params=params,
        status=JobStatus.PENDING.value,
        progress=0,
        attempts=0,
        created_at=now,
        updated_at=now,
        # Reset to the usual TTL when the job finishes; until then a generous bound, so that a
        # job nothing will finish does not stay forever.
        expires_at=now + data.unfinished_ttl,
        idempotency_key=idempotency_key,
        owner=owner,
        # The first change: the job's version 1, which this write gives it.
        history=[change(JobStatus.PENDING, 0, 0, now, id=1)],
    )
    # A key is the caller's own: the same key from another caller names another job (and
    # must not hand out this one).
    key = None if idempotency_key is None else owned_key(owner, idempotency_key)
    if key is None:
        data.create(job)
    else:
        job, created = data.create_with_key(job, key, body_hash(type_name, params))
        if not created:
            return Submission(job, created=False)
    try:
        queue.send({"job_id": job.job_id})
    except Exception as error:
        # Whatever failed (network, permissions, a missing queue), the message is not known to
        # be queued.
        log.warning("could not queue job %s: %s", job.job_id, error, extra={"job_id": job.job_id})
        _withdraw(data, job, key, error)
        # A worker claimed it meanwhile: the message went out after all, and the job stays.
        return Submission(data.load(job.job_id), created=True)
    return Submission(job, created=True)


def owned_key(owner: str | None, idempotency_key: str) -> str:
    """How an Idempotency-Key is stored: prefixed with a digest of its caller."""
    if owner is None:
        return idempotency_key
    return f"{hashlib.sha256(owner.encode()).hexdigest()[:24]}:{idempotency_key}"


def _withdraw(
    data: JobDataService, job: JobTable, idempotency_key: str | None, cause: Exception
) -> None:
    """Undo the write; raises the 503 unless a worker already has the job."""
    try:
        withdrawn = data.withdraw(job, idempotency_key)
    except AppError:
        # The workers' sweep sends its message again later (or, in the end, marks it FAILED).
        log.error(
            "job %s was written but neither queued nor withdrawn",
            job.job_id,
            extra={"job_id": job.job_id},
        )
        raise ServiceUnavailableError(
            "the job could not be queued now; it may still run later (retry with the same "
            "Idempotency-Key to get that job rather than a second one)",
            retry_after=2,
            job_id=job.job_id,
        ) from cause
    if withdrawn:
        raise ServiceUnavailableError(
            "the job could not be queued and was not kept; retry", retry_after=2
        ) from cause
