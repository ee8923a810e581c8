"""botocore clients with one time budget per call, all retries included.

botocore's own limits are per attempt: a read timeout of 5 s and two retries hold a caller for
15 s when the database hangs. With a budget, a call's attempts share one deadline: each attempt
may wait only for what is left of it (botocore's per-request `read_timeout`), and no retry starts
once it has run out; the caller then gets the last error (a 503 to the client).
"""

from __future__ import annotations

import time
from typing import Any

from botocore.exceptions import ClientError, ReadTimeoutError

_DEADLINE = "app_lib_deadline"
# A retry needs at least this much of the budget left to be worth starting.
_MIN_ATTEMPT_SECONDS = 0.25


def install_time_budget(client: Any, budget_seconds: float, read_timeout: float) -> None:
    """Give every call of `client` (a botocore client) `budget_seconds` in all. Idempotent."""
    if getattr(client, "_app_lib_budget", None) == budget_seconds:
        return
    service = client.meta.service_model.service_id.hyphenize()
    events = client.meta.events

    def start(context: dict[str, Any], **_: Any) -> None:
        context[_DEADLINE] = time.monotonic() + budget_seconds

    def attempt(request: Any, **_: Any) -> None:
        context: dict[str, Any] | None = getattr(request, "context", None)
        if context is None or context.get(_DEADLINE) is None:
            return
        deadline: float = context[_DEADLINE]
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ReadTimeoutError(endpoint_url=request.url)
        context["read_timeout"] = min(read_timeout, remaining)

    def stop_retrying(
        request_dict: dict[str, Any],
        response: Any = None,
        caught_exception: Exception | None = None,
        operation: Any = None,
        **_: Any,
    ) -> None:
        deadline = request_dict.get("context", {}).get(_DEADLINE)
        if deadline is None or deadline - time.monotonic() > _MIN_ATTEMPT_SECONDS:
            return  # botocore's retry handler decides
        # Out of time: end the call with what the last attempt got, instead of retrying.
        if caught_exception is not None:
            raise caught_exception
        if response is not None and response[0].status_code >= 300:
            raise ClientError(response[1], operation.name)

    handlers = (
        (f"before-call.{service}", start, "app-lib-budget-start"),
        (f"before-send.{service}", attempt, "app-lib-budget-attempt"),
        (f"needs-retry.{service}", stop_retrying, "app-lib-budget-retry"),
    )
    for event, handler, unique_id in handlers:
        events.unregister(event, unique_id=unique_id)
        # First: stop_retrying must run before botocore's retry handler on the same event.
        events.register_first(event, handler, unique_id=unique_id)
    client._app_lib_budget = budget_seconds
