"""Racing writers against the real database (moto's server, or dynalite with
TEST_DYNAMODB=dynalite): conditions are atomic with their writes, so no update is ever lost.

Each test releases 20 client threads together (a barrier), over several rounds, and counts what
a lost update would leave behind; the assertion messages carry those counts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite

from app_lib.common.aws_errors import is_condition_failure
from app_lib.common.config import Settings
from app_lib.common.data import pynamodb_adapter as adapter
from tests.concurrency.conftest import CLIENTS, race
from tests.concurrency.counter_table import CounterTable
from tests.conftest import new_namespace, point_models
from tests.factories import passenger_body

ROUNDS = 5
URL = "/api/v1/passengers"


@dataclass(frozen=True)
class Patch:
    """What one client did in a round: the ETag it sent and the status it got."""

    client: int
    if_match: str
    status: int


def test_if_match_patches_never_lose_an_update(http_clients: list[httpx.Client]) -> None:
    """GET then PATCH with If-Match, 20 clients x 10 rounds. Each client appends its own token to
    the name it read, so a write that overwrote another accepted one shows as a missing token."""
    rounds = 10
    main = http_clients[0]
    created = main.post(URL, json=passenger_body(passenger_id="race", name="R"))
    assert created.status_code == 201, created.text
    successes = 0
    reused_etags: list[str] = []
    lost: list[str] = []
    unexpected: list[tuple[int, str]] = []

    for round_ in range(rounds):
        current = main.get(f"{URL}/race")
        reset = main.patch(
            f"{URL}/race",
            json={"name": f"R{round_}"},
            headers={"If-Match": current.headers["etag"]},
        )
        assert reset.status_code == 200, reset.text
        successes += 1

        def patch(index: int) -> Patch:
            client = http_clients[index]
            read = client.get(f"{URL}/race")
            assert read.status_code == 200, read.text
            etag = read.headers["etag"]
            name = f"{read.json()['name']} {index:02d}"
            response = client.patch(f"{URL}/race", json={"name": name}, headers={"If-Match": etag})
            if response.status_code not in (200, 412):
                unexpected.append((response.status_code, response.text[:200]))
            return Patch(index, etag, response.status_code)

        patches = race(patch)
        accepted = [p for p in patches if p.status == 200]
        successes += len(accepted)
        # An ETag names one version: at most one write may be accepted against it.
        reused_etags += [e for e, n in Counter(p.if_match for p in accepted).items() if n > 1]
        final = main.get(f"{URL}/race").json()["name"].split()
        assert final[0] == f"R{round_}"
        tokens = final[1:]
        assert len(tokens) == len(set(tokens)), f"a token written twice: {final}"
        lost += [f"r{round_}:{p.client:02d}" for p in accepted if f"{p.client:02d}" not in tokens]

    # Every accepted write (the create, each reset, each client's) made exactly one version.
    final_version = int(main.get(f"{URL}/race").headers["etag"].strip('"'))
    assert (len(unexpected), len(reused_etags), len(lost), final_version) == (
        0,
        0,
        0,
        1 + successes,
    ), (
        f"{len(lost)} lost updates out of {successes} accepted writes; "
        f"{len(reused_etags)} ETags accepted more than once {reused_etags}; "
        f"final version {final_version} (expected {1 + successes}); "
        f"{len(unexpected)} statuses other than 200/412 {unexpected[:3]}; lost: {lost}"
    )


def test_conditional_creates_have_exactly_one_winner(http_clients: list[httpx.Client]) -> None:
    """20 clients POST the same new id (each with its own name), 5 rounds: one 201 and nineteen
    409s each time, and the stored passenger is the winner's."""
    rounds = 5
    outcomes: list[dict[int, int]] = []
    wrong_winner: list[str] = []
    for round_ in range(rounds):
        passenger_id = f"same-{round_}"

        def create(index: int, passenger_id: str = passenger_id) -> tuple[int, str]:
            name = f"Client{index:02d}, Mr. A"
            body = passenger_body(passenger_id=passenger_id, name=name)
            return http_clients[index].post(URL, json=body).status_code, name

        results = race(create)
        outcomes.append(dict(Counter(status for status, _ in results)))
        stored = http_clients[0].get(f"{URL}/{passenger_id}").json()["name"]
        winners = [name for status, name in results if status == 201]
        if winners != [stored]:
            wrong_winner.append(f"round {round_}: 201 for {winners}, stored {stored}")
    expected = {201: 1, 409: CLIENTS - 1}
    assert (outcomes, wrong_winner) == ([expected] * rounds, []), (
        f"statuses per round {outcomes}; {wrong_winner}"
    )


@pytest.fixture
def counters(settings: Settings, dynamodb_endpoint: str) -> Iterator[type[CounterTable]]:
    point_models(settings, dynamodb_endpoint, new_namespace(), [CounterTable])
    CounterTable.create_table(billing_mode="PAY_PER_REQUEST", wait=True)
    yield CounterTable
    CounterTable.delete_table()


def test_concurrent_add_increments_are_all_counted(counters: type[CounterTable]) -> None:
    """20 threads x 50 `ADD value 1` (PynamoDB update actions): the counter ends at 1000."""
    increments = 50

    def add(index: int) -> None:
        for _ in range(increments):
            CounterTable(name="hits").update(actions=[CounterTable.value.add(1)])

    race(add)
    total = CounterTable.get("hits").value
    assert total == CLIENTS * increments, f"{CLIENTS * increments - total} increments lost"


@pytest.mark.needs_transactions
def test_failed_transactions_do_not_erase_concurrent_writes(counters: type[CounterTable]) -> None:
    """Half the threads send transactions whose condition fails, half write other items with
    PutItem, in the same table. A failed transaction writes nothing and erases nothing."""
    per_thread = 20
    CounterTable(name="guard", value=0).save()
    connection = adapter.table_connection(CounterTable).connection
    transaction_errors: list[str] = []

    def work(index: int) -> list[str]:
        written = []
        for n in range(per_thread):
            if index % 2:
                item = CounterTable(name=f"put-{index:02d}-{n:02d}", value=n)
                item.save()
                written.append(item.name)
                continue
            try:
                with TransactWrite(connection=connection) as transaction:
                    transaction.condition_check(
                        CounterTable, "guard", condition=CounterTable.value < 0
                    )
                    transaction.save(CounterTable(name=f"tx-{index:02d}-{n:02d}", value=n))
            except TransactWriteError as error:
                if not is_condition_failure(error):
                    transaction_errors.append(f"{error.cause_response_code}: {error}")
            else:
                transaction_errors.append("committed although its condition does not hold")
        return written

    expected = {name for names in race(work) for name in names}
    assert len(expected) == CLIENTS // 2 * per_thread
    stored = {item.name for item in CounterTable.scan()}
    missing = sorted(expected - stored)
    written_by_failed = sorted(name for name in stored if name.startswith("tx-"))
    assert (len(missing), written_by_failed, transaction_errors, "guard" in stored) == (
        0,
        [],
        [],
        True,
    ), (
        f"{len(missing)} of {len(expected)} plain writes erased {missing[:10]}; "
        f"{len(transaction_errors)} transactions failed otherwise than on their condition "
        f"{transaction_errors[:3]}; items written by failed transactions {written_by_failed[:10]}"
    )


def test_concurrent_grade_appends_all_land(http_clients: list[httpx.Client]) -> None:
    """20 clients append a grade each to one student, in several rounds: list_append in one
    UpdateItem, with no version condition, keeps every one."""
    student = {"student_id": 77, "first_name": "Race", "last_name": "Condition", "grades": []}
    assert http_clients[0].post("/api/v1/students", json=student).status_code == 201
    url = "/api/v1/students/77/grades"
    for round_ in range(ROUNDS):

        def append(n: int, round_: int = round_) -> int:
            grade = (round_ * CLIENTS + n) % 101
            return http_clients[n].post(url, json={"grade": grade}).status_code

        assert race(append) == [200] * CLIENTS
    grades = http_clients[0].get("/api/v1/students/77").json()["grades"]
    assert sorted(grades) == sorted(n % 101 for n in range(ROUNDS * CLIENTS))
