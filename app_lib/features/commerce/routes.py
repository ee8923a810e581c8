"""Commerce endpoints under /api/v1: /products, /users, /orders (one table behind them all)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Response

from app_lib.common.auth import Authorize, Caller
from app_lib.common.dto import Page
from app_lib.common.errors import ForbiddenError, NotFoundError, require_found
from app_lib.common.http import Errors, Paging, Replying, Writing, problems, read_item
from app_lib.common.routing import GatedRouter
from app_lib.features.commerce import service
from app_lib.features.commerce.data_service import (
    OrderData,
    PlacedOrder,
    ProductData,
    UserData,
)
from app_lib.features.commerce.dto import (
    Category,
    Email,
    Name,
    OrderCreate,
    OrderId,
    OrderRead,
    OrderStatusChange,
    OrderSummary,
    ProductCreate,
    ProductId,
    ProductRead,
    ProductUpdate,
    UserCreate,
    UserId,
    UserRead,
    UserStatus,
    UserUpdate,
)
from app_lib.features.commerce.table import ProductRecord, UserRecord

# The catalogue is public to read; changing it needs commerce:write. Users and orders need a
# token: a caller is a user (`sub` = `user_id`) and sees only their own record and orders,
# unless admin; moving an order's status (paid, shipped) is staff work: commerce:write.
WRITE_SCOPE = "commerce:write"
products = GatedRouter(
    prefix="/products", tags=["products"], dependencies=[Depends(Authorize(WRITE_SCOPE))]
)
users = GatedRouter(
    prefix="/users", tags=["users"], dependencies=[Depends(Authorize(None, public_reads=False))]
)
orders = GatedRouter(
    prefix="/orders", tags=["orders"], dependencies=[Depends(Authorize(None, public_reads=False))]
)


# The data services hold no state and do no I/O when made: `async` saves a threadpool hop.
async def product_data() -> ProductData:
    return ProductData()


async def user_data() -> UserData:
    return UserData()


async def order_data() -> OrderData:
    return OrderData()


Products = Annotated[ProductData, Depends(product_data)]
Users = Annotated[UserData, Depends(user_data)]
Orders = Annotated[OrderData, Depends(order_data)]


def valid_product(product_id: ProductId, data: Products) -> ProductRecord:
    return require_found(data.get(product_id), f"no product {product_id}")


def valid_user(user_id: UserId, data: Users, caller: Caller) -> UserRecord:
    # Another user's record does not exist for a caller who is not admin (404, not 403).
    if not caller.is_admin and user_id != caller.sub:
        raise NotFoundError(f"no user {user_id}")
    return require_found(data.get(user_id), f"no user {user_id}")


def valid_order(order_id: OrderId, data: Orders, caller: Caller) -> PlacedOrder:
    """The order and its items: one Query of the order's partition; the caller's own only."""
    placed = require_found(data.get(order_id), f"no order {order_id}")
    if not caller.is_admin and placed.order.user_id != caller.sub:
        raise NotFoundError(f"no order {order_id}")
    return placed


ValidProduct = Annotated[ProductRecord, Depends(valid_product)]
ValidUser = Annotated[UserRecord, Depends(valid_user)]
ValidOrder = Annotated[PlacedOrder, Depends(valid_order)]


def _order_read(placed: PlacedOrder) -> OrderRead:
    return OrderRead.of(placed.order, placed.lines)


# ----- products --------------------------------------------------------------------------------


@products.get("", response_model=Page[ProductRead], responses=Errors.LIST)
def list_products(
    data: Products, paging: Paging, category: Annotated[Category | None, Query()] = None
) -> Page[ProductRead]:
    """Products by name, a page at a time; `category` is a Query of that category's index."""
    return Page.of(data.page(paging.limit, paging.cursor, category), ProductRead.from_model)


@products.post("", status_code=201, response_model=ProductRead, responses=Errors.CREATE)
def create_product(body: ProductCreate, data: Products, reply: Replying) -> ProductRead:
    """Add a product (201 with Location); 409 when the id exists."""
    product = data.create(body.to_record(body.product_id or service.new_id()))
    return reply.created(product, ProductRead.from_model, product.product_id)


@products.get("/{product_id}", response_model=ProductRead, responses=Errors.READ)
async def get_product(product: ValidProduct, response: Response) -> ProductRead:
    """One product; its ETag changes with every write, stock decrements by orders included."""
    return read_item(response, product, ProductRead.from_model)


@products.patch("/{product_id}", response_model=ProductRead, responses=Errors.WRITE)
def update_product(
    body: ProductUpdate, product: ValidProduct, data: Products, write: Writing
) -> ProductRead:
    """Change the given fields (a new name or category moves it in the listings, in the same
    write); conditional on the version read, so an order's decrement is never overwritten."""
    updated = data.update(product, body.changes(), write.version())
    return write.read(updated, ProductRead.from_model)


@products.delete("/{product_id}", status_code=204, responses=Errors.DELETE)
def delete_product(product: ValidProduct, data: Products, write: Writing) -> Response:
    """Remove a product (204; 404 once it is gone). Orders keep their lines and prices."""
    data.remove(product, write.version())
    return Response(status_code=204)


# ----- users -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class UserFilters:
    """`?email=` (the one holder, any case), `?status=`, `?last_name=` (a prefix, any case)."""

    email: Email | None
    status: UserStatus | None
    last_name: Name | None

    def admits(self, user: UserRecord) -> bool:
        prefix = (self.last_name or "").casefold()
        return self.status in (None, user.status) and user.last_name.casefold().startswith(prefix)


def user_filters(
    email: Annotated[Email | None, Query()] = None,
    status: Annotated[UserStatus | None, Query()] = None,
    last_name: Annotated[Name | None, Query(description="a prefix, any case")] = None,
) -> UserFilters:
    return UserFilters(email, status, last_name)


@users.get("", response_model=Page[UserRead], responses=Errors.LIST)
def list_users(
    data: Users,
    paging: Paging,
    filters: Annotated[UserFilters, Depends(user_filters)],
    caller: Caller,
) -> Page[UserRead]:
    """Users by last then first name (admin only). `email`: the one user holding it (any
    case); `status` and `last_name` (a prefix) are key conditions of a Query, never a Scan."""
    if not caller.is_admin:
        raise ForbiddenError("only an admin lists users", scope="admin")
    if filters.email is None:
        page = data.page(paging.limit, paging.cursor, filters.status, filters.last_name)
        return Page.of(page, UserRead.from_model)
    holder = data.by_email(filters.email)
    found = [holder] if holder is not None and filters.admits(holder) else []
    return Page[UserRead](items=[UserRead.from_model(u) for u in found], next_cursor=None)


@users.post("", status_code=201, response_model=UserRead, responses=Errors.CREATE)
def create_user(body: UserCreate, data: Users, reply: Replying, caller: Caller) -> UserRead:
    """Sign up (201 with Location); 409 when the email is taken, in any case, or the id exists.
    The user and the claim on its email are written in one transaction. A caller who is not
    admin signs up themselves: the user's id is their token's `sub`."""
    if caller.is_admin:
        user_id = body.user_id or service.new_id()
    elif body.user_id in (None, caller.sub):
        user_id = caller.sub
    else:
        raise ForbiddenError("a user signs up only themselves (user_id = the token's sub)")
    user = data.create(body.to_record(user_id))
    return reply.created(user, UserRead.from_model, user.user_id)


@users.get("/{user_id}", response_model=UserRead, responses=Errors.READ)
async def get_user(user: ValidUser, response: Response) -> UserRead:
    """One user, active or not."""
    return read_item(response, user, UserRead.from_model)


@users.patch(
    "/{user_id}", response_model=UserRead, responses=problems(404, 409, 412, 413, 422, 428)
)
def update_user(body: UserUpdate, user: ValidUser, data: Users, write: Writing) -> UserRead:
    """Change the given fields; a new email swaps the claims in one transaction (409 when it is
    taken)."""
    updated = data.update(user, body.changes(), write.version())
    return write.read(updated, UserRead.from_model)


@users.delete("/{user_id}", status_code=204, responses=Errors.DELETE)
def deactivate_user(user: ValidUser, data: Users, write: Writing) -> Response:
    """Deactivate (204): the user stays readable, keeps its email, and cannot order."""
    data.update(user, {"status": "inactive"}, write.version())
    return Response(status_code=204)


@users.get(
    "/{user_id}/orders", response_model=Page[OrderSummary], responses=problems(400, 404, 422)
)
def list_user_orders(user: ValidUser, data: Orders, paging: Paging) -> Page[OrderSummary]:
    """The user's orders, newest first (without their items: GET /orders/{id} has them)."""
    page = data.page(user.user_id, paging.limit, paging.cursor)
    return Page.of(page, OrderSummary.from_model)


# ----- orders ----------------------------------------------------------------------------------


@orders.post("", status_code=201, response_model=OrderRead, responses=Errors.CREATE)
def place_order(body: OrderCreate, data: Orders, reply: Replying, caller: Caller) -> OrderRead:
    """Place an order at the products' prices: the order, its items and every stock decrement
    are one transaction. 409 naming the product when its stock is short (nothing changes), or
    when the user is inactive; 422 for a user or product that does not exist; 403 for another
    user's order (unless admin)."""
    if not caller.is_admin and body.user_id != caller.sub:
        raise ForbiddenError("a user orders only for themselves (user_id = the token's sub)")
    lines = [service.LineRequest(line.product_id, line.quantity) for line in body.items]
    placed = service.place_order(data, body.user_id, lines)
    return reply.created(placed.order, lambda _: _order_read(placed), placed.order.order_id)


@orders.get("/{order_id}", response_model=OrderRead, responses=Errors.READ)
async def get_order(placed: ValidOrder, response: Response) -> OrderRead:
    """The order with its items (one Query)."""
    return read_item(response, placed.order, lambda _: _order_read(placed))


@orders.patch("/{order_id}", response_model=OrderRead, responses=problems(404, 409, 412, 422, 428))
def update_order_status(
    body: OrderStatusChange, placed: ValidOrder, data: Orders, write: Writing, caller: Caller
) -> OrderRead:
    """Move the status one step forward: pending -> paid -> shipped (commerce:write). Any other
    move is a 409."""
    if not caller.may(WRITE_SCOPE):
        raise ForbiddenError(f"moving an order's status needs {WRITE_SCOPE!r}", scope=WRITE_SCOPE)
    service.advance_order(data, placed.order, body.status, write.version())
    return write.read(placed.order, lambda _: _order_read(placed))


@orders.post(
    "/{order_id}/cancel", response_model=OrderRead, responses=problems(404, 409, 412, 422, 428)
)
def cancel_order(placed: ValidOrder, data: Orders, write: Writing) -> OrderRead:
    """Cancel a pending or paid order and restore its stock, in one transaction; 409 when it
    is already cancelled or shipped."""
    service.cancel_order(data, placed, write.version())
    return write.read(placed.order, lambda _: _order_read(placed))


router = GatedRouter()
router.include_router(products)
router.include_router(users)
router.include_router(orders)
