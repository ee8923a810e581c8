"""Commerce data access: every DynamoDB call of the feature, and its transactions.

Uniqueness (emails), stock and order state are enforced by conditions that DynamoDB evaluates
at the write, inside one TransactWriteItems where several items must change together. Nothing
here reads first to decide whether a write may happen: reads before a write only gather what the
write needs (prices, the email to release), and the write's conditions re-check all of it.
"""

from __future__ import annotations

import builtins
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pynamodb.exceptions import DoesNotExist, TransactWriteError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action
from pynamodb.pagination import ResultIterator

from app_lib.common.aws_errors import aws_errors, conditional_write
from app_lib.common.data import cursor as cursors
from app_lib.common.data import pynamodb_adapter as adapter
from app_lib.common.data.abstract_data_service import Page
from app_lib.common.errors import (
    ConditionFailedError,
    ConflictError,
    NotFoundError,
    PreconditionFailedError,
    ServiceUnavailableError,
)
from app_lib.features.commerce.table import (
    COLLECTION_INDEX,
    GROUP_INDEX,
    PRODUCTS,
    USERS,
    CommerceTable,
    EmailRecord,
    OrderLineRecord,
    OrderRecord,
    ProductRecord,
    UserRecord,
    fold,
    fold_email,
)

R = TypeVar("R", bound=CommerceTable)

# DynamoDB's limit of actions in one TransactWriteItems.
MAX_TRANSACTION_ACTIONS = 100
# A transaction cancelled because another one was changing the same item at that moment
# (TransactionConflict, on AWS) is sent again: its conditions are evaluated afresh each time.
CONFLICT_RETRIES = 4

CHANGED = "the item was changed by another write"


# ----- transactions --------------------------------------------------------------------------


@dataclass(frozen=True)
class Failed:
    """One action of a cancelled transaction whose condition did not hold: the label it was
    added with and, for updates that asked for it, the item as it was (raw DynamoDB JSON)."""

    label: Any
    old_item: dict[str, Any] | None


class TransactionCancelledError(Exception):
    """A transaction's conditions did not hold; nothing was written. `failed` says which."""

    def __init__(self, failed: builtins.list[Failed]) -> None:
        super().__init__(f"transaction cancelled: {[f.label for f in failed]}")
        self.failed = failed

    def labels(self) -> builtins.list[Any]:
        return [f.label for f in self.failed]


@dataclass
class Transaction:
    """One TransactWriteItems, built from PynamoDB's public request builders, whose actions carry
    labels so that a cancellation can say which condition failed (CancellationReasons are in
    request order). PynamoDB's Connection.transact_write_items sends condition checks, then
    deletes, puts and updates: `_ORDER`, which `labels()` follows."""

    model: type[CommerceTable]
    checks: builtins.list[tuple[dict[str, Any], Any]] = field(default_factory=list)
    deletes: builtins.list[tuple[dict[str, Any], Any]] = field(default_factory=list)
    puts: builtins.list[tuple[dict[str, Any], Any]] = field(default_factory=list)
    updates: builtins.list[tuple[dict[str, Any], Any]] = field(default_factory=list)
    written: builtins.list[CommerceTable] = field(default_factory=list)

    def check(
        self, model: type[CommerceTable], key: tuple[str, str], condition: Condition, label: Any
    ) -> None:
        kwargs = model.get_operation_kwargs_from_class(key[0], key[1], condition=condition)
        self.checks.append((kwargs, label))

    def put(self, item: CommerceTable, condition: Condition | None, label: Any) -> None:
        # Adds the item's version (1 for a new item, on condition that it has none yet).
        self.puts.append((item.get_save_kwargs_from_instance(condition=condition), label))
        self.written.append(item)

    def update(
        self,
        item: CommerceTable,
        actions: builtins.list[Action],
        condition: Condition | None,
        label: Any,
        *,
        add_version_condition: bool,
        return_old: bool = False,
    ) -> None:
        # PynamoDB adds `ADD version 1` to the actions (and `version = <read>` to the condition
        # when add_version_condition): every change makes a new ETag.
        kwargs = item.get_update_kwargs_from_instance(
            actions=actions,
            condition=condition,
            return_values_on_condition_failure="ALL_OLD" if return_old else None,
            add_version_condition=add_version_condition,
        )
        self.updates.append((kwargs, label))
        self.written.append(item)

    def delete(self, item: CommerceTable, condition: Condition | None, label: Any) -> None:
        kwargs = item.get_delete_kwargs_from_instance(
            condition=condition, add_version_condition=False
        )
        self.deletes.append((kwargs, label))

    def size(self) -> int:
        return len(self.checks) + len(self.deletes) + len(self.puts) + len(self.updates)

    def labels(self) -> builtins.list[Any]:
        return [label for group in self._groups() for _, label in group]

    def _groups(self) -> tuple[builtins.list[tuple[dict[str, Any], Any]], ...]:
        return (self.checks, self.deletes, self.puts, self.updates)

    def commit(self) -> None:
        """Send it; raises TransactionCancelledError when a condition did not hold."""
        if self.size() > MAX_TRANSACTION_ACTIONS:
            raise ValueError(f"{self.size()} actions: DynamoDB takes {MAX_TRANSACTION_ACTIONS}")
        connection = adapter.table_connection(self.model).connection
        for attempt in range(CONFLICT_RETRIES + 1):
            try:
                with aws_errors():
                    connection.transact_write_items(
                        condition_check_items=[kwargs for kwargs, _ in self.checks],
                        delete_items=[kwargs for kwargs, _ in self.deletes],
                        put_items=[kwargs for kwargs, _ in self.puts],
                        update_items=[kwargs for kwargs, _ in self.updates],
                    )
            except TransactWriteError as error:
                if error.cause_response_code != "TransactionCanceledException":
                    raise
                reasons = builtins.list(error.cancellation_reasons)
                codes = {reason.code for reason in reasons if reason is not None}
                if codes & {"TransactionConflict"} and attempt < CONFLICT_RETRIES:
                    time.sleep(0.02 * 2**attempt)
                    continue
                failed = [
                    Failed(label, reason.raw_item)
                    for label, reason in zip(self.labels(), reasons, strict=False)
                    if reason is not None and reason.code == "ConditionalCheckFailed"
                ]
                if not failed:
                    raise ServiceUnavailableError(
                        "the database cancelled the transaction (concurrent writes); try again",
                        retry_after=1,
                    ) from error
                raise TransactionCancelledError(failed) from error
            for item in self.written:
                item.update_local_version_attribute()  # type: ignore[no-untyped-call]
            return


def record_from_raw(raw: dict[str, Any] | None) -> CommerceTable | None:
    """An item as a cancellation reason returned it (raw DynamoDB JSON), as its entity class."""
    return CommerceTable.from_raw_data(raw) if raw else None


# ----- pages ---------------------------------------------------------------------------------


def _page(
    run: Callable[[int, dict[str, Any] | None], ResultIterator[R]],
    limit: int,
    cursor: str | None,
    context: str,
) -> Page[R]:
    """One full page of a Query and a signed cursor to the next (none after the last)."""
    start = cursors.decode(cursor, context) if cursor else None
    with aws_errors():
        results = run(limit, start)
        items = builtins.list(results)
        last_key = results.last_evaluated_key
    next_cursor = cursors.encode(last_key, context) if last_key and len(items) == limit else None
    return Page(items, next_cursor, results.page_iter.total_scanned_count)


def _context(index: str, **parts: Any) -> str:
    # A cursor belongs to one listing: table, index and the key it queried.
    return f"{CommerceTable.Meta.table_name}|{index}|{json.dumps(parts, sort_keys=True)}"


def _get(model: type[R], key: tuple[str, str], consistent: bool = False) -> R | None:
    with aws_errors():
        try:
            return model.get(key[0], key[1], consistent_read=consistent)
        except DoesNotExist:
            return None


def _set_actions(
    item: CommerceTable, changes: Mapping[str, Any], model: type[CommerceTable]
) -> builtins.list[Action]:
    """Apply `changes` to `item` and return the update actions: the changed fields and the keys
    derived from them (a new name moves the item in its listings in the same write)."""
    derived_before = {name: getattr(item, name) for name in item.derived_attributes}
    for name, value in changes.items():
        setattr(item, name, value)
    item.derive_keys()
    touched = [*changes]
    touched += [n for n, v in derived_before.items() if getattr(item, n) != v]
    actions: builtins.list[Action] = []
    for name in dict.fromkeys(touched):
        attribute = getattr(model, name)
        value = getattr(item, name)
        actions.append(attribute.remove() if value is None else attribute.set(value))
    return actions


def check_version(item: CommerceTable, expected_version: int | None) -> None:
    if expected_version is not None and expected_version != item.version:
        raise PreconditionFailedError(
            f"the item is at version {item.version}, not {expected_version}"
        )


# ----- products ------------------------------------------------------------------------------


class ProductData:
    def get(self, product_id: str) -> ProductRecord | None:
        return _get(ProductRecord, ProductRecord.key(product_id))

    def create(self, product: ProductRecord) -> ProductRecord:
        # The id must be new: without this condition a put would replace another product.
        with conditional_write(ConflictError(f"product {product.product_id} exists")):
            product.save(condition=ProductRecord.pk.does_not_exist())
        return product

    def update(
        self, product: ProductRecord, changes: Mapping[str, Any], expected_version: int | None
    ) -> ProductRecord:
        check_version(product, expected_version)
        actions = _set_actions(product, changes, ProductRecord)
        if not actions:
            return product
        # Conditional on the version read (PynamoDB adds it): an order's stock decrement between
        # the read and this write makes it a 412, never a lost decrement.
        with conditional_write(PreconditionFailedError(CHANGED)):
            product.update(actions=actions)
        return product

    def remove(self, product: ProductRecord, expected_version: int | None) -> None:
        """Delete a product as read, conditional on its version; NotFoundError when it is
        already gone (a racing delete), PreconditionFailedError when it changed."""
        check_version(product, expected_version)
        try:
            with conditional_write(PreconditionFailedError(CHANGED)):
                product.delete()
        except PreconditionFailedError:
            if self.get(product.product_id) is None:
                raise NotFoundError(f"no product {product.product_id}") from None
            raise

    def page(self, limit: int, cursor: str | None, category: str | None) -> Page[ProductRecord]:
        """By name; with a category, a Query of that category's group (gsi2), else of the whole
        collection (gsi1). Never a Scan."""
        if category is None:
            return _page(
                lambda n, start: ProductRecord.query(
                    PRODUCTS, index_name=COLLECTION_INDEX, limit=n, last_evaluated_key=start
                ),
                limit,
                cursor,
                _context(COLLECTION_INDEX, products=True),
            )
        return _page(
            lambda n, start: ProductRecord.query(
                f"CATEGORY#{category}", index_name=GROUP_INDEX, limit=n, last_evaluated_key=start
            ),
            limit,
            cursor,
            _context(GROUP_INDEX, category=category),
        )

    def batch_put(self, products: Iterable[ProductRecord]) -> int:
        """Upsert (a bulk load: BatchWriteItem, unconditional by nature)."""
        written = 0
        with aws_errors(), ProductRecord.batch_write() as batch:
            for product in products:
                product.version = product.version or 1
                batch.save(product)
                written += 1
        return written


# ----- users ---------------------------------------------------------------------------------


class UserData:
    def get(self, user_id: str) -> UserRecord | None:
        return _get(UserRecord, UserRecord.key(user_id))

    def by_email(self, email: str) -> UserRecord | None:
        """The holder of an email (any case): its claim, then the user; consistent reads, so a
        user just created or changed is found."""
        claim = _get(EmailRecord, EmailRecord.key(email), consistent=True)
        if claim is None:
            return None
        return _get(UserRecord, UserRecord.key(claim.user_id), consistent=True)

    def create(self, user: UserRecord) -> UserRecord:
        """The user and the claim on its email in one transaction: both or neither."""
        claim = EmailRecord(email=user.email, user_id=user.user_id)
        transaction = Transaction(CommerceTable)
        # A new id (a put would otherwise replace another user).
        transaction.put(user, UserRecord.pk.does_not_exist(), "user")
        # The email is free: this condition, not a lookup before, is what keeps emails unique.
        transaction.put(claim, EmailRecord.pk.does_not_exist(), "email")
        try:
            transaction.commit()
        except TransactionCancelledError as cancelled:
            if "email" in cancelled.labels():
                raise ConflictError(f"the email {user.email} is taken") from None
            raise ConflictError(f"user {user.user_id} exists") from None
        return user

    def update(
        self, user: UserRecord, changes: Mapping[str, Any], expected_version: int | None
    ) -> UserRecord:
        check_version(user, expected_version)
        old_email = user.email
        actions = _set_actions(user, changes, UserRecord)
        if not actions:
            return user
        if fold_email(user.email) == fold_email(old_email):
            with conditional_write(PreconditionFailedError(CHANGED)):
                user.update(actions=actions)
            return user
        # A new email: the user, a claim on the new email and the release of the old claim, in
        # one transaction. The user must still be the version read (so the old email is still
        # its email: the claim we delete is ours).
        transaction = Transaction(CommerceTable)
        transaction.update(user, actions, None, "user", add_version_condition=True)
        claim = EmailRecord(email=user.email, user_id=user.user_id)
        # The new email is free, checked by the database at the write.
        transaction.put(claim, EmailRecord.pk.does_not_exist(), "email")
        old_claim = EmailRecord(*EmailRecord.key(old_email), email=old_email)
        # Release only our own claim on the old email.
        transaction.delete(old_claim, EmailRecord.user_id == user.user_id, "old_email")
        try:
            transaction.commit()
        except TransactionCancelledError as cancelled:
            if "email" in cancelled.labels():
                raise ConflictError(f"the email {user.email} is taken") from None
            raise PreconditionFailedError(CHANGED) from None
        return user

    def page(
        self, limit: int, cursor: str | None, status: str | None, last_name: str | None
    ) -> Page[UserRecord]:
        """By last then first name: a status is a Query of its group (gsi2), otherwise of the
        whole collection (gsi1); a last-name prefix is `begins_with` on either's range key."""
        prefix = fold(last_name) if last_name else None
        if status is None:
            index, hash_key, range_key = COLLECTION_INDEX, USERS, UserRecord.gsi1_sk
        else:
            index, hash_key, range_key = GROUP_INDEX, f"STATUS#{status}", UserRecord.gsi2_sk
        condition = range_key.startswith(prefix) if prefix else None
        return _page(
            lambda n, start: UserRecord.query(
                hash_key,
                range_key_condition=condition,
                index_name=index,
                limit=n,
                last_evaluated_key=start,
            ),
            limit,
            cursor,
            _context(index, hash=hash_key, prefix=prefix),
        )


# ----- orders --------------------------------------------------------------------------------


@dataclass
class PlacedOrder:
    order: OrderRecord
    lines: builtins.list[OrderLineRecord]


class OrderData:
    def read_for_order(
        self, user_id: str, product_ids: Sequence[str]
    ) -> tuple[UserRecord | None, dict[str, ProductRecord]]:
        """The user and the products of a new order, in one BatchGetItem (at most 1 + 49 keys)."""
        keys = [UserRecord.key(user_id), *(ProductRecord.key(p) for p in product_ids)]
        user: UserRecord | None = None
        products: dict[str, ProductRecord] = {}
        with aws_errors():
            for item in CommerceTable.batch_get(keys):
                if isinstance(item, UserRecord):
                    user = item
                elif isinstance(item, ProductRecord):
                    products[item.product_id] = item
        return user, products

    def place(
        self,
        order: OrderRecord,
        lines: Sequence[OrderLineRecord],
        products: Mapping[str, ProductRecord],
    ) -> PlacedOrder:
        """The order, its lines and every stock decrement in ONE TransactWriteItems."""
        transaction = Transaction(CommerceTable)
        # A deactivation racing this order: the user must still be active when it is written.
        transaction.check(
            UserRecord,
            UserRecord.key(order.user_id),
            UserRecord.status == "active",
            ("user", order.user_id),
        )
        transaction.put(order, OrderRecord.pk.does_not_exist(), ("order", order.order_id))
        for line in lines:
            transaction.put(line, OrderLineRecord.pk.does_not_exist(), ("line", line.product_id))
        for line in lines:
            product = products[line.product_id]
            # Enough stock, checked by the database at the write (never below 0, whatever races
            # this order), and the price charged is still the product's price. Not the version:
            # other orders' decrements change it and must not fail this one.
            condition = (
                ProductRecord.pk.exists()
                & (ProductRecord.stock >= int(line.quantity))
                & (ProductRecord.price == product.price)
                & (ProductRecord.is_taxable == product.is_taxable)
            )
            transaction.update(
                product,
                [ProductRecord.stock.set(ProductRecord.stock - int(line.quantity))],
                condition,
                ("product", line.product_id),
                add_version_condition=False,
                return_old=True,
            )
        transaction.commit()
        return PlacedOrder(order, builtins.list(lines))

    def get(self, order_id: str) -> PlacedOrder | None:
        """The order and its lines: ONE Query of the order's partition."""
        pk = OrderRecord.key(order_id)[0]
        order: OrderRecord | None = None
        lines: builtins.list[OrderLineRecord] = []
        with aws_errors():
            for item in CommerceTable.query(pk, consistent_read=True):
                if isinstance(item, OrderRecord):
                    order = item
                elif isinstance(item, OrderLineRecord):
                    lines.append(item)
        if order is None:
            return None
        lines.sort(key=lambda line: int(line.line_no))
        return PlacedOrder(order, lines)

    def get_order(self, order_id: str) -> OrderRecord | None:
        return _get(OrderRecord, OrderRecord.key(order_id))

    def page(self, user_id: str, limit: int, cursor: str | None) -> Page[OrderRecord]:
        """A user's orders, newest first: gsi1 read backwards."""
        hash_key = f"USER#{user_id}"
        return _page(
            lambda n, start: OrderRecord.query(
                hash_key,
                index_name=COLLECTION_INDEX,
                scan_index_forward=False,
                limit=n,
                last_evaluated_key=start,
            ),
            limit,
            cursor,
            _context(COLLECTION_INDEX, hash=hash_key),
        )

    def advance(
        self, order: OrderRecord, to_status: str, from_status: str, expected_version: int | None
    ) -> OrderRecord:
        """pending -> paid -> shipped: the order must still be in `from_status` at the write, so
        two racing moves cannot both succeed (and a cancelled order never ships)."""
        check_version(order, expected_version)
        try:
            with conditional_write():
                order.update(
                    actions=[OrderRecord.status.set(to_status)],
                    condition=OrderRecord.status == from_status,
                    add_version_condition=expected_version is not None,
                )
        except ConditionFailedError:
            raise self._refused(order.order_id, expected_version) from None
        return order

    def cancel(
        self,
        placed: PlacedOrder,
        cancellable: Sequence[str],
        expected_version: int | None,
    ) -> OrderRecord:
        """Cancel and put the stock back, in one transaction. A product deleted since the order
        gets nothing back (the transaction is sent again without it)."""
        order = placed.order
        check_version(order, expected_version)
        lines = {line.product_id: line for line in placed.lines}
        while True:
            transaction = Transaction(CommerceTable)
            # Only a pending or paid order may be cancelled, once: two racing cancels restore
            # the stock once.
            transaction.update(
                order,
                [OrderRecord.status.set("cancelled")],
                OrderRecord.status.is_in(*cancellable),
                "order",
                add_version_condition=expected_version is not None,
            )
            for product_id, line in lines.items():
                # Only its key: an update sends no other field.
                product = ProductRecord(*ProductRecord.key(product_id))
                # Not read: any version will do, and PynamoDB then adds `ADD version 1` (with
                # None it would SET version = 1).
                product.version = 0
                # The product must exist: an update would otherwise create a bare item.
                transaction.update(
                    product,
                    [ProductRecord.stock.set(ProductRecord.stock + int(line.quantity))],
                    ProductRecord.pk.exists(),
                    product_id,
                    add_version_condition=False,
                )
            try:
                transaction.commit()
            except TransactionCancelledError as cancelled:
                if "order" in cancelled.labels():
                    raise self._refused(order.order_id, expected_version) from None
                for product_id in cancelled.labels():
                    lines.pop(product_id, None)
                continue
            order.status = "cancelled"
            return order

    def _refused(self, order_id: str, expected_version: int | None) -> Exception:
        current = self.get_order(order_id)
        if current is None:
            return ConflictError(f"order {order_id} is gone")
        if expected_version is not None and current.version != expected_version:
            return PreconditionFailedError(CHANGED)
        return ConflictError(f"order {order_id} is {current.status}")
