"""GatedRouter: requests for other paths skip a router in one test, and routing answers exactly
as FastAPI's own routers do (same route, 404, 405), wherever the router is mounted."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient

from app_lib.common.routing import GatedRouter, gated


def _items(router: APIRouter) -> APIRouter:
    @router.get("/items")
    async def list_items() -> str:
        return "list"

    @router.get("/items/{item_id}")
    async def get_item(item_id: str) -> str:
        return f"item {item_id}"

    @router.get("/{anything}/raw")
    async def raw(anything: str) -> str:
        return f"raw {anything}"

    return router


def _app(router: APIRouter) -> FastAPI:
    app = FastAPI()
    app.include_router(router, prefix="/api/v1")
    return app


def test_a_gated_router_answers_as_a_plain_one() -> None:
    plain = TestClient(_app(_items(APIRouter(prefix="/shop"))))
    gate = TestClient(_app(_items(GatedRouter(prefix="/shop"))))
    wrapped = TestClient(_app(gated(_items(APIRouter(prefix="/shop")))))
    for path, method in [
        ("/api/v1/shop/items", "GET"),
        ("/api/v1/shop/items/7", "GET"),
        ("/api/v1/shop/x/raw", "GET"),
        ("/api/v1/shop/items", "POST"),  # 405
        ("/api/v1/other/items", "GET"),  # 404
        ("/shop/items", "GET"),  # mounted elsewhere: 404
    ]:
        expected = plain.request(method, path)
        for client in (gate, wrapped):
            answer = client.request(method, path)
            assert (answer.status_code, answer.text) == (expected.status_code, expected.text)
    assert gate.get("/api/v1/shop/items/7").json() == "item 7"
    assert gate.post("/api/v1/shop/items").status_code == 405


def test_its_literal_starts_cover_every_route_and_skip_other_paths() -> None:
    router = _items(GatedRouter(prefix="/shop"))
    # "/shop/" is the literal start of "/shop/{anything}/raw" and covers "/shop/items..."
    assert router._literal_starts() == ("/shop/",)
    unrouted = GatedRouter()

    @unrouted.get("/{name}")
    async def anything(name: str) -> str:
        return name

    assert unrouted._literal_starts() == ("/",)


def test_routes_declared_after_a_request_are_found() -> None:
    router = GatedRouter(prefix="/late")
    app = _app(router)
    client = TestClient(app)
    assert client.get("/api/v1/late/one").status_code == 404

    @router.get("/one")
    async def one() -> str:
        return "one"

    assert client.get("/api/v1/late/one").json() == "one"


def test_gated_keeps_a_gated_router_as_it_is() -> None:
    router = GatedRouter()
    assert gated(router) is router
    assert isinstance(gated(APIRouter()), GatedRouter)
