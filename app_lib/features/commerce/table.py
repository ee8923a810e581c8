"""The commerce table: products, users, email claims, orders and order lines in ONE table.

Single-table design. Every item has a hash key `pk` and a range key `sk`; its entity type is the
`type` attribute (`entity_type`, PynamoDB's DiscriminatorAttribute: a read builds the right
class). Keys are never written by hand: `derive_keys()` computes them from the entity's fields,
and `serialize()` (what every put, transactional put and batch put sends) calls it first, so a
key can never be stale or `PRODUCT#None`.

| entity      | pk            | sk                | gsi1_pk / gsi1_sk (by-collection)  |
| ----------- | ------------- | ----------------- | ---------------------------------- |
| product     | PRODUCT#<id>  | PRODUCT           | PRODUCTS / <name>#<id>             |
| user        | USER#<id>     | USER              | USERS / <last>#<first>#<id>        |
| email claim | EMAIL#<email> | EMAIL             | -                                  |
| order       | ORDER#<id>    | ORDER             | USER#<user_id> / <created_utc>#<id> |
| order line  | ORDER#<id>    | ITEM#<product_id> | -                                  |

gsi2_pk / gsi2_sk (by-group): products `CATEGORY#<category>` / `<name>#<id>`, users
`STATUS#<status>` / `<last>#<first>#<id>`; no other entity is in it.

Names and emails in keys are case-folded (`fold`), so listings sort and prefix-match without
regard to case and an email is unique whatever its case.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, ClassVar

from pynamodb.attributes import (
    Attribute,
    BooleanAttribute,
    DiscriminatorAttribute,
    NumberAttribute,
    UnicodeAttribute,
)
from pynamodb.constants import NUMBER
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex

from app_lib.common.data.versioned_table import VersionedTable
from app_lib.common.util.pynamodb_util import PynamodbUtil
from app_lib.features.commerce.money import to_cents

# Folded names are cut to this many characters in keys: a range key holds at most 1024 bytes,
# and two names plus an id stay far below it (100 characters are at most 400 bytes of UTF-8).
KEY_TEXT = 100
PRODUCTS = "PRODUCTS"
COLLECTION_INDEX = "by-collection"
GROUP_INDEX = "by-group"
USERS = "USERS"


def fold(text: str) -> str:
    """A name or email as it appears in keys: case-folded, cut to KEY_TEXT characters."""
    return text.strip().casefold()[:KEY_TEXT]


def fold_email(email: str) -> str:
    """The email's claim key: compared without regard to case (lower(), not casefold(): a
    mailbox name is not a word of a language)."""
    return email.strip().lower()


def _part(value: Any, name: str) -> str:
    """A field inside a key; a missing one is a bug, never a `PRODUCT#None` key."""
    if value is None or value == "":
        raise ValueError(f"cannot derive a key without {name}")
    return str(value)


class MoneyAttribute(Attribute[Decimal]):
    """A DynamoDB Number holding an exact amount of money (two places), read back as a Decimal.
    NumberAttribute would read it as a float (10.1 + 0.2 != 10.3)."""

    attr_type = NUMBER

    def serialize(self, value: Decimal) -> str:
        return str(to_cents(value))

    def deserialize(self, value: str) -> Decimal:
        return to_cents(Decimal(value))


class ByCollectionIndex(GlobalSecondaryIndex["CommerceTable"]):
    """gsi1: a whole collection in its natural order, one Query each:
    - every product by name (`PRODUCTS`, `<name>#<id>`): GET /products
    - every user by last then first name (`USERS`, `<last>#<first>#<id>`): GET /users, and
      `?last_name=` as `begins_with(gsi1_sk, <folded prefix>)`
    - a user's orders by creation time (`USER#<id>`, `<created_utc>#<order_id>`), read backwards
      for newest first: GET /users/{id}/orders
    Email claims and order lines have no gsi1 keys: the index does not hold them (sparse)."""

    class Meta:
        index_name = COLLECTION_INDEX
        projection = AllProjection()

    gsi1_pk = UnicodeAttribute(hash_key=True)
    gsi1_sk = UnicodeAttribute(range_key=True)


class ByGroupIndex(GlobalSecondaryIndex["CommerceTable"]):
    """gsi2: one group of a collection, in the same order as gsi1:
    - the products of a category by name (`CATEGORY#<category>`): GET /products?category=
    - the users of a status by name (`STATUS#<status>`): GET /users?status= (with `last_name`,
      the prefix is a key condition here too)
    Only products and users have gsi2 keys."""

    class Meta:
        index_name = GROUP_INDEX
        projection = AllProjection()

    gsi2_pk = UnicodeAttribute(hash_key=True)
    gsi2_sk = UnicodeAttribute(range_key=True)


class CommerceTable(VersionedTable):
    """The table (what is registered and created); reads build the subclass named by `type`."""

    class Meta:
        table_name = PynamodbUtil.env_table_name("commerce")

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    # The entity type ("product", "user", ...): reads build the subclass it names.
    entity_type = DiscriminatorAttribute(attr_name="type")
    gsi1_pk = UnicodeAttribute(null=True)
    gsi1_sk = UnicodeAttribute(null=True)
    gsi2_pk = UnicodeAttribute(null=True)
    gsi2_sk = UnicodeAttribute(null=True)

    by_collection = ByCollectionIndex()
    by_group = ByGroupIndex()

    derived_attributes: ClassVar[tuple[str, ...]] = ("pk", "sk")

    def serialize(self, null_check: bool = True) -> dict[str, dict[str, Any]]:
        # Every whole-item write (put, transactional put, batch put) serializes the item first:
        # its keys are derived here, from the fields it is written with.
        self.derive_keys()
        return super().serialize(null_check=null_check)


class ProductRecord(CommerceTable, discriminator="product"):
    product_id = UnicodeAttribute()
    name = UnicodeAttribute()
    category = UnicodeAttribute()
    price = MoneyAttribute()
    is_taxable = BooleanAttribute()
    stock = NumberAttribute()
    description = UnicodeAttribute(default="")

    derived_attributes = ("pk", "sk", "gsi1_pk", "gsi1_sk", "gsi2_pk", "gsi2_sk")

    @staticmethod
    def key(product_id: str) -> tuple[str, str]:
        return f"PRODUCT#{_part(product_id, 'product_id')}", "PRODUCT"

    def derive_keys(self) -> None:
        self.pk, self.sk = self.key(self.product_id)
        by_name = f"{fold(_part(self.name, 'name'))}#{self.product_id}"
        self.gsi1_pk, self.gsi1_sk = PRODUCTS, by_name
        self.gsi2_pk, self.gsi2_sk = f"CATEGORY#{_part(self.category, 'category')}", by_name


def user_name_key(last_name: str, first_name: str, user_id: str) -> str:
    return (
        f"{fold(_part(last_name, 'last_name'))}#{fold(_part(first_name, 'first_name'))}#{user_id}"
    )


class UserRecord(CommerceTable, discriminator="user"):
    user_id = UnicodeAttribute()
    first_name = UnicodeAttribute()
    last_name = UnicodeAttribute()
    email = UnicodeAttribute()
    status = UnicodeAttribute()

    derived_attributes = ("pk", "sk", "gsi1_pk", "gsi1_sk", "gsi2_pk", "gsi2_sk")

    @staticmethod
    def key(user_id: str) -> tuple[str, str]:
        return f"USER#{_part(user_id, 'user_id')}", "USER"

    def derive_keys(self) -> None:
        self.pk, self.sk = self.key(self.user_id)
        by_name = user_name_key(self.last_name, self.first_name, self.user_id)
        self.gsi1_pk, self.gsi1_sk = USERS, by_name
        self.gsi2_pk, self.gsi2_sk = f"STATUS#{_part(self.status, 'status')}", by_name


class EmailRecord(CommerceTable, discriminator="email"):
    """The claim on an email: exists exactly while a user holds it. Its key is the folded email,
    so a conditional put (`attribute_not_exists(pk)`) is what makes emails unique."""

    email = UnicodeAttribute()
    user_id = UnicodeAttribute()

    @staticmethod
    def key(email: str) -> tuple[str, str]:
        return f"EMAIL#{fold_email(_part(email, 'email'))}", "EMAIL"

    def derive_keys(self) -> None:
        self.pk, self.sk = self.key(self.email)


class OrderRecord(CommerceTable, discriminator="order"):
    order_id = UnicodeAttribute()
    # Kept for the ownership checks of a later issue (and the user's order listing).
    user_id = UnicodeAttribute()
    status = UnicodeAttribute()
    subtotal = MoneyAttribute()
    tax_total = MoneyAttribute()
    total = MoneyAttribute()
    created_utc = UnicodeAttribute()  # ISO 8601, UTC, microseconds: sorts as it reads

    derived_attributes = ("pk", "sk", "gsi1_pk", "gsi1_sk")

    @staticmethod
    def key(order_id: str) -> tuple[str, str]:
        return f"ORDER#{_part(order_id, 'order_id')}", "ORDER"

    def derive_keys(self) -> None:
        self.pk, self.sk = self.key(self.order_id)
        self.gsi1_pk = f"USER#{_part(self.user_id, 'user_id')}"
        self.gsi1_sk = f"{_part(self.created_utc, 'created_utc')}#{self.order_id}"


class OrderLineRecord(CommerceTable, discriminator="order_line"):
    """One line of an order, in the order's partition: the order and its lines are one Query."""

    order_id = UnicodeAttribute()
    product_id = UnicodeAttribute()
    line_no = NumberAttribute()  # the position in the order as placed
    quantity = NumberAttribute()
    unit_price = MoneyAttribute()
    line_total = MoneyAttribute()
    is_taxable = BooleanAttribute()

    def derive_keys(self) -> None:
        self.pk = OrderRecord.key(self.order_id)[0]
        self.sk = f"ITEM#{_part(self.product_id, 'product_id')}"
