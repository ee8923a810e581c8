"""What the jobs API reads and writes (and the SQS event Lambda delivers)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, GetJsonSchemaHandler, ValidationError
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from app_lib.common.dto import JsonObject, has_surrogate, renderable_json_object
from app_lib.common.jobs import job_type, job_types
from app_lib.common.problems import FieldProblem, Problem, optional_member
from app_lib.features.jobs.table import JobChange, JobStatus, JobTable

# Shown instead of stored params or a result this API cannot render (not a JSON object, nested
# too deep, or text that is not valid Unicode): a listing never fails because of one row.
UNRENDERABLE: dict[str, Any] = {"unavailable": "the stored value cannot be shown"}
# A row that has an error text but no code (written before codes existed): its text is not shown.
_LEGACY_ERROR = "the job failed"


class JobSubmit(BaseModel):
    """POST /jobs body."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, max_length=100, examples=["passengers.stats"])
    params: JsonObject = Field(
        default_factory=dict,
        examples=[{}],
        description="a JSON object, at most 32 levels deep",
    )


class SubmitProblem(Problem):
    """A 422 of POST /jobs: invalid input (`errors`), a type no worker knows (`known_types`),
    or an Idempotency-Key already used with another body (neither)."""

    errors: list[FieldProblem] = optional_member("each invalid input, when there are any")
    known_types: list[str] = optional_member("the job types there are, when `type` is none")


class JobError(BaseModel):
    """Why a job failed (or why its last attempt did): a stable code and a sentence."""

    code: str = Field(examples=["handler_failed"])
    message: str = Field(examples=["attempt 1: the job's handler failed"])


class Unavailable(BaseModel):
    """Shown instead of a stored value the API cannot render (or a result that does not fit its
    job type's result model: written by hand, by an older version, or of a removed type)."""

    unavailable: str = Field(examples=[UNRENDERABLE["unavailable"]])


class _JobResults:
    """The JSON schema of a job's `result`: the result model of each registered job type (each
    a component of the document, e.g. `PassengerStats` for `passengers.stats`), `Unavailable`,
    or null. Built when the document is, once every feature has registered its job types."""

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        models = sorted(
            {found.result for found in job_types().values()}, key=lambda model: model.__name__
        )
        # A union of the models' own core schemas: each becomes a component, referenced here.
        choices: list[CoreSchema | tuple[CoreSchema, str]] = [
            model.__pydantic_core_schema__ for model in models
        ]
        choices.append(Unavailable.__pydantic_core_schema__)
        union = handler(core_schema.union_schema(choices))
        types = ", ".join(
            f"`{name}`: {found.result.__name__}" for name, found in sorted(job_types().items())
        )
        return {
            "anyOf": [*union.get("anyOf", [union]), {"type": "null"}],
            "description": "the result of the job's type, once it has COMPLETED "
            f"({types or 'no job types'}); `Unavailable` for a stored result this API cannot "
            "show",
        }


JobResult = Annotated[dict[str, Any] | None, _JobResults()]


def _object(value: Any) -> dict[str, Any]:
    return value if renderable_json_object(value) else dict(UNRENDERABLE)


def _result(job: JobTable) -> dict[str, Any] | None:
    """The stored result as its job type's result model shows it; `UNRENDERABLE` when it does
    not fit (or the type is unknown here), so that a response always matches the document."""
    if job.result is None:
        return None
    found = job_type(job.job_type)
    if found is None or not renderable_json_object(job.result):
        return dict(UNRENDERABLE)
    try:
        shown = found.result.model_validate(job.result).model_dump(mode="json")
    except (ValidationError, ValueError):
        return dict(UNRENDERABLE)
    return _object(shown)


def _text(value: str) -> str:
    return value.encode("utf-8", "replace").decode() if has_surrogate(value) else value


def _error(job: JobTable) -> JobError | None:
    if job.error_code is None and job.error is None:
        return None
    if job.error_code is None:
        return JobError(code="unknown", message=_LEGACY_ERROR)
    return JobError(code=_text(job.error_code), message=_text(job.error or job.error_code))


def _progress(job: JobTable) -> int:
    return max(0, min(100, int(job.progress or 0)))


# Response models: every field is always sent, so the document marks every one required, those
# with a default too (pydantic leaves them out of `required` otherwise).
_ALWAYS_PRESENT = ConfigDict(json_schema_serialization_defaults_required=True)


class JobOut(BaseModel):
    """A job. Every field is always present (null when it does not apply yet)."""

    model_config = _ALWAYS_PRESENT

    id: str
    type: str
    status: JobStatus
    progress: int = Field(ge=0, le=100)
    params: dict[str, Any]
    result: JobResult
    error: JobError | None
    attempts: int
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    expires_at: datetime | None = Field(
        description="when the job is deleted (approximately): JOBS_TTL_DAYS after it finished",
    )

    @classmethod
    def from_model(cls, job: JobTable) -> JobOut:
        """Renders any stored row (params or a result it cannot show become `UNRENDERABLE`)."""
        return cls(
            id=_text(job.job_id),
            type=_text(job.job_type),
            status=JobStatus(job.status),
            progress=_progress(job),
            params=_object(job.params if job.params is not None else {}),
            result=_result(job),
            error=_error(job),
            attempts=int(job.attempts or 0),
            created_at=job.created_at,
            updated_at=job.updated_at,
            finished_at=job.finished_at,
            expires_at=job.expires_at,
        )


class JobPage(BaseModel):
    """A page of jobs; `next_cursor` (null at the end) is `cursor` for the next page."""

    model_config = _ALWAYS_PRESENT

    items: list[JobOut]
    next_cursor: str | None = None


class JobEvent(BaseModel):
    """The `data` of one Server-Sent Event (`event: status`): the job's state right after one
    change of its status or progress. `error` and `result` are the job's current ones on the
    event of its latest change (the final event carries the result or the error), null on the
    earlier changes a reconnecting client is sent again."""

    model_config = _ALWAYS_PRESENT

    id: str = Field(description="the job's id (the event's own `id:` orders its events)")
    status: JobStatus
    progress: int = Field(ge=0, le=100)
    attempts: int
    error: JobError | None
    result: JobResult
    updated_at: datetime = Field(description="when the change was made")

    @classmethod
    def from_model(cls, job: JobTable) -> JobEvent:
        """The job's current state."""
        return cls(
            id=_text(job.job_id),
            status=JobStatus(job.status),
            progress=_progress(job),
            attempts=int(job.attempts or 0),
            error=_error(job),
            result=_result(job),
            updated_at=job.updated_at,
        )

    @classmethod
    def from_change(cls, job: JobTable, change: JobChange, latest: bool) -> JobEvent:
        """One change of the job's history; `latest`: its last one (the row's current state)."""
        return cls(
            id=_text(job.job_id),
            status=JobStatus(change.status),
            progress=max(0, min(100, int(change.progress or 0))),
            attempts=int(change.attempts or 0),
            error=_error(job) if latest else None,
            result=_result(job) if latest else None,
            updated_at=change.at,
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


class ScheduledEvent(BaseModel):
    """EventBridge's scheduled event (the queue stack's sweep schedule): only the sweep runs."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    source: Literal["aws.events"]
    detail_type: Literal["Scheduled Event"] = Field(alias="detail-type")


class BatchItemFailure(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    item_identifier: str = Field(alias="itemIdentifier")


class BatchResponse(BaseModel):
    """Lambda's partial batch response: the records to retry; the others are deleted."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    batch_item_failures: list[BatchItemFailure] = Field(alias="batchItemFailures")
