"""The conditional writes of JobDataService against the real moto server."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from app_lib.common.errors import ServiceUnavailableError, UnprocessableError
from app_lib.features.jobs.data_service import (
    KEY_ABANDONED_AFTER,
    KEY_TTL,
    JobDataService,
    LeaseLostError,
    utcnow,
)
from app_lib.features.jobs.processor import WorkerConfig
from app_lib.features.jobs.queue import JobQueue
from app_lib.features.jobs.service import body_hash, submit
from app_lib.features.jobs.table import JobKeyTable, JobStatus, JobTable
from tests.features.jobs.conftest import stored


def new_job(data: JobDataService, job_type: str = "test.echo") -> JobTable:
    now = utcnow()
    job = JobTable(
        job_id=data.new_id(),
        job_type=job_type,
        params={"value": 1},
        status=JobStatus.PENDING.value,
        created_at=now,
        updated_at=now,
    )
    data.create(job)
    return job


def wait_past(instant: float) -> None:
    while time.time() <= instant:
        time.sleep(0.05)


def test_of_two_workers_claiming_one_job_exactly_one_wins(data: JobDataService) -> None:
    job = new_job(data)
    first, second = stored(data, job.job_id), stored(data, job.job_id)
    assert data.claim(first, "a", 30) is True
    assert data.claim(second, "b", 30) is False
    current = stored(data, job.job_id)
    assert current.status == JobStatus.PROCESSING and current.claim_token == "a"
    assert current.attempts == 1 and current.lease_until is not None


def test_expired_lease_is_taken_over_and_the_old_owner_can_write_nothing(
    data: JobDataService,
) -> None:
    job = new_job(data)
    old = stored(data, job.job_id)
    assert data.claim(old, "old", lease_seconds=0.3)
    assert not data.claim(stored(data, job.job_id), "new", 30)  # the lease still runs
    assert old.lease_until is not None
    wait_past(old.lease_until)
    new = stored(data, job.job_id)
    assert data.claim(new, "new", 30)
    assert new.attempts == 2
    with pytest.raises(LeaseLostError):
        data.heartbeat(old, "old", 30, progress=90)
    with pytest.raises(LeaseLostError):
        data.complete(old, "old", {"from": "old"})
    data.complete(new, "new", {"from": "new"})
    done = stored(data, job.job_id)
    assert done.status == JobStatus.COMPLETED and done.result == {"from": "new"}
    assert done.claim_token is None and done.lease_until is None


def test_finished_or_cancelled_jobs_cannot_be_claimed(data: JobDataService) -> None:
    done = new_job(data)
    assert data.claim(done, "w", 30)
    data.complete(done, "w", {})
    assert not data.claim(stored(data, done.job_id), "again", 30)
    cancelled = new_job(data)
    data.cancel(cancelled)
    assert not data.claim(stored(data, cancelled.job_id), "w", 30)


def test_released_job_is_claimable_at_once_and_keeps_its_error(data: JobDataService) -> None:
    job = new_job(data)
    assert data.claim(job, "w1", 30)
    data.release(job, "w1", "handler_failed", "attempt 1: boom")
    released = stored(data, job.job_id)
    assert released.status == JobStatus.PROCESSING and released.claim_token is None
    assert (released.error_code, released.error) == ("handler_failed", "attempt 1: boom")
    assert data.claim(released, "w2", 30) and released.attempts == 2


def test_give_up_never_takes_a_job_whose_lease_runs(data: JobDataService) -> None:
    job = new_job(data)
    assert data.claim(job, "w", 30)
    assert not data.give_up(stored(data, job.job_id), "gave_up", "no")
    assert stored(data, job.job_id).status == JobStatus.PROCESSING


def test_heartbeat_extends_the_lease_and_records_progress(data: JobDataService) -> None:
    job = new_job(data)
    assert data.claim(job, "w", 1)
    before = job.lease_until
    data.heartbeat(job, "w", 60, progress=40)
    current = stored(data, job.job_id)
    assert current.progress == 40 and before is not None
    assert current.lease_until is not None and current.lease_until > before + 30


def test_key_race_and_body_mismatch(data: JobDataService) -> None:
    first = new_job_object(data)
    created, was_created = data.create_with_key(first, "k", "hash-1")
    assert was_created and created.job_id == first.job_id
    replay, replay_created = data.create_with_key(new_job_object(data), "k", "hash-1")
    assert not replay_created and replay.job_id == first.job_id
    with pytest.raises(UnprocessableError):
        data.create_with_key(new_job_object(data), "k", "hash-2")
    assert sum(1 for _ in JobTable.scan()) == 1


def test_an_expired_key_counts_as_absent(data: JobDataService) -> None:
    # DynamoDB deletes expired rows only eventually; until then the key must not block a submit.
    old = new_job(data)
    JobKeyTable(
        key="k",
        job_id=old.job_id,
        body_hash="other",
        created_at=utcnow() - timedelta(days=2),
        expires_at=utcnow() - timedelta(days=1),
    ).save()
    job, created = data.create_with_key(new_job_object(data), "k", "mine")
    assert created and job.job_id != old.job_id
    assert JobKeyTable.get("k").job_id == job.job_id


def test_a_key_whose_job_never_appeared_is_taken_over_after_a_while(
    data: JobDataService,
) -> None:
    # A submit that died between writing the key and writing its job.
    def orphan_key(age: timedelta) -> None:
        JobKeyTable(
            key="k",
            job_id="never-written",
            body_hash="h",
            created_at=utcnow() - age,
            expires_at=utcnow() + KEY_TTL,
        ).save()

    orphan_key(timedelta(seconds=1))
    with pytest.raises(ServiceUnavailableError):  # young: its writer may still be at work
        data.create_with_key(new_job_object(data), "k", "h")
    orphan_key(KEY_ABANDONED_AFTER + timedelta(seconds=1))
    job, created = data.create_with_key(new_job_object(data), "k", "h")
    assert created and JobKeyTable.get("k").job_id == job.job_id
    assert stored(data, job.job_id).idempotency_key is None  # new_job_object sets none


def test_withdraw_removes_job_and_key_unless_a_worker_has_it(data: JobDataService) -> None:
    job, _ = data.create_with_key(new_job_object(data), "k1", "h")
    assert data.withdraw(job, "k1") is True
    assert data.get(job.job_id) is None and sum(1 for _ in JobKeyTable.scan()) == 0
    taken, _ = data.create_with_key(new_job_object(data), "k2", "h")
    assert data.claim(stored(data, taken.job_id), "w", 30)
    assert data.withdraw(taken, "k2") is False
    assert data.get(taken.job_id) is not None and JobKeyTable.get("k2").job_id == taken.job_id


def test_body_hash_ignores_key_order_only() -> None:
    assert body_hash("t", {"a": 1, "b": [1, 2]}) == body_hash("t", {"b": [1, 2], "a": 1})
    assert body_hash("t", {"a": 1}) != body_hash("t", {"a": "1"})
    assert body_hash("t", {"a": 1}) != body_hash("u", {"a": 1})


def test_lease_is_shorter_than_the_visibility_timeout() -> None:
    # A dead worker's message must reappear only after its lease has run out.
    for visibility in (2, 10, 30, 900, 43200):
        config = WorkerConfig(3, visibility)
        assert 0 < config.lease_seconds <= visibility - 1
        assert config.heartbeat_seconds < config.lease_seconds


def test_created_key_sorts_by_creation_time(
    data: JobDataService, jobs_queue: JobQueue, echo_type: str
) -> None:
    jobs = [submit(data, jobs_queue, echo_type, {"value": n}).job for n in range(3)]
    keys = [job.created_key for job in jobs]
    assert keys == sorted(keys)
    assert all(key.endswith("#" + job.job_id) for key, job in zip(keys, jobs, strict=True))


def new_job_object(data: JobDataService) -> JobTable:
    now = utcnow()
    return JobTable(
        job_id=data.new_id(),
        job_type="test.echo",
        params={"value": 1},
        status=JobStatus.PENDING.value,
        created_at=now,
        updated_at=now,
    )


# ----- the history of changes (what the event stream replays) -----------------------------------


def history(data: JobDataService, job_id: str) -> list[tuple[int, str, int, int]]:
    return [
        (int(c.id), c.status, int(c.progress), int(c.attempts))
        for c in stored(data, job_id).history or []
    ]


def test_each_change_is_recorded_by_its_own_write_with_the_version_it_gave(
    data: JobDataService, jobs_queue: JobQueue, echo_type: str
) -> None:
    job = submit(data, jobs_queue, echo_type, {"value": 1}).job
    assert history(data, job.job_id) == [(1, "PENDING", 0, 0)]
    worker_copy = stored(data, job.job_id)
    assert data.claim(worker_copy, "w", 30)
    data.heartbeat(worker_copy, "w", 30)  # no change of status or progress: no entry
    data.heartbeat(worker_copy, "w", 30, progress=40)
    data.complete(worker_copy, "w", {"echo": 1})
    final = stored(data, job.job_id)
    assert history(data, job.job_id) == [
        (1, "PENDING", 0, 0),
        (2, "PROCESSING", 0, 1),
        (4, "PROCESSING", 40, 1),  # version 3 was the plain heartbeat
        (final.version, "COMPLETED", 100, 1),
    ]
    assert [c.at for c in final.history or []][-1] == final.updated_at


def test_a_change_after_another_writer_moved_the_version_is_still_recorded_once(
    data: JobDataService,
) -> None:
    job = new_job(data)
    owner = stored(data, job.job_id)
    assert data.claim(owner, "w", 30)
    # Another write (no change of status or progress) bumps the version under the owner.
    other = stored(data, job.job_id)
    other.update([JobTable.resends.set(1)], add_version_condition=False)
    data.heartbeat(owner, "w", 30, progress=70)  # re-reads, still its claim: writes again
    current = stored(data, job.job_id)
    assert current.progress == 70 and current.version == other.version + 1
    entries = history(data, job.job_id)
    assert entries[-1] == (current.version, "PROCESSING", 70, 1)
    assert [e[0] for e in entries] == sorted({e[0] for e in entries})
    # A worker whose claim was taken over still writes nothing.
    taken = stored(data, job.job_id)
    taken.update([JobTable.claim_token.set("other")], add_version_condition=False)
    with pytest.raises(LeaseLostError):
        data.heartbeat(owner, "w", 30, progress=80)
    assert stored(data, job.job_id).progress == 70


def test_the_history_keeps_the_last_changes_only(
    data: JobDataService, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app_lib.features.jobs import data_service

    monkeypatch.setattr(data_service, "HISTORY_LIMIT", 4)
    job = new_job(data)
    owner = stored(data, job.job_id)
    assert data.claim(owner, "w", 30)
    for percent in range(10, 70, 10):
        data.heartbeat(owner, "w", 30, progress=percent)
    entries = history(data, job.job_id)
    assert [progress for _, _, progress, _ in entries] == [30, 40, 50, 60]
    assert entries[-1][0] == stored(data, job.job_id).version


def test_cancel_records_the_change_and_survives_a_concurrent_resend(
    data: JobDataService, jobs_queue: JobQueue, echo_type: str
) -> None:
    job = submit(data, jobs_queue, echo_type, {"value": 1}).job
    stale = stored(data, job.job_id)
    # A sweep's re-send moved the version on (no change of status): the cancel still applies.
    other = stored(data, job.job_id)
    other.update([JobTable.resends.set(1)], add_version_condition=False)
    cancelled = data.cancel(stale)
    assert cancelled.status == JobStatus.CANCELLED
    assert history(data, job.job_id) == [(1, "PENDING", 0, 0), (3, "CANCELLED", 0, 0)]


def test_params_that_leave_no_room_for_the_rest_of_the_job_are_413(
    data: JobDataService, jobs_queue: JobQueue, register: object
) -> None:
    from pydantic import BaseModel

    from app_lib.common.errors import ItemTooLargeError
    from app_lib.features.jobs.service import MAX_PARAMS_BYTES

    class Blob(BaseModel):
        blob: str

    register("test.blob", Blob, lambda params, progress: {})  # type: ignore[operator]
    with pytest.raises(ItemTooLargeError):
        submit(data, jobs_queue, "test.blob", {"blob": "x" * MAX_PARAMS_BYTES})
    assert sum(1 for _ in JobTable.scan()) == 0
    # Just below the limit: stored, and the job can still record its changes.
    job = submit(data, jobs_queue, "test.blob", {"blob": "x" * (MAX_PARAMS_BYTES - 100)}).job
    owner = stored(data, job.job_id)
    assert data.claim(owner, "w", 30)
    for percent in range(1, 101):
        data.heartbeat(owner, "w", 30, progress=percent)
    data.complete(owner, "w", {})
    assert stored(data, job.job_id).status == JobStatus.COMPLETED
