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
- **Speed.** moto 5.2 sends every DynamoDB answer through a generic, model-driven serializer,
  deep-copies every item a Query or Scan returns, walks the whole table for a Query on an index
  and sorts by comparing attribute objects that re-parse their numbers on every comparison.
  Data-plane answers are written as the plain JSON they already are; a read (one DynamoDB
  request at a time, under the lock) returns the stored items uncopied (nothing after it writes
  to them); what reads compute from the data (item sizes, an index's partitions, sort orders,
  each item's JSON form) is kept until the next request that is not a read (`_Reads`); the
  per-request dispatch no longer lists moto's package directory or the handler's methods. The
  server keeps connections open between requests (werkzeug closes each after one answer: a TCP
  connection and a thread per DynamoDB call). A TransactWriteItems backs up the items its
  actions name, not (as moto does) a deep copy of the whole table per action. Control-plane
  answers (dates) keep moto's own serializer. Every answer stays moto's:
  tests/common/test_embedded.py compares a wide sequence of reads and writes, and random
  queries, with unpatched moto's answers.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import decimal
import fcntl
import functools
import io
import itertools
import json
import logging
import os
import re
import socket
import string
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, ClassVar

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
# Requests that change nothing. While one is handled (DynamoDB requests run one at a time, see
# SerializedDynamoDB) no item can change: the items a read returns are not copied, and what reads
# compute from the data (item sizes, index partitions, sort orders) is kept in `_Reads` for the
# reads that follow, until a request that may change something.
READS = frozenset({"GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"})
# Items whose JSON form is kept between reads (each about the size of the item itself).
KEPT_ANSWERS = 20_000
_READING: contextvars.ContextVar[bool] = contextvars.ContextVar("reading", default=False)


class _Reads:
    """What reads computed from the data, valid while `generation` stays the same. Every
    request that is not a read takes a new generation before and after it is handled."""

    _counter = itertools.count(1)
    generation = 0
    _kept_generation = 0
    # id(item) -> (item, Item.size()); the item is kept, so its id stays its own.
    sizes: ClassVar[dict[int, tuple[Any, int]]] = {}
    # id(item.attrs) -> item.attrs, of the stored items sized (not the copies projections make)
    stored: ClassVar[dict[int, Any]] = {}
    # id(item.attrs) -> (item.attrs, its answer as plain JSON), of stored items.
    answers: ClassVar[dict[int, tuple[Any, Any]]] = {}
    # (id(table), what) -> (table, value): an index's partitions, items in key order.
    derived: ClassVar[dict[tuple[int, Any], tuple[Any, Any]]] = {}

    @classmethod
    def changed(cls) -> None:
        # next() on itertools.count is atomic: every change stores a number never used before,
        # so what was computed at a generation is never taken as current after a change.
        cls.generation = next(cls._counter)

    @classmethod
    def current(cls) -> None:
        """Drop what an earlier generation computed (called by reads, under the lock)."""
        if cls._kept_generation != cls.generation:
            cls.sizes.clear()
            cls.stored.clear()
            cls.answers.clear()
            cls.derived.clear()
            cls._kept_generation = cls.generation

    @classmethod
    def cached(cls, table: Any, what: Any, compute: Callable[[], Any]) -> Any:
        """`compute()` for `table`, once per generation."""
        cls.current()
        key = (id(table), what)
        found = cls.derived.get(key)
        if found is not None and found[0] is table:
            return found[1]
        if len(cls.derived) > 1024:  # many different queries between two writes
            cls.derived.clear()
        value = compute()
        cls.derived[key] = (table, value)
        return value


# ----- patches to moto ---------------------------------------------------------------------------
def patch_moto() -> None:
    """Idempotent; see the module docstring for why each patch exists. Each one keeps moto's
    answers as they were: tests/common/test_embedded.py compares them with unpatched moto's."""
    from moto.core.common_models import BaseModel

    if getattr(BaseModel, "_app_lib_patched", False):
        return

    def untracked_new(cls: type, *args: Any, **kwargs: Any) -> Any:
        return object.__new__(cls)

    BaseModel.__new__ = untracked_new  # type: ignore[method-assign]
    _patch_dispatch()
    _patch_answers()
    _patch_reads()
    _patch_transactions()
    BaseModel._app_lib_patched = True  # type: ignore[attr-defined]


def _patch_dispatch() -> None:
    """Per-request work that depends on nothing in the request: done once."""
    from moto.core import responses
    from moto.core.responses import BaseResponse
    from moto.moto_api._internal import mock_random
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    # Each request listed moto's package directory (a stat per service) to find its backend.
    backend_for_host = DomainDispatcherApplication.get_backend_for_host
    backends: dict[str, Any] = {}

    def cached_backend_for_host(self: DomainDispatcherApplication, host: str | None) -> Any:
        if host is None:
            return None
        found = backends.get(host)
        if found is None:
            found = backend_for_host(self, host)
            if found is not None:  # misses stay uncached (moto prints a hint for each)
                backends[host] = found
        return found

    DomainDispatcherApplication.get_backend_for_host = cached_backend_for_host  # type: ignore[method-assign]

    # ... and listed the handler class's methods with inspect.getmembers, to find the action.
    method_names = responses.method_names_from_class  # type: ignore[attr-defined]
    names_by_class: dict[type, list[str]] = {}

    def cached_method_names(clazz: Any) -> list[str]:
        names = names_by_class.get(clazz)
        if names is None:
            names = names_by_class[clazz] = method_names(clazz)
        return list(names)

    responses.method_names_from_class = cached_method_names  # type: ignore[attr-defined]

    # ... and ran a regular expression over the whole answer to put the request id in XML
    # <RequestId> elements (a JSON answer has none), the id drawn one character at a time.
    enrich = BaseResponse._enrich_response
    pool = string.ascii_letters + string.digits  # moto's get_random_string(52)

    def request_id(headerdict: dict[str, Any] | None = None) -> str:
        value = "".join(mock_random.choices(pool, k=52))
        if isinstance(headerdict, dict):
            headerdict["x-amzn-requestid"] = value
        return value

    responses.gen_amzn_requestid_long = request_id  # type: ignore[attr-defined]

    def enrich_response(headers: dict[str, str], body: Any) -> tuple[dict[str, str], Any]:
        if isinstance(body, str) and "<RequestId>" not in body:
            if "status" in headers:
                headers["status"] = str(headers["status"])
            request_id(headers)
            return headers, body
        return enrich(headers, body)

    BaseResponse._enrich_response = staticmethod(enrich_response)  # type: ignore[method-assign]


def _patch_answers() -> None:
    """Data-plane answers: plain JSON, built without moto's generic machinery."""
    from moto.core.responses import ActionContext, ActionResult
    from moto.dynamodb import responses
    from moto.dynamodb.models import utilities
    from moto.dynamodb.models.dynamo_type import DynamoType, LimitedSizeDict
    from moto.dynamodb.responses import DynamoResult

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

    # dynamo_to_dict (every answer's items, attribute by attribute) with the common cases first:
    # the same output, dispatched on exact types instead of a chain of isinstance and hasattr.
    to_dict = utilities.dynamo_to_dict
    plain = (str, int, float, bool, type(None))

    def dynamo_to_dict(obj: Any) -> Any:
        kind = type(obj)
        if kind is DynamoType:
            value = obj.value
            if obj.type == "B" or obj.type == "BS":
                return to_dict(obj)  # binaries: decoded to bytes, moto's way
            if type(value) is str:
                return {obj.type: value}
            return {obj.type: dynamo_to_dict(value)}
        if kind is LimitedSizeDict and _READING.get():
            return item_answer(obj)
        if kind is dict or kind is LimitedSizeDict:
            return {key: dynamo_to_dict(value) for key, value in obj.items()}
        if kind is list:
            return [dynamo_to_dict(value) for value in obj]
        if kind in plain:
            return obj
        return to_dict(obj)  # its recursion comes back here (the module's name is patched)

    def binary(value: DynamoType) -> bool:
        inner: Any = value.value
        if value.type in ("B", "BS"):
            return True
        if value.type == "L":
            return any(binary(v) for v in inner)
        return value.type == "M" and any(binary(v) for v in inner.values())

    def item_answer(attrs: Any) -> Any:
        """A stored item's attributes as plain JSON, once per generation of the data: read
        again and again (pages of a listing) while nothing changes. Only what json.dumps
        reads shares it; items with binaries (bytes, for moto's own serializer) are not kept."""
        _Reads.current()
        key = id(attrs)
        found = _Reads.answers.get(key)
        if found is not None and found[0] is attrs:
            return found[1]
        answer = {name: dynamo_to_dict(value) for name, value in attrs.items()}
        stored = _Reads.stored.get(key) is attrs  # not a projection's copy
        room = len(_Reads.answers) < KEPT_ANSWERS
        if stored and room and not any(binary(v) for v in attrs.values()):
            _Reads.answers[key] = (attrs, answer)
        return answer

    utilities.dynamo_to_dict = dynamo_to_dict
    responses.dynamo_to_dict = dynamo_to_dict  # type: ignore[attr-defined]


def _patch_reads() -> None:
    """Query, Scan and GetItem: the work moto repeats on every item, done once or not at all."""
    from moto.dynamodb import comparisons
    from moto.dynamodb.models import table as table_module
    from moto.dynamodb.models.dynamo_type import DynamoType, Item
    from moto.dynamodb.models.table import Table

    def cast(value: DynamoType) -> Any:
        """`value.cast_value`, without its chain of type tests for strings and numbers."""
        kind = value.type
        if kind == "S":
            return value.value
        if kind == "N" and type(value.value) is str:
            return _number(value.value)
        return value.cast_value

    def ordered(items: list[Any]) -> list[Any]:
        # moto sorts by the attribute objects, whose comparisons re-parse numbers every time.
        return sorted(
            items,
            key=lambda x: (
                (cast(x.hash_key), cast(x.range_key)) if x.range_key else (cast(x.hash_key),)
            ),
        )

    def stored(self: Table) -> list[Any]:
        items: list[Any] = []
        for hash_set in self.items.values():
            if self.range_key_attr:
                items.extend(hash_set.values())
            else:
                items.append(hash_set)
        return items

    def all_items(self: Table) -> list[Any]:
        candidates = getattr(self, "_app_lib_candidates", None)
        if candidates is not None:
            return list(candidates)
        if getattr(self, "_app_lib_unsorted", False):
            return stored(self)
        if _READING.get():
            return list(_Reads.cached(self, "ordered", lambda: ordered(stored(self))))
        return ordered(stored(self))

    def sorted_items(
        self: Table, hash_key_attrs: list[str], range_key_attrs: list[str | None], items: list[Any]
    ) -> list[Any]:
        names = self._generate_attr_to_sort_by(hash_key_attrs, range_key_attrs)

        def order() -> list[Any]:
            return sorted(items, key=lambda x: tuple([cast(x.attrs[name]) for name in names]))

        if _READING.get():
            # The same items (the cache keeps them, so their ids stay theirs) sort the same way.
            what = ("sorted", tuple(names), tuple(map(id, items)))
            items[:] = _Reads.cached(self, what, order)
        else:
            items[:] = order()
        return items

    def partition_key(value: DynamoType | None) -> Any:
        """What `equal` compares of a key attribute (None: not a string or number key)."""
        if value is None or type(value.value) is not str:
            return None
        if value.type == "N":
            number = _number(value.value)
            return ("N", number) if number.is_finite() else None
        return (value.type, value.value)

    def partitions(self: Table, names: tuple[str, ...]) -> dict[Any, list[Any]] | None:
        """The table's items by the values of `names`, in stored order; None when an item's
        value is not a plain string or number (then moto walks the table itself)."""
        found: dict[Any, list[Any]] = {}
        for item in stored(self):
            if not isinstance(item, Item):
                return None
            key = []
            for name in names:
                value = item.attrs.get(name)
                if value is None:
                    break
                part = partition_key(value)
                if part is None:
                    return None
                key.append(part)
            else:
                found.setdefault(tuple(key), []).append(item)
        return found

    query = Table.query

    def fast_query(self: Table, *args: Any, **kwargs: Any) -> Any:
        # A Query sorts the items it matched itself: sorting the whole table first is waste.
        # On an index, only the items of the asked partition are handed to moto's own loop,
        # which checks the key conditions again: the same items, in the same order.
        candidates = None
        index_name = args[7] if len(args) > 7 else kwargs.get("index_name")
        conditions = kwargs.get("hash_key_conditions")
        if index_name and conditions and _READING.get():
            names = tuple(name for name, _ in conditions)
            wanted = tuple(partition_key(value) for _, value in conditions)
            if None not in wanted:
                found = _Reads.cached(self, ("partitions", names), lambda: partitions(self, names))
                if found is not None:
                    candidates = found.get(wanted, [])
        # (Safe to flag on the table: DynamoDB requests are handled one at a time.)
        self._app_lib_unsorted = True  # type: ignore[attr-defined]
        self._app_lib_candidates = candidates  # type: ignore[attr-defined]
        try:
            return query(self, *args, **kwargs)
        finally:
            self._app_lib_unsorted = False  # type: ignore[attr-defined]
            self._app_lib_candidates = None  # type: ignore[attr-defined]

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
        # `not equal(self, other)`, inlined: it runs once per item of the partition a Query reads.
        if self.type != other.type:
            return True
        mine, theirs = self.value, other.value
        if type(mine) is str and type(theirs) is str:
            if mine == theirs:
                return False
            if self.type != "N":
                return True
            return _number(mine) != _number(theirs)
        return not bool(self.cast_value == other.cast_value)

    def compare(self: DynamoType, range_comparison: str, range_objs: list[Any]) -> bool:
        # DynamoType.compare (key conditions: begins_with, between, <...), casting as `cast`.
        range_values = [cast(obj) for obj in range_objs]
        function = comparisons.get_comparison_func(range_comparison)
        result: bool = function(cast(self), *range_values)
        return result

    def size(self: Item) -> int:
        """Item.size: bytes of the names and values; strings and numbers computed inline."""
        total = 0
        for key, value in self.attrs.items():
            total += len(key) if key.isascii() else len(key.encode("utf-8"))
            kind, raw = value.type, value.value
            if kind == "S" and type(raw) is str:
                total += len(raw) if raw.isascii() else len(raw.encode("utf-8"))
            elif kind == "N":
                total += len(str(raw))
            else:
                total += value.size()
        return total

    def cached_size(self: Item) -> int:
        # moto sizes every item a read examines several times (the 1 MB page limit, the
        # consumed capacity), and again in the next read. An item changes only in a request
        # that is not a read: its size is computed once per generation of the data.
        if not _READING.get():
            return size(self)
        _Reads.current()
        sizes = _Reads.sizes
        key = id(self)
        found = sizes.get(key)
        if found is None:
            found = sizes[key] = (self, size(self))  # the item is kept: its id stays its own
            _Reads.stored[id(self.attrs)] = self.attrs
        return int(found[1])

    class ReadCopies:
        """`copy` as moto's table module sees it. Query and Scan deep-copy every item they
        return, then only read the copies (projection makes new items, filters and answers
        read): during a read request, when nothing can change an item, they get the items."""

        def __getattr__(self, name: str) -> Any:
            return getattr(copy, name)

        @staticmethod
        def deepcopy(value: Any, memo: Any = None) -> Any:
            if _READING.get():
                if type(value) is Item:
                    return value
                if type(value) is list and all(type(item) is Item for item in value):
                    return list(value)
            return copy.deepcopy(value, memo)

    table_module.copy = ReadCopies()  # type: ignore[attr-defined,assignment]
    Item.size = cached_size  # type: ignore[method-assign]
    Table.all_items = all_items  # type: ignore[method-assign]
    Table.sorted_items = sorted_items  # type: ignore[method-assign]
    Table.query = fast_query  # type: ignore[method-assign]
    DynamoType.__eq__ = equal  # type: ignore[method-assign]
    DynamoType.__ne__ = not_equal  # type: ignore[method-assign]
    DynamoType.compare = compare  # type: ignore[method-assign]


# A transaction's backup of one item: table, hash key, range key, whether the partition existed,
# a copy of the item (None: there was none).
_Backup = tuple[Any, Any, Any, bool, Any]


def _action_key(table: Any, op: dict[str, Any]) -> tuple[Any, Any] | None:
    """The (hash, range) key a transaction action names, as moto's DynamoTypes."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    key = op.get("Key") or op.get("Item")
    try:
        hash_key = DynamoType(key[table.hash_key_attr])  # type: ignore[index]
        range_name = table.range_key_attr
        return hash_key, None if range_name is None else DynamoType(key[range_name])  # type: ignore[index]
    except (KeyError, TypeError, AttributeError):
        return None


def _patch_transactions() -> None:
    """moto backs up a TransactWriteItems by deep-copying the whole table once per action, to
    restore it if the transaction is cancelled: O(table size) per transaction (a 4-action order
    on 1,000 items took 133 ms, all of it under the lock). Backing up the items the actions name,
    before any action runs, and putting them back on any failure restores the same state."""
    import moto.dynamodb.models as backend_module
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table

    in_transaction: contextvars.ContextVar[bool] = contextvars.ContextVar(
        "in_transaction", default=False
    )

    class TableBackups:
        """`copy` as moto's backend module sees it: no whole-table copy inside a transaction."""

        def __getattr__(self, name: str) -> Any:
            return getattr(copy, name)

        @staticmethod
        def deepcopy(value: Any, memo: Any = None) -> Any:
            if in_transaction.get() and type(value) is Table:
                return value  # the backup is of the items (below); "restoring" it is a no-op
            return copy.deepcopy(value, memo)

    def backups(self: DynamoDBBackend, actions: list[dict[str, Any]]) -> list[_Backup]:
        taken: list[_Backup] = []
        for action in actions:
            for op in action.values():
                name = op.get("TableName") if isinstance(op, dict) else None
                table = self.tables.get(name) if isinstance(name, str) else None
                key = _action_key(table, op) if table is not None else None
                if key is None:
                    continue  # an action moto refuses without writing anything
                hash_key, range_key = key
                partition = table.items.get(hash_key)  # type: ignore[union-attr]
                item = partition if range_key is None else (partition or {}).get(range_key)
                had_partition = partition is not None
                taken.append((table, hash_key, range_key, had_partition, copy.deepcopy(item)))
        return taken

    def restore(taken: list[_Backup]) -> None:
        for table, hash_key, range_key, had_partition, item in reversed(taken):
            if range_key is None:
                if item is None:
                    table.items.pop(hash_key, None)
                else:
                    table.items[hash_key] = item
                continue
            partition = table.items.setdefault(hash_key, {})
            if item is None:
                partition.pop(range_key, None)
            else:
                partition[range_key] = item
            if not partition and not had_partition:
                del table.items[hash_key]

    transact = DynamoDBBackend.transact_write_items

    def transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
        taken = backups(self, transact_items)
        token = in_transaction.set(True)
        try:
            transact(self, transact_items)
        except BaseException:
            restore(taken)
            raise
        finally:
            in_transaction.reset(token)

    backend_module.copy = TableBackups()  # type: ignore[attr-defined,assignment]
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


@functools.lru_cache(maxsize=4096)
def _number(text: str) -> decimal.Decimal:
    return decimal.Decimal(text)


@contextlib.contextmanager
def handling(op: str) -> Iterator[None]:
    """Around every DynamoDB request (the caller holds the DynamoDB lock): a read gets its
    `_Reads`; anything else may change the data, so whatever reads derived from it is dropped."""
    if op in READS:
        token = _READING.set(True)
        try:
            yield
        finally:
            _READING.reset(token)
        return
    _Reads.changed()
    try:
        yield
    finally:
        _Reads.changed()


# ----- calling the app in-process ----------------------------------------------------------------
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class LocalCaller:
    """DynamoDB requests straight into the WSGI app (no socket), for replay and snapshots."""

    def __init__(self, app: WsgiApp) -> None:
        from werkzeug.test import Client

        self._client = Client(app)

    def call(self, op: str, auth: str, body: dict[str, Any] | bytes) -> tuple[int, dict[str, Any]]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        with handling(op):
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
            # Not DynamoDB (SQS, moto's own API): nothing to lock, but it may reset the data.
            _Reads.changed()
            try:
                return self.app(environ, start_response)  # type: ignore[return-value]
            finally:
                _Reads.changed()
        if environ.get("wsgi.input_terminated"):  # a chunked body: read to its end
            body = environ["wsgi.input"].read()
        else:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        answer: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            answer["status"], answer["headers"] = status, headers
            return lambda data: None

        op = target.partition(".")[2]
        with self.lock:
            with handling(op):
                result = self.app(environ, capture)
                try:
                    data = b"".join(result)
                finally:
                    close = getattr(result, "close", None)
                    if close is not None:
                        close()
            if self.store is not None and op in MUTATING and answer["status"].startswith("200"):
                auth = environ.get("HTTP_AUTHORIZATION", "")
                self.store.note_scope(auth)
                self.store.append(op, auth, body.decode("latin-1"))
                if self.store.needs_compaction():
                    self.store.compact(self.caller)
        start_response(answer["status"], answer["headers"])
        return [data]


def keep_alive_handler() -> type:
    """moto's request handler, made to keep a connection open between requests."""
    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from werkzeug.exceptions import InternalServerError

    class KeepAliveRequestHandler(MotoRequestHandler):
        """werkzeug answers every request with `Connection: close` (http.server cannot tell
        where a body the app left unread ends), so every DynamoDB call paid a TCP connection,
        a new thread here and a new connection in the app's pool. A request with a
        Content-Length body (what botocore sends) is read whole before the app sees it, and
        its answer is buffered and sent with its length: the connection can serve the next
        request. Anything else (chunked bodies, Expect, HEAD, HTTP/1.0, a client that asks to
        close) takes werkzeug's own path, which closes the connection."""

        timeout = 120  # an idle connection's thread ends after that (clients reconnect)

        def setup(self) -> None:
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def run_wsgi(self) -> None:
            headers = self.headers
            length_text = headers.get("Content-Length") or "0"
            if (
                self.close_connection
                or self.request_version != "HTTP/1.1"
                or self.command == "HEAD"
                or "Transfer-Encoding" in headers
                or "Expect" in headers
                or not length_text.isdigit()
            ):
                super().run_wsgi()
                return
            length = int(length_text)
            environ = self.environ = self.make_environ()
            body = self.rfile.read(length) if length else b""
            if len(body) != length:  # the client went away mid-request
                self.close_connection = True
                return
            environ["wsgi.input"] = io.BytesIO(body)
            started: list[Any] = []
            chunks: list[bytes] = []

            def start_response(
                status: str, response_headers: list[tuple[str, str]], exc_info: Any = None
            ) -> Callable[[bytes], None]:
                started[:] = [status, response_headers]
                return chunks.append

            try:
                result = self.server.app(environ, start_response)
                try:
                    chunks.extend(result)
                finally:
                    close = getattr(result, "close", None)
                    if close is not None:
                        close()
                status, response_headers = started
            except Exception as error:  # as werkzeug does: a 500 page, the error logged
                from werkzeug.debug.tbtools import DebugTraceback

                self.close_connection = True
                chunks.clear()
                result = InternalServerError()(environ, start_response)
                chunks.extend(result)
                status, response_headers = started
                trace = DebugTraceback(error).render_traceback_text()
                self.server.log("error", f"Error on request:\n{trace}")
            code, _, reason = status.partition(" ")
            data = b"".join(chunks)
            self.send_response(int(code), reason)
            for key, value in response_headers:
                if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            if self.close_connection:
                self.send_header("Connection", "close")
            # Headers and body in one write: two would wait on the client's delayed ACK.
            self._headers_buffer.append(b"\r\n" + data)
            self.flush_headers()

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            if logging.getLogger("werkzeug").isEnabledFor(logging.INFO):
                super().log_request(code, size)

        def log_error(self, format: str, *args: Any) -> None:
            if not format.startswith("Request timed out"):  # an idle connection, closed: quiet
                super().log_error(format, *args)

    return KeepAliveRequestHandler


def serve(port: int, data_dir: Path | None, switch_interval: float | None) -> None:
    """Run until standard input closes (the parent holds it): load, print `PORT n`, serve."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
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
    server = make_server(
        "127.0.0.1", port, app, threaded=True, request_handler=keep_alive_handler()
    )
    thread = threading.Thread(target=server.serve_forever, name="server", daemon=True)
    thread.start()
    print(f"PORT {server.server_address[1]}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        sys.stdin.read()  # until the parent closes it, or dies
    server.shutdown()
    with app.lock:
        if store is not None:
            store.close()
