"""Base of every table: optimistic locking and derived (index key) attributes."""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

from pynamodb.attributes import VersionAttribute
from pynamodb.models import Model

from app_lib.common.data import pynamodb_adapter as adapter

_T = TypeVar("_T", bound="VersionedTable")


class VersionedTable(Model):
    """A model whose writes are conditional on the version they read (optimistic locking).

    PynamoDB adds `version = <read version>` (or `attribute_not_exists(version)` for a new item)
    to every save, update and delete, and increments the version on each write.
    """

    version = VersionAttribute()

    # Attributes computed from others (composite index keys), rewritten when their sources change.
    derived_attributes: ClassVar[tuple[str, ...]] = ()

    def derive_keys(self) -> None:
        """Recompute `derived_attributes` from the item's fields; called before every write."""

    @classmethod
    def from_raw_data(cls: type[_T], data: dict[str, Any]) -> _T:
        """What PynamoDB builds every item it reads with (Query, Scan, GetItem), made leaner."""
        if data is None:
            raise ValueError("Received no data to construct object")
        return adapter.instantiate(cls, data)


def key_part(value: Any) -> str:
    """How a value is written inside a composite key (booleans as 0/1, like the stored numbers),
    for `derive_keys()` and for the key conditions that query those keys."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
