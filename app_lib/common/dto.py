"""Types every feature's DTOs share: values DynamoDB can store and the API can render.

- `DynamoNumber`: a number a DynamoDB Number holds (0, or a magnitude from 1e-130 to
  9.9999999999999999999999999999999999999e125, at most 38 significant digits). Anything else
  would be refused by the database (or stored by a lenient emulator and break reads later).
- `JsonObject`: free-form JSON (a job's params, say): an object nested at most `MAX_JSON_DEPTH`
  levels (DynamoDB's limit for documents), whose strings and keys are valid Unicode.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import AfterValidator

# DynamoDB's Number: 38 significant digits, magnitudes 1E-130 .. 9.99..(38 digits)E+125.
DYNAMO_MIN = Decimal("1E-130")
DYNAMO_MAX = Decimal("9.9999999999999999999999999999999999999E+125")
DYNAMO_DIGITS = 38
# DynamoDB nests maps and lists at most 32 levels deep; free-form JSON follows the same rule.
MAX_JSON_DEPTH = 32

# A UTF-16 surrogate code point: never valid on its own in a JSON string the API stores.
_SURROGATE = re.compile("[\ud800-\udfff]")


def dynamo_number_problem(value: float | int | Decimal) -> str | None:
    """Why DynamoDB cannot store `value` as a Number, or None when it can."""
    if isinstance(value, float) and not math.isfinite(value):
        return "must be a finite number"
    try:
        # A float is sent as its shortest repr (PynamoDB's NumberAttribute uses json.dumps).
        number = value if isinstance(value, Decimal) else Decimal(repr(value))
    except (InvalidOperation, ValueError):
        return "must be a number"
    if not number.is_finite():
        return "must be a finite number"
    if number.is_zero():
        return None
    magnitude = number.copy_abs()  # exact (abs() would round to the context's 28 digits)
    if magnitude < DYNAMO_MIN or magnitude > DYNAMO_MAX:
        return "must be 0 or between 1e-130 and 9.99e125 in magnitude (DynamoDB's number range)"
    digits = "".join(map(str, number.as_tuple().digits)).strip("0")
    if len(digits) > DYNAMO_DIGITS:
        return f"has more than {DYNAMO_DIGITS} significant digits (DynamoDB's precision)"
    return None


def _dynamo_number(value: float) -> float:
    problem = dynamo_number_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


# A float field whose value DynamoDB can store; combine with Field(ge=..., le=...) as needed.
DynamoNumber = Annotated[float, AfterValidator(_dynamo_number)]


def has_surrogate(text: str) -> bool:
    """True when `text` holds a lone UTF-16 surrogate (cannot be encoded as UTF-8)."""
    return not text.isascii() and _SURROGATE.search(text) is not None


def json_problem(value: Any, max_depth: int = MAX_JSON_DEPTH) -> tuple[list[str | int], str] | None:
    """The first thing about a JSON value the API could not store or render, as (path, reason):
    nesting deeper than `max_depth` (the value itself is level 1), or a string or key with a
    lone surrogate. None when it is fine. Iterative: any depth is safe to check."""
    stack: list[tuple[Any, list[str | int], int]] = [(value, [], 1)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            if has_surrogate(item):
                return path, "contains a lone surrogate (not valid Unicode)"
        elif isinstance(item, dict | list):
            if depth > max_depth:
                return path, f"is nested deeper than {max_depth} levels"
            if isinstance(item, dict):
                for key, child in item.items():
                    if isinstance(key, str) and has_surrogate(key):
                        return path, "has a key with a lone surrogate (not valid Unicode)"
                    stack.append((child, [*path, str(key)], depth + 1))
            else:
                stack.extend((child, [*path, n], depth + 1) for n, child in enumerate(item))
    return None


def _json_object(value: dict[str, Any]) -> dict[str, Any]:
    found = json_problem(value)
    if found is not None:
        path, reason = found
        where = ".".join(str(part) for part in path)
        raise ValueError(f"{where} {reason}" if where else reason)
    return value


# Free-form JSON object: at most MAX_JSON_DEPTH levels deep, valid Unicode throughout.
JsonObject = Annotated[dict[str, Any], AfterValidator(_json_object)]


def renderable_json_object(value: Any) -> bool:
    """True when a stored value can be shown as a `JsonObject` (any row read back may not be:
    written by an older version, by hand, or by a lenient database)."""
    return isinstance(value, dict) and json_problem(value) is None
