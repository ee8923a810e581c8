"""One time budget per botocore call, retries included (a server that accepts and never answers,
as a paused database does)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ConnectionClosedError, ReadTimeoutError

from app_lib.common.aws import install_time_budget
from app_lib.features.jobs.queue import JobQueue

READ_TIMEOUT = 10.0  # per attempt; three attempts without a budget: 30 s


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Accepts connections, reads, never answers; closes them when the test ends."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            accepted.append(connection)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(timeout=5)
    for connection in accepted:
        connection.close()
    listener.close()


def client(service: str, url: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(connect_timeout=1, read_timeout=READ_TIMEOUT, retries={"max_attempts": 3}),
    )


def timed(call: Any) -> tuple[float, BaseException]:
    started = time.monotonic()
    with pytest.raises((ReadTimeoutError, ConnectionClosedError)) as raised:
        call()
    return time.monotonic() - started, raised.value


def test_a_hung_database_call_ends_within_its_budget(silent_server: str) -> None:
    dynamodb = client("dynamodb", silent_server)
    install_time_budget(dynamodb, 0.5, READ_TIMEOUT)
    took, _ = timed(lambda: dynamodb.get_item(TableName="t", Key={"id": {"S": "1"}}))
    # Less than a single read timeout: the budget, not botocore's limits, ended the call.
    assert took < READ_TIMEOUT


def test_installing_twice_keeps_one_budget_and_a_new_value_replaces_it(
    silent_server: str,
) -> None:
    dynamodb = client("dynamodb", silent_server)
    install_time_budget(dynamodb, 30.0, READ_TIMEOUT)
    install_time_budget(dynamodb, 0.5, READ_TIMEOUT)
    install_time_budget(dynamodb, 0.5, READ_TIMEOUT)
    took, _ = timed(lambda: dynamodb.describe_table(TableName="t"))
    assert took < READ_TIMEOUT


def test_the_jobs_queue_sends_within_the_budget(
    silent_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    queue = JobQueue(
        f"{silent_server}/123456789012/q",
        region="us-east-1",
        connect_timeout=1,
        read_timeout=READ_TIMEOUT,
        retries=2,
        request_timeout=0.5,
    )
    took, _ = timed(lambda: queue._client.send_message(QueueUrl=queue.url, MessageBody="{}"))
    assert took < READ_TIMEOUT


def test_without_a_budget_botocore_waits_a_whole_read_timeout(silent_server: str) -> None:
    """The control: the same hung server holds an unbudgeted call a full read timeout."""
    started = time.monotonic()
    with pytest.raises((ReadTimeoutError, ConnectionClosedError)):
        boto3.client(
            "dynamodb",
            endpoint_url=silent_server,
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
            config=Config(connect_timeout=1, read_timeout=1.5, retries={"max_attempts": 1}),
        ).get_item(TableName="t", Key={"id": {"S": "1"}})
    assert time.monotonic() - started >= 1.5
