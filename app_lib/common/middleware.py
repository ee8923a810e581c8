"""Request id and access log, as a pure ASGI middleware (no BaseHTTPMiddleware overhead)."""

from __future__ import annotations

import logging
import os
import re
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app_lib.common.logging import AccessLog, set_request_id
from app_lib.common.problems import PROBLEM_JSON, internal_error_body

log = logging.getLogger("app_lib.access")

HEADER = b"x-request-id"
_SAFE = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")


class RequestIdMiddleware:
    """Echo a well-formed `X-Request-ID` (or make one), log it, and turn crashes into a 500."""

    def __init__(self, app: ASGIApp, access_log: AccessLog | None = None) -> None:
        self.app = app
        self.access_log = access_log or AccessLog()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(HEADER, b"")
        request_id = given.decode() if _SAFE.match(given) else os.urandom(16).hex()
        set_request_id(request_id)
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                headers = [h for h in message.get("headers", []) if h[0].lower() != HEADER]
                headers.append((HEADER, request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error")
            if response_started:
                raise
            body = internal_error_body(scope.get("path", ""), request_id)
            await send_with_id(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", PROBLEM_JSON.encode()),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send_with_id({"type": "http.response.body", "body": body})
        finally:
            query = scope.get("query_string", b"").decode("latin-1")
            path: str = scope.get("path", "")
            target = f"{path}?{query}" if query else path
            client = scope.get("client")
            duration = round((time.perf_counter() - started) * 1000, 2)
            self.access_log.write(
                scope.get("method", ""),
                target,
                status,
                duration,
                f"{client[0]}:{client[1]}" if client else None,
                request_id,
            )
