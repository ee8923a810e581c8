"""The passengers job types end to end: HTTP submit -> SQS -> worker -> result, on moto."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from app_lib.features.jobs.data_service import JobDataService
from app_lib.features.jobs.queue import JobQueue
from app_lib.features.jobs.runner import Worker
from app_lib.features.passengers.seed import load_file
from tests.features.jobs.conftest import dead_letters, finished, work_until

JOBS = "/api/v1/jobs"
PASSENGERS = "/api/v1/passengers"

KAGGLE_CSV = (
    "PassengerId,Survived,Pclass,Name,Sex,Age,SibSp,Parch,Ticket,Fare,Cabin,Embarked\n"
    'c1,1,1,"Doe, Mrs. Jane",female,30,0,0,PC 1,80.5,C1,C\n'
    'c2,0,3,"Roe, Mr. Richard",male,,1,2,A/5 2,7.25,,S\n'
)


def run(client: TestClient, worker: Worker, data: JobDataService, body: dict[str, Any]) -> Any:
    response = client.post(JOBS, json=body)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    work_until(worker, finished(data, job_id))
    return client.get(f"{JOBS}/{job_id}").json()


def test_stats_job_stores_the_statistics_of_the_bundled_data(
    client: TestClient, jobs_queue: JobQueue, worker: Worker, data: JobDataService
) -> None:
    assert load_file() == 891
    job = run(client, worker, data, {"type": "passengers.stats", "params": {}})
    assert job["status"] == "COMPLETED" and job["progress"] == 100 and job["attempts"] == 1
    assert job["result"]["overall"]["total"] == 891
    assert job["result"]["overall"]["survived"] == 342
    assert job["result"] == client.get(f"{PASSENGERS}/stats").json()


def test_import_of_rows_writes_them(
    client: TestClient, jobs_queue: JobQueue, worker: Worker, data: JobDataService
) -> None:
    rows = [
        {"passenger_id": f"r{n}", "survived": n % 2 == 0, "pclass": 2, "name": f"P {n}", "sex": s}
        for n, s in enumerate(["female", "male", "female"])
    ]
    job = run(client, worker, data, {"type": "passengers.import", "params": {"rows": rows}})
    assert job["status"] == "COMPLETED" and job["result"] == {"written": 3}
    for row in rows:
        stored = client.get(f"{PASSENGERS}/{row['passenger_id']}")
        assert stored.status_code == 200 and stored.json()["name"] == row["name"]


def test_import_of_csv_text_writes_it(
    client: TestClient, jobs_queue: JobQueue, worker: Worker, data: JobDataService
) -> None:
    job = run(client, worker, data, {"type": "passengers.import", "params": {"csv": KAGGLE_CSV}})
    assert job["status"] == "COMPLETED" and job["result"] == {"written": 2}
    assert client.get(f"{PASSENGERS}/c2").json()["age"] is None
    assert client.get(f"{PASSENGERS}/stats").json()["overall"]["total"] == 2


def test_import_with_bad_rows_fails_at_once_and_writes_nothing(
    client: TestClient,
    jobs_queue: JobQueue,
    worker: Worker,
    data: JobDataService,
    dynamodb_endpoint: str,
) -> None:
    bad = KAGGLE_CSV + 'c3,2,9,"Bad, Mr. Row",robot,,0,0,X,1,,S\n'
    job = run(client, worker, data, {"type": "passengers.import", "params": {"csv": bad}})
    # Bad data does not get better on a retry: FAILED on the first attempt, with the bad line.
    assert job["status"] == "FAILED" and job["attempts"] == 1
    assert job["error"]["code"] == "invalid_params"
    assert "bad row" in job["error"]["message"] and "line 4" in job["error"]["message"]
    assert client.get(f"{PASSENGERS}/c1").status_code == 404
    letters = dead_letters(jobs_queue, dynamodb_endpoint)
    assert [letter["job_id"] for letter in letters] == [job["id"]]


def test_import_params_are_checked_before_queueing(
    client: TestClient, jobs_queue: JobQueue
) -> None:
    for params in ({}, {"rows": [], "csv": ""}, {"rows": "x"}, {"other": 1}):
        response = client.post(JOBS, json={"type": "passengers.import", "params": params})
        assert response.status_code == 422, params
    assert (
        client.post(JOBS, json={"type": "passengers.stats", "params": {"x": 1}}).status_code == 422
    )
    assert jobs_queue.receive(10, wait_seconds=0) == []
