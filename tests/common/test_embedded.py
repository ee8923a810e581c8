"""The embedded database process: persistence, restarts, answers equal to moto's, flat memory."""

from __future__ import annotations

import http.client
import json
import os
import random
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
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


# ----- the speed patches answer as moto does ------------------------------------------------------
# Each patch of embedded_server.patch_moto (no copies of the items a read returns, item sizes,
# index partitions and sort orders kept between reads until a write, plain-JSON answers, the
# cached dispatch, keep-alive connections) must leave every answer as unpatched moto gives it.
# A wide sequence of reads between writes of every kind, then random queries, are sent to both.
WIDE = "wide"
SETS = ("SS", "NS", "BS")


def _reset(url: str) -> None:
    request = urllib.request.Request(f"{url}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=30) as answer:
        answer.read()


def _normal(value: Any) -> Any:
    """An answer without what may differ between two processes: request metadata, and the
    order of set members (moto builds some sets with Python sets, ordered by string hashes)."""
    if isinstance(value, dict):
        return {
            k: sorted(v, key=repr) if k in SETS else _normal(v)
            for k, v in value.items()
            if k != "ResponseMetadata"
        }
    if isinstance(value, list):
        return [_normal(v) for v in value]
    return value


def make_wide_table(dynamodb: Any) -> None:
    """Hash + range key, a GSI of each projection (one sparse), and an LSI."""
    dynamodb.create_table(
        TableName=WIDE,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
            {"AttributeName": "g", "AttributeType": "N"},
            {"AttributeName": "r", "AttributeType": "S"},
            {"AttributeName": "kind", "AttributeType": "S"},
            {"AttributeName": "label", "AttributeType": "S"},
        ],
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-g",
                "KeySchema": [
                    {"AttributeName": "g", "KeyType": "HASH"},
                    {"AttributeName": "r", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            },
            {
                "IndexName": "by-kind",
                "KeySchema": [{"AttributeName": "kind", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            },
            {
                "IndexName": "by-kind-label",
                "KeySchema": [
                    {"AttributeName": "kind", "KeyType": "HASH"},
                    {"AttributeName": "label", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["m", "flag"]},
            },
        ],
        LocalSecondaryIndexes=[
            {
                "IndexName": "by-label",
                "KeySchema": [
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "label", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    )


# The same number written differently: one partition of by-g each ("1" = "1.0" = "1.00").
NUMBERS = ["1", "1.0", "1.00", "2", "0", "-0", "10", "1e1", "3.25"]


def wide_item(n: int) -> dict[str, Any]:
    pick = random.Random(n)
    item: dict[str, Any] = {
        "pk": {"S": f"p{n % 6}"},
        "sk": {"N": str(n // 6 - 5)},
        "text": {"S": pick.choice(["plain", "é☃ ünïcode", "", "x" * 40])},
        "price": {"N": pick.choice(["1", "1.5", "-2", "1e2", "0.001", "12345678901234567890"])},
        "flag": {"BOOL": pick.random() < 0.5},
        "nothing": {"NULL": True},
        "ss": {"SS": sorted({pick.choice("abcd") for _ in range(3)})},
        "ns": {"NS": sorted({str(pick.randint(1, 9)) for _ in range(3)})},
        "l": {"L": [{"S": "a"}, {"N": str(n)}, {"M": {"deep": {"S": f"d{n}"}}}]},
        "m": {"M": {"amount": {"N": str(n % 4)}, "tags": {"L": [{"S": "t"}]}}},
    }
    if n % 3 == 0:  # binaries (answered through moto's own serializer)
        item["bin"] = {"B": bytes([n % 256, 0, 255])}
        item["bs"] = {"BS": [b"\x00", bytes([n % 256 or 1])]}
    if n % 7:  # sparse: items without g or r are not in by-g
        item["g"] = {"N": NUMBERS[n % len(NUMBERS)]}
    if n % 5:
        item["r"] = {"S": f"{'ab'[n % 2]}#{n % 13:02d}"}
    if n % 4:
        item["kind"] = {"S": ["a", "b", "é"][n % 3]}
    if n % 3:
        item["label"] = {"S": f"label-{(n * 7) % 23:02d}"}
    return item


def _pages(call: Any, **kwargs: Any) -> list[Any]:
    """Every page of a Query or Scan, following LastEvaluatedKey."""
    pages = []
    while True:
        page = call(**kwargs)
        pages.append(page)
        if "LastEvaluatedKey" not in page or len(pages) > 60:
            return pages
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _error(call: Any, **kwargs: Any) -> Any:
    try:
        return call(**kwargs)
    except botocore.exceptions.ClientError as error:
        return {"error": error.response["Error"]}


# An item (no binaries: its answer is kept between reads) updated in place by steps 0 and 2.
UPDATED = {"pk": {"S": "p2"}, "sk": {"N": "-4"}}


def _wide_reads(dynamodb: Any) -> list[Any]:
    query, scan = dynamodb.query, dynamodb.scan
    g = {"#g": "g"}
    answers: list[Any] = [
        dynamodb.get_item(TableName=WIDE, Key=UPDATED),
        dynamodb.get_item(TableName=WIDE, Key={"pk": {"S": "p1"}, "sk": {"N": "-4"}}),
        dynamodb.get_item(TableName=WIDE, Key={"pk": {"S": "p1"}, "sk": {"N": "99"}}),
        dynamodb.get_item(
            TableName=WIDE,
            Key={"pk": {"S": "p2"}, "sk": {"N": "-3"}},
            ProjectionExpression="m.amount, l[2].#d, ss, #t",
            ExpressionAttributeNames={"#d": "M", "#t": "text"},
        ),
        dynamodb.batch_get_item(
            RequestItems={
                WIDE: {
                    "Keys": [
                        {"pk": {"S": "p0"}, "sk": {"N": "-5"}},
                        {"pk": {"S": "p3"}, "sk": {"N": "0"}},
                        {"pk": {"S": "nope"}, "sk": {"N": "0"}},
                    ]
                }
            }
        ),
        dynamodb.transact_get_items(
            TransactItems=[
                {"Get": {"TableName": WIDE, "Key": {"pk": {"S": "p4"}, "sk": {"N": "-2"}}}}
            ]
        ),
        _pages(
            query,
            TableName=WIDE,
            KeyConditionExpression="pk = :p AND sk BETWEEN :a AND :b",
            ExpressionAttributeValues={":p": {"S": "p1"}, ":a": {"N": "-4"}, ":b": {"N": "9"}},
            Limit=3,
            ScanIndexForward=False,
        ),
        _pages(
            query,
            TableName=WIDE,
            KeyConditionExpression="pk = :p AND sk < :a",
            FilterExpression="price > :z OR contains(ss, :c)",
            ExpressionAttributeValues={
                ":p": {"S": "p5"},
                ":a": {"N": "5.5"},
                ":z": {"N": "1"},
                ":c": {"S": "c"},
            },
            Limit=4,
        ),
    ]
    for value in ("1", "1.000", "10", "2", "0", "-0.0", "3.25", "7"):
        for forward in (True, False):
            answers.append(
                _pages(
                    query,
                    TableName=WIDE,
                    IndexName="by-g",
                    KeyConditionExpression="#g = :g",
                    ExpressionAttributeNames=g,
                    ExpressionAttributeValues={":g": {"N": value}},
                    Limit=4,
                    ScanIndexForward=forward,
                    ReturnConsumedCapacity="INDEXES",
                )
            )
    answers.append(
        _pages(
            query,
            TableName=WIDE,
            IndexName="by-g",
            KeyConditionExpression="#g = :g AND begins_with(r, :p)",
            FilterExpression=(
                "(contains(ss, :c) OR size(l) > :n) AND NOT attribute_type(price, :s)"
                " AND (m.amount IN (:i0, :i1) OR flag = :t) AND price BETWEEN :lo AND :hi"
            ),
            ProjectionExpression="pk, sk, r, m.amount, l[1], #t",
            ExpressionAttributeNames={**g, "#t": "text"},
            ExpressionAttributeValues={
                ":g": {"N": "1"},
                ":p": {"S": "b#"},
                ":c": {"S": "a"},
                ":n": {"N": "2"},
                ":s": {"S": "S"},
                ":i0": {"N": "0"},
                ":i1": {"N": "3"},
                ":t": {"BOOL": True},
                ":lo": {"N": "-5"},
                ":hi": {"N": "200"},
            },
            Limit=5,
        )
    )
    answers.append(
        query(
            TableName=WIDE,
            IndexName="by-g",
            KeyConditionExpression="#g = :g AND r > :r",
            ExpressionAttributeNames=g,
            ExpressionAttributeValues={":g": {"N": "10"}, ":r": {"S": "a#05"}},
            Select="COUNT",
        )
    )
    answers.append(
        query(
            TableName=WIDE,
            IndexName="by-g",
            KeyConditions={
                "g": {"ComparisonOperator": "EQ", "AttributeValueList": [{"N": "1"}]},
                "r": {"ComparisonOperator": "BEGINS_WITH", "AttributeValueList": [{"S": "a"}]},
            },
        )
    )
    for index in ("by-kind", "by-kind-label"):
        for kind in ("a", "é", "zzz"):
            answers.append(
                _pages(
                    query,
                    TableName=WIDE,
                    IndexName=index,
                    KeyConditionExpression="kind = :k",
                    ExpressionAttributeValues={":k": {"S": kind}},
                    Limit=6,
                )
            )
    answers.append(
        _pages(
            query,
            TableName=WIDE,
            IndexName="by-label",
            KeyConditionExpression="pk = :p AND label >= :l",
            ExpressionAttributeValues={":p": {"S": "p2"}, ":l": {"S": "label-05"}},
            Limit=2,
        )
    )
    answers.append(_pages(scan, TableName=WIDE, Limit=7))
    answers.append(
        _pages(
            scan,
            TableName=WIDE,
            FilterExpression="attribute_exists(g) AND (price < :p OR #k = :k)",
            ExpressionAttributeNames={"#k": "kind"},
            ExpressionAttributeValues={":p": {"N": "1"}, ":k": {"S": "b"}},
            ProjectionExpression="pk, sk, g, bin, bs, ns",
            Limit=11,
        )
    )
    for segment in (0, 1):
        answers.append(_pages(scan, TableName=WIDE, Segment=segment, TotalSegments=2, Limit=9))
    answers.append(_pages(scan, TableName=WIDE, IndexName="by-g", Limit=10))
    answers.append(_pages(scan, TableName=WIDE, IndexName="by-kind", Limit=10))
    answers.append(scan(TableName=WIDE, Select="COUNT"))
    answers.append(
        dynamodb.batch_get_item(
            RequestItems={WIDE: {"Keys": [UPDATED, {**UPDATED, "sk": {"N": "0"}}]}}
        )
    )
    answers.append(
        _error(
            query,
            TableName=WIDE,
            IndexName="no-such-index",
            KeyConditionExpression="g = :g",
            ExpressionAttributeValues={":g": {"N": "1"}},
        )
    )
    answers.append(
        _error(
            query,
            TableName=WIDE,
            IndexName="by-g",
            KeyConditionExpression="#g = :g",
            ExpressionAttributeNames=g,
            ExpressionAttributeValues={":g": {"S": "1"}},
        )
    )
    return answers


def _wide_writes(dynamodb: Any, step: int) -> list[Any]:
    """One batch of writes of another kind per step; the reads after them must see them."""
    table = {"TableName": WIDE}
    key = {"pk": {"S": f"p{step % 6}"}, "sk": {"N": str(step - 5)}}
    answers: list[Any] = []
    if step == 0:  # moves an item to another partition of by-g, and another one within it
        answers.append(
            dynamodb.update_item(
                **table,
                Key=UPDATED,
                UpdateExpression="SET g = :g, r = :r, l = list_append(l, :l) ADD ss :s",
                ExpressionAttributeValues={
                    ":g": {"N": "2"},
                    ":r": {"S": "a#00"},
                    ":l": {"L": [{"S": "new"}]},
                    ":s": {"SS": ["z"]},
                },
                ReturnValues="ALL_NEW",
            )
        )
        answers.append(
            dynamodb.update_item(
                **table,
                Key={"pk": {"S": "p1"}, "sk": {"N": "-4"}},
                UpdateExpression="SET r = :r REMOVE m.tags DELETE ss :s",
                ExpressionAttributeValues={":r": {"S": "b#99"}, ":s": {"SS": ["a"]}},
                ReturnValues="UPDATED_OLD",
            )
        )
    elif step == 1:  # a new item in a partition, one deleted, a write refused
        answers.append(dynamodb.put_item(**table, Item={**wide_item(500), **key}))
        answers.append(
            dynamodb.delete_item(
                **table, Key={"pk": {"S": "p2"}, "sk": {"N": "-3"}}, ReturnValues="ALL_OLD"
            )
        )
        answers.append(
            _error(
                dynamodb.put_item,
                **table,
                Item=wide_item(3),
                ConditionExpression="attribute_not_exists(pk)",
            )
        )
    elif step == 2:  # transactions: one that lands, one cancelled
        key = UPDATED
        answers.append(
            dynamodb.transact_write_items(
                TransactItems=[
                    {"Put": {**table, "Item": {**wide_item(501), "g": {"N": "1.0"}}}},
                    {
                        "Update": {
                            **table,
                            "Key": key,
                            "UpdateExpression": "SET price = price + :d",
                            "ExpressionAttributeValues": {":d": {"N": "0.5"}},
                        }
                    },
                ]
            )
        )
        answers.append(
            _error(
                dynamodb.transact_write_items,
                TransactItems=[
                    {"Put": {**table, "Item": {**wide_item(502), "g": {"N": "1"}}}},
                    {
                        "ConditionCheck": {
                            **table,
                            "Key": key,
                            "ConditionExpression": "price = :nope",
                            "ExpressionAttributeValues": {":nope": {"N": "-1"}},
                        }
                    },
                ],
            )
        )
        # Cancelled after it changed an item in place, deleted one and made a new partition:
        # every one of them is back as it was (the embedded server backs up items, not tables).
        answers.append(
            _error(
                dynamodb.transact_write_items,
                TransactItems=[
                    {
                        "Update": {
                            **table,
                            "Key": key,
                            "UpdateExpression": "SET price = price + :d, m.amount = :d",
                            "ExpressionAttributeValues": {":d": {"N": "7"}},
                        }
                    },
                    {"Delete": {**table, "Key": {"pk": {"S": "p1"}, "sk": {"N": "-5"}}}},
                    {"Put": {**table, "Item": {**wide_item(503), "pk": {"S": "new"}}}},
                    {
                        "ConditionCheck": {
                            **table,
                            "Key": {"pk": {"S": "p3"}, "sk": {"N": "-5"}},
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                ],
            )
        )
        answers.append(dynamodb.get_item(**table, Key=key, ConsistentRead=True))
    elif step == 3:  # batch writes, then the same reads through PartiQL
        writes = [{"PutRequest": {"Item": wide_item(600 + n)}} for n in range(10)]
        writes.append({"DeleteRequest": {"Key": {"pk": {"S": "p0"}, "sk": {"N": "-5"}}}})
        answers.append(dynamodb.batch_write_item(RequestItems={WIDE: writes}))
        answers.append(
            dynamodb.execute_statement(Statement=f"SELECT * FROM \"{WIDE}\" WHERE pk = 'p1'")
        )
    elif step == 4:  # items near the 400 KB limit: a page stops at 1 MB (sizes, UTF-8 bytes)
        for n in range(4):
            big = {**wide_item(700 + n), "pk": {"S": "big"}, "sk": {"N": str(n)}}
            big["text"] = {"S": "é☃" * 60_000}
            answers.append(dynamodb.put_item(**table, Item=big))
    return answers


def _wide_sequence(dynamodb: Any) -> list[Any]:
    make_wide_table(dynamodb)
    for n in range(0, 125, 25):
        writes = [{"PutRequest": {"Item": wide_item(i)}} for i in range(n, n + 25)]
        dynamodb.batch_write_item(RequestItems={WIDE: writes})
    answers = _wide_reads(dynamodb)
    for steps in ((0, 1), (2, 3), (4,)):
        for step in steps:
            answers += _wide_writes(dynamodb, step)
        answers += _wide_reads(dynamodb)
    answers.append(
        _pages(
            dynamodb.query,
            TableName=WIDE,
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": "big"}},
        )
    )
    return answers


FILTERS: list[tuple[str, dict[str, Any]]] = [
    ("flag = :t", {":t": {"BOOL": True}}),
    ("price > :n", {":n": {"N": "1"}}),
    ("contains(ss, :c)", {":c": {"S": "b"}}),
    ("attribute_exists(label)", {}),
]


def _random_queries(dynamodb: Any, seed: int) -> list[Any]:
    """Random key conditions, filters, limits and directions on the wide table, every page."""
    pick = random.Random(seed)
    answers = []
    for _ in range(25):
        kwargs: dict[str, Any] = {
            "TableName": WIDE,
            "ExpressionAttributeNames": {"#g": "g"},
            "Limit": pick.choice([1, 2, 3, 5, 8, 50]),
            "ScanIndexForward": pick.random() < 0.5,
        }
        values: dict[str, Any] = {":g": {"N": pick.choice([*NUMBERS, "4", "-1"])}}
        condition = "#g = :g"
        if pick.random() < 0.7:
            operator = pick.choice(["begins_with", "<", ">=", "BETWEEN"])
            if operator == "begins_with":
                condition += " AND begins_with(r, :r)"
                values[":r"] = {"S": pick.choice(["a", "b#", "b#1", "c"])}
            elif operator == "BETWEEN":
                condition += " AND r BETWEEN :r AND :s"
                values[":r"], values[":s"] = {"S": "a#03"}, {"S": "b#08"}
            else:
                condition += f" AND r {operator} :r"
                values[":r"] = {"S": pick.choice(["a#05", "b#", "b#10"])}
        if pick.random() < 0.4:
            expression, filter_values = pick.choice(FILTERS)
            kwargs["FilterExpression"] = expression
            values.update(filter_values)
        if pick.random() < 0.3:
            kwargs["ProjectionExpression"] = "pk, sk, r, #g"
        kwargs.update(
            IndexName="by-g", KeyConditionExpression=condition, ExpressionAttributeValues=values
        )
        answers.append(_pages(dynamodb.query, **kwargs))
    return answers


def _differences(expected: list[Any], found: list[Any]) -> str:
    for number, (theirs, ours) in enumerate(zip(expected, found, strict=True)):
        if _normal(theirs) != _normal(ours):
            return f"answer {number} differs:\nmoto: {theirs!r:.3000}\nours: {ours!r:.3000}"
    return ""


def _against_moto(sequence: Any) -> None:
    reference = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    reference.start()
    try:
        host, port = reference.get_host_and_port()
        _reset(f"http://{host}:{port}")
        expected = sequence(client(f"http://{host}:{port}"))
    finally:
        reference.stop()
    with EmbeddedServer() as embedded:
        found = sequence(client(embedded.url))
    assert len(found) == len(expected)
    assert not _differences(expected, found)


def test_wide_sequence_answers_equal_unpatched_moto() -> None:
    _against_moto(_wide_sequence)


def test_random_queries_answer_as_unpatched_moto() -> None:
    def sequence(dynamodb: Any) -> list[Any]:
        make_wide_table(dynamodb)
        for n in range(0, 150, 25):
            writes = [{"PutRequest": {"Item": wide_item(i)}} for i in range(n, n + 25)]
            dynamodb.batch_write_item(RequestItems={WIDE: writes})
        answers = _random_queries(dynamodb, seed=1)
        _wide_writes(dynamodb, 0)
        _wide_writes(dynamodb, 1)
        return answers + _random_queries(dynamodb, seed=2)

    _against_moto(sequence)


# ----- keep-alive connections ---------------------------------------------------------------------
AUTH = (
    "AWS4-HMAC-SHA256 Credential=embedded/20260101/us-east-1/dynamodb/aws4_request, "
    "SignedHeaders=host, Signature=0"
)


def _raw_get_item(conn: http.client.HTTPConnection, **options: Any) -> Any:
    body = json.dumps({"TableName": "things", "Key": {"id": {"S": "0001"}}}).encode()
    headers = {
        "X-Amz-Target": "DynamoDB_20120810.GetItem",
        "Content-Type": "application/x-amz-json-1.0",
        "Authorization": AUTH,
        **options.pop("headers", {}),
    }
    conn.request("POST", "/", body=options.pop("body", body), headers=headers, **options)
    answer = conn.getresponse()
    return answer, json.loads(answer.read())


def test_connections_serve_many_requests(server: EmbeddedServer) -> None:
    dynamodb = client(server.url)
    make_table(dynamodb)
    put(dynamodb, 1)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        first, item = _raw_get_item(conn)
        sock = conn.sock
        assert first.status == 200 and item["Item"]["id"] == {"S": "0001"}
        assert first.getheader("Connection") is None and sock is not None
        for _ in range(3):
            again, same = _raw_get_item(conn)
            assert again.status == 200 and same == item
            assert conn.sock is sock  # the same connection
        # A chunked body takes werkzeug's own path, which answers and closes.
        chunked, same = _raw_get_item(
            conn,
            body=iter([b'{"TableName": "things", ', b'"Key": {"id": {"S": "0001"}}}']),
            encode_chunked=True,
        )
        assert chunked.status == 200 and same == item
        assert chunked.getheader("Connection") == "close"
        # So does a client that asks to close.
        closing, same = _raw_get_item(conn, headers={"Connection": "close"})
        assert closing.status == 200 and same == item
        assert closing.getheader("Connection") == "close"
        # A body that is not JSON: moto's error answer, and the connection still serves.
        conn.request(
            "POST",
            "/",
            body=b"{nope",
            headers={"X-Amz-Target": "DynamoDB_20120810.GetItem", "Authorization": AUTH},
        )
        broken = conn.getresponse()
        broken.read()
        assert broken.status >= 400
        after, same = _raw_get_item(conn)
        assert after.status == 200 and same == item
    finally:
        conn.close()
    # botocore's pooled connections to a database that was killed and started again reconnect.
    restart(server, "kill")
    assert dynamodb.get_item(TableName="things", Key={"id": {"S": "0001"}})["Item"]["id"] == {
        "S": "0001"
    }
