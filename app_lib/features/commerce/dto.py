"""Commerce DTOs: products, users and orders as the API takes and returns them.

Money is a decimal with at most two places, taken as a JSON number or a decimal string
("10.50") and always returned as a decimal string with two places ("10.50"): a JSON number
would be read as a binary float by most clients.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
)
from pydantic.json_schema import WithJsonSchema

from app_lib.common.dto import NOT_BLANK, DynamoStorable, JsonBool, Patch, StrictModel, StrId
from app_lib.features.commerce.money import to_cents
from app_lib.features.commerce.service import MAX_LINES
from app_lib.features.commerce.table import (
    KEY_TEXT,
    OrderLineRecord,
    OrderRecord,
    ProductRecord,
    UserRecord,
)


def _json_amount(value: Any) -> Any:
    """A JSON number arrives as a binary float: read it as the cent amount it stands for.

    A client that computes 0.1 + 0.2 sends 0.30000000000000004 and means 0.30, so a float within
    two units in the last place of a cent amount is that amount; any other float keeps its
    digits (and more than two places is then refused). Strings are exact and taken as written.
    """
    if isinstance(value, bool):
        raise ValueError("must be an amount, not true or false")
    if isinstance(value, float) and math.isfinite(value):
        cents = to_cents(Decimal(repr(value)))
        if abs(float(cents) - value) <= 2 * math.ulp(value):
            return cents
        return Decimal(repr(value))
    return value


MAX_AMOUNT = Decimal(1_000_000)


def _amount(value: Decimal) -> Decimal:
    if not value.is_finite():
        raise ValueError("must be a finite amount")
    if not 0 <= value < MAX_AMOUNT:
        raise ValueError(f"must be at least 0 and below {MAX_AMOUNT}")
    if value != to_cents(value):
        raise ValueError("has more than two decimal places")
    return value


# What a client sends: >= 0, below a million, at most two places; a number or a decimal string.
# (The bounds are checked by _amount and documented with JSON Schema's own keywords.)
Money = Annotated[
    Decimal,
    BeforeValidator(_json_amount),
    AfterValidator(_amount),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0, "exclusiveMaximum": 1_000_000, "multipleOf": 0.01},
                {"type": "string", "pattern": r"^[0-9]{1,6}(\.[0-9]{1,2})?$"},
            ],
            "examples": ["10.00"],
        }
    ),
]
# What the API returns: always a string with two places.
MoneyText = Annotated[
    Decimal,
    PlainSerializer(lambda value: str(to_cents(value)), return_type=str),
    Field(examples=["25.10"]),
]
Stock = Annotated[int, Field(ge=0, le=1_000_000_000), DynamoStorable()]
Quantity = Annotated[int, Field(ge=1, le=1_000_000), DynamoStorable()]
# Names are sorted and prefix-searched through keys of at most KEY_TEXT folded characters.
Name = Annotated[str, Field(min_length=1, max_length=KEY_TEXT, pattern=NOT_BLANK)]
Category = Annotated[
    str, Field(min_length=1, max_length=64, pattern=NOT_BLANK, examples=["pantry"])
]
Email = Annotated[
    str,
    Field(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", examples=["ada@example.com"]),
]
UserStatus = Literal["active", "inactive"]
OrderStatus = Literal["pending", "paid", "shipped", "cancelled"]
ProductId = StrId
UserId = StrId
OrderId = StrId


class ReadModel(BaseModel):
    """Base of what the API returns: built from a record's attributes (`XRead.from_model`)."""

    model_config = ConfigDict(from_attributes=True)

    @classmethod
    def from_model(cls, record: Any) -> Self:
        return cls.model_validate(record)


# ----- products --------------------------------------------------------------------------------


class ProductFields(StrictModel):
    """Every field of a product but its id."""

    name: Name
    category: Category
    price: Money
    is_taxable: JsonBool = True
    stock: Stock = 0
    description: Annotated[str, Field(max_length=2000)] = ""

    def to_record(self, product_id: str) -> ProductRecord:
        values = self.model_dump(exclude={"product_id"})
        return ProductRecord(product_id=product_id, **values)


class ProductCreate(ProductFields):
    """A new product; the server makes an id when none is given."""

    product_id: ProductId | None = None


class ProductUpdate(Patch[ProductFields]):
    """The fields to change (PATCH); `stock` too (a restock), conditional on the ETag read."""


class ProductRead(ReadModel):
    product_id: str
    name: str
    category: str
    price: MoneyText
    is_taxable: bool
    stock: int
    description: str


# ----- users -------------------------------------------------------------------------------


class UserFields(StrictModel):
    """Every field of a user but its id."""

    first_name: Name
    last_name: Name
    email: Email
    status: UserStatus = "active"

    def to_record(self, user_id: str) -> UserRecord:
        return UserRecord(user_id=user_id, **self.model_dump(exclude={"user_id"}))


class UserCreate(UserFields):
    """A new user: 409 when another user has the email (in any case)."""

    user_id: UserId | None = None


class UserUpdate(Patch[UserFields]):
    """The fields to change (PATCH); a new email must be free (409 otherwise)."""


class UserRead(ReadModel):
    user_id: str
    first_name: str
    last_name: str
    email: str
    status: UserStatus


# ----- orders ------------------------------------------------------------------------------


class OrderLineCreate(StrictModel):
    product_id: ProductId
    quantity: Quantity


class OrderCreate(StrictModel):
    """A new order: products and quantities; the prices are the products' own."""

    user_id: UserId
    items: list[OrderLineCreate] = Field(min_length=1, max_length=MAX_LINES)

    @field_validator("items")
    @classmethod
    def _each_product_once(cls, items: list[OrderLineCreate]) -> list[OrderLineCreate]:
        # One transaction may not touch an item twice: a product is one line with its quantity.
        seen: set[str] = set()
        for line in items:
            if line.product_id in seen:
                raise ValueError(f"product {line.product_id} is on two lines: give it once")
            seen.add(line.product_id)
        return items


class OrderStatusChange(StrictModel):
    """The next status: pending -> paid -> shipped (cancel with POST .../cancel)."""

    status: OrderStatus


class OrderItemRead(ReadModel):
    product_id: str
    quantity: int
    unit_price: MoneyText
    line_total: MoneyText


class OrderSummary(ReadModel):
    """An order without its items (the user's order listing)."""

    order_id: str
    user_id: str
    status: OrderStatus
    subtotal: MoneyText
    tax_total: MoneyText
    total: MoneyText
    created_utc: str


class OrderRead(OrderSummary):
    """An order with its items."""

    items: list[OrderItemRead]

    @classmethod
    def of(cls, order: OrderRecord, lines: list[OrderLineRecord]) -> OrderRead:
        fields = {name: getattr(order, name) for name in OrderSummary.model_fields}
        return cls(**fields, items=[OrderItemRead.from_model(line) for line in lines])
