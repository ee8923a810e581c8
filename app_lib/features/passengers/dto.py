"""Passenger DTOs: what the API accepts and returns (Kaggle's fields, in snake case)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal, cast

from pydantic import BaseModel, Field, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from app_lib.common.dto import NOT_BLANK, DynamoStorable, JsonBool, Patch, StrictModel
from app_lib.features.passengers.table import PassengerTable


class _Named:
    """Annotated metadata: the type is one named schema of the document (`$ref`), wherever it is
    used (bodies, reads, query parameters). A generated client then has one type for it (the
    Python client one enum class, not one per model and field), so a read's value passes into a
    write as it is."""

    def __init__(self, name: str, description: str) -> None:
        self.name = name
        self.description = description

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        schema = handler(source)
        return cast(CoreSchema, {**schema, "ref": self.name})

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler.resolve_ref_schema(handler(schema))
        json_schema.update(title=self.name, description=self.description)
        return handler(schema)


PassengerId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", examples=["1"])]
Pclass = Annotated[int, Field(ge=1, le=3, description="ticket class: 1, 2 or 3")]
Sex = Annotated[Literal["male", "female"], _Named("Sex", "a passenger's sex, as recorded")]
Port = Annotated[
    Literal["C", "Q", "S"],
    _Named("Port", "port of embarkation: C = Cherbourg, Q = Queenstown, S = Southampton"),
]
Name = Annotated[str, Field(min_length=1, max_length=256, pattern=NOT_BLANK)]
# Bounds before DynamoStorable: the document then says minimum/maximum (see DynamoStorable).
Age = Annotated[float, Field(ge=0, le=150), DynamoStorable()]
Count = Annotated[int, Field(ge=0, le=50), DynamoStorable()]
Ticket = Annotated[str, Field(min_length=1, max_length=64, pattern=NOT_BLANK)]
Fare = Annotated[float, Field(ge=0, le=100_000), DynamoStorable()]
Cabin = Annotated[str, Field(min_length=1, max_length=64, pattern=NOT_BLANK)]


class PassengerFields(StrictModel):
    """Every field of a passenger but the id."""

    survived: JsonBool
    pclass: Annotated[Pclass, DynamoStorable()]  # Pclass alone is the query parameter's type
    name: Name
    sex: Sex
    age: Age | None = None
    sibsp: Count = 0
    parch: Count = 0
    ticket: Ticket | None = None
    fare: Fare | None = None
    cabin: Cabin | None = None
    embarked: Port | None = None

    def to_model(self, passenger_id: str) -> PassengerTable:
        values: dict[str, Any] = self.model_dump(exclude={"passenger_id"})
        values["survived"] = int(self.survived)
        return PassengerTable(passenger_id=passenger_id, **values)


class PassengerCreate(PassengerFields):
    """A new passenger; the server makes an id when none is given."""

    passenger_id: PassengerId | None = None


class PassengerReplace(PassengerFields):
    """A full replacement (PUT): every field; the ones left out go back to their defaults."""


class PassengerUpdate(Patch[PassengerFields]):
    """A partial update (PATCH): only the fields given change; null clears an optional one
    (age, ticket, fare, cabin, embarked); the others may be left out but not be null."""

    def changes(self) -> dict[str, Any]:
        """The given fields, as the table stores them."""
        values = super().changes()
        if values.get("survived") is not None:
            values["survived"] = int(values["survived"])
        return values


def _number(value: Decimal | float | int | None) -> float | None:
    return None if value is None else float(value)


class PassengerRead(BaseModel):
    """A passenger as stored; the same types as the bodies, so a read can be sent back (PUT)."""

    passenger_id: str
    survived: bool
    pclass: int
    name: str
    sex: Sex
    age: float | None
    sibsp: int
    parch: int
    ticket: str | None
    fare: float | None
    cabin: str | None
    embarked: Port | None

    @classmethod
    def from_model(cls, item: PassengerTable) -> PassengerRead:
        return cls(
            passenger_id=item.passenger_id,
            survived=bool(item.survived),
            pclass=int(item.pclass),
            name=item.name,
            sex=item.sex,
            age=_number(item.age),
            sibsp=int(item.sibsp or 0),
            parch=int(item.parch or 0),
            ticket=item.ticket,
            fare=_number(item.fare),
            cabin=item.cabin,
            embarked=item.embarked,
        )


class PassengerList(BaseModel):
    items: list[PassengerRead]


class SurvivalRate(BaseModel):
    survived: int
    total: int
    rate: float | None = Field(description="survived / total, 4 decimals; null when total is 0")


class PassengerStats(BaseModel):
    overall: SurvivalRate
    by_class: dict[str, SurvivalRate]
    by_sex: dict[str, SurvivalRate]
    by_class_and_sex: dict[str, dict[str, SurvivalRate]]
    by_embarked: dict[str, SurvivalRate] = Field(description="'unknown' for no recorded port")

    @classmethod
    def from_model(cls, stats: dict[str, Any]) -> PassengerStats:
        return cls.model_validate(stats)
