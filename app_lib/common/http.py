"""HTTP pieces every feature's routes share: ETags, If-Match, page parameters, problem responses,
and how the document describes them (`problems()`, `Errors`, `RESPONSE_HEADERS`)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Protocol, TypeVar
from urllib.parse import quote

from fastapi import Depends, Header, Query, Request, Response
from pydantic import WithJsonSchema

from app_lib.common.config import get_settings
from app_lib.common.errors import PreconditionFailedError, PreconditionRequiredError
from app_lib.common.problems import Problem, ValidationProblem, problem_body, problem_response

_ETAG = re.compile(r'^(?:W/)?"([0-9]+)"$')
# More digits than any version this API hands out (versions count writes): such an ETag can only
# be stale. (Also keeps int() far from Python's limit on digits in a string.)
_MAX_VERSION_DIGITS = 18


def etag(version: int | None) -> str:
    return f'"{version or 0}"'


def set_etag(response: Response, version: int | None) -> None:
    response.headers["ETag"] = etag(version)


class IfMatchAny:
    """`If-Match: *`: any current version will do."""


class IfMatchRefused:
    """An If-Match this write cannot honour (malformed, or missing when it is required): the
    412/428 to answer, raised by `expected_version()` in the route, that is after FastAPI has
    validated path, query and body. RFC 9110 13.2.1: a server evaluates preconditions after
    its usual request checks, so an invalid path or body is a 422 whatever the If-Match."""

    def __init__(self, error: PreconditionFailedError | PreconditionRequiredError) -> None:
        self.error = error


_IF_MATCH_DESCRIPTION = (
    "the ETag of the version you read (or `*`): the write happens only if the item still has "
    "that version, else 412. Leave the header out to write whatever the version."
)
# An optional header is absent or a string, never null: the document says `string` (not
# `anyOf [string, null]`), so a generated client leaves it out when it is not given instead of
# sending `None`.
IfMatchHeader = Annotated[
    str | None,
    Header(alias="If-Match", description=_IF_MATCH_DESCRIPTION),
    WithJsonSchema({"type": "string", "description": _IF_MATCH_DESCRIPTION}),
]


async def _if_match(if_match: IfMatchHeader = None) -> int | IfMatchAny | IfMatchRefused | None:
    """Parse If-Match; never raises (see IfMatchRefused)."""
    if if_match is None:
        if get_settings().require_if_match:
            return IfMatchRefused(
                PreconditionRequiredError("this write needs an If-Match header with the ETag")
            )
        return None
    if if_match.strip() == "*":
        return IfMatchAny()
    versions = []
    for part in if_match.split(","):
        match = _ETAG.match(part.strip())
        if not match:
            return IfMatchRefused(
                PreconditionFailedError(
                    f"If-Match {_shorten(part.strip())} is not an ETag of this API"
                )
            )
        digits = match.group(1).lstrip("0") or "0"
        if len(digits) > _MAX_VERSION_DIGITS:
            return IfMatchRefused(
                PreconditionFailedError("If-Match names a version that is not current")
            )
        versions.append(int(digits))
    if len(versions) != 1:
        return IfMatchRefused(PreconditionFailedError("If-Match must name exactly one ETag"))
    return versions[0]


def _shorten(text: str, limit: int = 64) -> str:
    """A header value quoted for a message, cut short (a client may send kilobytes)."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def expected_version(value: int | IfMatchAny | IfMatchRefused | None) -> int | None:
    """The version a write must find (None: any); raises the 412/428 of a refused If-Match.
    Every route that takes `IfMatch` calls it before it writes."""
    if isinstance(value, IfMatchRefused):
        raise value.error
    return value if isinstance(value, int) else None


IfMatch = Annotated[int | IfMatchAny | IfMatchRefused | None, Depends(_if_match)]


class Versioned(Protocol):
    @property
    def version(self) -> int | None: ...


ItemT = TypeVar("ItemT", bound=Versioned)
ReadT = TypeVar("ReadT")


def read_item(response: Response, item: ItemT, to_dto: Callable[[ItemT], ReadT]) -> ReadT:
    """A read of one item: its ETag (the version, for If-Match) on `response`, and its DTO.
    A GET route takes `response: Response`, which FastAPI hands over as it is (a `Replying`
    would be one more dependency to solve: ~13 us of CPU a request, ~1% of a read)."""
    set_etag(response, item.version)
    return to_dto(item)


class Reply:
    """The headers of a route that returns one item: its ETag (the version, for If-Match), and
    for a create its Location. `reply.read(item, XRead.from_model)` returns the DTO."""

    def __init__(self, request: Request, response: Response) -> None:
        self.request = request
        self.response = response

    def read(self, item: ItemT, to_dto: Callable[[ItemT], ReadT]) -> ReadT:
        return read_item(self.response, item, to_dto)

    def created(self, item: ItemT, to_dto: Callable[[ItemT], ReadT], id: str | int) -> ReadT:
        """`read()`, plus `Location`: this collection's URL (the POST's) with the new id."""
        collection = self.request.url.path.rstrip("/")
        self.response.headers["Location"] = f"{collection}/{quote(str(id), safe='')}"
        return self.read(item, to_dto)


class Write(Reply):
    """A `Reply` for a write that honours If-Match: `write.version()` is the version the item
    must still have (None: any); it raises the 412/428 of a malformed or missing If-Match."""

    def __init__(self, request: Request, response: Response, if_match: IfMatch) -> None:
        super().__init__(request, response)
        self.if_match = if_match

    def version(self) -> int | None:
        return expected_version(self.if_match)


async def _reply(request: Request, response: Response) -> Reply:
    return Reply(request, response)


async def _write(request: Request, response: Response, if_match: IfMatch) -> Write:
    return Write(request, response, if_match)


# These dependencies do no I/O, so they are `async def`: FastAPI runs a plain `def` dependency in
# its threadpool, a thread hop per dependency per request (measured: 0.12-0.15 ms of CPU each).
# Route parameters: `reply: Replying` for creates (and other POSTs that return the item),
# `write: Writing` for writes of an existing item (PUT, PATCH, DELETE): it adds the If-Match
# header. A GET of one item takes `response: Response` and returns `read_item(...)`.
Replying = Annotated[Reply, Depends(_reply)]
Writing = Annotated[Write, Depends(_write)]
Limit = Annotated[int, Query(ge=1, le=1000, description="items per page")]
Cursor = Annotated[
    str | None, Query(max_length=4096, description="next_cursor of the previous page")
]


@dataclass(frozen=True)
class PageQuery:
    """`?limit=&cursor=` of a listing: `service.page(paging.limit, paging.cursor, ...)`."""

    limit: int
    cursor: str | None


async def _paging(limit: Limit = 100, cursor: Cursor = None) -> PageQuery:
    return PageQuery(limit, cursor)


Paging = Annotated[PageQuery, Depends(_paging)]


# ----- what the document says about responses ------------------------------------------------

# The response headers this API sends, as the document describes them (`headers()`). Each is
# declared only where it is always sent (`required`): tests/test_openapi.py and the fuzzer check.
RESPONSE_HEADERS: dict[str, dict[str, Any]] = {
    "ETag": {
        "description": "the item's version: send it as If-Match to write only that version",
        "required": True,
        "schema": {"type": "string", "pattern": '^"[0-9]+"$', "examples": ['"3"']},
    },
    "Location": {
        "description": "the path of the item this request created",
        "required": True,
        "schema": {
            "type": "string",
            "format": "uri-reference",
            "examples": ["/api/v1/passengers/892"],
        },
    },
    "Retry-After": {
        "description": "seconds to wait before trying again",
        "required": True,
        "schema": {"type": "string", "pattern": "^[0-9]+$", "examples": ["2"]},
    },
    "Idempotent-Replayed": {
        "description": "`true` when the answer is the one an earlier request with the same "
        "Idempotency-Key got (nothing new was done); absent otherwise",
        "required": False,
        "schema": {"type": "string", "enum": ["true"]},
    },
    "X-Request-ID": {
        "description": "the request's id, as in the logs: the client's own X-Request-ID when it "
        "sent a well-formed one, else a new one",
        "required": True,
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$"},
    },
}


def headers(*names: str) -> dict[str, dict[str, Any]]:
    """The `headers` of a response object: `headers("ETag", "Location")` (see RESPONSE_HEADERS)."""
    return {name: dict(RESPONSE_HEADERS[name]) for name in names}


def _sends(status: int, *names: str) -> dict[int | str, dict[str, Any]]:
    """A `responses=` entry declaring the headers a success response carries (FastAPI merges it
    with the response it documents itself)."""
    return {status: {"headers": headers(*names)}}


def problems(
    *statuses: int,
    models: Mapping[int, type[Problem]] | None = None,
    sends: Mapping[int, Sequence[str]] | None = None,
) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries for the problem+json statuses a route can return (503 always).

    Each is documented with its schema and an example: `ValidationProblem` for 422 (with
    `errors`), `Problem` otherwise; `models` names another (a `Problem` subclass) for a status
    whose body has members of its own, e.g. `problems(422, models={422: SubmitProblem})`. A 503
    also declares its Retry-After header. `sends` declares the headers of success responses,
    e.g. `problems(404, 422, sends={200: ["ETag"]})` (see RESPONSE_HEADERS)."""
    chosen = dict(models or {})
    if not set(chosen) <= {*statuses, 503}:
        raise ValueError(f"models for statuses the route does not list: {sorted(chosen)}")
    entries: dict[int | str, dict[str, Any]] = {}
    for success, names in (sends or {}).items():
        entries.update(_sends(success, *names))
    for status in (*statuses, 503):
        model = chosen.get(status, ValidationProblem if status == 422 else Problem)
        entry = problem_response(
            _DESCRIPTIONS.get(status, "Error"), model, example=problem_example(status)
        )
        if status == 503:
            entry["headers"] = headers("Retry-After")
        entries[status] = entry
    return entries


# Per status: the response's description, and a problem's title and typical detail (examples).
_STATUSES: dict[int, tuple[str, str, str]] = {
    400: (
        "Invalid cursor or request",
        "Invalid cursor",
        "the cursor was modified or belongs to another listing",
    ),
    404: ("Not found", "Not Found", "no item with id 7"),
    409: ("Conflict", "Conflict", "an item with id 7 exists"),
    412: (
        "Stale or malformed If-Match (the item changed)",
        "Precondition Failed",
        "the item was changed by another write",
    ),
    413: ("Item too large", "Content Too Large", "the item is larger than DynamoDB's 400 KB"),
    415: (
        "Unsupported Media Type (send the body as application/json)",
        "Unsupported Media Type",
        "send the body as application/json (got 'text/plain')",
    ),
    422: ("Invalid input", "Unprocessable Content", "invalid input: body.pclass"),
    428: (
        "If-Match required",
        "Precondition Required",
        "this write needs an If-Match header with the ETag",
    ),
    503: (
        "Database unavailable (see Retry-After)",
        "Service Unavailable",
        "the database did not answer in time",
    ),
}
_DESCRIPTIONS = {status: description for status, (description, _, _) in _STATUSES.items()}


def problem_example(status: int) -> dict[str, Any] | None:
    """A problem body of `status` as the server sends it (None for a status without one here)."""
    if status not in _STATUSES:
        return None
    _, title, detail = _STATUSES[status]
    body = problem_body(status, title, detail, request_id="4bf92f3577b34da6a3ce929d0e0e4736")
    if status == 422:
        body["errors"] = [
            {
                "field": "body.pclass",
                "message": "Input should be less than or equal to 3",
                "type": "less_than_equal",
            }
        ]
    return body


class Errors:
    """`responses=` of the standard routes, e.g. `responses=Errors.WRITE` (each also lists 503);
    with the headers of their success responses: `responses={**Errors.WRITE, **Errors.ITEM}`.
    (X-Request-ID, on every response, and Retry-After, on every 503, are added to the whole
    document by `common.openapi`.)"""

    LIST = problems(400, 422)
    READ = problems(404, 422)
    CREATE = problems(409, 413, 422)
    WRITE = problems(404, 412, 413, 422, 428)
    DELETE = problems(404, 412, 422, 428)
    # Success headers: one item read or written (GET one, PUT, PATCH), and a create (POST).
    ITEM = _sends(200, "ETag")
    CREATED = _sends(201, "ETag", "Location")
