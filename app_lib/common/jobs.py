"""Job types: features register handlers here, the jobs feature runs them (features never
import each other)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

# Called by a handler with a percentage (0-100) as it goes.
Progress = Callable[[int], None]
# Gets the validated params and a progress callback; returns the result: an instance of the job
# type's result model, or a dict the worker validates against it.
Handler = Callable[[Any, Progress], BaseModel | dict[str, Any]]


@dataclass(frozen=True)
class JobType:
    """`params` validates the submitted params (a 422 before anything is queued); `handler`
    gets the validated params and a progress callback and returns the result, which must be
    valid for `result` (a job whose handler returns anything else fails, `invalid_result`).
    Both models appear in the OpenAPI document."""

    name: str
    params: type[BaseModel]
    handler: Handler
    result: type[BaseModel]


_types: dict[str, JobType] = {}


class DuplicateJobTypeError(ValueError):
    """Another handler already has this job type's name (a copied feature that kept it)."""


def register_job_type(
    name: str, params: type[BaseModel], handler: Handler, result: type[BaseModel]
) -> None:
    """Register a job type: its params model, its handler and its result model. The same
    registration again is harmless, another one under the same name is refused (it would
    silently replace the first feature's handler)."""
    new = JobType(name, params, handler, result)
    existing = _types.get(name)
    if existing is not None and existing != new:
        owner = getattr(existing.handler, "__module__", "another feature")
        raise DuplicateJobTypeError(f"job type {name!r} is already registered by {owner}")
    _types[name] = new


def job_types() -> dict[str, JobType]:
    return dict(_types)


def job_type(name: str) -> JobType | None:
    return _types.get(name)
