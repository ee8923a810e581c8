"""Types every feature's DTOs share: values DynamoDB can store and the API can render.

- `DynamoNumber`: a number a DynamoDB Number holds (0, or a magnitude from 1e-130 to
  9.9999999999999999999999999999999999999e125, at most 38 significant digits). Anything else
  would be refused by the database (or stored by a lenient emulator and break reads later).
  With bounds of its own: `Annotated[float, Field(ge=0, le=150), DynamoStorable()]` (see there);
  for an int, `Annotated[int, Field(ge=0), DynamoStorable()]`. Never true or false.
- `JsonBool`: a boolean that is never a number (0, 1).
- `JsonObject`: free-form JSON (a job's params, say): an object nested at most `MAX_JSON_DEPTH`
  levels (DynamoDB's limit for documents), whose strings and keys are valid Unicode.
- `Patch[XFields]`: the PATCH body of a feature, derived from its fields model.
- `StrictModel`: the base of request bodies; `Page[XRead]`: every listing's response.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, ClassVar, Generic, TypeVar, Union, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    create_model,
    field_validator,
)
from pydantic.fields import FieldInfo
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from app_lib.common.data.abstract_data_service import Page as DataPage

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


def _largest_float() -> float:
    """The largest float DynamoDB stores (float(DYNAMO_MAX) is 1e126: one too far)."""
    value = float(DYNAMO_MAX)
    while dynamo_number_problem(value) is not None:
        value = math.nextafter(value, 0.0)
    return value


DYNAMO_MAX_FLOAT = _largest_float()
DYNAMO_MIN_FLOAT = float(DYNAMO_MIN)


def _json_number(value: Any) -> Any:
    # JSON's true/false are not numbers (pydantic's lax mode would read them as 1 and 0).
    if isinstance(value, bool):
        raise ValueError("must be a number, not true or false")
    return value


def _json_boolean(value: Any) -> Any:
    # JSON's numbers are not booleans (pydantic's lax mode would read 0 and 1 as false and true).
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        raise ValueError("must be true or false, not a number")
    return value


class DynamoStorable:
    """Annotated metadata for a number of a request body (int or float): DynamoDB must be able
    to store it, and it must be a number, not true/false (else a 422).

    Put it LAST, after any bounds: `Annotated[float, Field(ge=0, le=150), DynamoStorable()]`.
    Bounds given before it constrain the number itself, so the document says `minimum` and
    `maximum`. Bounds given after it (`Annotated[DynamoNumber, Field(ge=0)]`) would still be
    enforced, but pydantic cannot attach them to a validated type and documents them as bare
    `"ge"`/`"le"` keys, which JSON Schema ignores (tests/test_openapi.py refuses such keys).

    The document also gets what else about DynamoDB's range is expressible: the overall
    magnitude as `minimum`/`maximum` (when no tighter bounds are given), and, for floats, `not`
    for the magnitudes between 0 and 1e-130. (38 significant digits is never the limit for a
    float; an int with more digits is refused but not documented.)
    """

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        checked = core_schema.no_info_after_validator_function(_dynamo_number, handler(source))
        return core_schema.no_info_before_validator_function(_json_number, checked)

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        low = _bound(json_schema, "minimum", -DYNAMO_MAX_FLOAT, max)
        high = _bound(json_schema, "maximum", DYNAMO_MAX_FLOAT, min)
        if json_schema.get("type") != "number":
            return json_schema  # no integer lies between 0 and 1e-130
        # Too small a magnitude for DynamoDB, on whichever side of 0 the range reaches.
        tiny = []
        if high > 0:
            tiny.append({"exclusiveMinimum": 0, "exclusiveMaximum": DYNAMO_MIN_FLOAT})
        if low < 0:
            tiny.append({"exclusiveMinimum": -DYNAMO_MIN_FLOAT, "exclusiveMaximum": 0})
        if tiny:
            json_schema["not"] = tiny[0] if len(tiny) == 1 else {"anyOf": tiny}
        return json_schema


def _bound(
    json_schema: JsonSchemaValue, key: str, limit: float, tighter: Callable[[float, float], float]
) -> float:
    """Set `key` to the tighter of its value and DynamoDB's `limit`; return it."""
    value = json_schema.get(key)
    if not isinstance(value, int | float) or tighter(value, limit) != value:
        json_schema[key] = value = limit
    return value


# A float field whose value DynamoDB can store (with bounds: see DynamoStorable).
DynamoNumber = Annotated[float, DynamoStorable()]
# A boolean of a request body: true or false, not 0 or 1. (Strings such as "true" are still read,
# as pydantic does: data files send every value as text.)
JsonBool = Annotated[bool, BeforeValidator(_json_boolean)]


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


# ----- bodies and pages -------------------------------------------------------------------------


# Ready-made field types for features: a line of text, and ids (a Number id is at most 2^53 - 1
# so that JavaScript clients read it exactly; a String id is a URL-safe token).
# Text is stripped of surrounding white space (StrictModel), so it must hold something else. Not
# `\S`: the strip (Rust's White_Space) removes U+0085 that JSON Schema's ECMA `\s` does not count,
# and ECMA counts U+FEFF that the strip keeps; this class means the same in both.
NOT_BLANK = r"[^\s\u0085\ufeff]"
Text = Annotated[str, Field(min_length=1, max_length=256, pattern=NOT_BLANK)]
IntId = Annotated[int, Field(ge=1, le=2**53 - 1, examples=[3098390])]
StrId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", examples=["1"])]


class StrictModel(BaseModel):
    """Base of request bodies: an unknown field is a 422 (a typo never passes silently), and
    text is stripped of surrounding white space."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


ReadT = TypeVar("ReadT", bound=BaseModel)
ItemT = TypeVar("ItemT")


class Page(BaseModel, Generic[ReadT]):
    """One page of a listing: `response_model=Page[XRead]`."""

    items: list[ReadT]
    next_cursor: str | None = Field(
        description="pass as `cursor` for the next page; null at the end"
    )

    @classmethod
    def of(cls, page: DataPage[ItemT], to_dto: Callable[[ItemT], ReadT]) -> Page[ReadT]:
        """The DTO of a data service's page: `Page.of(service.page(...), XRead.from_model)`."""
        return Page[ReadT](
            items=[to_dto(item) for item in page.items], next_cursor=page.next_cursor
        )


# ----- PATCH bodies ------------------------------------------------------------------------------

FieldsT = TypeVar("FieldsT", bound=BaseModel)
_PATCHES: dict[tuple[type[BaseModel], type[BaseModel]], type[BaseModel]] = {}


def _not_null(value: Any) -> Any:
    if value is None:
        raise ValueError("may not be null")
    return value


def _no_default(json_schema: dict[str, Any]) -> None:
    # Leaving a field out changes nothing: there is no default to document (and a `null`
    # default would contradict a non-nullable type).
    json_schema.pop("default", None)


def _nullable(annotation: Any) -> bool:
    if annotation is None or annotation is type(None) or annotation is Any:
        return True
    if get_origin(annotation) is Annotated:
        return _nullable(get_args(annotation)[0])
    if get_origin(annotation) is Union or type(annotation).__name__ == "UnionType":
        return any(_nullable(arg) for arg in get_args(annotation))
    return False


def _patch_field(info: FieldInfo) -> tuple[Any, FieldInfo]:
    """The PATCH version of a field: optional (left out = unchanged); null only when the fields
    model allows null (null = clear it); otherwise null is a 422 "may not be null"."""
    described = info.asdict()
    attributes = {
        key: value
        for key, value in described["attributes"].items()
        if key not in ("default", "default_factory", "json_schema_extra")
    }
    annotation = info.rebuild_annotation()  # the type with its constraints (Annotated)
    if _nullable(described["annotation"]):
        return annotation, Field(None, **attributes)
    return (
        Annotated[annotation, BeforeValidator(_not_null)],
        Field(None, json_schema_extra=_no_default, **attributes),
    )


class Patch(BaseModel, Generic[FieldsT]):
    """A PATCH body derived from a feature's fields model: `class XUpdate(Patch[XFields])`.

    Every field of `XFields` may be left out (unchanged). A field `XFields` allows to be null may
    be null (cleared: `changes()` has it as None, which the data layer REMOVEs); a field it does
    not allow to be null is a 422 "may not be null" when sent as null, and its schema says so
    (not nullable, no default). Types, bounds, descriptions, the model's config (extra="forbid")
    and its field validators are those of `XFields`; its model validators are not carried (they
    check a whole item, which a patch is not).

    Why a generic base class, not a factory function: a feature needs a class of its own (a name
    in the document, methods such as a `changes()` that converts), mypy --strict accepts
    `Patch[XFields]` as a base class but refuses a call (`class X(make_patch(XFields))` is a
    "dynamic base class"), and `XUpdate = make_patch(XFields)` would not be usable as a type.
    `Patch[XFields]` builds (once) the derived model with `create_model`, as pydantic documents
    for derived models; the subclass inherits its fields. Statically a patch's fields are
    unknown: read them through `changes()`.
    """

    fields_model: ClassVar[type[BaseModel]]

    def __class_getitem__(cls, fields: Any) -> type[BaseModel]:
        if not (isinstance(fields, type) and issubclass(fields, BaseModel)):
            raise TypeError(f"Patch[...] takes a pydantic model, not {fields!r}")
        derived = _PATCHES.get((cls, fields))
        if derived is None:
            validators: dict[str, Any] = {
                name: field_validator(
                    *decorator.info.fields, mode=decorator.info.mode, check_fields=False
                )(getattr(decorator.func, "__func__", decorator.func))
                for name, decorator in fields.__pydantic_decorators__.field_validators.items()
            }
            config: dict[str, Any] = dict(fields.model_config)
            definitions: dict[str, Any] = {
                name: _patch_field(info) for name, info in fields.model_fields.items()
            }
            derived = create_model(
                f"{fields.__name__}Patch",
                __base__=cls,
                __module__=fields.__module__,
                __validators__=validators,
                __cls_kwargs__=config,
                **definitions,
            )
            derived.fields_model = fields
            _PATCHES[(cls, fields)] = derived
        return derived

    def changes(self) -> dict[str, Any]:
        """The fields the client sent, with their values (None: clear the field)."""
        return self.model_dump(include=self.model_fields_set)
