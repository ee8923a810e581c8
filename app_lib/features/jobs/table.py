"""The jobs table (one row per job) and the idempotency-key table."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from pynamodb.attributes import (
    JSONAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from app_lib.common.data.versioned_table import VersionedTable
from app_lib.common.util.pynamodb_util import PynamodbUtil


class JobStatus(StrEnum):
    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


# Changes a job keeps in its history (the oldest are dropped): a job's event stream replays them
# to a client that reconnects. Each is about 75 bytes: about 8 KB at most, far below the 400 KB
# of an item (submit keeps params to service.MAX_PARAMS_BYTES, leaving room for this and the
# rest). 100 covers one attempt's every percent of progress.
HISTORY_LIMIT = 100


class JobChange(MapAttribute[str, object]):
    """One change of a job's status or progress: its state right after that write. `id` is the
    job's version after the write, so ids order the changes (and match the ETags)."""

    id = NumberAttribute()
    status = UnicodeAttribute()
    progress = NumberAttribute()
    attempts = NumberAttribute()
    at = UTCDateTimeAttribute()

    @classmethod
    def of(cls, id: int, status: str, progress: int, attempts: int, at: datetime) -> JobChange:
        return cls(id=id, status=status, progress=progress, attempts=attempts, at=at)


class StatusIndex(GlobalSecondaryIndex["JobTable"]):
    """Jobs by status, newest first (query with scan_index_forward=False)."""

    class Meta:
        index_name = "by-status"
        projection = AllProjection()

    status = UnicodeAttribute(hash_key=True)
    created_key = UnicodeAttribute(range_key=True)


class TypeIndex(GlobalSecondaryIndex["JobTable"]):
    """Jobs by type, newest first."""

    class Meta:
        index_name = "by-type"
        projection = AllProjection()

    job_type = UnicodeAttribute(hash_key=True, attr_name="type")
    created_key = UnicodeAttribute(range_key=True)


class OwnerIndex(GlobalSecondaryIndex["JobTable"]):
    """A caller's own jobs, newest first: what GET /jobs lists for a caller who is not admin."""

    class Meta:
        index_name = "by-owner"
        projection = AllProjection()

    owner = UnicodeAttribute(hash_key=True)
    created_key = UnicodeAttribute(range_key=True)


class JobTable(VersionedTable):
    """A job. `claim_token` and `lease_until` say which worker owns a PROCESSING job and until
    when; every write of that worker is conditional on still owning it."""

    class Meta:
        table_name = PynamodbUtil.env_table_name("jobs")

    job_id = UnicodeAttribute(hash_key=True)
    job_type = UnicodeAttribute(attr_name="type")
    params = JSONAttribute()
    status = UnicodeAttribute()
    progress = NumberAttribute(default=0)
    result = JSONAttribute(null=True)
    # A failed (or retried) job's error: a stable code (see worker.ErrorCode) and a sentence for
    # people. Never raw exception or upstream text: those go to the logs.
    error_code = UnicodeAttribute(null=True)
    error = UnicodeAttribute(null=True)
    attempts = NumberAttribute(default=0)
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()
    finished_at = UTCDateTimeAttribute(null=True)
    # DynamoDB deletes the row some time after this instant: JOBS_TTL_DAYS after the job
    # finished; an unfinished job gets a generous bound at submit (2 x JOBS_TTL_DAYS).
    expires_at = TTLAttribute(null=True)
    idempotency_key = UnicodeAttribute(null=True)
    # The `sub` of the token that submitted it: only they (or an admin) list and read it.
    owner = UnicodeAttribute(null=True)
    claim_token = UnicodeAttribute(null=True)
    # Unix time (seconds) until which the claim holds; a number, so conditions compare it.
    lease_until = NumberAttribute(null=True)
    # created_at (ISO, fixed width) + "#" + id: sorts by creation time, unique per job.
    created_key = UnicodeAttribute()
    # Messages re-sent for this PENDING job by the sweep (a submit whose message was lost).
    resends = NumberAttribute(null=True)
    # The last HISTORY_LIMIT changes of status or progress, oldest first, each appended by the
    # very write that made it (so none is missed, however fast they come). Rows written before
    # the history existed have none: their current state stands for it.
    history = ListAttribute(of=JobChange, null=True)

    by_status = StatusIndex()
    by_type = TypeIndex()
    by_owner = OwnerIndex()

    derived_attributes = ("created_key",)

    def derive_keys(self) -> None:
        self.created_key = f"{created_key_prefix(self.created_at)}#{self.job_id}"


def created_key_prefix(instant: datetime) -> str:
    """The time part of `created_key`: ISO, fixed width, UTC; compares like the instants."""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class JobKeyTable(Model):
    """An Idempotency-Key: which job it created and a hash of the body it was sent with.

    Written (conditionally) just before its job: the first writer of a key owns it.
    """

    class Meta:
        table_name = PynamodbUtil.env_table_name("job_keys")

    key = UnicodeAttribute(hash_key=True)
    job_id = UnicodeAttribute()
    body_hash = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    expires_at = TTLAttribute()
