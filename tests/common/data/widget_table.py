"""A test-only model that exercises the common layer: a GSI with a composite range key."""

from __future__ import annotations

from typing import Any

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex

from app_lib.common.data.pynamodb_data_service import IndexPlan, PynamoDataService
from app_lib.common.data.versioned_table import VersionedTable, key_part
from app_lib.common.util.pynamodb_util import PynamodbUtil


class ColorIndex(GlobalSecondaryIndex["WidgetTable"]):
    class Meta:
        index_name = "by-color"
        projection = AllProjection()

    color = UnicodeAttribute(hash_key=True)
    size_key = UnicodeAttribute(range_key=True)


class WidgetTable(VersionedTable):
    class Meta:
        table_name = PynamodbUtil.env_table_name("widgets")

    widget_id = UnicodeAttribute(hash_key=True)
    color = UnicodeAttribute()
    size = NumberAttribute()
    shape = UnicodeAttribute(null=True)
    blob = UnicodeAttribute(null=True)
    size_key = UnicodeAttribute()
    by_color = ColorIndex()

    derived_attributes = ("size_key",)

    def derive_keys(self) -> None:
        self.size_key = f"{key_part(self.size)}#{self.widget_id}"


class WidgetDataService(PynamoDataService[WidgetTable]):
    model = WidgetTable
    index_plans = (IndexPlan(WidgetTable.by_color, "color", ("size",)),)


def widget(widget_id: str, color: str = "red", size: int = 1, **extra: Any) -> WidgetTable:
    return WidgetTable(widget_id=widget_id, color=color, size=size, **extra)
