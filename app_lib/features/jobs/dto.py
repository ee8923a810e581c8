"""What the jobs API reads and writes (and the SQS event Lambda delivers)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app_lib.features.jobs.table import JobStatus, JobTable


class JobSubmit(BaseModel):
    """POST /jobs body."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, max_length=100, examples=["passengers.stats"])
    params: dict[str, Any] = Field(default_factory=dict, examples=[{}])


class JobOut(BaseModel):
    id: str
    type: str
    status: JobStatus
    progress: int = Field(ge=0, le=100)
    params: dict[str, Any]
    result: dict[str, Any] | None = None
    error: str | None = None
    attempts: int
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None
    expires_at: datetime | None = Field(
        default=None, description="when a finished job is deleted (approximately)"
    )

    @classmethod
    def from_model(cls, job: JobTable) -> JobOut:
        return cls(
            id=job.job_id,
            type=job.job_type,
            status=JobStatus(job.status),
            progress=int(job.progress or 0),
            params=job.params or {},
            result=job.result,
            error=job.error,
            attempts=int(job.attempts or 0),
            created_at=job.created_at,
            updated_at=job.updated_at,
            finished_at=job.finished_at,
            expires_at=job.expires_at,
        )


class JobPage(BaseModel):
    items: list[JobOut]
    next_cursor: str | None = None


class JobEvent(BaseModel):
    """The `data` of one Server-Sent Event: the job's state after a change."""

    id: str
    status: JobStatus
    progress: int
    attempts: int
    error: str | None = None
    result: dict[str, Any] | None = None
    updated_at: datetime

    @classmethod
    def from_model(cls, job: JobTable) -> JobEvent:
        return cls(
            id=job.job_id,
            status=JobStatus(job.status),
            progress=int(job.progress or 0),
            attempts=int(job.attempts or 0),
            error=job.error,
            result=job.result,
            updated_at=job.updated_at,
        )


class SqsRecord(BaseModel):
    """One record of an SQS event as Lambda delivers it (fields we do not use are ignored)."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    message_id: str = Field(alias="messageId", min_length=1)
    receipt_handle: str | None = Field(default=None, alias="receiptHandle")
    body: str
    attributes: dict[str, str] = Field(default_factory=dict)
    event_source: str = Field(default="aws:sqs", alias="eventSource", pattern="^aws:sqs$")

    @property
    def receive_count(self) -> int:
        try:
            return int(self.attributes.get("ApproximateReceiveCount", "1"))
        except ValueError:
            return 1


class SqsEvent(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    records: list[SqsRecord] = Field(alias="Records")


class BatchItemFailure(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    item_identifier: str = Field(alias="itemIdentifier")


class BatchResponse(BaseModel):
    """Lambda's partial batch response: the records to retry; the others are deleted."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    batch_item_failures: list[BatchItemFailure] = Field(alias="batchItemFailures")
