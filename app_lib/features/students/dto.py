"""Student DTOs: the bodies the API accepts and the student it returns."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from app_lib.common.dto import DynamoStorable, IntId, Patch, StrictModel, Text
from app_lib.features.students.table import StudentTable

StudentId = IntId


class StudentFields(StrictModel):
    """Every field of a student but the id."""

    first_name: Text
    last_name: Text
    grades: list[Annotated[int, DynamoStorable()]] = Field(default_factory=list, max_length=1000)

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

    @classmethod
    def from_model(cls, item: StudentTable) -> StudentRead:
        return cls.model_validate(item, from_attributes=True)
