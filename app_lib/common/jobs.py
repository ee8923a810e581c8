"""Job types: features register handlers here, the jobs feature runs them (features never
import each other)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

# Called by a handler with a percentage (0-100) as it goes.
Progress = Callable[[int], None]
Handler = Callable[[Any, Progress], dict[str, Any]]


@dataclass(frozen=True)
class JobType:
    """`params` validates the submitted params (a 422 before anything is queued); `handler`
    gets the validated params and a progress callback and returns a JSON-able result."""

    name: str
    params: type[BaseModel]
    handler: Handler


_types: dict[str, JobType] = {}


def register_job_type(name: str, params: type[BaseModel], handler: Handler) -> None:
    _types[name] = JobType(name, params, handler)


def job_types() -> dict[str, JobType]:
    return dict(_types)


def job_type(name: str) -> JobType | None:
    return _types.get(name)
