"""Student endpoints under /api/v1/students."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query, Response

from app_lib.common.data.abstract_data_service import AbstractDataService
from app_lib.common.dto import Page
from app_lib.common.errors import NotFoundError, require_found
from app_lib.common.http import Errors, Paging, Replying, Writing, problems, read_item
from app_lib.common.routing import GatedRouter
from app_lib.features.students.data_service import StudentDataService
from app_lib.features.students.dto import (
    MAX_GRADES,
    GradeCreate,
    StudentCreate,
    StudentId,
    StudentRead,
    StudentReplace,
    StudentUpdate,
)
from app_lib.features.students.table import StudentTable

router = GatedRouter(prefix="/students", tags=["students"])


async def get_student_service() -> AbstractDataService[StudentTable]:
    # No I/O: `async` saves a threadpool hop. Routes that call the database are plain `def`.
    return StudentDataService()


StudentService = Annotated[AbstractDataService[StudentTable], Depends(get_student_service)]


def valid_student(student_id: StudentId, service: StudentService) -> StudentTable:
    return require_found(service.get(student_id), f"no student {student_id}")


ValidStudent = Annotated[StudentTable, Depends(valid_student)]


@router.get("", response_model=Page[StudentRead], responses=Errors.LIST)
def list_students(
    service: StudentService, paging: Paging, last_name: Annotated[str | None, Query()] = None
) -> Page[StudentRead]:
    """A page of students; follow `next_cursor` for the next one.

    Filters, each a Query on its index: `last_name`.
    """
    page = service.page(paging.limit, paging.cursor, last_name=last_name)
    return Page.of(page, StudentRead.from_model)


@router.get("/{student_id}", response_model=StudentRead, responses={**Errors.READ, **Errors.ITEM})
async def get_student(student: ValidStudent, response: Response) -> StudentRead:
    """One student; the ETag header is its version, for If-Match on writes."""
    return read_item(response, student, StudentRead.from_model)


@router.post(
    "", status_code=201, response_model=StudentRead, responses={**Errors.CREATE, **Errors.CREATED}
)
def create_student(body: StudentCreate, service: StudentService, reply: Replying) -> StudentRead:
    """Add a student (201 with Location); 409 when the id exists."""
    student = service.create(body.to_model(body.student_id))
    return reply.created(student, StudentRead.from_model, int(student.student_id))


@router.put("/{student_id}", response_model=StudentRead, responses={**Errors.WRITE, **Errors.ITEM})
def replace_student(
    body: StudentReplace, student: ValidStudent, service: StudentService, write: Writing
) -> StudentRead:
    """Replace every field; If-Match guards against lost updates."""
    replaced = service.replace(student, body.to_model(int(student.student_id)), write.version())
    return write.read(replaced, StudentRead.from_model)


@router.patch(
    "/{student_id}", response_model=StudentRead, responses={**Errors.WRITE, **Errors.ITEM}
)
def update_student(
    body: StudentUpdate, student: ValidStudent, service: StudentService, write: Writing
) -> StudentRead:
    """Change only the given fields, through DynamoDB update actions."""
    updated = service.update(student, body.changes(), write.version())
    return write.read(updated, StudentRead.from_model)


@router.delete("/{student_id}", status_code=204, responses=Errors.DELETE)
def delete_student(student: ValidStudent, service: StudentService, write: Writing) -> Response:
    """Delete a student (204); 404 when there is none."""
    if not service.remove(student, write.version()):
        raise NotFoundError(f"no student {student.student_id}")
    return Response(status_code=204)


@router.post(
    "/{student_id}/grades",
    response_model=StudentRead,
    responses={**problems(404, 409, 422), **Errors.ITEM},
)
def add_grade(
    body: GradeCreate, student: ValidStudent, service: StudentService, reply: Replying
) -> StudentRead:
    """Append a grade in one UpdateItem (list_append): racing appends all land."""
    updated = service.append(student, "grades", [body.grade], MAX_GRADES)
    return reply.read(updated, StudentRead.from_model)


@router.delete(
    "/{student_id}/grades/{index}",
    response_model=StudentRead,
    responses={**Errors.DELETE, **Errors.ITEM},
)
def remove_grade(
    index: Annotated[int, Path(ge=0, lt=MAX_GRADES)],
    student: ValidStudent,
    service: StudentService,
    write: Writing,
) -> StudentRead:
    """Remove the grade at `index` (REMOVE grades[i], on condition that it exists); 404 if none."""
    updated = service.remove_at(student, "grades", index, write.version())
    return write.read(updated, StudentRead.from_model)
