"""HTTP pieces every feature's routes share: ETags, If-Match, page parameters, problem responses."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import Depends, Header, Query, Response

from app_lib.common.config import get_settings
from app_lib.common.errors import PreconditionFailedError, PreconditionRequiredError

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


def _if_match(
    if_match: Annotated[str | None, Header(description="ETag of the version you read")] = None,
) -> int | IfMatchAny | None:
    if if_match is None:
        if get_settings().require_if_match:
            raise PreconditionRequiredError("this write needs an If-Match header with the ETag")
        return None
    if if_match.strip() == "*":
        return IfMatchAny()
    versions = []
    for part in if_match.split(","):
        match = _ETAG.match(part.strip())
        if not match:
            raise PreconditionFailedError(
                f"If-Match {_shorten(part.strip())} is not an ETag of this API"
            )
        digits = match.group(1).lstrip("0") or "0"
        if len(digits) > _MAX_VERSION_DIGITS:
            raise PreconditionFailedError("If-Match names a version that is not current")
        versions.append(int(digits))
    if len(versions) != 1:
        raise PreconditionFailedError("If-Match must name exactly one ETag")
    return versions[0]


def _shorten(text: str, limit: int = 64) -> str:
    """A header value quoted for a message, cut short (a client may send kilobytes)."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def expected_version(value: int | IfMatchAny | None) -> int | None:
    return value if isinstance(value, int) else None


IfMatch = Annotated[int | IfMatchAny | None, Depends(_if_match)]
Limit = Annotated[int, Query(ge=1, le=1000, description="items per page")]
Cursor = Annotated[
    str | None, Query(max_length=4096, description="next_cursor of the previous page")
]


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries for the problem+json statuses a route can return."""
    descriptions = {
        400: "Invalid cursor or request",
        404: "Not found",
        409: "Conflict",
        412: "Stale If-Match (the item changed)",
        413: "Item too large",
        415: "Unsupported Media Type (send the body as application/json)",
        422: "Invalid input",
        428: "If-Match required",
        503: "Database unavailable (see Retry-After)",
    }
    return {
        status: {
            "description": descriptions.get(status, "Error"),
            "content": {"application/problem+json": {}},
        }
        for status in (*statuses, 503)
    }
