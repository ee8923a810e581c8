"""The contract every feature's data service implements."""

from __future__ import annotations

import builtins
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")

# An item's id: its hash key's value (a DynamoDB String or Number).
Key = str | int


@dataclass
class Page(Generic[T]):
    """One page of results; `next_cursor` is None on the last page."""

    items: builtins.list[T]
    next_cursor: str | None = None
    scanned_count: int = field(default=0, compare=False)


class AbstractDataService(ABC, Generic[T]):
    """The contract routes use: the seed's get, save, delete, list, query, count; plus create,
    update (only the given fields), replace, remove (of an item already read) and cursor pages.
    A feature's dependency is typed against it, so its storage could be swapped."""

    @abstractmethod
    def get(self, id: Key) -> T | None:
        """The item with this id, or None."""

    @abstractmethod
    def save(self, entity: T) -> None:
        """Upsert. With a version attribute, a stale version raises PreconditionFailedError."""

    @abstractmethod
    def create(self, entity: T) -> T:
        """Insert and return it; raises ConflictError when the id exists."""

    @abstractmethod
    def update(
        self, entity: T, changes: Mapping[str, Any], expected_version: int | None = None
    ) -> T:
        """Apply only `changes` (None = clear the field) through update actions; a stale
        version raises PreconditionFailedError."""

    @abstractmethod
    def replace(self, entity: T, replacement: T, expected_version: int | None = None) -> T:
        """Write `replacement` over `entity` (as read), conditional on the version read."""

    @abstractmethod
    def append(self, entity: T, field: str, values: Sequence[Any], max_length: int) -> T:
        """Append to a list field in one atomic write: concurrent appends all land. Raises
        NotFoundError when the item is gone, ConflictError when the list would pass
        `max_length`."""

    @abstractmethod
    def remove_at(
        self, entity: T, field: str, index: int, expected_version: int | None = None
    ) -> T:
        """Remove one entry of a list field; NotFoundError when there is no such entry."""

    @abstractmethod
    def delete(self, id: Key, expected_version: int | None = None) -> bool:
        """Delete; False when there was nothing to delete."""

    @abstractmethod
    def remove(self, entity: T, expected_version: int | None = None) -> bool:
        """Delete an item as read, conditional on its version; False when it is already gone."""

    @abstractmethod
    def list(self, limit: int = 100) -> builtins.list[T]:
        """Up to `limit` items, in no particular order."""

    @abstractmethod
    def query(self, limit: int = 100, **filters: Any) -> builtins.list[T]:
        """Up to `limit` items matching every filter (a full page unless fewer exist)."""

    @abstractmethod
    def page(self, limit: int = 100, cursor: str | None = None, **filters: Any) -> Page[T]:
        """One full page of matching items and an opaque, signed cursor to the next."""

    @abstractmethod
    def count(self, **filters: Any) -> int:
        """The exact number of (matching) items."""

    @staticmethod
    def new_id() -> str:
        """An id for an item the client gave none (random, 32 hex digits)."""
        return uuid.uuid4().hex
