"""The one generic PynamoDB implementation of AbstractDataService.

A feature's data service names its model and the indexes that serve its filters; this class does
the shared work: query planning (key conditions first, filter expressions for the rest), full
cursor pages, exact counts, conditional creates, optimistic locking and error translation.
"""

from __future__ import annotations

import builtins
import itertools
import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import reduce
from typing import Any, ClassVar, Generic, TypeVar

from pynamodb.exceptions import DoesNotExist
from pynamodb.expressions.condition import Condition, size
from pynamodb.indexes import GlobalSecondaryIndex
from pynamodb.pagination import ResultIterator

from app_lib.common.aws_errors import aws_errors, conditional_write
from app_lib.common.data import cursor as cursors
from app_lib.common.data import pynamodb_adapter as adapter
from app_lib.common.data.abstract_data_service import AbstractDataService, Key, Page
from app_lib.common.data.versioned_table import VersionedTable, key_part
from app_lib.common.errors import (
    ConditionFailedError,
    ConflictError,
    NotFoundError,
    PreconditionFailedError,
    ServiceUnavailableError,
)

M = TypeVar("M", bound=VersionedTable)

MAX_PAGE = 1000
BATCH_SIZE = 25  # DynamoDB's BatchWriteItem limit
BATCH_RETRIES = 8


def _chunks(items: Iterable[M], size: int) -> Iterator[builtins.list[M]]:
    iterator = iter(items)
    while chunk := builtins.list(itertools.islice(iterator, size)):
        yield chunk


@dataclass(frozen=True)
class IndexPlan:
    """A GSI that serves equality filters.

    `hash_filter` is the filter whose value is the index's hash key. `range_prefix` names the
    filters encoded, in order, at the start of the index's range key ("female#1#..."), so that
    they become a `begins_with` key condition instead of a filter expression.
    """

    index: GlobalSecondaryIndex[Any]
    hash_filter: str
    range_prefix: tuple[str, ...] = ()
    forward: bool = True

    def score(self, filters: Mapping[str, Any]) -> int:
        """How many filters this index turns into key conditions (0 = cannot serve them)."""
        if self.hash_filter not in filters:
            return 0
        used = 1
        for name in self.range_prefix:
            if name not in filters:
                break
            used += 1
        return used


class PynamoDataService(AbstractDataService[M], Generic[M]):
    """Subclass it with `model = <Table>` (and `index_plans` for filtered listings)."""

    model: ClassVar[type[Any]]
    index_plans: ClassVar[Sequence[IndexPlan]] = ()

    # ----- single items -------------------------------------------------------------------------
    def get(self, id: Key) -> M | None:
        with aws_errors():
            try:
                item: M = self.model.get(id)
            except DoesNotExist:
                return None
            return item

    def save(self, entity: M) -> None:
        entity.derive_keys()
        with conditional_write(PreconditionFailedError("the item was changed by another write")):
            entity.save()

    def create(self, entity: M) -> M:
        entity.derive_keys()
        # The id must be new: without this condition a put would silently replace an item.
        hash_key = adapter.hash_key_attribute(self.model)
        with conditional_write(ConflictError(f"an item with id {self.id_of(entity)} exists")):
            entity.save(condition=hash_key.does_not_exist())
        return entity

    def update(
        self, entity: M, changes: Mapping[str, Any], expected_version: int | None = None
    ) -> M:
        self.check_version(entity, expected_version)
        derived_before = {name: getattr(entity, name) for name in entity.derived_attributes}
        for name, value in changes.items():
            setattr(entity, name, value)
        entity.derive_keys()
        touched = [*changes]
        touched += [n for n, v in derived_before.items() if getattr(entity, n) != v]
        if not touched:
            return entity
        actions = []
        for name in dict.fromkeys(touched):
            attribute = getattr(self.model, name)
            value = getattr(entity, name)
            actions.append(attribute.remove() if value is None else attribute.set(value))
        # PynamoDB makes the update conditional on the version read and increments it.
        with conditional_write(PreconditionFailedError("the item was changed by another write")):
            entity.update(actions=actions)
        return entity

    def replace(self, entity: M, replacement: M, expected_version: int | None = None) -> M:
        """Full replace of a loaded item, conditional on the version it was read at."""
        self.check_version(entity, expected_version)
        replacement.version = entity.version
        self.save(replacement)
        return replacement

    def append(self, entity: M, field: str, values: Sequence[Any], max_length: int) -> M:
        attribute = getattr(self.model, field)
        hash_key = adapter.hash_key_attribute(self.model)
        # No version condition: appends commute, so racing ones must all land (list_append is
        # atomic). The item must still exist (an UpdateItem would create it) and the list must
        # stay within its bound, checked by the database at the write, not by a read before.
        room = size(attribute) <= max_length - len(values)  # type: ignore[no-untyped-call]
        condition = hash_key.exists() & (attribute.does_not_exist() | room)
        try:
            with conditional_write():
                entity.update(
                    actions=[attribute.set((attribute | []).append(list(values)))],
                    condition=condition,
                    add_version_condition=False,
                )
        except ConditionFailedError:
            if self.get(self.id_of(entity)) is None:
                raise NotFoundError(f"no item {self.id_of(entity)}") from None
            raise ConflictError(f"{field} holds at most {max_length} entries") from None
        return entity

    def remove_at(
        self, entity: M, field: str, index: int, expected_version: int | None = None
    ) -> M:
        self.check_version(entity, expected_version)
        entry = getattr(self.model, field)[index]
        # The entry must exist when the write lands (REMOVE of a missing index is a silent no-op
        # in DynamoDB); with If-Match the whole item must also be the version read.
        try:
            with conditional_write():
                entity.update(
                    actions=[entry.remove()],
                    condition=entry.exists(),
                    add_version_condition=expected_version is not None,
                )
        except ConditionFailedError:
            current = self.get(self.id_of(entity))
            if current is not None and expected_version not in (None, current.version):
                raise PreconditionFailedError("the item was changed by another write") from None
            raise NotFoundError(f"no {field}[{index}] in item {self.id_of(entity)}") from None
        return entity

    def delete(self, id: Key, expected_version: int | None = None) -> bool:
        entity = self.get(id)
        return entity is not None and self.remove(entity, expected_version)

    def remove(self, entity: M, expected_version: int | None = None) -> bool:
        """Delete a loaded item, conditional on its version; False if it is already gone."""
        self.check_version(entity, expected_version)
        try:
            with conditional_write(
                PreconditionFailedError("the item was changed by another write")
            ):
                entity.delete()
        except PreconditionFailedError:
            if self.get(self.id_of(entity)) is None:
                return False
            raise
        return True

    # ----- many items ---------------------------------------------------------------------------
    def list(self, limit: int = 100) -> builtins.list[M]:
        return self.page(limit).items

    def query(self, limit: int = 100, **filters: Any) -> builtins.list[M]:
        return self.page(limit, None, **filters).items

    def page(self, limit: int = 100, cursor: str | None = None, **filters: Any) -> Page[M]:
        if not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"limit must be within 1..{MAX_PAGE}")
        filters = {name: value for name, value in filters.items() if value is not None}
        plan, used = self._plan(filters)
        context = self._cursor_context(plan, filters)
        start = cursors.decode(cursor, context) if cursor else None
        with aws_errors():
            results = self._iterate(plan, used, filters, limit, start)
            items = builtins.list(results)
            last_key = results.last_evaluated_key
        # Fewer than `limit` items means DynamoDB reached the end: no cursor, no empty extra page.
        next_cursor = (
            cursors.encode(last_key, context) if last_key and len(items) == limit else None
        )
        return Page(items, next_cursor, results.page_iter.total_scanned_count)

    def count(self, **filters: Any) -> int:
        """Exact count. Costs a read of every matching index entry (every item when unfiltered):
        DynamoDB's own ItemCount is only refreshed about every six hours."""
        filters = {name: value for name, value in filters.items() if value is not None}
        plan, used = self._plan(filters)
        with aws_errors():
            if plan is not None:
                hash_value, range_condition = self._key_condition(plan, used, filters)
                total: int = self.model.count(
                    hash_value,
                    range_key_condition=range_condition,
                    filter_condition=self._filter(filters, used),
                    index_name=plan.index.Meta.index_name,
                )
                return total
            return self._scan_count(self._filter(filters, used))

    def batch_put(
        self, entities: Iterable[M], progress: Callable[[int], None] | None = None
    ) -> int:
        """Upsert many items, 25 to a BatchWriteItem, retrying unprocessed ones with backoff.

        Unconditional by nature (BatchWriteItem takes no conditions): for loading data, not for
        edits racing other writers. Returns how many items were written.
        """
        table = self.model.Meta.table_name
        written = 0
        for chunk in _chunks(entities, BATCH_SIZE):
            pending = []
            for entity in chunk:
                entity.derive_keys()
                entity.version = entity.version or 1
                pending.append(entity.serialize())
            for attempt in range(BATCH_RETRIES + 1):
                with aws_errors():
                    answer = adapter.batch_write(self.model, pending)
                unprocessed = answer.get("UnprocessedItems", {}).get(table, [])
                pending = [request["PutRequest"]["Item"] for request in unprocessed]
                if not pending:
                    break
                if attempt == BATCH_RETRIES:
                    raise ServiceUnavailableError("the database kept refusing a batch write")
                # DynamoDB returns unprocessed items under throttling: back off before retrying.
                time.sleep(min(2.0, 0.05 * 2**attempt))
            written += len(chunk)
            if progress:
                progress(written)
        return written

    # ----- helpers ------------------------------------------------------------------------------
    @classmethod
    def id_of(cls, entity: M) -> Key:
        """The item's hash key value, as `get()` takes it (a Number id stays a number)."""
        value = getattr(entity, adapter.hash_key_name(cls.model))
        key: Key = int(value) if isinstance(value, float) and value.is_integer() else value
        return key

    @staticmethod
    def check_version(entity: M, expected_version: int | None) -> None:
        if expected_version is not None and expected_version != entity.version:
            raise PreconditionFailedError(
                f"the item is at version {entity.version}, not {expected_version}"
            )

    def _plan(self, filters: Mapping[str, Any]) -> tuple[IndexPlan | None, tuple[str, ...]]:
        """The index that turns the most filters into key conditions, and those filters."""
        best: IndexPlan | None = None
        best_score = 0
        for plan in self.index_plans:
            score = plan.score(filters)
            if score > best_score:
                best, best_score = plan, score
        if best is None:
            return None, ()
        return best, (best.hash_filter, *best.range_prefix[: best_score - 1])

    def _key_condition(
        self, plan: IndexPlan, used: tuple[str, ...], filters: Mapping[str, Any]
    ) -> tuple[Any, Condition | None]:
        hash_value = filters[plan.hash_filter]
        if isinstance(hash_value, bool):
            hash_value = int(hash_value)
        if len(used) == 1:
            return hash_value, None
        prefix = "".join(f"{key_part(filters[name])}#" for name in used[1:])
        range_name = next(
            name for name, attr in plan.index.Meta.attributes.items() if attr.is_range_key
        )
        return hash_value, getattr(self.model, range_name).startswith(prefix)

    def _filter(self, filters: Mapping[str, Any], used: tuple[str, ...]) -> Condition | None:
        conditions = [
            getattr(self.model, name) == (int(value) if isinstance(value, bool) else value)
            for name, value in filters.items()
            if name not in used
        ]
        return reduce(lambda a, b: a & b, conditions) if conditions else None

    def _iterate(
        self,
        plan: IndexPlan | None,
        used: tuple[str, ...],
        filters: Mapping[str, Any],
        limit: int,
        start: dict[str, Any] | None,
    ) -> ResultIterator[M]:
        filter_condition = self._filter(filters, used)
        if plan is None:
            # Only an unfiltered listing (or filters no index serves) reads the whole table.
            results: ResultIterator[M] = self.model.scan(
                filter_condition=filter_condition, limit=limit, last_evaluated_key=start
            )
            return results
        hash_value, range_condition = self._key_condition(plan, used, filters)
        return plan.index.query(
            hash_value,
            range_key_condition=range_condition,
            filter_condition=filter_condition,
            scan_index_forward=plan.forward,
            limit=limit,
            last_evaluated_key=start,
        )

    def _cursor_context(self, plan: IndexPlan | None, filters: Mapping[str, Any]) -> str:
        index = plan.index.Meta.index_name if plan else ""
        shown = json.dumps({k: key_part(v) for k, v in sorted(filters.items())})
        return f"{self.model.Meta.table_name}|{index}|{shown}"

    def _scan_count(self, filter_condition: Condition | None) -> int:
        if filter_condition is not None:
            hash_name = adapter.hash_key_name(self.model)
            results = self.model.scan(filter_condition, attributes_to_get=[hash_name])
            return sum(1 for _ in results)
        client = adapter.botocore_client(self.model)
        total = 0
        kwargs: dict[str, Any] = {"TableName": self.model.Meta.table_name, "Select": "COUNT"}
        while True:
            response = client.scan(**kwargs)
            total += int(response["Count"])
            if "LastEvaluatedKey" not in response:
                return total
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
