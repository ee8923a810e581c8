"""The embedded database process: persistence, restarts, answers equal to moto's, flat memory."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from app_lib.common.embedded import EmbeddedServer, EmbeddedServerError

GSI = "by-group"


def client(url: str) -> Any:
    return boto3.client(
        "dynamodb",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="embedded",
        aws_secret_access_key="embedded",
    )


def make_table(dynamodb: Any, name: str = "things") -> None:
    dynamodb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "id", "AttributeType": "S"},
            {"AttributeName": "group", "AttributeType": "N"},
            {"AttributeName": "sort", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": GSI,
                "KeySchema": [
                    {"AttributeName": "group", "KeyType": "HASH"},
                    {"AttributeName": "sort", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    )


def put(dynamodb: Any, n: int, table: str = "things") -> None:
    dynamodb.put_item(
        TableName=table,
        Item={
            "id": {"S": f"{n:04d}"},
            "group": {"N": str(n % 3)},
            "sort": {"S": f"{'b' if n % 2 else 'a'}#{1000 - n}"},
            "text": {"S": "é☃ " * 10},
            "price": {"N": f"{n}.25"},
            "tags": {"SS": ["x", f"t{n}"]},
        },
    )


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def server(data_dir: Path) -> Iterator[EmbeddedServer]:
    embedded = EmbeddedServer(data_dir)
    embedded.start()
    yield embedded
    embedded.stop()


def restart(server: EmbeddedServer, how: str) -> None:
    """End the process (cleanly, or kill -9) and start it again on the same port and data."""
    assert server.pid is not None
    if how == "kill":
        os.kill(server.pid, signal.SIGKILL)
        server._process.wait()  # type: ignore[union-attr]
        server._process = None
    else:
        server.stop()
    server.start()


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_data_survives_a_restart_and_a_kill(server: EmbeddedServer, how: str) -> None:
    dynamodb = client(server.url)
    make_table(dynamodb)
    dynamodb.update_time_to_live(
        TableName="things", TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"}
    )
    for n in range(60):
        put(dynamodb, n)
    dynamodb.update_item(
        TableName="things",
        Key={"id": {"S": "0001"}},
        UpdateExpression="ADD hits :one",
        ExpressionAttributeValues={":one": {"N": "7"}},
    )
    dynamodb.delete_item(TableName="things", Key={"id": {"S": "0002"}})
    port = server.port
    before = dynamodb.scan(TableName="things")["Items"]

    restart(server, how)

    assert server.port == port  # same endpoint: the app's models and queue URLs stay valid
    again = client(server.url)
    after = again.scan(TableName="things")["Items"]
    key = lambda item: item["id"]["S"]  # noqa: E731
    assert sorted(after, key=key) == sorted(before, key=key)
    assert len(after) == 59
    assert again.get_item(TableName="things", Key={"id": {"S": "0001"}})["Item"]["hits"] == {
        "N": "7"
    }
    ttl = again.describe_time_to_live(TableName="things")["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires"}
    page = again.query(
        TableName="things",
        IndexName=GSI,
        KeyConditionExpression="#g = :g AND begins_with(#s, :p)",
        ExpressionAttributeNames={"#g": "group", "#s": "sort"},
        ExpressionAttributeValues={":g": {"N": "1"}, ":p": {"S": "b#"}},
    )
    assert page["Count"] == 10  # n % 3 == 1 and n odd, n < 60


def test_writes_after_a_restart_survive_the_next_one(server: EmbeddedServer) -> None:
    dynamodb = client(server.url)
    make_table(dynamodb)
    put(dynamodb, 1)
    restart(server, "kill")
    put(client(server.url), 2)
    restart(server, "kill")
    restart(server, "stop")
    items = client(server.url).scan(TableName="things")["Items"]
    assert sorted(item["id"]["S"] for item in items) == ["0001", "0002"]


def test_a_torn_last_journal_line_is_ignored(server: EmbeddedServer, data_dir: Path) -> None:
    dynamodb = client(server.url)
    make_table(dynamodb)
    put(dynamodb, 1)
    server.stop()
    journal = next((data_dir / "dynamodb").glob("journal-*.jsonl"))
    with journal.open("a", encoding="utf-8") as handle:
        handle.write('{"op": "PutItem", "a": "')  # the process died in the middle of a line
    server.start()
    items = client(server.url).scan(TableName="things")["Items"]
    assert [item["id"]["S"] for item in items] == ["0001"]


def test_a_crash_during_compaction_loses_nothing(server: EmbeddedServer, data_dir: Path) -> None:
    """Compaction writes snapshot G+1 aside, renames it, then starts journal G+1: a crash before
    the rename leaves snapshot G + journal G; after it, snapshot G+1 (its journal not yet made).
    Both must load the same data, and the old journal must not be replayed twice."""
    dynamodb = client(server.url)
    make_table(dynamodb)
    for n in range(5):
        put(dynamodb, n)
    dynamodb.update_item(
        TableName="things",
        Key={"id": {"S": "0001"}},
        UpdateExpression="ADD hits :one",
        ExpressionAttributeValues={":one": {"N": "1"}},
    )
    server.stop()
    store = data_dir / "dynamodb"
    # A leftover temporary snapshot (crash before the rename) is ignored.
    (store / "snapshot.jsonl.tmp").write_text('{"generation": 99}\n{"op": "Crea')
    server.start()  # loads, then compacts: snapshot G+1 and an empty journal G+1
    generation = json.loads((store / "snapshot.jsonl").read_text().splitlines()[0])["generation"]
    # A crash right after the rename: the new journal does not exist yet, the old one does.
    server.stop()
    for journal in store.glob("journal-*.jsonl"):
        journal.unlink()
    (store / f"journal-{generation - 1}.jsonl").write_text(
        json.dumps(
            {
                "op": "UpdateItem",
                "a": "AWS4-HMAC-SHA256 Credential=embedded/20260101/us-east-1/dynamodb/x",
                "b": json.dumps(
                    {
                        "TableName": "things",
                        "Key": {"id": {"S": "0001"}},
                        "UpdateExpression": "ADD hits :one",
                        "ExpressionAttributeValues": {":one": {"N": "1"}},
                    }
                ),
            }
        )
        + "\n"
    )
    server.start()
    item = client(server.url).get_item(TableName="things", Key={"id": {"S": "0001"}})["Item"]
    assert item["hits"] == {"N": "1"}  # the stale journal was not replayed on top
    assert len(client(server.url).scan(TableName="things")["Items"]) == 5


def test_one_data_directory_serves_one_database(server: EmbeddedServer, data_dir: Path) -> None:
    second = EmbeddedServer(data_dir, start_timeout=30)
    with pytest.raises(EmbeddedServerError):
        second.start()


def test_without_a_data_directory_nothing_is_kept(tmp_path: Path) -> None:
    with EmbeddedServer() as embedded:
        make_table(client(embedded.url))
        put(client(embedded.url), 1)
        embedded.stop()
        embedded.start()
        assert client(embedded.url).list_tables()["TableNames"] == []


def test_a_dead_process_is_started_again_by_the_watcher(server: EmbeddedServer) -> None:
    restarted: list[float] = []
    server.watch(lambda: restarted.append(time.monotonic()), poll_seconds=0.05)
    make_table(client(server.url))
    old = server.pid
    assert old is not None
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while not restarted:
        assert time.monotonic() < deadline, "the watcher did not restart the database"
        time.sleep(0.05)
    assert server.pid not in (None, old)
    assert server.restarts == 1
    assert client(server.url).list_tables()["TableNames"] == ["things"]


# ----- the embedded answers equal moto's own ----------------------------------------------------
def _sequence(dynamodb: Any) -> list[Any]:
    """Requests whose answers are compared: data-plane answers take the direct JSON path and
    sorted reads take the key-function sorts."""
    make_table(dynamodb)
    answers: list[Any] = []
    for n in range(40):
        put(dynamodb, n)
    answers.append(dynamodb.get_item(TableName="things", Key={"id": {"S": "0003"}}))
    answers.append(
        dynamodb.update_item(
            TableName="things",
            Key={"id": {"S": "0003"}},
            UpdateExpression="SET price = price + :d ADD hits :one",
            ExpressionAttributeValues={":d": {"N": "0.5"}, ":one": {"N": "1"}},
            ReturnValues="ALL_NEW",
        )
    )
    answers.append(dynamodb.scan(TableName="things", Limit=7))
    answers.append(
        dynamodb.scan(
            TableName="things",
            FilterExpression="price > :p",
            ExpressionAttributeValues={":p": {"N": "30"}},
        )
    )
    start = None
    for _ in range(4):  # cursor pages of a GSI query, backwards
        kwargs: dict[str, Any] = {
            "TableName": "things",
            "IndexName": GSI,
            "KeyConditionExpression": "#g = :g AND begins_with(#s, :p)",
            "ExpressionAttributeNames": {"#g": "group", "#s": "sort"},
            "ExpressionAttributeValues": {":g": {"N": "2"}, ":p": {"S": "a#"}},
            "Limit": 3,
            "ScanIndexForward": False,
        }
        if start:
            kwargs["ExclusiveStartKey"] = start
        page = dynamodb.query(**kwargs)
        answers.append(page)
        start = page.get("LastEvaluatedKey")
    answers.append(
        dynamodb.batch_get_item(
            RequestItems={"things": {"Keys": [{"id": {"S": "0001"}}, {"id": {"S": "0002"}}]}}
        )
    )
    answers.append(
        dynamodb.delete_item(TableName="things", Key={"id": {"S": "0004"}}, ReturnValues="ALL_OLD")
    )
    try:
        dynamodb.put_item(
            TableName="things",
            Item={"id": {"S": "0005"}},
            ConditionExpression="attribute_not_exists(id)",
        )
    except dynamodb.exceptions.ConditionalCheckFailedException as error:
        answers.append(error.response["Error"])
    described = dynamodb.describe_table(TableName="things")["Table"]
    answers.append({k: described[k] for k in ("KeySchema", "AttributeDefinitions", "ItemCount")})
    for answer in answers:
        if isinstance(answer, dict):
            answer.pop("ResponseMetadata", None)
    return answers


def test_answers_equal_unpatched_moto() -> None:
    reference = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    reference.start()
    try:
        host, port = reference.get_host_and_port()
        expected = _sequence(client(f"http://{host}:{port}"))
    finally:
        reference.stop()
    with EmbeddedServer() as embedded:
        assert _sequence(client(embedded.url)) == expected


# ----- memory ------------------------------------------------------------------------------------
def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_memory_does_not_grow_with_reads() -> None:
    """moto kept every item a Scan or Query returned (about 69 MB per 1,000 Scans of 100 items):
    memory must follow the data, not the requests served."""
    with EmbeddedServer() as embedded:
        assert embedded.pid is not None
        dynamodb = client(embedded.url)
        make_table(dynamodb)
        for n in range(100):
            put(dynamodb, n)
        query = {
            "TableName": "things",
            "IndexName": GSI,
            "KeyConditionExpression": "#g = :g",
            "ExpressionAttributeNames": {"#g": "group"},
            "ExpressionAttributeValues": {":g": {"N": "1"}},
        }
        for _ in range(200):  # warm up: allocator pools, caches
            dynamodb.scan(TableName="things")
            dynamodb.query(**query)
        before = _rss_mb(embedded.pid)
        for _ in range(1500):
            dynamodb.scan(TableName="things")
            dynamodb.query(**query)
        grown = _rss_mb(embedded.pid) - before
        # Unfixed, these 1,500 Scans of 100 items and Queries of 33 keep over 100 MB.
        assert grown < 20, f"the embedded database grew {grown:.1f} MB over 3,000 reads"
