"""Pricing and keys without a database: exact money, half-up rounding, keys from fields."""

from __future__ import annotations

from decimal import Decimal

import pytest

from app_lib.features.commerce.money import tax_on, to_cents
from app_lib.features.commerce.service import LineRequest, price_order
from app_lib.features.commerce.table import OrderRecord, ProductRecord, UserRecord


def product(product_id: str, price: str, taxable: bool) -> ProductRecord:
    return ProductRecord(
        product_id=product_id,
        name=product_id,
        category="c",
        price=Decimal(price),
        is_taxable=taxable,
        stock=100,
    )


def test_the_example_order_is_exact() -> None:
    products = {"a": product("a", "10.00", True), "b": product("b", "3.50", False)}
    order, lines = price_order("o", "u", [LineRequest("a", 2), LineRequest("b", 1)], products)
    assert (order.subtotal, order.tax_total, order.total) == (
        Decimal("23.50"),
        Decimal("1.60"),
        Decimal("25.10"),
    )
    assert [(line.unit_price, line.line_total) for line in lines] == [
        (Decimal("10.00"), Decimal("20.00")),
        (Decimal("3.50"), Decimal("3.50")),
    ]


def test_floats_would_drift_decimals_do_not() -> None:
    """0.10 x 3 taxable lines: floats give 0.30000000000000004; the order says 0.30 + 0.02."""
    products = {k: product(k, "0.10", True) for k in "xyz"}
    order, _ = price_order("o", "u", [LineRequest(k, 1) for k in "xyz"], products)
    assert (str(order.subtotal), str(order.tax_total), str(order.total)) == ("0.30", "0.02", "0.32")


def test_rounding_is_half_up_to_the_cent() -> None:
    assert to_cents(Decimal("1.005")) == Decimal("1.01")
    assert to_cents(Decimal("1.0049")) == Decimal("1.00")
    assert tax_on(Decimal("0.19")) == Decimal("0.02")  # 0.0152
    assert tax_on(Decimal("0.06")) == Decimal("0.00")  # 0.0048


def test_keys_come_from_the_fields_and_never_from_nothing() -> None:
    user = UserRecord(user_id="u1", first_name="Ada", last_name="Lovelace", email="A@x.io")
    user.status = "active"
    user.serialize()
    assert (user.pk, user.sk, user.gsi1_sk, user.gsi2_pk) == (
        "USER#u1",
        "USER",
        "lovelace#ada#u1",
        "STATUS#active",
    )
    with pytest.raises(ValueError, match="product_id"):
        ProductRecord(
            name="x", category="c", price=Decimal(1), is_taxable=True, stock=1
        ).serialize()
    with pytest.raises(ValueError, match="created_utc"):
        OrderRecord(order_id="o", user_id="u", status="pending").derive_keys()
