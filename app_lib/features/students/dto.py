"""Student DTOs: the bodies the API accepts and the student it returns."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, computed_field

from app_lib.common.dto import DynamoStorable, IntId, Patch, StrictModel, Text
from app_lib.features.students.table import StudentTable

StudentId = IntId
Grade = Annotated[int, Field(ge=0, le=100), DynamoStorable()]
# 1000 grades keep a student far below DynamoDB's 400 KB item limit: a longer list is a 422
# before any write, and an append beyond it a 409 (checked by the database at the write).
MAX_GRADES = 1000


class StudentFields(StrictModel):
    """Every field of a student but the id."""

    first_name: Text
    last_name: Text
    grades: list[Grade] = Field(default_factory=list, max_length=MAX_GRADES)

    def to_model(self, student_id: int) -> StudentTable:
        values = self.model_dump(exclude={"student_id"})  # a create body holds the id too
        return StudentTable(student_id=student_id, **values)


class StudentCreate(StudentFields):
    """A new student."""

    student_id: StudentId


class StudentReplace(StudentFields):
    """A full replacement (PUT): every field; those left out go back to their defaults."""


class StudentUpdate(Patch[StudentFields]):
    """A partial update (PATCH): only the fields given change."""


class StudentRead(BaseModel):
    """A student as stored, in the types of the bodies (a read can be sent back as a PUT)."""

    student_id: int
    first_name: str
    last_name: str
    grades: list[int]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def average(self) -> float | None:
        """The mean of the grades, 2 decimals; null when there are none."""
        return round(sum(self.grades) / len(self.grades), 2) if self.grades else None

    @classmethod
    def from_model(cls, item: StudentTable) -> StudentRead:
        return cls.model_validate(item, from_attributes=True)


class GradeCreate(StrictModel):
    """One grade to append."""

    grade: Grade
