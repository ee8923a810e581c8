"""Jobs belong to the caller who submitted them: others neither list, read, follow nor cancel
them (a 404, not a 403: another caller's job does not exist for them); an admin sees all;
submitting needs jobs:write; an Idempotency-Key is the caller's own."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from app_lib.features.jobs.queue import JobQueue
from tests.conftest import bearer

JOBS = "/api/v1/jobs"


def test_a_caller_sees_only_their_own_jobs(
    app: FastAPI, client: TestClient, jobs_queue: JobQueue, echo_type: str
) -> None:
    alice = bearer(app, "alice", "jobs:write")
    bob = bearer(app, "bob", "jobs:write")
    body = {"type": echo_type, "params": {"value": 1}}
    mine = client.post(JOBS, json=body, headers=alice).json()["id"]
    theirs = client.post(JOBS, json=body, headers=bob).json()["id"]

    assert client.get(f"{JOBS}/{mine}", headers=alice).status_code == 200
    hidden = client.get(f"{JOBS}/{theirs}", headers=alice)
    missing = client.get(f"{JOBS}/no-such-job", headers=alice)
    # The same answer as for a job that does not exist: nothing about Bob's job shows.
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["detail"] == missing.json()["detail"].replace("no-such-job", theirs)
    assert hidden.json()["detail"] == f"job {theirs} does not exist"
    assert "params" not in hidden.text
    assert client.get(f"{JOBS}/{theirs}/events", headers=alice).status_code == 404
    assert client.delete(f"{JOBS}/{theirs}", headers=alice).status_code == 404
    listed = client.get(JOBS, headers=alice).json()["items"]
    assert [job["id"] for job in listed] == [mine]
    pending = client.get(JOBS, params={"status": "PENDING"}, headers=alice).json()["items"]
    assert [job["id"] for job in pending] == [mine]
    # The admin (the `client` fixture's token) sees both.
    assert {job["id"] for job in client.get(JOBS).json()["items"]} == {mine, theirs}
    assert client.get(f"{JOBS}/{theirs}").status_code == 200


def test_jobs_need_a_token_and_writes_the_scope(
    app: FastAPI, client: TestClient, jobs_queue: JobQueue, echo_type: str
) -> None:
    body = {"type": echo_type, "params": {"value": 1}}
    assert client.get(JOBS, headers={"Authorization": ""}).status_code == 401
    reader = bearer(app, "carol", "passengers:write")
    assert client.get(JOBS, headers=reader).json()["items"] == []
    refused = client.post(JOBS, json=body, headers=reader)
    assert refused.status_code == 403
    assert 'error="insufficient_scope"' in refused.headers["WWW-Authenticate"]


def test_an_idempotency_key_is_the_callers_own(
    app: FastAPI, client: TestClient, jobs_queue: JobQueue, echo_type: str
) -> None:
    body = {"type": echo_type, "params": {"value": 1}}
    key = {"Idempotency-Key": "same-key"}
    first = client.post(JOBS, json=body, headers={**bearer(app, "alice", "jobs:write"), **key})
    second = client.post(JOBS, json=body, headers={**bearer(app, "bob", "jobs:write"), **key})
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] != second.json()["id"]
    assert "Idempotent-Replayed" not in second.headers
    replay = client.post(JOBS, json=body, headers={**bearer(app, "alice", "jobs:write"), **key})
    assert replay.json()["id"] == first.json()["id"]
    assert replay.headers["Idempotent-Replayed"] == "true"
