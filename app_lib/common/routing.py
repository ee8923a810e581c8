"""Routing that does not slow down as features are added.

FastAPI tries an app's routes one after another: a request for the last feature's route is
first matched, route by route, against every route of the features before it (several function
calls each, 40-odd routes here). A `GatedRouter` first checks that the request path contains
the literal start of one of its routes' paths (what comes before the first `{`, e.g.
`/passengers`) and answers "no match" at once when none does: a request costs one substring
test per other router. Which route answers is unchanged: a route can only match a path that
contains its literal start (wherever the router is mounted).

Feature routers are `GatedRouter`s (the scaffold makes them so); `create_app` wraps a plain
`APIRouter` in one (`gated`), so a feature that forgets keeps working, one level deeper. Their
routes are `CheckedRoute`s (request_checks): the request checks without a dependency to solve.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.routing import iter_route_contexts
from starlette.routing import Match
from starlette.types import Scope

from app_lib.common.request_checks import CheckedRoute


class GatedRouter(APIRouter):
    """An `APIRouter` that requests for other paths skip in one test."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("route_class", CheckedRoute)
        super().__init__(*args, **kwargs)
        self._starts: tuple[str, ...] | None = None

    def _literal_starts(self) -> tuple[str, ...]:
        """The literal starts of its routes' paths, the shortest that cover them all (worked
        out on the first request, when every route has been declared)."""
        if self._starts is None:
            starts = sorted(
                {
                    (context.path_format or "").split("{", 1)[0] or "/"
                    for context in iter_route_contexts(self.routes)
                },
                key=len,
            )
            kept: list[str] = []
            for start in starts:
                if not any(shorter in start for shorter in kept):
                    kept.append(start)
            self._starts = tuple(kept)
        return self._starts

    def add_api_route(self, *args: Any, **kwargs: Any) -> None:
        super().add_api_route(*args, **kwargs)
        self._starts = None

    def add_route(self, *args: Any, **kwargs: Any) -> None:
        super().add_route(*args, **kwargs)
        self._starts = None

    def include_router(self, *args: Any, **kwargs: Any) -> None:
        super().include_router(*args, **kwargs)
        self._starts = None

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        path: str = scope.get("path", "")
        for start in self._literal_starts():
            if start in path:
                return super().matches(scope)
        return Match.NONE, {}


def gated(router: APIRouter) -> APIRouter:
    """`router` itself when it is a GatedRouter, else a GatedRouter that includes it."""
    if isinstance(router, GatedRouter):
        return router
    gate = GatedRouter()
    gate.include_router(router)
    return gate
