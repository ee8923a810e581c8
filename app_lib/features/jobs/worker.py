"""Running jobs: one message -> claim, run, record; shared by the long-poll loop and Lambda.

Guarantees:
- A job runs only under a claim (a conditional update); a finished job is never run again.
- The message is deleted only after the job's final status is written, so a worker that dies
  leaves the message to reappear after the visibility timeout, and the next worker retries.
- Every attempt counts (`attempts`); after `max_attempts` the job is FAILED and its message is
  copied to the dead-letter queue.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from app_lib.common.config import Settings
from app_lib.common.errors import AppError, ItemTooLargeError
from app_lib.common.jobs import job_type
from app_lib.features.jobs import queue as queues
from app_lib.features.jobs.data_service import JobDataService, LeaseLostError
from app_lib.features.jobs.queue import JobQueue, QueueMessage
from app_lib.features.jobs.table import JobStatus, JobTable

log = logging.getLogger(__name__)

# Longest error text a job records (the row has room; people read it).
_MAX_ERROR = 4000


class Outcome(StrEnum):
    DONE = "done"  # the message has served its purpose: delete it (Lambda deletes it itself)
    RETRY = "retry"  # keep the message: it reappears after the visibility timeout


class _PermanentError(Exception):
    pass


@dataclass(frozen=True)
class WorkerConfig:
    max_attempts: int = 3
    visibility_timeout: int = 30

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkerConfig:
        return cls(settings.jobs_max_attempts, settings.jobs_visibility_timeout)

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
            message = describe(error)
            permanent = isinstance(error, _PermanentError) or (
                isinstance(error, AppError) and error.status < 500
            )
            if permanent or job.attempts >= self.config.max_attempts:
                log.warning("job %s failed: %s", job.job_id, message, extra={"job_id": job.job_id})
                return self._fail(job, token, body, message)
            log.warning(
                "job %s attempt %s failed: %s",
                job.job_id,
                job.attempts,
                message,
                extra={"job_id": job.job_id},
            )
            self.data.release(job, token, f"attempt {job.attempts}: {message}")
            # The message reappears after the visibility timeout: that is the retry's back-off.
            return Outcome.RETRY
        finally:
            lease.stop()
        try:
            self.data.complete(job, token, result)
        except ItemTooLargeError:
            return self._fail(job, token, body, "the result is larger than a job can store")
        log.info("job %s completed", job.job_id, extra={"job_id": job.job_id})
        return Outcome.DONE

    def _call_handler(self, job: JobTable, lease: _Lease) -> dict[str, object]:
        found = job_type(job.job_type)
        if found is None:
            # Possibly a worker older than the API that accepted the job: retry (elsewhere).
            raise LookupError(f"this worker has no job type {job.job_type!r}")
        try:
            params = found.params.model_validate(job.params)
        except ValueError as error:
            raise _PermanentError(f"the stored params are invalid: {error}") from error
        result = found.handler(params, lease.progress)
        # Stored as JSON: a result that is not JSON fails here, inside the attempt.
        loaded: dict[str, object] = json.loads(json.dumps(result))
        return loaded

    def _fail(self, job: JobTable, token: str, body: str, error: str) -> Outcome:
        self.data.fail(job, token, error)
        return self._dead_letter(job, body, error)

    def _give_up(self, job: JobTable, body: str) -> Outcome:
        last = f"; last error: {job.error}" if job.error else ""
        error = f"gave up after {job.attempts} attempts (the worker stopped){last}"
        if not self.data.give_up(job, error):
            return Outcome.RETRY  # it changed meanwhile; the next delivery decides again
        log.warning("job %s failed: %s", job.job_id, error, extra={"job_id": job.job_id})
        return self._dead_letter(job, body, error)

    def _dead_letter(self, job: JobTable, body: str, error: str) -> Outcome:
        """After FAILED is written: copy the message to the dead-letter queue, then let it go."""
        if self.queue is None:
            log.error("no jobs queue: message of job %s not dead-lettered", job.job_id)
            return Outcome.DONE
        try:
            self.queue.dead_letter(body, job.job_id, error)
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


def describe(error: Exception) -> str:
    """The error a job records: its type and message, with a domain error's details (e.g. the
    bad rows of an import)."""
    text = f"{type(error).__name__}: {error}"
    if isinstance(error, AppError) and error.extra:
        text += " " + json.dumps(error.extra, default=str, ensure_ascii=False)
    return text[:_MAX_ERROR]


def _job_id(body: str) -> str:
    try:
        message = json.loads(body)
    except json.JSONDecodeError as error:
        raise ValueError("not JSON") from error
    job_id = message.get("job_id") if isinstance(message, dict) else None
    if not isinstance(job_id, str) or not job_id:
        raise ValueError("no job_id")
    return job_id


class Worker:
    """The long-poll loop: receive one message, process it, delete it when DONE."""

    def __init__(self, processor: JobProcessor, queue: JobQueue) -> None:
        self.processor = processor
        self.queue = queue
        # True while a received message is being processed (not while long-polling).
        self.busy = False

    def run_once(self, wait_seconds: int | None = None) -> list[tuple[QueueMessage, Outcome]]:
        """One receive (up to `wait_seconds` long) and the processing of what it returned."""
        # One message at a time: others received with it would wait, invisible, meanwhile.
        done = []
        for message in self.queue.receive(1, wait_seconds):
            self.busy = True
            try:
                outcome = self.processor.process_message(
                    message.body, message.receive_count, message.receipt_handle
                )
                if outcome is Outcome.DONE:
                    self.queue.delete(message.receipt_handle)
            finally:
                self.busy = False
            done.append((message, outcome))
        return done

    def run(self, stop: threading.Event) -> None:
        """Until `stop` is set; errors (the queue or database away) are logged and retried."""
        while not stop.is_set():
            try:
                self.run_once()
            except Exception as error:
                if stop.is_set():
                    return
                log.warning("jobs worker: %s", error)
                stop.wait(2.0)


def make_worker(settings: Settings, queue: JobQueue) -> Worker:
    data = JobDataService(ttl=timedelta(days=settings.jobs_ttl_days))
    return Worker(JobProcessor(data, queue, WorkerConfig.from_settings(settings)), queue)


def start_background() -> Callable[[], None] | None:
    """Feature background hook: one worker thread inside the API process (dev, `make run`)."""
    settings = queues.current_settings()
    queue = queues.current()
    if settings is None or queue is None or not settings.run_worker:
        return None
    stop = threading.Event()
    thread = threading.Thread(
        target=make_worker(settings, queue).run, args=(stop,), name="jobs-worker", daemon=True
    )
    thread.start()
    log.info("jobs worker thread started", extra={"queue": queue.url})

    def stop_worker() -> None:
        stop.set()
        # A long poll in flight ends by itself; the daemon thread does not hold up the exit.
        thread.join(timeout=2.0)

    return stop_worker


def run_workers(settings: Settings, threads: int = 1) -> int:
    """`python -m app_lib worker`: long-poll the queue until SIGINT/SIGTERM."""
    from app_lib.common import feature as features
    from app_lib.common.lifecycle import open_database

    # Every feature: their tables (handlers read them) and their job types. The same start-up
    # path as the server's; seeding is the server's business.
    database = open_database(settings, features.discover(), seed=False)
    try:
        return _poll(settings, threads)
    finally:
        database.close()


def _poll(settings: Settings, threads: int) -> int:
    import signal

    queue = queues.current()
    if queue is None:
        log.error("JOBS_QUEUE_URL is not set: nothing to poll")
        return 2
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    workers = [make_worker(settings, queue) for _ in range(threads)]
    for n, worker in enumerate(workers):
        # Daemons: an idle long poll is abandoned at exit (a message it might still receive
        # stays invisible for one visibility timeout, then reappears; nothing is lost).
        threading.Thread(target=worker.run, args=(stop,), name=f"worker-{n}", daemon=True).start()
    log.info("jobs workers polling", extra={"queue": queue.url, "threads": threads})
    stop.wait()
    # Let the jobs in progress finish: their messages are deleted once their results are written.
    while any(worker.busy for worker in workers):
        time.sleep(0.2)
    log.info("jobs workers stopped")
    return 0
