"""The bundled catalogue (a dozen products in three categories, two users), loaded when the
commerce table is empty, and `python -m app_lib seed commerce [--file F]`.

One CSV: a `kind` column (`product` or `user`), `id`, then the columns of that kind. Every row
is validated first; a file with bad rows is refused with each line number and nothing is written.
Products are upserted (BatchWriteItem); each user is written with its email claim in one
transaction, and a user whose id exists already is left as it is: loading twice writes nothing
new.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from app_lib.common.errors import ConflictError, UnprocessableError
from app_lib.features.commerce.data_service import ProductData, UserData
from app_lib.features.commerce.dto import ProductCreate, UserCreate
from app_lib.features.commerce.service import new_id

BUNDLED = Path(__file__).parent / "data" / "catalogue.csv"
PRODUCT_COLUMNS = ("name", "category", "price", "is_taxable", "stock", "description")
USER_COLUMNS = ("first_name", "last_name", "email")


class CatalogueRejectedError(UnprocessableError):
    title = "Invalid data file"

    def __init__(self, problems: list[str]) -> None:
        super().__init__(f"{len(problems)} bad row(s); nothing was written", problems=problems)


def _parse(row: dict[str, Any]) -> BaseModel:
    kind = row.get("kind")
    if kind == "product":
        values = {
            name: row.get(name) for name in PRODUCT_COLUMNS if row.get(name) not in (None, "")
        }
        return ProductCreate.model_validate({"product_id": row.get("id"), **values})
    if kind == "user":
        values = {name: row.get(name) for name in USER_COLUMNS}
        return UserCreate.model_validate({"user_id": row.get("id"), **values})
    raise ValueError(f"kind must be product or user (got {kind!r})")


def parse_csv(text: str) -> tuple[list[ProductCreate], list[UserCreate]]:
    products: list[ProductCreate] = []
    users: list[UserCreate] = []
    problems: list[str] = []
    for line, row in enumerate(csv.DictReader(io.StringIO(text)), start=2):
        try:
            parsed = _parse(row)
        except ValidationError as error:
            fields = "; ".join(
                f"{'.'.join(str(p) for p in item['loc'])}: {item['msg']}" for item in error.errors()
            )
            problems.append(f"line {line}: {fields}")
            continue
        except ValueError as error:
            problems.append(f"line {line}: {error}")
            continue
        if isinstance(parsed, ProductCreate):
            products.append(parsed)
        elif isinstance(parsed, UserCreate):
            users.append(parsed)
    if problems:
        raise CatalogueRejectedError(problems)
    return products, users


def load_file(path: Path | None = None) -> int:
    """Load a catalogue (default: the bundled one); returns how many items it wrote."""
    products, users = parse_csv((path or BUNDLED).read_text(encoding="utf-8-sig"))
    written = ProductData().batch_put(p.to_record(p.product_id or new_id()) for p in products)
    user_data = UserData()
    for user in users:
        try:
            user_data.create(user.to_record(user.user_id or new_id()))
        except ConflictError:
            continue  # already there (a second load), or its email is another user's
        written += 1
    return written
