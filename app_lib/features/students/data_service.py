"""Student data access: the generic PynamoDB service, told which index serves which filter."""

from __future__ import annotations

from app_lib.common.data.pynamodb_data_service import IndexPlan, PynamoDataService
from app_lib.features.students.table import StudentTable


class StudentDataService(PynamoDataService[StudentTable]):
    model = StudentTable
    # Each filter is a Query on the index named for it (no filter: a Scan).
    index_plans = (IndexPlan(StudentTable.by_last_name, "last_name"),)
