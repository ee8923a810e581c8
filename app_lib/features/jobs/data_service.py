"""Every read and write of jobs, each write conditional on the state it may change."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pynamodb.exceptions import DoesNotExist, PynamoDBException
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action

from app_lib.common.aws_errors import aws_errors, conditional_write
from app_lib.common.data.abstract_data_service import Key
from app_lib.common.data.pynamodb_data_service import IndexPlan, PynamoDataService
from app_lib.common.errors import (
    AppError,
    ConditionFailedError,
    ConflictError,
    NotFoundError,
    PreconditionFailedError,
    ServiceUnavailableError,
    UnprocessableError,
)
from app_lib.features.jobs.table import JobKeyTable, JobStatus, JobTable, created_key_prefix

log = logging.getLogger(__name__)

# How long an Idempotency-Key is remembered. Shorter than the life of any finished job (at least
# a day, see JOBS_TTL_DAYS), so a remembered key always finds its job.
KEY_TTL = timedelta(hours=24)
# A key whose job has not appeared this long after the key was written belongs to a submit that
# died between its two writes; a retry may take the key over. (A live submit writes its job
# within its database timeouts and retries, seconds at most.)
KEY_ABANDONED_AFTER = timedelta(seconds=60)
_KEY_RACE_ROUNDS = 20
_KEY_RACE_PAUSE = 0.05


class LeaseLostError(Exception):
    """The worker no longer owns the job (its lease ran out and another worker claimed it, or
    the job changed under it): it must stop and write nothing more."""


def utcnow() -> datetime:
    return datetime.now(UTC)


class JobDataService(PynamoDataService[JobTable]):
    model = JobTable
    index_plans = (
        IndexPlan(JobTable.by_status, "status", forward=False),
        IndexPlan(JobTable.by_type, "job_type", forward=False),
    )

    def __init__(self, ttl: timedelta = timedelta(days=7)) -> None:
        # A finished job is kept `ttl`; an unfinished one (set at submit) twice as long, so that
        # a job nothing will ever finish does not stay forever either.
        self.ttl = ttl
        self.unfinished_ttl = 2 * ttl

    def get(self, id: Key) -> JobTable | None:
        """Strongly consistent: a worker must see the latest claim, a client its own submit."""
        with aws_errors():
            try:
                return JobTable.get(id, consistent_read=True)
            except DoesNotExist:
                return None

    def load(self, id: str) -> JobTable:
        job = self.get(id)
        if job is None:
            raise NotFoundError(f"job {id} does not exist")
        return job

    # ----- submit -------------------------------------------------------------------------------
    def create_with_key(self, job: JobTable, key: str, body_hash: str) -> tuple[JobTable, bool]:
        """Create `job` under an Idempotency-Key; or, when the key exists, return its job.

        Returns (job, created). The key row is written first, conditionally: of any number of
        concurrent submits exactly one writes it and then its job; the others read the key and
        return that job. (Single-item conditional writes only: no transaction is needed.)
        """
        job.derive_keys()
        for _ in range(_KEY_RACE_ROUNDS):
            now = utcnow()
            row = JobKeyTable(
                key=key,
                job_id=job.job_id,
                body_hash=body_hash,
                created_at=now,
                expires_at=now + KEY_TTL,
            )
            # First writer wins. DynamoDB deletes expired rows only eventually (within days), so
            # a key past its expiry counts as absent.
            if not self._put_key(
                row, JobKeyTable.key.does_not_exist() | (JobKeyTable.expires_at < now)
            ):
                existing = self._key(key)
                if existing is None or existing.expires_at < now:
                    continue  # withdrawn or expired meanwhile: try to write it again
                if existing.body_hash != body_hash:
                    raise UnprocessableError(
                        "this Idempotency-Key was already used with a different request body"
                    )
                original = self.get(existing.job_id)
                if original is not None:
                    return original, False
                if existing.created_at > now - KEY_ABANDONED_AFTER:
                    # Its writer is between its two writes (or withdrawing a failed submit).
                    time.sleep(_KEY_RACE_PAUSE)
                    continue
                # Its writer died between the two writes: take over that very key row.
                if not self._put_key(row, JobKeyTable.job_id == existing.job_id):
                    continue
            try:
                self.create(job)
            except BaseException:
                self._release_key(key, job.job_id, quiet=True)
                raise
            return job, True
        raise ServiceUnavailableError(
            "another request with this Idempotency-Key is in progress; retry", retry_after=1
        )

    def withdraw(self, job: JobTable, key: str | None) -> bool:
        """Delete a job whose message could not be sent (then its key), so that nothing of the
        failed submit remains. False when a worker has claimed it meanwhile: the send succeeded
        after all, and the job (and key) stay."""
        try:
            with conditional_write():
                # Only while nobody has claimed it (PynamoDB adds: version unchanged).
                job.delete(condition=JobTable.status == JobStatus.PENDING.value)
        except ConditionFailedError:
            return False
        if key is not None:
            self._release_key(key, job.job_id)
        return True

    @staticmethod
    def _put_key(row: JobKeyTable, condition: Condition) -> bool:
        try:
            with conditional_write():
                row.save(condition=condition)
        except ConditionFailedError:
            return False
        return True

    @staticmethod
    def _release_key(key: str, job_id: str, quiet: bool = False) -> None:
        try:
            with conditional_write():
                # Only the key row that points at this job (another submit may own it by now).
                JobKeyTable(key=key).delete(condition=JobKeyTable.job_id == job_id)
        except ConditionFailedError:
            pass
        except (AppError, PynamoDBException):
            if not quiet:
                raise
            log.warning("could not release Idempotency-Key of job %s", job_id)

    def _key(self, key: str) -> JobKeyTable | None:
        with aws_errors():
            try:
                return JobKeyTable.get(key, consistent_read=True)
            except DoesNotExist:
                return None

    # ----- client writes ------------------------------------------------------------------------
    def cancel(self, job: JobTable, expected_version: int | None = None) -> JobTable:
        """PENDING -> CANCELLED; a job in any other state is a conflict."""
        self.check_version(job, expected_version)
        if job.status != JobStatus.PENDING:
            raise ConflictError(f"only a PENDING job can be cancelled; this one is {job.status}")
        now = utcnow()
        actions = [
            JobTable.status.set(JobStatus.CANCELLED.value),
            JobTable.updated_at.set(now),
            JobTable.finished_at.set(now),
            JobTable.expires_at.set(now + self.ttl),
        ]
        try:
            # A worker may claim the job between our read and this write: cancel only a job that
            # is still PENDING. The version is checked only when the client sent If-Match.
            self._update(
                job,
                actions,
                JobTable.status == JobStatus.PENDING.value,
                check_version=expected_version is not None,
            )
        except ConditionFailedError:
            current = self.load(job.job_id)
            if current.status != JobStatus.PENDING:
                raise ConflictError(
                    f"only a PENDING job can be cancelled; this one is {current.status}"
                ) from None
            raise PreconditionFailedError("the job was changed by another write") from None
        return job

    # ----- worker writes ------------------------------------------------------------------------
    def claim(self, job: JobTable, token: str, lease_seconds: float) -> bool:
        """Take the job for one attempt (attempts + 1); False when another worker has it."""
        now = time.time()
        actions = [
            JobTable.status.set(JobStatus.PROCESSING.value),
            JobTable.attempts.add(1),
            JobTable.claim_token.set(token),
            JobTable.lease_until.set(now + lease_seconds),
            JobTable.progress.set(0),
            JobTable.updated_at.set(utcnow()),
            # A worker has it: the sweep counts its re-sends from zero again.
            JobTable.resends.remove(),
        ]
        # Only a PENDING job, or a PROCESSING one whose worker let its lease run out (it died or
        # hung), can be claimed. Of two workers racing for a job, exactly one update succeeds.
        claimable = (JobTable.status == JobStatus.PENDING.value) | (
            (JobTable.status == JobStatus.PROCESSING.value)
            & ((JobTable.lease_until < now) | JobTable.lease_until.does_not_exist())
        )
        return self._updated(job, actions, claimable)

    def heartbeat(
        self, job: JobTable, token: str, lease_seconds: float, progress: int | None = None
    ) -> None:
        """Extend the lease (and record progress); raises LeaseLostError if it was lost."""
        actions = [
            JobTable.lease_until.set(time.time() + lease_seconds),
            JobTable.updated_at.set(utcnow()),
        ]
        if progress is not None:
            actions.append(JobTable.progress.set(progress))
        self._owned_update(job, token, actions)

    def complete(self, job: JobTable, token: str, result: dict[str, Any]) -> None:
        self._finish(
            job,
            token,
            JobStatus.COMPLETED,
            [
                JobTable.progress.set(100),
                JobTable.result.set(result),
                JobTable.error.remove(),
                JobTable.error_code.remove(),
            ],
        )

    def fail(self, job: JobTable, token: str, code: str, message: str) -> None:
        """The last attempt failed: FAILED for good, with a stable code and a sentence."""
        self._finish(job, token, JobStatus.FAILED, _error_actions(code, message))

    def _finish(self, job: JobTable, token: str, status: JobStatus, actions: list[Action]) -> None:
        """The final status, written by the worker that holds the claim."""
        self._owned_update(job, token, self._final(status, actions))

    def _final(self, status: JobStatus, actions: list[Action]) -> list[Action]:
        """A final status: the claim is given up and the row expires after the TTL."""
        now = utcnow()
        return [
            JobTable.status.set(status.value),
            *actions,
            JobTable.claim_token.remove(),
            JobTable.lease_until.remove(),
            JobTable.updated_at.set(now),
            JobTable.finished_at.set(now),
            JobTable.expires_at.set(now + self.ttl),
        ]

    def release(self, job: JobTable, token: str, code: str, message: str) -> None:
        """An attempt failed and another may follow: give the claim up at once (the job stays
        PROCESSING, claimable by the next delivery) and record the error."""
        self._owned_update(
            job,
            token,
            [
                *_error_actions(code, message),
                JobTable.claim_token.remove(),
                JobTable.lease_until.set(0),
                JobTable.updated_at.set(utcnow()),
            ],
        )

    def give_up(self, job: JobTable, code: str, message: str) -> bool:
        """Mark FAILED a job whose attempts are used up without a worker recording an outcome
        (each one died). False if the job changed since it was read."""
        actions = self._final(JobStatus.FAILED, _error_actions(code, message))
        # Only the state this decision was made on (PynamoDB adds: version unchanged), and never
        # a job whose lease is still running.
        unowned = (JobTable.status == JobStatus.PENDING.value) | (
            JobTable.lease_until < time.time()
        )
        return self._updated(job, actions, unowned, check_version=True)

    # ----- the sweep: unfinished jobs whose message was lost --------------------------------------
    def stale(self, status: JobStatus, before: datetime, limit: int) -> list[JobTable]:
        """Up to `limit` jobs in `status` not changed since `before`, oldest first (the by-status
        index: created before `before`, then filtered on `updated_at`; a PROCESSING job also
        needs its lease to have run out: a running job's heartbeat changes it anyway)."""
        condition = JobTable.updated_at < before
        if status is JobStatus.PROCESSING:
            condition &= _lease_over(before.timestamp())
        with aws_errors():
            return list(
                JobTable.by_status.query(
                    status.value,
                    JobTable.created_key < created_key_prefix(before),
                    filter_condition=condition,
                    scan_index_forward=True,
                    limit=limit,
                )
            )

    def record_resend(self, job: JobTable, before: datetime, now: datetime) -> bool:
        """Count one more re-sent message on a job still as it was read (status, version) and
        unchanged since `before`: of several sweepers, one re-sends per period."""
        actions = [JobTable.resends.set(int(job.resends or 0) + 1), JobTable.updated_at.set(now)]
        condition = _as_read(job) & (JobTable.updated_at < before)
        return self._updated(job, actions, condition, check_version=True)

    def fail_stale(self, job: JobTable, code: str, message: str) -> bool:
        """FAILED for a job whose messages were lost (unchanged since it was read: status and
        version; a PROCESSING one only with its lease over); False if it changed."""
        actions = self._final(JobStatus.FAILED, _error_actions(code, message))
        return self._updated(job, actions, _as_read(job), check_version=True)

    def _owned_update(self, job: JobTable, token: str, actions: Sequence[Action]) -> None:
        # Only the worker holding the claim may write: one whose lease ran out, and whose job
        # another worker has taken over, must not overwrite the new owner's progress or result.
        owned = (JobTable.status == JobStatus.PROCESSING.value) & (JobTable.claim_token == token)
        try:
            self._update(job, actions, owned)
        except ConditionFailedError:
            raise LeaseLostError(f"job {job.job_id} is no longer owned by this worker") from None

    @staticmethod
    def _update(
        job: JobTable, actions: Sequence[Action], condition: Condition, check_version: bool = False
    ) -> None:
        with conditional_write():
            # The version is still incremented (so ETags change); the condition decides.
            job.update(list(actions), condition=condition, add_version_condition=check_version)

    @classmethod
    def _updated(
        cls,
        job: JobTable,
        actions: Sequence[Action],
        condition: Condition,
        check_version: bool = False,
    ) -> bool:
        """`_update`, answering whether the condition held (False: another writer got there)."""
        try:
            cls._update(job, actions, condition, check_version)
        except ConditionFailedError:
            return False
        return True


def _as_read(job: JobTable) -> Condition:
    """The job is in the status it was read in, and a PROCESSING one has no live lease: the
    state a sweeper's decision was made on (with check_version, the version too)."""
    condition: Condition = JobTable.status == job.status
    if job.status == JobStatus.PROCESSING:
        condition &= _lease_over(time.time())
    return condition


def _lease_over(at: float) -> Condition:
    over: Condition = (JobTable.lease_until < at) | JobTable.lease_until.does_not_exist()
    return over


def _error_actions(code: str, message: str) -> list[Action]:
    return [JobTable.error_code.set(code), JobTable.error.set(message)]
