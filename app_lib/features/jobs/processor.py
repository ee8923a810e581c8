"""Processing one job message: claim, run, record; shared by the long-poll loop and Lambda.

Guarantees:
- A job runs only under a claim (a conditional update); a finished job is never run again.
- The message is deleted only after the job's final status is written, so a worker that dies
  leaves the message to reappear after the visibility timeout, and the next worker retries.
- Every attempt counts (`attempts`); after `max_attempts` the job is FAILED and its message is
  copied to the dead-letter queue.
- A failed job records a stable code (`ErrorCode`) and a sentence, never exception text (that
  goes to the log).
- A handler's result is validated against its job type's result model; one that is not valid
  fails the job at once (`invalid_result`).

The polling loop, the sweep and the worker thread are in `runner`.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ValidationError

from app_lib.common.aws_errors import translate
from app_lib.common.dto import renderable_json_object
from app_lib.common.errors import (
    AppError,
    BadRequestError,
    ItemTooLargeError,
    ServiceUnavailableError,
    UnprocessableError,
)
from app_lib.common.jobs import JobType, job_type
from app_lib.features.jobs.data_service import JobDataService, LeaseLostError
from app_lib.features.jobs.queue import JobQueue
from app_lib.features.jobs.settings import JobsSettings
from app_lib.features.jobs.table import JobStatus, JobTable

log = logging.getLogger(__name__)

# Longest error sentence a job records (the row has room; people read it).
_MAX_ERROR = 4000


class Outcome(StrEnum):
    DONE = "done"  # the message has served its purpose: delete it (Lambda deletes it itself)
    RETRY = "retry"  # keep the message: it reappears after the visibility timeout


class ErrorCode(StrEnum):
    """What a job's `error.code` can be."""

    INVALID_PARAMS = "invalid_params"  # the params (or data they name) were refused: no retry
    REJECTED = "rejected"  # the handler refused the job for another client-side reason: no retry
    UNKNOWN_TYPE = "unknown_type"  # no worker knows the job type
    HANDLER_FAILED = "handler_failed"  # the handler raised (a bug or a fault): retried
    DATABASE_UNAVAILABLE = "database_unavailable"  # the database or queue did not answer: retried
    INVALID_RESULT = "invalid_result"  # the handler's result does not fit its type's result model
    RESULT_TOO_LARGE = "result_too_large"  # the result does not fit in the job's row
    GAVE_UP = "gave_up"  # every attempt's worker stopped before recording an outcome
    TIMED_OUT_UNQUEUED = "timed_out_unqueued"  # its messages were lost; re-sent, none arrived


@dataclass(frozen=True)
class JobFailure:
    """What a job records about an error: a stable code and a sentence for people."""

    code: ErrorCode
    message: str
    # False: another attempt may succeed; True: it would fail the same way.
    permanent: bool = False


class _PermanentError(Exception):
    """The stored params are invalid for the job type (checked again before each run)."""

    def __init__(self, fields: str) -> None:
        super().__init__(f"the stored params are invalid: {fields}")


class _InvalidResultError(Exception):
    pass


class _UnknownJobTypeError(LookupError):
    pass


@dataclass(frozen=True)
class WorkerConfig:
    max_attempts: int = 3
    visibility_timeout: int = 30

    @classmethod
    def from_settings(cls, jobs: JobsSettings) -> WorkerConfig:
        return cls(jobs.jobs_max_attempts, jobs.jobs_visibility_timeout)

    @property
    def lease_seconds(self) -> float:
        # Shorter than the visibility timeout: when a dead worker's message reappears, its lease
        # has already run out, so the next receive can claim the job at once.
        return float(self.visibility_timeout - max(1, self.visibility_timeout // 10))

    @property
    def heartbeat_seconds(self) -> float:
        return self.lease_seconds / 3


class JobProcessor:
    """Processes one queue message at a time; stateless between messages, thread-safe."""

    def __init__(
        self, data: JobDataService, queue: JobQueue | None, config: WorkerConfig | None = None
    ) -> None:
        self.data = data
        self.queue = queue
        self.config = config or WorkerConfig()

    def process_message(
        self, body: str, receive_count: int = 1, receipt_handle: str | None = None
    ) -> Outcome:
        """Run the job a message names. DONE: delete the message; RETRY: leave it."""
        try:
            job_id = _job_id(body)
        except ValueError:
            # Not ours to fix: left alone, redrive moves it to the dead-letter queue.
            log.error("malformed jobs message", extra={"body": body[:200]})
            return Outcome.RETRY
        try:
            return self._process(job_id, body, receive_count, receipt_handle)
        except LeaseLostError as error:
            log.warning("%s", error, extra={"job_id": job_id})
        except Exception:
            log.exception("processing job %s failed", job_id, extra={"job_id": job_id})
        return Outcome.RETRY

    def _process(
        self, job_id: str, body: str, receive_count: int, receipt_handle: str | None
    ) -> Outcome:
        # A few rounds: a lost claim race re-reads the job and decides again.
        for _ in range(3):
            job = self.data.get(job_id)
            if job is None:
                log.info("no job %s (withdrawn or expired)", job_id, extra={"job_id": job_id})
                return Outcome.DONE
            status = JobStatus(job.status)
            if status.finished:
                log.info("job %s is already %s", job_id, status, extra={"job_id": job_id})
                return Outcome.DONE
            remaining = (job.lease_until or 0) - time.time()
            if status is JobStatus.PROCESSING and remaining > 0:
                # Another worker holds it: show this message again once that lease has run out.
                self._set_visibility(receipt_handle, math.ceil(remaining) + 1)
                return Outcome.RETRY
            if job.attempts >= self.config.max_attempts:
                return self._give_up(job, body)
            token = uuid.uuid4().hex
            if self.data.claim(job, token, self.config.lease_seconds):
                log.info(
                    "running job %s",
                    job_id,
                    extra={"job_id": job_id, "attempt": job.attempts, "receives": receive_count},
                )
                return self._run(job, token, body, receipt_handle)
        return Outcome.RETRY

    def _run(self, job: JobTable, token: str, body: str, receipt_handle: str | None) -> Outcome:
        lease = _Lease(self, job, token, receipt_handle)
        lease.start()
        try:
            result = self._call_handler(job, lease)
        except LeaseLostError:
            raise
        except Exception as error:
            lease.stop()
            failure = describe(error)
            final = failure.permanent or job.attempts >= self.config.max_attempts
            # The whole exception (type, text, traceback) goes to the log only.
            log.warning(
                "job %s attempt %s failed (%s): %s",
                job.job_id,
                job.attempts,
                failure.code,
                _for_log(error),
                exc_info=error,
                extra={"job_id": job.job_id, "error_code": failure.code, "final": final},
            )
            if final:
                return self._fail(job, token, body, failure)
            self.data.release(
                job, token, failure.code, f"attempt {job.attempts}: {failure.message}"
            )
            # The message reappears after the visibility timeout: that is the retry's back-off.
            return Outcome.RETRY
        finally:
            lease.stop()
        try:
            self.data.complete(job, token, result)
        except ItemTooLargeError:
            too_large = JobFailure(
                ErrorCode.RESULT_TOO_LARGE, "the result is larger than a job can store", True
            )
            return self._fail(job, token, body, too_large)
        log.info("job %s completed", job.job_id, extra={"job_id": job.job_id})
        return Outcome.DONE

    def _call_handler(self, job: JobTable, lease: _Lease) -> dict[str, object]:
        found = job_type(job.job_type)
        if found is None:
            # Possibly a worker older than the API that accepted the job: retry (elsewhere).
            raise _UnknownJobTypeError(f"this worker has no job type {job.job_type!r}")
        try:
            params = found.params.model_validate(job.params)
        except ValidationError as error:
            raise _PermanentError(_fields(error)) from error
        except ValueError as error:
            raise _PermanentError("params") from error
        return valid_result(found, found.handler(params, lease.progress))

    def _fail(self, job: JobTable, token: str, body: str, failure: JobFailure) -> Outcome:
        self.data.fail(job, token, failure.code, failure.message)
        return self._dead_letter(job, body, failure)

    def _give_up(self, job: JobTable, body: str) -> Outcome:
        # Only a coded error is quoted: rows from before codes may hold raw exception text.
        last = f"; the last attempt: {job.error_code}" if job.error_code else ""
        failure = JobFailure(
            ErrorCode.GAVE_UP,
            f"gave up after {job.attempts} attempts (each worker stopped before recording an "
            f"outcome){last}",
            True,
        )
        if not self.data.give_up(job, failure.code, failure.message):
            return Outcome.RETRY  # it changed meanwhile; the next delivery decides again
        log.warning("job %s failed: %s", job.job_id, failure.message, extra={"job_id": job.job_id})
        return self._dead_letter(job, body, failure)

    def _dead_letter(self, job: JobTable, body: str, failure: JobFailure) -> Outcome:
        """After FAILED is written: copy the message to the dead-letter queue, then let it go."""
        if self.queue is None:
            log.error("no jobs queue: message of job %s not dead-lettered", job.job_id)
            return Outcome.DONE
        try:
            self.queue.dead_letter(body, job.job_id, f"{failure.code}: {failure.message}")
        except Exception:
            log.exception("could not dead-letter job %s", job.job_id, extra={"job_id": job.job_id})
            return Outcome.RETRY
        return Outcome.DONE

    def _set_visibility(self, receipt_handle: str | None, seconds: int) -> None:
        if self.queue is None or receipt_handle is None:
            return
        try:
            self.queue.change_visibility(receipt_handle, min(seconds, 43200))
        except Exception as error:
            log.warning("could not change message visibility: %s", error)


class _Lease:
    """Keeps a claim alive while the handler runs: renews the lease (and the message's
    visibility) every third of the lease, and writes progress, all under one lock."""

    def __init__(
        self, processor: JobProcessor, job: JobTable, token: str, receipt_handle: str | None
    ) -> None:
        self.processor = processor
        self.job = job
        self.token = token
        self.receipt_handle = receipt_handle
        self.lost = False
        self._progress = int(job.progress or 0)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, name=f"lease-{job.job_id[:8]}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def progress(self, percent: int) -> None:
        """The handler's progress callback: writes each change (0-100)."""
        value = max(0, min(100, int(percent)))
        if self.lost:
            raise LeaseLostError(f"job {self.job.job_id} is no longer owned by this worker")
        if value == self._progress:
            return
        self._renew(value)
        self._progress = value

    def _beat(self) -> None:
        while not self._stop.wait(self.processor.config.heartbeat_seconds):
            try:
                self._renew(None)
            except LeaseLostError as error:
                self.lost = True
                log.warning("%s", error, extra={"job_id": self.job.job_id})
                return
            except Exception as error:
                # Transient: the next beat tries again; the lease has slack until then.
                log.warning("lease renewal failed: %s", error, extra={"job_id": self.job.job_id})

    def _renew(self, progress: int | None) -> None:
        config = self.processor.config
        with self._lock:
            try:
                self.processor.data.heartbeat(self.job, self.token, config.lease_seconds, progress)
            except LeaseLostError:
                self.lost = True
                raise
        if progress is None:  # the beat, not every progress step, keeps the message hidden
            self.processor._set_visibility(self.receipt_handle, config.visibility_timeout)


def describe(error: Exception) -> JobFailure:
    """What a job records about an error: a stable code and a sentence of our own. Exception
    text from botocore, PynamoDB or HTTP never gets in (it can hold an upstream's error page or
    a table name); a domain error's detail and details (e.g. the bad rows of an import, with
    their line numbers) are the client's own and do."""
    if isinstance(error, _PermanentError):
        return JobFailure(ErrorCode.INVALID_PARAMS, _cut(str(error)), True)
    if isinstance(error, _InvalidResultError):
        # The same handler returns the same kind of thing next time: no retry.
        return JobFailure(ErrorCode.INVALID_RESULT, _cut(str(error)), True)
    if isinstance(error, _UnknownJobTypeError):
        return JobFailure(ErrorCode.UNKNOWN_TYPE, "no worker knows this job type")
    mapped = error if isinstance(error, AppError) else _translate(error)
    if isinstance(mapped, ServiceUnavailableError):
        return JobFailure(ErrorCode.DATABASE_UNAVAILABLE, "the database or queue did not answer")
    if isinstance(mapped, AppError) and mapped is error and mapped.permanent:
        # A domain error the handler raised about the job's input: its own words are for people.
        code = (
            ErrorCode.INVALID_PARAMS
            if isinstance(mapped, UnprocessableError | BadRequestError)
            else ErrorCode.REJECTED
        )
        text = mapped.detail
        if mapped.extra:
            text += " " + json.dumps(mapped.extra, default=str, ensure_ascii=False)
        return JobFailure(code, _cut(text), True)
    if isinstance(mapped, ItemTooLargeError):
        return JobFailure(ErrorCode.REJECTED, "an item the job writes is larger than allowed", True)
    return JobFailure(ErrorCode.HANDLER_FAILED, "the job's handler failed")


def _translate(error: Exception) -> AppError | None:
    try:
        return translate(error)
    except Exception:  # pragma: no cover - translate inspects foreign objects
        return None


def _for_log(error: BaseException) -> str:
    """Every exception in the chain, with its text (PynamoDB keeps botocore's in `.cause`)."""
    parts: list[str] = []
    current: BaseException | None = error
    while current is not None and len(parts) < 5:
        parts.append(f"{type(current).__name__}: {current}")
        cause = getattr(current, "cause", None) or current.__cause__
        current = cause if isinstance(cause, BaseException) and cause is not current else None
    return " <- ".join(parts)


def valid_result(found: JobType, value: object) -> dict[str, Any]:
    """The handler's result as the job stores it: validated against the job type's result model
    and dumped as JSON (an instance of another model is validated from its fields). Anything
    else raises `_InvalidResultError` (the job fails with `invalid_result`), naming the fields,
    never the values."""
    data = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
    try:
        model = found.result.model_validate(data)
    except ValidationError as error:
        raise _InvalidResultError(
            f"the result is not a valid {found.result.__name__}: {_fields(error, 'result')}"
        ) from error
    # Stored as JSON and shown by the API: anything else fails here, inside the attempt.
    try:
        loaded: Any = json.loads(json.dumps(model.model_dump(mode="json")))
    except (TypeError, ValueError) as error:
        raise _InvalidResultError("the result is not JSON") from error
    if not renderable_json_object(loaded):
        raise _InvalidResultError("the result is not a JSON object the API can show")
    return dict(loaded)


def _fields(error: ValidationError, root: str = "params") -> str:
    """`params.rows.0.age: Input should be ...; ...`: where and what, never the input."""
    parts = []
    for item in error.errors():
        where = ".".join([root, *(str(part) for part in item["loc"])])
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def _cut(text: str) -> str:
    # Valid Unicode only (a params key may hold a lone surrogate), and not too long.
    return text[:_MAX_ERROR].encode("utf-8", "replace").decode()


def _job_id(body: str) -> str:
    try:
        message = json.loads(body)
    except json.JSONDecodeError as error:
        raise ValueError("not JSON") from error
    job_id = message.get("job_id") if isinstance(message, dict) else None
    if not isinstance(job_id, str) or not job_id:
        raise ValueError("no job_id")
    return job_id
