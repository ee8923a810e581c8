"""The process that runs the embedded database: moto's server, made fit to serve an app.

Imported only by that child process (`python -m app_lib.common.embedded`), never by the app, so a
deployment against AWS never imports moto. What it adds to moto's threaded server:

- **Atomic DynamoDB.** moto evaluates a condition and then writes without a lock, its server is
  threaded, and a failed transaction restores whole-table snapshots. Every DynamoDB request is
  therefore handled under one lock, so conditions, counters and transactions are atomic as on
  DynamoDB. SQS is left concurrent (its long polls hold a request for up to 20 s).
- **Durable data** (with a data directory). Every DynamoDB request that changed something is
  appended to a journal before its answer is sent; start-up replays snapshot + journal, then
  compacts them into a new snapshot. See `Store` for what a crash can lose.
- **Memory proportional to the data.** moto appends every model instance to a class-level list
  (for its dashboard), and Scan and Query deep-copy every item they return, so every item ever
  read stayed alive for the life of the process. Instances are no longer tracked.
- **Speed.** moto 5.2 sends every DynamoDB answer through a generic, model-driven serializer
  (two thirds of a Query's time) and sorts by comparing attribute objects that re-parse their
  numbers on every comparison. Data-plane answers are plain JSON already, and are written as
  such; sorts compute each key once. Control-plane answers (dates) keep moto's serializer.
"""

from __future__ import annotations

import contextlib
import contextvars
import decimal
import fcntl
import functools
import io
import json
import logging
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

log = logging.getLogger("app_lib.embedded")

# Requests that may change DynamoDB state: journaled when they succeed. (PartiQL statements may
# be reads; replaying a read changes nothing.)
MUTATING = frozenset(
    {
        "CreateTable",
        "DeleteTable",
        "UpdateTable",
        "UpdateTimeToLive",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "BatchWriteItem",
        "TransactWriteItems",
        "ExecuteStatement",
        "BatchExecuteStatement",
        "ExecuteTransaction",
        "TagResource",
        "UntagResource",
    }
)
_CREDENTIAL = re.compile(r"Credential=([^/]+)/[^/]+/([^/]+)/")
# A journal larger than this is compacted into a new snapshot (under the lock).
COMPACT_BYTES = 64 * 1024 * 1024
FSYNC_SECONDS = 1.0
_TARGET = "DynamoDB_20120810"
# Requests that change nothing: item sizes may be cached while one is handled.
READS = frozenset({"GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"})
_READ_SIZES: contextvars.ContextVar[dict[int, tuple[Any, int]] | None] = contextvars.ContextVar(
    "read_sizes", default=None
)


# ----- patches to moto ---------------------------------------------------------------------------
def patch_moto() -> None:
    """Idempotent; see the module docstring for why each patch exists."""
    from moto.core.common_models import BaseModel
    from moto.core.responses import ActionContext, ActionResult
    from moto.dynamodb.models.dynamo_type import DynamoType, Item
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.responses import DynamoResult

    if getattr(BaseModel, "_app_lib_patched", False):
        return

    def untracked_new(cls: type, *args: Any, **kwargs: Any) -> Any:
        return object.__new__(cls)

    BaseModel.__new__ = untracked_new  # type: ignore[method-assign]

    generic = ActionResult.execute_result

    def execute_result(self: ActionResult, context: ActionContext) -> Any:
        try:
            body = json.dumps(self.result, separators=(",", ":"))
        except (TypeError, ValueError):  # datetimes and the like: moto's own serializer
            return generic(self, context)
        headers = {
            "Content-Type": "application/x-amz-json-1.0",
            "x-amzn-requestid": uuid.uuid4().hex,
        }
        return 200, headers, body

    DynamoResult.execute_result = execute_result  # type: ignore[method-assign]

    def all_items(self: Table) -> list[Any]:
        items: list[Any] = []
        for hash_set in self.items.values():
            if self.range_key_attr:
                items.extend(hash_set.values())
            else:
                items.append(hash_set)
        if getattr(self, "_app_lib_unsorted", False):
            return items
        # moto sorts by the attribute objects, whose comparisons re-parse numbers every time.
        return sorted(
            items,
            key=lambda x: (
                (x.hash_key.cast_value, x.range_key.cast_value)
                if x.range_key
                else (x.hash_key.cast_value,)
            ),
        )

    def sorted_items(
        self: Table, hash_key_attrs: list[str], range_key_attrs: list[str | None], items: list[Any]
    ) -> list[Any]:
        names = self._generate_attr_to_sort_by(hash_key_attrs, range_key_attrs)
        items.sort(key=lambda x: tuple(x.attrs[name].cast_value for name in names))
        return items

    query = Table.query

    def unsorted_query(self: Table, *args: Any, **kwargs: Any) -> Any:
        # A Query sorts the items it matched itself: sorting the whole table first is waste.
        # (Safe to flag on the table: DynamoDB requests are handled one at a time.)
        self._app_lib_unsorted = True  # type: ignore[attr-defined]
        try:
            return query(self, *args, **kwargs)
        finally:
            self._app_lib_unsorted = False  # type: ignore[attr-defined]

    def equal(self: DynamoType, other: DynamoType) -> bool:
        # Key matching compares every item of the table: avoid re-parsing numbers each time.
        if self.type != other.type:
            return False
        mine, theirs = self.value, other.value
        if type(mine) is str and type(theirs) is str:
            if mine == theirs:
                return True
            if self.type != "N":
                return False  # strings (and base64 binaries) differ when their text does
            return _number(mine) == _number(theirs)  # "1" == "1.0"
        return bool(self.cast_value == other.cast_value)

    def not_equal(self: DynamoType, other: DynamoType) -> bool:
        return not equal(self, other)

    size = Item.size

    def cached_size(self: Item) -> int:
        # moto sizes every item a read examines several times (the 1 MB page limit, the
        # consumed capacity). During a read request nothing can change an item (one DynamoDB
        # request at a time), so each item is sized once per request.
        cache = _READ_SIZES.get()
        if cache is None:
            return int(size(self))
        key = id(self)
        if key not in cache:
            cache[key] = (self, int(size(self)))  # the item is kept: its id stays its own
        return cache[key][1]

    Item.size = cached_size  # type: ignore[method-assign]
    Table.all_items = all_items  # type: ignore[method-assign]
    Table.sorted_items = sorted_items  # type: ignore[method-assign]
    Table.query = unsorted_query  # type: ignore[method-assign]
    DynamoType.__eq__ = equal  # type: ignore[method-assign]
    DynamoType.__ne__ = not_equal  # type: ignore[method-assign]
    BaseModel._app_lib_patched = True  # type: ignore[attr-defined]


@functools.lru_cache(maxsize=4096)
def _number(text: str) -> decimal.Decimal:
    return decimal.Decimal(text)


# ----- calling the app in-process ----------------------------------------------------------------
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class LocalCaller:
    """DynamoDB requests straight into the WSGI app (no socket), for replay and snapshots."""

    def __init__(self, app: WsgiApp) -> None:
        from werkzeug.test import Client

        self._client = Client(app)

    def call(self, op: str, auth: str, body: dict[str, Any] | bytes) -> tuple[int, dict[str, Any]]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        response = self._client.post(
            "/",
            data=data,
            headers={
                "X-Amz-Target": f"{_TARGET}.{op}",
                "Content-Type": "application/x-amz-json-1.0",
                "Authorization": auth,
                "Host": "127.0.0.1",
            },
        )
        text = response.get_data()
        return response.status_code, (json.loads(text) if text else {})


# ----- persistence -------------------------------------------------------------------------------
class Store:
    """Snapshot + journal in `<data_dir>/dynamodb/`.

    `snapshot.jsonl` starts with `{"generation": G}` and holds, as replayable requests, every
    table (CreateTable, UpdateTimeToLive) and its items (BatchWriteItem, 25 at a time).
    `journal-G.jsonl` holds the requests that changed something since snapshot G, appended
    under the lock before their answers are sent. Start-up replays both, in order.

    Guarantees: a write that was answered survives the end of the database process, however it
    ends (kill -9 included): the journal line is in the operating system's hands before the
    answer leaves. The journal is fsynced every second, so a crash of the machine itself loses at
    most about the last second of writes. A torn last line is ignored. Compaction writes the
    new snapshot aside, fsyncs it and renames it into place before it starts a new journal, so
    a crash at any point leaves either the old snapshot and its journal or the new snapshot.
    """

    def __init__(self, data_dir: Path) -> None:
        self.dir = data_dir / "dynamodb"
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock_file = (self.dir / "LOCK").open("a+")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SystemExit(
                f"the data directory {data_dir} is in use by another embedded database"
            ) from None
        self.generation = 0
        self._journal: IO[str] | None = None
        self._journal_bytes = 0
        self._dirty = False
        self._closed = threading.Event()
        # Credentials (access key, region) seen: the scopes whose tables a snapshot lists.
        self.scopes: dict[tuple[str, str], str] = {}

    @property
    def snapshot_path(self) -> Path:
        return self.dir / "snapshot.jsonl"

    def journal_path(self, generation: int) -> Path:
        return self.dir / f"journal-{generation}.jsonl"

    # -- start-up --
    def load(self, caller: LocalCaller) -> int:
        """Replay snapshot and journal; returns how many requests were replayed."""
        replayed = 0
        if self.snapshot_path.exists():
            with self.snapshot_path.open(encoding="utf-8") as handle:
                header = json.loads(handle.readline() or "{}")
                self.generation = int(header.get("generation", 0))
                replayed += self._replay(caller, handle)
        # Left by a crash: a snapshot never renamed into place, journals of older generations.
        (self.dir / "snapshot.jsonl.tmp").unlink(missing_ok=True)
        journal = self.journal_path(self.generation)
        for path in self.dir.glob("journal-*.jsonl"):
            if path != journal:
                path.unlink()
        if journal.exists():
            with journal.open(encoding="utf-8") as handle:
                replayed += self._replay(caller, handle)
        return replayed

    def _replay(self, caller: LocalCaller, lines: Iterable[str]) -> int:
        count = 0
        for line in lines:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                log.warning("ignoring a torn journal line (the process ended mid-write)")
                break
            self.note_scope(record["a"])
            # Bodies are stored as latin-1 text: the exact bytes the client sent, whatever they are.
            status, answer = caller.call(record["op"], record["a"], record["b"].encode("latin-1"))
            if status != 200:
                log.warning("replay of %s answered %s: %s", record["op"], status, answer)
            count += 1
        return count

    # -- while serving (the caller holds the DynamoDB lock) --
    def open_journal(self) -> None:
        path = self.journal_path(self.generation)
        self._journal = path.open("a", encoding="utf-8")
        self._journal_bytes = path.stat().st_size
        threading.Thread(target=self._sync_loop, name="journal-fsync", daemon=True).start()

    def append(self, op: str, auth: str, body: str) -> None:
        assert self._journal is not None
        line = json.dumps({"op": op, "a": auth, "b": body}, ensure_ascii=False) + "\n"
        self._journal.write(line)
        self._journal.flush()  # in the OS's hands: survives this process however it ends
        self._journal_bytes += len(line)
        self._dirty = True

    def note_scope(self, auth: str) -> None:
        match = _CREDENTIAL.search(auth)
        if match:
            self.scopes.setdefault((match.group(1), match.group(2)), auth)

    def needs_compaction(self) -> bool:
        return self._journal_bytes > COMPACT_BYTES

    def compact(self, caller: LocalCaller) -> None:
        """Write the current state as snapshot G+1 and start journal G+1 (caller holds the lock
        or nothing else is running)."""
        new_generation = self.generation + 1
        temporary = self.dir / "snapshot.jsonl.tmp"
        with temporary.open("w", encoding="utf-8") as handle:
            handle.write(json.dumps({"generation": new_generation}) + "\n")
            for auth in self.scopes.values():
                for op, body in dump_state(caller, auth):
                    handle.write(json.dumps({"op": op, "a": auth, "b": json.dumps(body)}) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(self.snapshot_path)
        _fsync_dir(self.dir)
        old = self.journal_path(self.generation)
        if self._journal is not None:
            self._journal.close()
        self.generation = new_generation
        path = self.journal_path(new_generation)
        self._journal = path.open("w", encoding="utf-8")
        self._journal_bytes = 0
        _fsync_dir(self.dir)
        with contextlib.suppress(FileNotFoundError):
            old.unlink()

    def _sync_loop(self) -> None:
        while not self._closed.wait(FSYNC_SECONDS):
            self.sync()

    def sync(self) -> None:
        journal = self._journal
        if self._dirty and journal is not None:
            self._dirty = False
            with contextlib.suppress(ValueError, OSError):  # closed meanwhile
                os.fsync(journal.fileno())

    def close(self) -> None:
        self._closed.set()
        self.sync()
        if self._journal is not None:
            self._journal.close()
        self._lock_file.close()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def dump_state(caller: LocalCaller, auth: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every table of one credential scope as replayable requests, through DynamoDB's own API."""
    for name in _table_names(caller, auth):
        _, described = caller.call("DescribeTable", auth, {"TableName": name})
        yield "CreateTable", create_request(described["Table"])
        _, ttl = caller.call("DescribeTimeToLive", auth, {"TableName": name})
        description = ttl.get("TimeToLiveDescription", {})
        if description.get("TimeToLiveStatus") in ("ENABLED", "ENABLING"):
            spec = {"Enabled": True, "AttributeName": description["AttributeName"]}
            yield "UpdateTimeToLive", {"TableName": name, "TimeToLiveSpecification": spec}
        batch: list[dict[str, Any]] = []
        for item in _scan(caller, auth, name):
            batch.append({"PutRequest": {"Item": item}})
            if len(batch) == 25:
                yield "BatchWriteItem", {"RequestItems": {name: batch}}
                batch = []
        if batch:
            yield "BatchWriteItem", {"RequestItems": {name: batch}}


def _table_names(caller: LocalCaller, auth: str) -> Iterator[str]:
    body: dict[str, Any] = {}
    while True:
        _, answer = caller.call("ListTables", auth, body)
        yield from answer.get("TableNames", [])
        if "LastEvaluatedTableName" not in answer:
            return
        body = {"ExclusiveStartTableName": answer["LastEvaluatedTableName"]}


def _scan(caller: LocalCaller, auth: str, name: str) -> Iterator[dict[str, Any]]:
    body: dict[str, Any] = {"TableName": name}
    while True:
        _, answer = caller.call("Scan", auth, body)
        yield from answer.get("Items", [])
        if "LastEvaluatedKey" not in answer:
            return
        body["ExclusiveStartKey"] = answer["LastEvaluatedKey"]


def create_request(table: dict[str, Any]) -> dict[str, Any]:
    """The CreateTable request that makes a table like the one DescribeTable describes."""
    billing = table.get("BillingModeSummary", {}).get("BillingMode", "PROVISIONED")
    request: dict[str, Any] = {
        "TableName": table["TableName"],
        "AttributeDefinitions": table["AttributeDefinitions"],
        "KeySchema": table["KeySchema"],
        "BillingMode": billing,
    }

    def throughput(source: dict[str, Any]) -> dict[str, int]:
        given = source.get("ProvisionedThroughput", {})
        return {
            "ReadCapacityUnits": int(given.get("ReadCapacityUnits") or 1),
            "WriteCapacityUnits": int(given.get("WriteCapacityUnits") or 1),
        }

    if billing == "PROVISIONED":
        request["ProvisionedThroughput"] = throughput(table)
    for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        indexes = []
        for index in table.get(key, []):
            entry = {k: index[k] for k in ("IndexName", "KeySchema", "Projection")}
            if key == "GlobalSecondaryIndexes" and billing == "PROVISIONED":
                entry["ProvisionedThroughput"] = throughput(index)
            indexes.append(entry)
        if indexes:
            request[key] = indexes
    if table.get("StreamSpecification"):
        request["StreamSpecification"] = table["StreamSpecification"]
    return request


# ----- the serving side --------------------------------------------------------------------------
class SerializedDynamoDB:
    """WSGI middleware: DynamoDB requests one at a time (journaled when they change something);
    everything else (SQS and the rest) straight through."""

    def __init__(self, app: WsgiApp, store: Store | None) -> None:
        self.app = app
        self.store = store
        self.lock = threading.Lock()
        self.caller = LocalCaller(app)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not target.startswith("DynamoDB_"):
            return self.app(environ, start_response)  # type: ignore[return-value]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        answer: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            answer["status"], answer["headers"] = status, headers
            return lambda data: None

        op = target.partition(".")[2]
        with self.lock:
            sizes = _READ_SIZES.set({} if op in READS else None)
            try:
                result = self.app(environ, capture)
                try:
                    data = b"".join(result)
                finally:
                    close = getattr(result, "close", None)
                    if close is not None:
                        close()
            finally:
                _READ_SIZES.reset(sizes)
            if self.store is not None and op in MUTATING and answer["status"].startswith("200"):
                auth = environ.get("HTTP_AUTHORIZATION", "")
                self.store.note_scope(auth)
                self.store.append(op, auth, body.decode("latin-1"))
                if self.store.needs_compaction():
                    self.store.compact(self.caller)
        start_response(answer["status"], answer["headers"])
        return [data]


def serve(port: int, data_dir: Path | None, switch_interval: float | None) -> None:
    """Run until standard input closes (the parent holds it): load, print `PORT n`, serve."""
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    logging.basicConfig(level=logging.WARNING, format="embedded database: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    if switch_interval:
        # For tests: switch threads after every few bytecodes, so thread races show every run.
        sys.setswitchinterval(switch_interval)
    patch_moto()
    store = Store(data_dir) if data_dir is not None else None
    app = SerializedDynamoDB(DomainDispatcherApplication(create_backend_app), store)
    if store is not None:
        started = time.monotonic()
        replayed = store.load(app.caller)
        if replayed:
            store.compact(app.caller)
        store.open_journal()
        took = time.monotonic() - started
        print(f"LOADED {replayed} {took:.3f}", flush=True)
    server = make_server("127.0.0.1", port, app, threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, name="server", daemon=True)
    thread.start()
    print(f"PORT {server.server_address[1]}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        sys.stdin.read()  # until the parent closes it, or dies
    server.shutdown()
    with app.lock:
        if store is not None:
            store.close()
