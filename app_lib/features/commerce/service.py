"""Commerce rules: pricing an order, which order moves are allowed, and what a cancelled
transaction means to the client (409 naming the product or the email, 422 for what does not
exist). No HTTP here; the data service does the DynamoDB work."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from app_lib.common.errors import ConflictError, UnprocessableError
from app_lib.features.commerce.data_service import (
    MAX_TRANSACTION_ACTIONS,
    OrderData,
    PlacedOrder,
    TransactionCancelledError,
    check_version,
    record_from_raw,
)
from app_lib.features.commerce.money import tax_on, to_cents, total
from app_lib.features.commerce.table import (
    OrderLineRecord,
    OrderRecord,
    ProductRecord,
    UserRecord,
)

# An order is one transaction: a check of the user, the order, and per line the line item and
# the product's stock decrement. 2 + 2 x 49 = 100, DynamoDB's limit of actions.
MAX_LINES = (MAX_TRANSACTION_ACTIONS - 2) // 2
# The one move forward from each status (PATCH); cancelling is POST .../cancel.
NEXT_STATUS = {"pending": "paid", "paid": "shipped"}
CANCELLABLE = ("pending", "paid")


def new_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class LineRequest:
    product_id: str
    quantity: int


def _field_error(field: str, message: str) -> dict[str, str]:
    return {"field": field, "message": message, "type": "not_found"}


def price_order(
    order_id: str,
    user_id: str,
    lines: Sequence[LineRequest],
    products: Mapping[str, ProductRecord],
    now: datetime | None = None,
) -> tuple[OrderRecord, list[OrderLineRecord]]:
    """The order and its lines at the products' current prices (never the client's): line
    totals exact to the cent, 8% tax on the taxable subtotal, rounded half-up once."""
    records = []
    for number, line in enumerate(lines):
        product = products[line.product_id]
        unit_price = to_cents(product.price)
        records.append(
            OrderLineRecord(
                order_id=order_id,
                product_id=line.product_id,
                line_no=number,
                quantity=line.quantity,
                unit_price=unit_price,
                line_total=to_cents(unit_price * line.quantity),
                is_taxable=bool(product.is_taxable),
            )
        )
    subtotal = total(line.line_total for line in records)
    tax = tax_on(total(line.line_total for line in records if line.is_taxable))
    created = (now or datetime.now(UTC)).isoformat(timespec="microseconds")
    order = OrderRecord(
        order_id=order_id,
        user_id=user_id,
        status="pending",
        subtotal=subtotal,
        tax_total=tax,
        total=to_cents(subtotal + tax),
        created_utc=created.replace("+00:00", "Z"),
    )
    return order, records


def place_order(data: OrderData, user_id: str, lines: Sequence[LineRequest]) -> PlacedOrder:
    """Read the user and the prices (one BatchGetItem), then write the order, its lines and the
    stock decrements in one transaction whose conditions decide: enough stock, same price, an
    active user. A refused order changes nothing."""
    user, products = data.read_for_order(user_id, [line.product_id for line in lines])
    errors = []
    if user is None:
        errors.append(_field_error("body.user_id", f"no user {user_id}"))
    errors += [
        _field_error(f"body.items.{n}.product_id", f"no product {line.product_id}")
        for n, line in enumerate(lines)
        if line.product_id not in products
    ]
    if errors:
        raise UnprocessableError("; ".join(e["message"] for e in errors), errors=errors)
    assert user is not None
    _require_active(user)
    order, records = price_order(new_id(), user_id, lines, products)
    try:
        return data.place(order, records, products)
    except TransactionCancelledError as cancelled:
        raise _order_refused(cancelled, lines) from None


def _require_active(user: UserRecord) -> None:
    if user.status != "active":
        raise ConflictError(f"user {user.user_id} is {user.status}: it cannot order")


def _order_refused(
    cancelled: TransactionCancelledError, lines: Sequence[LineRequest]
) -> ConflictError | UnprocessableError:
    """What the first failed condition of a cancelled order means."""
    wanted = {line.product_id: line.quantity for line in lines}
    for failed in cancelled.failed:
        kind, key = failed.label
        if kind == "user":
            return ConflictError(f"user {key} is no longer active: it cannot order")
        if kind != "product":
            continue
        current = record_from_raw(failed.old_item)
        if not isinstance(current, ProductRecord):
            n = next(i for i, line in enumerate(lines) if line.product_id == key)
            error = _field_error(f"body.items.{n}.product_id", f"no product {key}")
            return UnprocessableError(error["message"], errors=[error])
        if int(current.stock) < wanted[key]:
            return ConflictError(
                f"not enough stock of product {key}: {int(current.stock)} left, "
                f"{wanted[key]} ordered",
                product_id=key,
                available=int(current.stock),
            )
        return ConflictError(
            f"the price of product {key} changed while the order was placed; order again",
            product_id=key,
        )
    return ConflictError(f"the order could not be written ({cancelled.labels()}); try again")


def advance_order(
    data: OrderData, order: OrderRecord, to_status: str, expected_version: int | None
) -> OrderRecord:
    """Move an order one step forward (pending -> paid -> shipped); anything else is a 409."""
    check_version(order, expected_version)
    if NEXT_STATUS.get(str(order.status)) != to_status:
        hint = " (cancel with POST /orders/{id}/cancel)" if to_status == "cancelled" else ""
        raise ConflictError(f"an order that is {order.status} cannot become {to_status}{hint}")
    return data.advance(order, to_status, str(order.status), expected_version)


def cancel_order(data: OrderData, placed: PlacedOrder, expected_version: int | None) -> OrderRecord:
    """Cancel a pending or paid order and restore its stock (one transaction); 409 otherwise."""
    check_version(placed.order, expected_version)
    if placed.order.status not in CANCELLABLE:
        raise ConflictError(f"order {placed.order.order_id} is {placed.order.status}")
    return data.cancel(placed, CANCELLABLE, expected_version)
