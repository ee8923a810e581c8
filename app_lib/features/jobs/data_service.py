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
from app_lib.features.jobs.table import (
    HISTORY_LIMIT,
    JobChange,
    JobKeyTable,
    JobStatus,
    JobTable,
    created_key_prefix,
)

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
# Writes retried when another write (one that records no change: a sweep's re-send, a heartbeat)
# moved the version on between the read and the write.
_VERSION_RACE_ROUNDS = 5


class LeaseLostError(Exception):
    """The worker no longer owns the job (its lease ran out and another worker claimed it, or
    the job changed under it): it must stop and write nothing more."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def change(status: JobStatus, progress: int, attempts: int, at: datetime, id: int = 0) -> JobChange:
    """A history entry; an update sets its `id` (the version it gives the job) itself."""
    return JobChange.of(id, status.value, int(progress), int(attempts), at)


def history_of(job: JobTable) -> list[JobChange]:
    """The job's changes, oldest first. A row written before histories existed has none: its
    current state stands for it (id = its version)."""
    if job.history:
        return list(job.history)
    return [
        JobChange.of(
            int(job.version or 0),
            job.status,
            int(job.progress or 0),
            int(job.attempts or 0),
            job.updated_at,
        )
    ]


class JobDataService(PynamoDataService[JobTable]):
    model = JobTable
    index_plans = (
        # A caller's own jobs first: their index holds only theirs (status and type then
        # filter them); an admin's listing goes by status or type.
        IndexPlan(JobTable.by_owner, "owner", forward=False),
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
        for _ in range(_VERSION_RACE_ROUNDS):
            if job.status != JobStatus.PENDING:
                raise ConflictError(
                    f"only a PENDING job can be cancelled; this one is {job.status}"
                )
            now = utcnow()
            actions = [
                JobTable.status.set(JobStatus.CANCELLED.value),
                JobTable.updated_at.set(now),
                JobTable.finished_at.set(now),
                JobTable.expires_at.set(now + self.ttl),
            ]
            entry = change(JobStatus.CANCELLED, int(job.progress or 0), int(job.attempts), now)
            try:
                # A worker may claim the job between our read and this write: cancel only a job
                # that is still PENDING (and, as every recorded change, still at its version).
                self._update(job, actions, JobTable.status == JobStatus.PENDING.value, entry=entry)
                return job
            except ConditionFailedError:
                current = self.load(job.job_id)
                if current.status == JobStatus.PENDING and expected_version is not None:
                    # The client's If-Match named the version we read: it is gone.
                    raise PreconditionFailedError("the job was changed by another write") from None
                job = current  # claimed (409 above), or re-sent by a sweep meanwhile: again
        raise PreconditionFailedError("the job was changed by another write")

    # ----- worker writes ------------------------------------------------------------------------
    def claim(self, job: JobTable, token: str, lease_seconds: float) -> bool:
        """Take the job for one attempt (attempts + 1); False when another worker has it."""
        now = time.time()
        at = utcnow()
        actions = [
            JobTable.status.set(JobStatus.PROCESSING.value),
            JobTable.attempts.add(1),
            JobTable.claim_token.set(token),
            JobTable.lease_until.set(now + lease_seconds),
            JobTable.progress.set(0),
            JobTable.updated_at.set(at),
            # A worker has it: the sweep counts its re-sends from zero again.
            JobTable.resends.remove(),
        ]
        # Only a PENDING job, or a PROCESSING one whose worker let its lease run out (it died or
        # hung), can be claimed. Of two workers racing for a job, exactly one update succeeds.
        claimable = (JobTable.status == JobStatus.PENDING.value) | (
            (JobTable.status == JobStatus.PROCESSING.value)
            & ((JobTable.lease_until < now) | JobTable.lease_until.does_not_exist())
        )
        entry = change(JobStatus.PROCESSING, 0, int(job.attempts or 0) + 1, at)
        # The version is checked too (the entry's id and attempts are computed from it): a lost
        # race re-reads the job and decides again.
        return self._updated(job, actions, claimable, entry=entry)

    def heartbeat(
        self, job: JobTable, token: str, lease_seconds: float, progress: int | None = None
    ) -> None:
        """Extend the lease (and record progress, a change the history keeps); raises
        LeaseLostError if it was lost."""
        at = utcnow()
        actions = [
            JobTable.lease_until.set(time.time() + lease_seconds),
            JobTable.updated_at.set(at),
        ]
        entry = None
        if progress is not None:
            actions.append(JobTable.progress.set(progress))
            entry = change(JobStatus.PROCESSING, progress, int(job.attempts or 0), at)
        self._owned_update(job, token, actions, entry)

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
            progress=100,
        )

    def fail(self, job: JobTable, token: str, code: str, message: str) -> None:
        """The last attempt failed: FAILED for good, with a stable code and a sentence."""
        self._finish(job, token, JobStatus.FAILED, _error_actions(code, message))

    def _finish(
        self,
        job: JobTable,
        token: str,
        status: JobStatus,
        actions: list[Action],
        progress: int | None = None,
    ) -> None:
        """The final status, written by the worker that holds the claim."""
        now = utcnow()
        entry = _final_change(job, status, now, progress)
        self._owned_update(job, token, self._final(status, actions, now), entry)

    def _final(self, status: JobStatus, actions: list[Action], now: datetime) -> list[Action]:
        """A final status: the claim is given up and the row expires after the TTL."""
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
        now = utcnow()
        actions = self._final(JobStatus.FAILED, _error_actions(code, message), now)
        # Only the state this decision was made on (PynamoDB adds: version unchanged), and never
        # a job whose lease is still running.
        unowned = (JobTable.status == JobStatus.PENDING.value) | (
            JobTable.lease_until < time.time()
        )
        entry = _final_change(job, JobStatus.FAILED, now)
        return self._updated(job, actions, unowned, check_version=True, entry=entry)

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
        now = utcnow()
        actions = self._final(JobStatus.FAILED, _error_actions(code, message), now)
        entry = _final_change(job, JobStatus.FAILED, now)
        return self._updated(job, actions, _as_read(job), check_version=True, entry=entry)

    def _owned_update(
        self,
        job: JobTable,
        token: str,
        actions: Sequence[Action],
        entry: JobChange | None = None,
    ) -> None:
        # Only the worker holding the claim may write: one whose lease ran out, and whose job
        # another worker has taken over, must not overwrite the new owner's progress or result.
        owned = (JobTable.status == JobStatus.PROCESSING.value) & (JobTable.claim_token == token)
        lost = LeaseLostError(f"job {job.job_id} is no longer owned by this worker")
        for _ in range(_VERSION_RACE_ROUNDS):
            try:
                self._update(job, actions, owned, entry=entry)
                return
            except ConditionFailedError:
                if entry is None:
                    raise lost from None
            # A recorded change also needs the version it read: if another write (a sweep's,
            # say) moved it on while the claim is still ours, write again on the fresh row.
            with aws_errors():
                try:
                    job.refresh(consistent_read=True)
                except DoesNotExist:
                    raise lost from None
            if job.status != JobStatus.PROCESSING or job.claim_token != token:
                raise lost
        raise lost

    @staticmethod
    def _update(
        job: JobTable,
        actions: Sequence[Action],
        condition: Condition,
        check_version: bool = False,
        entry: JobChange | None = None,
    ) -> None:
        """One conditional UpdateItem. With `entry` (a change of status or progress), the same
        write appends the entry to the job's history (the oldest dropped beyond HISTORY_LIMIT),
        its id the version this write gives the job; the version read is then part of the
        condition, so that id is exact and no other writer's entry is overwritten."""
        actions = list(actions)
        if entry is not None:
            entry.id = int(job.version or 0) + 1
            kept = list(job.history or [])[-(HISTORY_LIMIT - 1) :]
            actions.append(JobTable.history.set([*kept, entry]))
            check_version = True
        with conditional_write():
            # The version is still incremented (so ETags change); the condition decides.
            job.update(actions, condition=condition, add_version_condition=check_version)

    @classmethod
    def _updated(
        cls,
        job: JobTable,
        actions: Sequence[Action],
        condition: Condition,
        check_version: bool = False,
        entry: JobChange | None = None,
    ) -> bool:
        """`_update`, answering whether the condition held (False: another writer got there)."""
        try:
            cls._update(job, actions, condition, check_version, entry)
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


def _final_change(
    job: JobTable, status: JobStatus, at: datetime, progress: int | None = None
) -> JobChange:
    value = int(job.progress or 0) if progress is None else progress
    return change(status, value, int(job.attempts or 0), at)


def _error_actions(code: str, message: str) -> list[Action]:
    return [JobTable.error_code.set(code), JobTable.error.set(message)]
