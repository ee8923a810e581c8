"""Money: exact decimals with two places, rounded half-up. No floats anywhere on the way.

Prices and totals are `Decimal` from the request body to DynamoDB and back: a DynamoDB Number is
itself a decimal of up to 38 digits, so `MoneyAttribute` (table.py) stores the decimal's text and
reads it back as a `Decimal` (PynamoDB's NumberAttribute would go through a binary float).
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
# Sales tax on taxable lines, applied once to the taxable subtotal of an order (not per line, so
# that splitting a quantity over two lines cannot change the tax by a rounding cent).
TAX_RATE = Decimal("0.08")


def to_cents(value: Decimal) -> Decimal:
    """`value` with exactly two places, rounded half-up (1.005 -> 1.01)."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def total(values: Iterable[Decimal]) -> Decimal:
    return to_cents(sum(values, ZERO))


def tax_on(taxable_subtotal: Decimal) -> Decimal:
    return to_cents(taxable_subtotal * TAX_RATE)
