"""HTTP pieces every feature's routes share: ETags, If-Match, page parameters, problem responses."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Protocol, TypeVar
from urllib.parse import quote

from fastapi import Depends, Header, Query, Request, Response

from app_lib.common.config import get_settings
from app_lib.common.errors import PreconditionFailedError, PreconditionRequiredError
from app_lib.common.problems import Problem, ValidationProblem, problem_response

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


def _if_match(
    if_match: Annotated[str | None, Header(description="ETag of the version you read")] = None,
) -> int | IfMatchAny | IfMatchRefused | None:
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


class Reply:
    """The headers of a route that returns one item: its ETag (the version, for If-Match), and
    for a create its Location. `reply.read(item, XRead.from_model)` returns the DTO."""

    def __init__(self, request: Request, response: Response) -> None:
        self.request = request
        self.response = response

    def read(self, item: ItemT, to_dto: Callable[[ItemT], ReadT]) -> ReadT:
        set_etag(self.response, item.version)
        return to_dto(item)

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


def _reply(request: Request, response: Response) -> Reply:
    return Reply(request, response)


def _write(request: Request, response: Response, if_match: IfMatch) -> Write:
    return Write(request, response, if_match)


# Route parameters: `reply: Replying` for reads and creates, `write: Writing` for writes of an
# existing item (PUT, PATCH, DELETE): it adds the If-Match header.
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


def _paging(limit: Limit = 100, cursor: Cursor = None) -> PageQuery:
    return PageQuery(limit, cursor)


Paging = Annotated[PageQuery, Depends(_paging)]


def problems(
    *statuses: int, models: Mapping[int, type[Problem]] | None = None
) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries for the problem+json statuses a route can return (503 always).

    Each is documented with its schema: `ValidationProblem` for 422 (with `errors`), `Problem`
    otherwise; `models` names another (a `Problem` subclass) for a status whose body has members
    of its own, e.g. `problems(422, models={422: SubmitProblem})`."""
    chosen = dict(models or {})
    if not set(chosen) <= {*statuses, 503}:
        raise ValueError(f"models for statuses the route does not list: {sorted(chosen)}")
    return {
        status: problem_response(
            _DESCRIPTIONS.get(status, "Error"),
            chosen.get(status, ValidationProblem if status == 422 else Problem),
        )
        for status in (*statuses, 503)
    }


_DESCRIPTIONS = {
    400: "Invalid cursor or request",
    404: "Not found",
    409: "Conflict",
    412: "Stale or malformed If-Match (the item changed)",
    413: "Item too large",
    415: "Unsupported Media Type (send the body as application/json)",
    422: "Invalid input",
    428: "If-Match required",
    503: "Database unavailable (see Retry-After)",
}


class Errors:
    """`responses=` of the standard routes, e.g. `responses=Errors.WRITE` (each also lists 503)."""

    LIST = problems(400, 422)
    READ = problems(404, 422)
    CREATE = problems(409, 413, 422)
    WRITE = problems(404, 412, 413, 422, 428)
    DELETE = problems(404, 412, 422, 428)
