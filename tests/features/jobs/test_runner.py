"""The worker runners: the `worker` command's processes get their queue from start-up
(`open_database(...).states["jobs"]`), never from module state."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app_lib.common.config import Settings
from app_lib.features.jobs import queue as queues
from app_lib.features.jobs import runner
from app_lib.features.jobs.queue import JobQueue
from app_lib.features.jobs.settings import JobsSettings, get_jobs_settings
from tests.features.jobs.conftest import MAX_ATTEMPTS, VISIBILITY


@pytest.fixture
def fresh_jobs_settings() -> Iterator[None]:
    """The jobs settings read again from the environment the test sets (and afterwards)."""
    get_jobs_settings.cache_clear()
    yield
    get_jobs_settings.cache_clear()


def test_the_jobs_module_keeps_no_queue_of_its_own() -> None:
    for name in ("_current", "configure", "current", "current_settings"):
        assert not hasattr(queues, name), name


def test_run_workers_polls_the_queue_start_up_returned(
    settings: Settings,
    tables: str,
    jobs_queue: JobQueue,
    monkeypatch: pytest.MonkeyPatch,
    fresh_jobs_settings: None,
) -> None:
    monkeypatch.setenv("JOBS_QUEUE_URL", jobs_queue.url)
    # As the queue was created: start-up creates it only if missing (the same attributes).
    monkeypatch.setenv("JOBS_VISIBILITY_TIMEOUT", str(VISIBILITY))
    monkeypatch.setenv("JOBS_MAX_ATTEMPTS", str(MAX_ATTEMPTS))
    polled: list[tuple[JobQueue | None, int]] = []

    def poll(jobs: JobsSettings, queue: JobQueue | None, threads: int) -> int:
        polled.append((queue, threads))
        return 0

    monkeypatch.setattr(runner, "poll", poll)
    ours = settings.model_copy(update={"app_namespace": tables})
    assert runner.run_workers(ours, threads=3) == 0
    [(queue, threads)] = polled
    assert isinstance(queue, JobQueue) and queue.url == jobs_queue.url and threads == 3


def test_run_workers_without_a_queue_polls_nothing(
    settings: Settings, tables: str, fresh_jobs_settings: None
) -> None:
    ours = settings.model_copy(update={"app_namespace": tables})
    # Not embedded and no JOBS_QUEUE_URL: start-up gives no queue; nothing to poll (2).
    assert runner.run_workers(ours, threads=1) == 2
    assert runner.poll(get_jobs_settings(), None, 1) == 2
