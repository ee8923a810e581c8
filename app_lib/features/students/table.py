"""The students table: one item per student, keyed by student_id.

Each indexed field has a GSI (hash key: the field, range key: student_id), so that filtering on
it is a Query, not a Scan.
"""

from __future__ import annotations

from pynamodb.attributes import ListAttribute, NumberAttribute, UnicodeAttribute
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex

from app_lib.common.data.versioned_table import VersionedTable
from app_lib.common.util.pynamodb_util import PynamodbUtil


class ByLastNameIndex(GlobalSecondaryIndex["StudentTable"]):
    """Serves `?last_name=` as a Query, in student_id order."""

    class Meta:
        index_name = "by-last-name"
        projection = AllProjection()

    last_name = UnicodeAttribute(hash_key=True)
    student_id = NumberAttribute(range_key=True)


class StudentTable(VersionedTable):
    class Meta:
        table_name = PynamodbUtil.env_table_name("students")

    student_id = NumberAttribute(hash_key=True)
    first_name = UnicodeAttribute()
    last_name = UnicodeAttribute()
    grades = ListAttribute(of=NumberAttribute, default=list)

    by_last_name = ByLastNameIndex()
