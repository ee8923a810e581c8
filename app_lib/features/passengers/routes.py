"""Passenger endpoints under /api/v1/passengers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query, Response, status

from app_lib.common.dto import Page
from app_lib.common.errors import NotFoundError, require_found
from app_lib.common.http import Errors, Paging, Replying, Writing, problems, read_item
from app_lib.common.routing import GatedRouter
from app_lib.features.passengers.data_service import PassengerDataService
from app_lib.features.passengers.dto import (
    PassengerCreate,
    PassengerId,
    PassengerList,
    PassengerRead,
    PassengerReplace,
    PassengerStats,
    PassengerUpdate,
    Pclass,
    Port,
    Sex,
)
from app_lib.features.passengers.table import PassengerTable

router = GatedRouter(prefix="/passengers", tags=["passengers"])


async def get_passenger_service() -> PassengerDataService:
    # No I/O here: `async` saves a threadpool hop on every request. Whatever calls PynamoDB
    # (valid_passenger, the routes that write) stays a plain `def`, run in the threadpool.
    return PassengerDataService()


PassengerService = Annotated[PassengerDataService, Depends(get_passenger_service)]


def valid_passenger(passenger_id: PassengerId, service: PassengerService) -> PassengerTable:
    return require_found(service.get(passenger_id), f"no passenger {passenger_id}")


ValidPassenger = Annotated[PassengerTable, Depends(valid_passenger)]


@router.get("", response_model=Page[PassengerRead], responses=Errors.LIST)
def list_passengers(
    service: PassengerService,
    paging: Paging,
    pclass: Annotated[Pclass | None, Query()] = None,
    sex: Annotated[Sex | None, Query()] = None,
    survived: Annotated[bool | None, Query()] = None,
    embarked: Annotated[Port | None, Query()] = None,
) -> Page[PassengerRead]:
    """A page of passengers, optionally filtered; follow `next_cursor` for the next one."""
    page = service.page(
        paging.limit, paging.cursor, pclass=pclass, sex=sex, survived=survived, embarked=embarked
    )
    return Page.of(page, PassengerRead.from_model)


@router.get("/stats", response_model=PassengerStats, responses=problems())
def passenger_stats(service: PassengerService) -> PassengerStats:
    """Survival rates with their counts: overall, by class, sex, class and sex, and port."""
    return PassengerStats.from_model(service.stats())


# FastAPI tries a router's routes in order, twice a request (to match, then to handle): a
# route placed earlier is found sooner. `/stats` must precede `/{passenger_id}` (which would
# take "stats" for an id); `/by-ticket/...` need not (an id holds no slash).
@router.get(
    "/{passenger_id}", response_model=PassengerRead, responses={**Errors.READ, **Errors.ITEM}
)
async def get_passenger(passenger: ValidPassenger, response: Response) -> PassengerRead:
    """One passenger; the ETag header is its version, for If-Match on writes."""
    return read_item(response, passenger, PassengerRead.from_model)


@router.get("/by-ticket/{ticket:path}", response_model=PassengerList, responses=problems(404))
def passengers_by_ticket(
    ticket: Annotated[str, Path(min_length=1, max_length=64)], service: PassengerService
) -> PassengerList:
    """Every passenger on a ticket (tickets may contain slashes: `A/5 21171`)."""
    passengers = service.by_ticket(ticket)
    if not passengers:
        raise NotFoundError(f"no passenger has ticket {ticket!r}")
    return PassengerList(items=[PassengerRead.from_model(p) for p in passengers])


@router.post(
    "",
    status_code=201,
    response_model=PassengerRead,
    responses={**Errors.CREATE, **Errors.CREATED},
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {
                    "example": {
                        "survived": False,
                        "pclass": 3,
                        "name": "Braund, Mr. Owen Harris",
                        "sex": "male",
                        "age": 22,
                        "sibsp": 1,
                        "parch": 0,
                        "ticket": "A/5 21171",
                        "fare": 7.25,
                        "embarked": "S",
                    }
                }
            }
        }
    },
)
def create_passenger(
    body: PassengerCreate, service: PassengerService, reply: Replying
) -> PassengerRead:
    """Add a passenger (201 with Location); the server makes an id when none is given; 409
    when the id exists."""
    passenger = service.create(body.to_model(body.passenger_id or service.new_id()))
    return reply.created(passenger, PassengerRead.from_model, passenger.passenger_id)


@router.put(
    "/{passenger_id}", response_model=PassengerRead, responses={**Errors.WRITE, **Errors.ITEM}
)
def replace_passenger(
    body: PassengerReplace, passenger: ValidPassenger, service: PassengerService, write: Writing
) -> PassengerRead:
    """Replace every field of a passenger; If-Match guards against lost updates."""
    replaced = service.replace(passenger, body.to_model(passenger.passenger_id), write.version())
    return write.read(replaced, PassengerRead.from_model)


@router.patch(
    "/{passenger_id}",
    response_model=PassengerRead,
    responses={**Errors.WRITE, **Errors.ITEM},
    openapi_extra={"requestBody": {"content": {"application/json": {"example": {"age": 23}}}}},
)
def update_passenger(
    body: PassengerUpdate, passenger: ValidPassenger, service: PassengerService, write: Writing
) -> PassengerRead:
    """Change only the given fields, through DynamoDB update actions; null clears an optional
    one."""
    updated = service.update(passenger, body.changes(), write.version())
    return write.read(updated, PassengerRead.from_model)


@router.delete("/{passenger_id}", status_code=204, responses=Errors.DELETE)
def delete_passenger(
    passenger: ValidPassenger, service: PassengerService, write: Writing
) -> Response:
    """Delete a passenger (204); 404 when there is none."""
    if not service.remove(passenger, write.version()):
        raise NotFoundError(f"no passenger {passenger.passenger_id}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
