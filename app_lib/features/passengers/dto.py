"""Passenger DTOs: what the API accepts and returns (Kaggle's fields, in snake case)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app_lib.common.dto import DynamoNumber
from app_lib.features.passengers.table import PassengerTable

PassengerId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", examples=["1"])]
Pclass = Annotated[int, Field(ge=1, le=3, description="ticket class: 1, 2 or 3")]
Sex = Literal["male", "female"]
Port = Literal["C", "Q", "S"]
Name = Annotated[str, Field(min_length=1, max_length=256)]
Age = Annotated[DynamoNumber, Field(ge=0, le=150)]
Count = Annotated[int, Field(ge=0, le=50)]
Ticket = Annotated[str, Field(min_length=1, max_length=64)]
Fare = Annotated[DynamoNumber, Field(ge=0, le=100_000)]
Cabin = Annotated[str, Field(min_length=1, max_length=64)]

_STRICT = ConfigDict(extra="forbid", str_strip_whitespace=True)


class PassengerFields(BaseModel):
    """Every field of a passenger but the id."""

    model_config = _STRICT

    survived: bool
    pclass: Pclass
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


class PassengerUpdate(BaseModel):
    """A partial update (PATCH): only the fields given change; null clears an optional one."""

    model_config = _STRICT

    survived: bool | None = None
    pclass: Pclass | None = None
    name: Name | None = None
    sex: Sex | None = None
    age: Age | None = None
    sibsp: Count | None = None
    parch: Count | None = None
    ticket: Ticket | None = None
    fare: Fare | None = None
    cabin: Cabin | None = None
    embarked: Port | None = None

    @field_validator("survived", "pclass", "name", "sex", "sibsp", "parch")
    @classmethod
    def _required_not_null(cls, value: Any) -> Any:
        # Reached only when the field is given; these fields may change but never be cleared.
        if value is None:
            raise ValueError("may not be null")
        return value

    def changes(self) -> dict[str, Any]:
        """The given fields, as the table stores them."""
        values = self.model_dump(include=self.model_fields_set)
        if values.get("survived") is not None:
            values["survived"] = int(values["survived"])
        return values


def _number(value: Decimal | float | int | None) -> float | None:
    return None if value is None else float(value)


class PassengerRead(BaseModel):
    passenger_id: str
    survived: bool
    pclass: int
    name: str
    sex: str
    age: float | None
    sibsp: int
    parch: int
    ticket: str | None
    fare: float | None
    cabin: str | None
    embarked: str | None

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


class PassengerPage(BaseModel):
    items: list[PassengerRead]
    next_cursor: str | None = Field(
        description="pass as `cursor` for the next page; null at the end"
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
