"""GET /jobs/{id}/events through FastAPI's EventSourceResponse: ids that order every change of a
job (from the history stored with it), resuming with Last-Event-ID, retry, keep-alives, errors,
and the document. Against the real moto server."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app_lib.common.errors import ServiceUnavailableError
from app_lib.common.jobs import Progress
from app_lib.features.jobs import routes
from app_lib.features.jobs.data_service import JobDataService
from app_lib.features.jobs.queue import JobQueue
from app_lib.features.jobs.runner import Worker
from app_lib.features.jobs.table import JobTable
from tests.features.jobs.conftest import DEADLINE, NoParams, finished, stored

JOBS = "/api/v1/jobs"


def frames(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """Each frame of an event stream as its fields (`comment` for a comment line), with the
    monotonic time it arrived at (`at`)."""
    frame: dict[str, Any] = {}
    for line in lines:
        if not line:
            if frame:
                frame["at"] = time.monotonic()
                yield frame
            frame = {}
        elif line.startswith(":"):
            frame["comment"] = line[1:].strip()
        else:
            name, _, value = line.partition(":")
            frame[name] = value.removeprefix(" ")


def status_events(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    for frame in frames(lines):
        if frame.get("event") == "status":
            yield {**frame, "data": json.loads(frame["data"])}


def changes(data: JobDataService, job_id: str) -> list[tuple[int, str, int]]:
    """(id, status, progress) of each change the job stores."""
    return [(int(c.id), c.status, int(c.progress)) for c in stored(data, job_id).history or []]


def seen(events: list[dict[str, Any]]) -> list[tuple[int, str, int]]:
    return [(int(e["id"]), e["data"]["status"], e["data"]["progress"]) for e in events]


def wait_for(check: Callable[[], bool]) -> None:
    end = time.monotonic() + DEADLINE
    while not check():
        assert time.monotonic() < end, "not reached"
        time.sleep(0.05)


def test_a_client_that_reconnects_with_last_event_id_misses_no_change_and_gets_none_twice(
    client: TestClient,
    jobs_queue: JobQueue,
    worker: Worker,
    data: JobDataService,
    register: Callable[..., None],
) -> None:
    gates = [threading.Event(), threading.Event()]

    def handler(params: NoParams, progress: Progress) -> dict[str, Any]:
        progress(10)
        assert gates[0].wait(DEADLINE)
        for percent in (20, 30, 40, 50, 60):  # a burst: faster than the stream polls
            progress(percent)
        assert gates[1].wait(DEADLINE)
        return {"ok": True}

    register("test.resume", NoParams, handler)
    job_id = client.post(JOBS, json={"type": "test.resume"}).json()["id"]
    runner = threading.Thread(target=worker.run_once, kwargs={"wait_seconds": 10})
    before: list[dict[str, Any]] = []
    with client.stream("GET", f"{JOBS}/{job_id}/events") as response:
        for event in status_events(response.iter_lines()):
            before.append(event)
            if len(before) == 1:
                runner.start()
            if event["data"]["progress"] == 10:
                break  # the client goes away mid-job
    # While nobody listens, the job changes five times.
    gates[0].set()
    wait_for(lambda: int(stored(data, job_id).progress) == 60)
    after: list[dict[str, Any]] = []
    headers = {"Last-Event-ID": before[-1]["id"]}
    with client.stream("GET", f"{JOBS}/{job_id}/events", headers=headers) as response:
        for event in status_events(response.iter_lines()):
            after.append(event)
            if event["data"]["progress"] == 60:
                gates[1].set()  # then it finishes, with this client listening
    runner.join(DEADLINE)
    assert finished(data, job_id)()
    ids = [int(event["id"]) for event in before + after]
    assert ids == sorted(set(ids))  # strictly increasing: none repeated
    assert seen(before) + seen(after) == changes(data, job_id)  # none missing
    assert [(status, progress) for _, status, progress in changes(data, job_id)] == [
        ("PENDING", 0),
        ("PROCESSING", 0),
        ("PROCESSING", 10),
        *[("PROCESSING", p) for p in (20, 30, 40, 50, 60)],
        ("COMPLETED", 100),
    ]
    assert int(after[0]["id"]) > int(before[-1]["id"])
    assert after[-1]["data"]["result"] == {"ok": True}
    # Only the latest change carries the result: the replayed ones do not.
    assert all(event["data"]["result"] is None for event in before + after[:-1])


def test_changes_faster_than_the_poll_each_get_an_event(
    client: TestClient,
    jobs_queue: JobQueue,
    worker: Worker,
    data: JobDataService,
    register: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A long poll: the handler's ten changes all fall between two reads of the stream.
    monkeypatch.setattr(routes, "POLL_SECONDS", 2.0)

    def handler(params: NoParams, progress: Progress) -> dict[str, Any]:
        for percent in range(5, 55, 5):
            progress(percent)
        return {"ok": True}

    register("test.burst", NoParams, handler)
    job_id = client.post(JOBS, json={"type": "test.burst"}).json()["id"]
    runner = threading.Thread(target=worker.run_once, kwargs={"wait_seconds": 10})
    events = []
    with client.stream("GET", f"{JOBS}/{job_id}/events") as response:
        for event in status_events(response.iter_lines()):
            events.append(event)
            if len(events) == 1:
                runner.start()
    runner.join(DEADLINE)
    history = stored(data, job_id).history or []
    burst = [c.at for c in history if c.status == "PROCESSING"]
    # The scenario happened: changes came faster than the stream polls.
    assert min(b - a for a, b in itertools.pairwise(burst)).total_seconds() < 2.0
    assert seen(events) == changes(data, job_id)
    assert [e["data"]["progress"] for e in events] == [0, 0, *range(5, 55, 5), 100]
    ids = [int(e["id"]) for e in events]
    assert ids == sorted(set(ids))


def test_retry_comes_with_the_first_event_only_and_ids_are_versions(
    client: TestClient, jobs_queue: JobQueue, echo_type: str
) -> None:
    location = client.post(JOBS, json={"type": echo_type, "params": {"value": 1}}).headers[
        "Location"
    ]
    cancelled = client.delete(location)
    with client.stream("GET", f"{location}/events", headers={"Last-Event-ID": "0"}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        events = list(status_events(response.iter_lines()))
    assert [e["data"]["status"] for e in events] == ["PENDING", "CANCELLED"]
    assert [e.get("retry") for e in events] == [str(routes.RETRY_MILLISECONDS), None]
    # The id of a change is the version the write gave the job (its ETag).
    assert [e["id"] for e in events] == ["1", cancelled.headers["ETag"].strip('"')]


@pytest.mark.parametrize(
    ("last_event_id", "expected"),
    [
        (None, ["CANCELLED"]),  # a new client: the current state
        ("garbage", ["CANCELLED"]),  # not an id of ours: as if none
        ("1", ["CANCELLED"]),
        ("2", []),  # it has seen the end: nothing more, the stream ends
    ],
)
def test_last_event_id_decides_where_the_stream_starts(
    client: TestClient,
    jobs_queue: JobQueue,
    echo_type: str,
    last_event_id: str | None,
    expected: list[str],
) -> None:
    location = client.post(JOBS, json={"type": echo_type, "params": {"value": 1}}).headers[
        "Location"
    ]
    client.delete(location)
    headers = {"Last-Event-ID": last_event_id} if last_event_id is not None else {}
    with client.stream("GET", f"{location}/events", headers=headers) as response:
        assert response.status_code == 200
        events = list(status_events(response.iter_lines()))
    assert [e["data"]["status"] for e in events] == expected


def test_a_keep_alive_comes_at_least_every_5_seconds(
    client: TestClient, jobs_queue: JobQueue, data: JobDataService, echo_type: str
) -> None:
    assert routes.KEEPALIVE_SECONDS < 5  # httpx's default read timeout
    job_id = client.post(JOBS, json={"type": echo_type, "params": {"value": 1}}).json()["id"]
    got: list[dict[str, Any]] = []
    with client.stream("GET", f"{JOBS}/{job_id}/events") as response:
        for frame in frames(response.iter_lines()):
            got.append(frame)
            if sum("comment" in f for f in got) == 2:
                break  # nothing happens to a PENDING job with no worker: only keep-alives
    assert got[0]["event"] == "status"
    assert [f.get("comment") for f in got[1:]] == ["keep-alive", "keep-alive"]
    gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(got)]
    assert max(gaps) < 5.0, gaps


def test_keep_alives_go_out_while_a_read_of_the_database_is_slow(
    app: FastAPI, client: TestClient, jobs_queue: JobQueue, echo_type: str
) -> None:
    reads: list[float] = []

    class Slow(JobDataService):
        def get(self, id: str) -> JobTable | None:
            reads.append(time.monotonic())
            if len(reads) > 1:  # the stream's polls (the first read is the route's)
                time.sleep(routes.KEEPALIVE_SECONDS + 2)
            return super().get(id)

    app.dependency_overrides[routes.get_job_service] = Slow
    job_id = client.post(JOBS, json={"type": echo_type, "params": {"value": 1}}).json()["id"]
    got: list[dict[str, Any]] = []
    with client.stream("GET", f"{JOBS}/{job_id}/events") as response:
        for frame in frames(response.iter_lines()):
            got.append(frame)
            if "comment" in frame:
                break
    assert len(reads) == 2  # the keep-alive came while the stream's first poll was reading
    assert got[1]["at"] - got[0]["at"] < 5.0


def test_a_database_failure_mid_stream_is_an_error_event_then_the_end(
    app: FastAPI, client: TestClient, jobs_queue: JobQueue, echo_type: str
) -> None:
    calls: list[str] = []

    class Failing(JobDataService):
        def get(self, id: str) -> JobTable | None:
            calls.append(id)
            if len(calls) > 1:
                raise ServiceUnavailableError("the database did not answer")
            return super().get(id)

    app.dependency_overrides[routes.get_job_service] = Failing
    job_id = client.post(JOBS, json={"type": echo_type, "params": {"value": 1}}).json()["id"]
    with client.stream("GET", f"{JOBS}/{job_id}/events") as response:
        got = [f for f in frames(response.iter_lines()) if "comment" not in f]
    assert [f["event"] for f in got] == ["status", "error"]
    assert json.loads(got[1]["data"]) == {"status": 503, "detail": "the database did not answer"}
    assert "id" not in got[1]  # an error is no change: a reconnect resumes after the last one


def test_the_document_describes_the_stream_and_its_job_event(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    assert set(schemas["JobEvent"]["properties"]) == {
        "id",
        "status",
        "progress",
        "attempts",
        "error",
        "result",
        "updated_at",
    }
    operation = document["paths"]["/api/v1/jobs/{job_id}/events"]["get"]
    item = operation["responses"]["200"]["content"]["text/event-stream"]["itemSchema"]
    assert item["properties"]["data"]["contentSchema"] == {"$ref": "#/components/schemas/JobEvent"}
    assert {"id", "event", "retry"} <= set(item["properties"])
    assert any(
        p["name"] == "Last-Event-ID" and p["in"] == "header" for p in operation["parameters"]
    )
