"""Passenger endpoints under /api/v1/passengers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status

from app_lib.common.errors import NotFoundError
from app_lib.common.http import Cursor, IfMatch, Limit, expected_version, problems, set_etag
from app_lib.features.passengers.data_service import PassengerDataService
from app_lib.features.passengers.dto import (
    PassengerCreate,
    PassengerId,
    PassengerList,
    PassengerPage,
    PassengerRead,
    PassengerReplace,
    PassengerStats,
    PassengerUpdate,
    Pclass,
    Port,
    Sex,
)
from app_lib.features.passengers.table import PassengerTable

router = APIRouter(prefix="/passengers", tags=["passengers"])


async def get_passenger_service() -> PassengerDataService:
    # No I/O here: `async` saves a threadpool hop on every request. Whatever calls PynamoDB
    # (valid_passenger, the routes that write) stays a plain `def`, run in the threadpool.
    return PassengerDataService()


PassengerService = Annotated[PassengerDataService, Depends(get_passenger_service)]


def valid_passenger(
    passenger_id: Annotated[PassengerId, Path()], service: PassengerService
) -> PassengerTable:
    passenger = service.get(passenger_id)
    if passenger is None:
        raise NotFoundError(f"no passenger {passenger_id}")
    return passenger


ValidPassenger = Annotated[PassengerTable, Depends(valid_passenger)]


def _read(response: Response, passenger: PassengerTable) -> PassengerRead:
    set_etag(response, passenger.version)
    return PassengerRead.from_model(passenger)


@router.get("", response_model=PassengerPage, responses=problems(400, 422))
def list_passengers(
    service: PassengerService,
    limit: Limit = 100,
    cursor: Cursor = None,
    pclass: Annotated[Pclass | None, Query()] = None,
    sex: Annotated[Sex | None, Query()] = None,
    survived: Annotated[bool | None, Query()] = None,
    embarked: Annotated[Port | None, Query()] = None,
) -> PassengerPage:
    """A page of passengers, optionally filtered; follow `next_cursor` for the next one."""
    page = service.page(limit, cursor, pclass=pclass, sex=sex, survived=survived, embarked=embarked)
    items = [PassengerRead.from_model(item) for item in page.items]
    return PassengerPage(items=items, next_cursor=page.next_cursor)


@router.get("/stats", response_model=PassengerStats, responses=problems())
def passenger_stats(service: PassengerService) -> PassengerStats:
    """Survival rates with their counts: overall, by class, sex, class and sex, and port."""
    return PassengerStats.from_model(service.stats())


@router.get("/by-ticket/{ticket:path}", response_model=PassengerList, responses=problems(404))
def passengers_by_ticket(
    ticket: Annotated[str, Path(min_length=1, max_length=64)], service: PassengerService
) -> PassengerList:
    """Every passenger on a ticket (tickets may contain slashes: `A/5 21171`)."""
    passengers = service.by_ticket(ticket)
    if not passengers:
        raise NotFoundError(f"no passenger has ticket {ticket!r}")
    return PassengerList(items=[PassengerRead.from_model(p) for p in passengers])


@router.get("/{passenger_id}", response_model=PassengerRead, responses=problems(404, 422))
async def get_passenger(passenger: ValidPassenger, response: Response) -> PassengerRead:
    """One passenger; the ETag header is its version, for If-Match on writes."""
    return _read(response, passenger)


@router.post(
    "",
    response_model=PassengerRead,
    status_code=status.HTTP_201_CREATED,
    responses=problems(409, 413, 422),
)
def create_passenger(
    body: PassengerCreate, service: PassengerService, request: Request, response: Response
) -> PassengerRead:
    """Add a passenger (201 with Location); 409 when the id exists."""
    passenger = body.to_model(body.passenger_id or service.new_id())
    service.create(passenger)
    response.headers["Location"] = str(
        request.url_for("get_passenger", passenger_id=passenger.passenger_id).path
    )
    return _read(response, passenger)


@router.put(
    "/{passenger_id}", response_model=PassengerRead, responses=problems(404, 412, 413, 422, 428)
)
def replace_passenger(
    body: PassengerReplace,
    passenger: ValidPassenger,
    service: PassengerService,
    if_match: IfMatch,
    response: Response,
) -> PassengerRead:
    """Replace every field of a passenger; If-Match guards against lost updates."""
    replacement = body.to_model(passenger.passenger_id)
    service.replace(passenger, replacement, expected_version(if_match))
    return _read(response, replacement)


@router.patch(
    "/{passenger_id}", response_model=PassengerRead, responses=problems(404, 412, 413, 422, 428)
)
def update_passenger(
    body: PassengerUpdate,
    passenger: ValidPassenger,
    service: PassengerService,
    if_match: IfMatch,
    response: Response,
) -> PassengerRead:
    """Change only the given fields, through DynamoDB update actions."""
    updated = service.update(passenger, body.changes(), expected_version(if_match))
    return _read(response, updated)


@router.delete(
    "/{passenger_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problems(404, 412, 422, 428),
)
def delete_passenger(
    passenger: ValidPassenger, service: PassengerService, if_match: IfMatch
) -> Response:
    """Delete a passenger (204); 404 when there is none."""
    if not service.remove(passenger, expected_version(if_match)):
        raise NotFoundError(f"no passenger {passenger.passenger_id}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
