"""Running workers: the long-poll loop, the sweep for jobs whose message was lost, the worker
thread inside the API (`RUN_WORKER`) and the `python -m app_lib worker` processes.

An unfinished job whose message was lost (a submit that could neither queue nor withdraw it; a
queue that lost its messages) is found by the sweep, which sends its message again, or in the
end marks it FAILED. Processing one message is `processor.JobProcessor`'s.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from app_lib.common.config import Settings
from app_lib.common.startup import Startup
from app_lib.features.jobs.data_service import JobDataService, utcnow
from app_lib.features.jobs.processor import ErrorCode, JobProcessor, Outcome, WorkerConfig
from app_lib.features.jobs.queue import JobQueue, QueueMessage
from app_lib.features.jobs.settings import JobsSettings, get_jobs_settings
from app_lib.features.jobs.table import JobStatus

log = logging.getLogger(__name__)

# The sweep: jobs looked at per status and sweep, and messages re-sent for one job before it is
# marked FAILED. The n-th re-send waits 2 x the visibility timeout x 2^n after the last change
# (60 s, 120 s, 240 s, 480 s, then 960 s to FAILED with the 30 s default: a backlog of about
# half an hour is tolerated).
SWEEP_BATCH = 25
MAX_RESENDS = 4


@dataclass
class SweepResult:
    resent: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def sweep(
    processor: JobProcessor, now: datetime | None = None, limit: int = SWEEP_BATCH
) -> SweepResult:
    """Send the message again for unfinished jobs nothing has touched for a while: PENDING ones
    (a submit that could neither queue nor withdraw) and PROCESSING ones whose lease ran out
    (the message of a retry lost, e.g. with a queue that did not persist). SQS cannot say
    whether a job has a message, so: whose `updated_at` is older than 2 x the visibility
    timeout, doubling after each re-send. Each re-send is first recorded on the row with a
    conditional update, so of several sweepers one re-sends per period; a duplicate message is
    harmless (claims are conditional: a job runs once). After MAX_RESENDS without a worker
    taking the job it is FAILED (`timed_out_unqueued`). At most `limit` jobs per status, oldest
    first."""
    data, queue = processor.data, processor.queue
    result = SweepResult()
    if queue is None:
        return result
    now = now or utcnow()
    period = timedelta(seconds=2 * processor.config.visibility_timeout)
    stale = [
        job
        for status in (JobStatus.PENDING, JobStatus.PROCESSING)
        for job in data.stale(status, now - period, limit)
    ]
    for job in stale:
        resends = int(job.resends or 0)
        quiet_since = now - period * 2 ** min(resends, MAX_RESENDS)
        if job.updated_at >= quiet_since:
            continue  # re-sent recently: its message may still be on its way to a worker
        if resends >= MAX_RESENDS:
            message = (
                f"no worker took the job: it stayed {job.status} although its message was sent "
                f"again {resends} times"
            )
            if data.fail_stale(job, ErrorCode.TIMED_OUT_UNQUEUED, message):
                log.warning("job %s failed: %s", job.job_id, message, extra={"job_id": job.job_id})
                result.failed.append(job.job_id)
            continue
        if not data.record_resend(job, quiet_since, now):
            continue  # claimed, cancelled or re-sent by another sweeper meanwhile
        try:
            queue.send({"job_id": job.job_id})
        except Exception:
            # Recorded but not sent: the next period sends it again (or, in the end, fails it).
            log.warning("could not re-send job %s", job.job_id, exc_info=True)
            continue
        log.warning(
            "re-sent the message of %s job %s",
            job.status,
            job.job_id,
            extra={"job_id": job.job_id, "resends": resends + 1},
        )
        result.resent.append(job.job_id)
    return result


class Sweeper:
    """Runs `sweep` at most once per visibility timeout in this process; never raises."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._next = 0.0

    def maybe_sweep(self, processor: JobProcessor) -> SweepResult | None:
        now = self._clock()
        with self._lock:
            if now < self._next:
                return None
            self._next = now + processor.config.visibility_timeout
        try:
            return sweep(processor)
        except Exception as error:
            log.warning("jobs sweep failed: %s", error)
            return None


# The process's sweeper: shared by its worker threads and the Lambda path (one sweep per period).
PROCESS_SWEEPER = Sweeper()


class Worker:
    """The long-poll loop: receive one message, process it, delete it when DONE; and, at most
    once per visibility timeout, sweep for unfinished jobs whose message was lost."""

    def __init__(
        self, processor: JobProcessor, queue: JobQueue, sweeper: Sweeper | None = None
    ) -> None:
        self.processor = processor
        self.queue = queue
        self.sweeper = sweeper or PROCESS_SWEEPER
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
                self.sweeper.maybe_sweep(self.processor)
            except Exception as error:
                if stop.is_set():
                    return
                log.warning("jobs worker: %s", error)
                stop.wait(2.0)


def make_worker(jobs: JobsSettings, queue: JobQueue) -> Worker:
    data = JobDataService(ttl=timedelta(days=jobs.jobs_ttl_days))
    return Worker(JobProcessor(data, queue, WorkerConfig.from_settings(jobs)), queue)


def start_background(
    startup: Startup, jobs: JobsSettings | None = None
) -> Callable[[], None] | None:
    """Feature background hook: one worker thread inside the API process (dev, `make run`),
    on the queue `queue.start` returned (`startup.state`); none with RUN_WORKER=false."""
    jobs = jobs or get_jobs_settings()
    queue = startup.state
    if not isinstance(queue, JobQueue) or not jobs.run_worker:
        return None
    stop = threading.Event()
    thread = threading.Thread(
        target=make_worker(jobs, queue).run, args=(stop,), name="jobs-worker", daemon=True
    )
    thread.start()
    log.info("jobs worker thread started", extra={"queue": queue.url})

    def stop_worker() -> None:
        stop.set()
        # A long poll in flight ends by itself; the daemon thread does not hold up the exit.
        thread.join(timeout=2.0)

    return stop_worker


def run_workers(settings: Settings, threads: int = 1, jobs: JobsSettings | None = None) -> int:
    """`python -m app_lib worker`: long-poll the queue until SIGINT/SIGTERM."""
    from app_lib.common import feature as features
    from app_lib.common.lifecycle import open_database

    # Every feature: their tables (handlers read them) and their job types. The same start-up
    # path as the server's (the jobs feature's on_start gives its queue); seeding is the
    # server's business.
    database = open_database(settings, features.discover(), seed=False)
    try:
        queue = database.states.get("jobs")
        return poll(
            jobs or get_jobs_settings(), queue if isinstance(queue, JobQueue) else None, threads
        )
    finally:
        database.close()


def poll(jobs: JobsSettings, queue: JobQueue | None, threads: int) -> int:
    """Run `threads` workers on `queue` until SIGINT/SIGTERM; then let running jobs finish."""
    import signal

    if queue is None:
        log.error("JOBS_QUEUE_URL is not set: nothing to poll")
        return 2
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    workers = [make_worker(jobs, queue) for _ in range(threads)]
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
