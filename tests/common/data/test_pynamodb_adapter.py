"""The adapter's item construction equals PynamoDB's own, attribute for attribute."""

from __future__ import annotations

import base64
import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import botocore.session
import pytest
from botocore.context import get_context, start_as_current_context
from botocore.parsers import JSONParser
from botocore.useragent import UserAgentString
from pynamodb.attributes import (
    BooleanAttribute,
    DiscriminatorAttribute,
    JSONAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
    UTCDateTimeAttribute,
    VersionAttribute,
)
from pynamodb.connection.base import Connection
from pynamodb.exceptions import AttributeDeserializationError
from pynamodb.models import Model

from app_lib.common.data import pynamodb_adapter as adapter
from app_lib.features.jobs.table import JobTable
from app_lib.features.passengers.table import PassengerTable

NOW = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)


def passenger(**overrides: Any) -> PassengerTable:
    values: dict[str, Any] = {
        "passenger_id": "12",
        "survived": 1,
        "pclass": 1,
        "name": "Doe, Mrs. Jane ☃",
        "sex": "female",
        "age": 31.5,
        "sibsp": 1,
        "parch": 0,
        "ticket": "PC 17599",
        "fare": 71.2833,
        "cabin": None,
        "embarked": "C",
        "version": 3,
    }
    values.update(overrides)
    item = PassengerTable(**values)
    item.derive_keys()
    return item


def job() -> JobTable:
    item = JobTable(
        job_id="j1",
        job_type="passengers.stats",
        params={"nested": {"list": [1, 2.5, "x", None, True]}},
        status="COMPLETED",
        progress=100,
        result={"survived": 342},
        attempts=1,
        created_at=NOW,
        updated_at=NOW,
        finished_at=NOW,
        expires_at=NOW + timedelta(days=7),
        version=2,
    )
    item.derive_keys()
    return item


@pytest.mark.parametrize(
    "item",
    [
        passenger(),
        passenger(age=None, fare=None, ticket=None, embarked=None, sibsp=0),
        passenger(age=1e-130, fare=9.9e125, pclass=3),
        passenger(age=-0.0, fare=12345678901234567890.5),
        job(),
    ],
    ids=["full", "sparse", "extremes", "odd-numbers", "job"],
)
def test_the_same_item_as_pynamodb_builds(item: Model) -> None:
    raw = item.serialize()
    model = type(item)
    theirs = Model.from_raw_data.__func__(model, raw)  # type: ignore[attr-defined]
    ours = adapter.instantiate(model, raw)
    assert ours.attribute_values == theirs.attribute_values
    for name, value in theirs.attribute_values.items():
        assert type(ours.attribute_values[name]) is type(value), name
    assert model.from_raw_data(raw).attribute_values == theirs.attribute_values
    assert ours.serialize() == raw


# ----- models of other shapes ---------------------------------------------------------------------
class Stamped(Model):
    """Defaults (a callable, one set through its descriptor), a TTL, a renamed attribute."""

    class Meta:
        table_name = "adapter-stamped"

    key = UnicodeAttribute(hash_key=True)
    count = NumberAttribute(default=lambda: 5)
    label = UnicodeAttribute(default="none", attr_name="lbl")
    expires = TTLAttribute(default=lambda: timedelta(days=1))
    when = UTCDateTimeAttribute(null=True)
    flag = BooleanAttribute(null=True)
    tags = UnicodeSetAttribute(null=True)
    data = JSONAttribute(null=True)
    version = VersionAttribute()


class Animal(Model):
    class Meta:
        table_name = "adapter-animals"

    key = UnicodeAttribute(hash_key=True)
    kind = DiscriminatorAttribute()
    name = UnicodeAttribute(null=True)


class Cat(Animal, discriminator="cat"):
    lives = NumberAttribute(default=9)


def _compare(model: type[Model], raw: dict[str, Any]) -> None:
    theirs = Model.from_raw_data.__func__(model, raw)  # type: ignore[attr-defined]
    ours = adapter.instantiate(model, raw)
    assert type(ours) is type(theirs)
    assert ours.attribute_values.keys() == theirs.attribute_values.keys()
    for name, value in theirs.attribute_values.items():
        if name == "expires" and "expires" not in raw:
            continue  # a default computed from the clock: compared below, to the second
        assert ours.attribute_values[name] == value, name
        assert type(ours.attribute_values[name]) is type(value), name


def test_defaults_descriptors_and_renamed_attributes() -> None:
    full = Stamped(
        key="k",
        count=2.5,
        label="x",
        expires=NOW,
        when=NOW,
        flag=False,
        tags={"a", "b"},
        data={"n": [1, None]},
        version=4,
    ).serialize()
    _compare(Stamped, full)
    _compare(Stamped, {"key": {"S": "k"}})  # defaults only
    _compare(Stamped, {**full, "version": {"N": "7.0"}, "count": {"NULL": True}})
    _compare(Stamped, {**full, "unknown": {"S": "ignored"}})
    ours = adapter.instantiate(Stamped, {"key": {"S": "k"}})
    theirs = Model.from_raw_data.__func__(Stamped, {"key": {"S": "k"}})  # type: ignore[attr-defined]
    assert abs((ours.expires - theirs.expires).total_seconds()) <= 1


def test_a_discriminator_takes_pynamodb_s_own_path() -> None:
    raw = Cat(key="c", name="Tom").serialize()
    cat = adapter.instantiate(Animal, raw)
    assert type(cat) is Cat and cat.lives == 9 and cat.name == "Tom"
    _compare(Animal, raw)


def test_a_wrong_type_raises_pynamodb_s_error() -> None:
    with pytest.raises(AttributeDeserializationError):
        adapter.instantiate(Stamped, {"key": {"N": "1"}})
    with pytest.raises(AttributeDeserializationError):
        Model.from_raw_data.__func__(Stamped, {"key": {"N": "1"}})  # type: ignore[attr-defined]


# ----- DynamoDB's answers, parsed as botocore parses them -----------------------------------------
SERVICE = botocore.session.get_session().get_service_model("dynamodb")


def _value(pick: random.Random, depth: int = 0) -> Any:
    """A random AttributeValue as DynamoDB's JSON has it, now and then an odd one."""
    roll = pick.random()
    if roll < 0.03:
        return pick.choice([{}, {"S": None}, {"S": "x", "N": "1"}, {"Q": "unknown"}, None, "text"])
    kinds = ["S", "N", "B", "BOOL", "NULL", "SS", "NS", "BS"]
    if depth < 3:
        kinds += ["L", "M", "L", "M"]
    kind = pick.choice(kinds)
    text = pick.choice(["", "plain", "é☃", "x" * 30])
    number = pick.choice(["0", "-1", "1.5", "1e3", "12345678901234567890"])
    blob = base64.b64encode(bytes(pick.randrange(256) for _ in range(pick.randrange(4)))).decode()
    if kind == "L":
        value: Any = [_value(pick, depth + 1) for _ in range(pick.randrange(4))]
    elif kind == "M":
        value = {f"k{i}": _value(pick, depth + 1) for i in range(pick.randrange(4))}
    else:
        value = {
            "S": text,
            "N": number,
            "B": blob,
            "BOOL": pick.random() < 0.5,
            "NULL": True,
            "SS": [text, f"{text}2", *([None] if pick.random() < 0.1 else [])],
            "NS": [number, "7"],
            "BS": [blob, "AAE="],
        }[kind]
    return {kind: value}


def _item(pick: random.Random) -> dict[str, Any]:
    return {f"a{i}": _value(pick) for i in range(pick.randrange(1, 8))}


def _answers(pick: random.Random) -> list[tuple[str, dict[str, Any]]]:
    capacity = {"TableName": "t", "CapacityUnits": pick.choice([1, 0.5, 2.0])}
    key = {"id": _value(pick)}
    return [
        (
            "Query",
            {
                "Items": [_item(pick) for _ in range(pick.randrange(5))],
                "Count": 3,
                "ScannedCount": 4,
                "LastEvaluatedKey": key,
                "ConsumedCapacity": capacity,
            },
        ),
        ("Scan", {"Items": [_item(pick)], "Count": 1, "ScannedCount": 1}),
        ("GetItem", {"Item": _item(pick), "ConsumedCapacity": capacity}),
        ("GetItem", {}),
        ("UpdateItem", {"Attributes": _item(pick)}),
        (
            "BatchGetItem",
            {
                "Responses": {"t": [_item(pick), _item(pick)]},
                "UnprocessedKeys": {"t": {"Keys": [key], "ProjectionExpression": "id"}},
            },
        ),
        ("TransactGetItems", {"Responses": [{"Item": _item(pick)}, {}]}),
    ]


def _parse(parser: Any, operation: str, body: Any, status: int = 200) -> Any:
    response = {
        "status_code": status,
        "headers": {"x-amzn-requestid": "r1"},
        "body": json.dumps(body).encode(),
    }
    try:
        return parser.parse(response, SERVICE.operation_model(operation).output_shape)
    except Exception as error:  # the same failure, if any, from both
        return ("raised", type(error), str(error))


def test_answers_parse_as_botocore_parses_them() -> None:
    assert adapter._PARSER_OK
    theirs, ours = JSONParser(), adapter.DynamoJSONParser()
    for seed in range(300):
        for operation, body in _answers(random.Random(seed)):
            assert _parse(ours, operation, body) == _parse(theirs, operation, body), (seed, body)
    error = {"__type": "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException"}
    assert _parse(ours, "PutItem", error, 400) == _parse(theirs, "PutItem", error, 400)


def test_pynamodb_clients_parse_with_it() -> None:
    connection = Connection(region="us-east-1", host="http://127.0.0.1:9")  # never called
    client = connection.client
    factory = client._endpoint._response_parser_factory
    assert type(factory.create_parser("json")) is adapter.DynamoJSONParser
    assert type(factory.original).__name__ == "ResponseParserFactory"
    assert adapter.parse_answers_directly(client) is client
    assert client._endpoint._response_parser_factory is factory  # wrapped once


# ----- the User-Agent header ---------------------------------------------------------------------
def _same_header(ours: str, botocores: str) -> bool:
    """Equal, but for the order of the features (`m/a,b`): botocore lists a set, in whatever
    order it iterates in, which may differ between two builds of the same set."""

    def parts(header: str) -> list[Any]:
        return [
            ("m", frozenset(part[2:].split(","))) if part.startswith("m/") else part
            for part in header.split(" ")
        ]

    return parts(ours) == parts(botocores)


def test_pynamodb_clients_build_their_user_agent_once() -> None:
    connection = Connection(region="us-east-1", host="http://127.0.0.1:9")  # never called
    client = connection.client
    creator = client._user_agent_creator
    assert type(creator).__name__ == "_UserAgentOnce"
    assert adapter.build_user_agent_once(client) is client
    assert client._user_agent_creator is creator  # made once per client, kept


def test_the_header_is_botocore_s_for_every_set_of_features() -> None:
    client = Connection(region="us-east-1", host="http://127.0.0.1:9").client
    creator = client._user_agent_creator
    stock = UserAgentString.to_string
    seen = set()
    # Features of our own: the client's own set depends on what ran before it was made.
    for features in [set(), {"t1"}, {"t1", "t2"}, {"t2"}, {"t1"}, set()]:
        with start_as_current_context():
            get_context().features.update(features)
            header = creator.to_string()
            assert _same_header(header, stock(creator)), (header, stock(creator))
            seen.add(header)
    assert len(seen) == 4  # a different set of features, a different header
    with start_as_current_context():
        get_context().features.add("t1")
        kept = frozenset(creator._client_features or ()) | {"t1"}
        creator._app_lib_built[kept] = "kept"
        assert creator.to_string() == "kept"  # built once, then served from the kept ones


def test_the_header_sent_is_the_one_botocore_would_send(tables: str) -> None:
    # Compared where botocore sends it, once credentials and retries have added their features.
    client = adapter.botocore_client(PassengerTable)
    creator = client._user_agent_creator
    sent: list[tuple[str, str]] = []

    def record(request: Any, **_: Any) -> None:
        sent.append((request.headers["User-Agent"].decode(), UserAgentString.to_string(creator)))

    client.meta.events.register("before-send.dynamodb", record, unique_id="test-ua")
    try:
        for _ in range(3):
            assert PassengerTable.count() >= 0
    finally:
        client.meta.events.unregister("before-send.dynamodb", unique_id="test-ua")
    assert len(sent) == 3
    assert all(_same_header(header, stock) for header, stock in sent), sent
    assert "m/" in sent[0][0]  # the features are in it
