"""Faults under the running app: its database killed, paused, or replaced by an empty one.

The app runs as `python -m app_lib serve` does for a user, in a process of its own; the faults
are real signals to the database process. What must hold: clients get 200s or 503s (with
Retry-After, problem+json), never a 500; a paused database costs a request its time budget, not
its retries' worth of read timeouts; the app recovers without being restarted; no job is left
PENDING. Recovery times are printed (`-s`), not asserted: they depend on the machine.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from app_lib.common.embedded import EmbeddedServer

# Each database call may take this long in all. The read timeout is set far longer, so that an
# answer within one read timeout proves the budget, not the timeout, ended the call.
BUDGET = 1.0
READ_TIMEOUT = 15.0
DEADLINE = 90.0  # bound of every wait; a healthy run needs a few seconds


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(child) for child in text]
    return found


@dataclass
class App:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def get(self, path: str, **kwargs: object) -> httpx.Response:
        return httpx.get(self.url + path, timeout=READ_TIMEOUT * 4, **kwargs)  # type: ignore[arg-type]

    def database_pid(self) -> int:
        found = children(self.process.pid)
        assert len(found) == 1, f"expected one database process, found {found}"
        return found[0]

    def wait_ready(self) -> float:
        """Seconds until /ready answers 200 (bounded)."""
        started = time.monotonic()
        while True:
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            try:
                if self.get("/ready").status_code == 200:
                    return time.monotonic() - started
            except httpx.TransportError:
                pass
            assert time.monotonic() - started < DEADLINE, (
                "not ready: " + self.log.read_text()[-3000:]
            )
            time.sleep(0.05)


def start_app(tmp_path: Path, dynamodb_host: str = "embedded") -> App:
    port = free_port()
    env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "APP_ENV": "faults",
        "DYNAMODB_HOST": dynamodb_host,
        "DATA_DIR": str(tmp_path / "data"),
        "SEED_ON_START": "true",
        "RUN_WORKER": "true",
        "LOG_LEVEL": "WARNING",
        "DYNAMODB_REQUEST_TIMEOUT": str(BUDGET),
        "DYNAMODB_READ_TIMEOUT": str(READ_TIMEOUT),
        "DYNAMODB_MAX_RETRIES": "2",
        "JOBS_VISIBILITY_TIMEOUT": "2",
        "JOBS_WAIT_SECONDS": "1",
        # Faults of the database are the subject here, not tokens (tests/common/test_auth.py).
        "AUTH_MODE": "off",
    }
    env.pop("JOBS_QUEUE_URL", None)
    log = tmp_path / "app.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "app_lib", "serve"], env=env, stdout=sink, stderr=sink
        )
    app = App(process, f"http://127.0.0.1:{port}", log)
    print(f"\nready after {app.wait_ready():.2f} s")
    return app


def stop_app(app: App) -> None:
    for pid in children(app.process.pid) if app.process.poll() is None else []:
        with_signal(pid, signal.SIGCONT)  # a paused database would hold up the shutdown
    app.process.terminate()
    try:
        app.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        app.process.kill()
        app.process.wait(timeout=30)


def with_signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    running = start_app(tmp_path)
    try:
        yield running
    finally:
        stop_app(running)


def assert_fault_answer(response: httpx.Response, allowed: tuple[int, ...] = (200,)) -> None:
    """Only an expected status or a 503 that says when to retry: never a 500."""
    if response.status_code == 503:
        assert response.headers["content-type"] == "application/problem+json"
        assert int(response.headers["retry-after"]) >= 1
        assert response.json()["status"] == 503
        return
    assert response.status_code in allowed, (response.status_code, response.text[:300])


def poll(app: App, until: Callable[[], bool], what: str) -> float:
    started = time.monotonic()
    while not until():
        assert time.monotonic() - started < DEADLINE, what + ": " + app.log.read_text()[-3000:]
        time.sleep(0.1)
    return time.monotonic() - started


def test_a_killed_database_comes_back_with_its_data(app: App) -> None:
    first = app.get("/api/v1/passengers/1")
    renamed = httpx.patch(
        app.url + "/api/v1/passengers/1",
        json={"name": "Kept, Mr. Across A Crash"},
        headers={"If-Match": first.headers["etag"]},
    )
    assert renamed.status_code == 200
    old = app.database_pid()

    os.kill(old, signal.SIGKILL)
    started = time.monotonic()
    statuses = []
    while True:  # clients during the outage: answers, never 500s
        response = app.get("/api/v1/passengers/2")
        assert_fault_answer(response)
        statuses.append(response.status_code)
        if response.status_code == 200 and app.get("/ready").status_code == 200:
            break
        assert time.monotonic() - started < DEADLINE, app.log.read_text()[-3000:]
        time.sleep(0.02)
    recovered = time.monotonic() - started
    print(f"ready again {recovered:.2f} s after kill -9; answers meanwhile: {set(statuses)}")

    assert app.database_pid() != old
    assert app.process.poll() is None  # the app itself was not restarted
    assert app.get("/api/v1/passengers/1").json()["name"] == "Kept, Mr. Across A Crash"
    stats = app.get("/api/v1/passengers/stats").json()
    assert stats["overall"]["total"] == 891


def test_a_paused_database_costs_a_request_its_budget_not_its_retries(app: App) -> None:
    database = app.database_pid()
    os.kill(database, signal.SIGSTOP)
    try:
        for path in ("/api/v1/passengers/3", "/api/v1/passengers?pclass=1", "/ready"):
            started = time.monotonic()
            response = app.get(path)
            took = time.monotonic() - started
            print(f"{path}: {response.status_code} after {took:.2f} s (budget {BUDGET} s)")
            assert response.status_code == 503
            assert_fault_answer(response)
            # Without the budget: 3 attempts x a 15 s read timeout. Even one read timeout
            # means the budget did not end the call.
            assert took < READ_TIMEOUT
    finally:
        os.kill(database, signal.SIGCONT)
    poll(app, lambda: app.get("/api/v1/passengers/3").status_code == 200, "no recovery")


def test_no_job_stays_pending_through_faults(app: App) -> None:
    submitted: list[str] = []

    def submit() -> None:
        response = httpx.post(
            app.url + "/api/v1/jobs", json={"type": "passengers.stats"}, timeout=READ_TIMEOUT * 4
        )
        assert_fault_answer(response, allowed=(202,))
        if response.status_code == 202:
            submitted.append(response.json()["id"])

    submit()
    database = app.database_pid()
    os.kill(database, signal.SIGSTOP)
    try:
        submit()  # 503: the database did not answer; its write may land all the same
    finally:
        os.kill(database, signal.SIGCONT)
    submit()
    os.kill(app.database_pid(), signal.SIGKILL)  # queued messages are lost with it (SQS is
    poll(app, lambda: app.get("/ready").status_code == 200, "no recovery")  # not persisted)
    submit()

    def nothing_pending() -> bool:
        response = app.get("/api/v1/jobs", params={"status": "PENDING"})
        processing = app.get("/api/v1/jobs", params={"status": "PROCESSING"})
        if response.status_code != 200 or processing.status_code != 200:
            return False
        return not response.json()["items"] and not processing.json()["items"]

    took = poll(app, nothing_pending, "jobs left PENDING")
    print(f"no job PENDING {took:.1f} s after the last fault; submitted {len(submitted)}")
    finished = app.get("/api/v1/jobs", params={"limit": 100}).json()["items"]
    assert {job["id"] for job in finished} >= set(submitted)
    assert all(job["status"] in ("COMPLETED", "FAILED") for job in finished)
    assert any(job["status"] == "COMPLETED" for job in finished)


def test_an_endpoint_that_comes_back_empty_gets_its_tables_again(tmp_path: Path) -> None:
    """Not the embedded database: a DynamoDB-compatible server of the user's that restarted
    without its data. The app creates the tables and seeds them again, without a restart."""
    database = EmbeddedServer()
    database.start()
    app = start_app(tmp_path, dynamodb_host=database.url)
    try:
        assert app.get("/api/v1/passengers/5").status_code == 200
        port = database.port
        database.stop()
        database = EmbeddedServer(port=port)  # same endpoint, nothing in it
        database.start()
        took = poll(
            app,
            lambda: (
                app.get("/ready").status_code == 200
                and app.get("/api/v1/passengers/5").status_code == 200
            ),
            "tables not re-created",
        )
        print(f"tables and seed data back {took:.2f} s after the endpoint came back empty")
        assert app.process.poll() is None
    finally:
        stop_app(app)
        database.stop()


def test_data_survives_a_restart_of_the_app(tmp_path: Path) -> None:
    """DATA_DIR: what was written through the API is there after the app stops and starts."""
    app = start_app(tmp_path)
    try:
        created = httpx.post(
            app.url + "/api/v1/passengers",
            json={
                "passenger_id": "9001",
                "survived": True,
                "pclass": 1,
                "name": "New, Ms. A",
                "sex": "female",
            },
        )
        assert created.status_code == 201
        deleted = httpx.delete(app.url + "/api/v1/passengers/7")
        assert deleted.status_code == 204
    finally:
        stop_app(app)
    app = start_app(tmp_path)
    try:
        assert app.get("/api/v1/passengers/9001").json()["name"] == "New, Ms. A"
        assert app.get("/api/v1/passengers/7").status_code == 404
        # Not seeded again on top: 891 - 1 + 1.
        assert app.get("/api/v1/passengers/stats").json()["overall"]["total"] == 891
    finally:
        stop_app(app)
