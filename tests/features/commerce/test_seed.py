"""The bundled catalogue: loaded into an empty table, idempotent, refused whole when bad."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app_lib.features.commerce.seed import CatalogueRejectedError, load_file
from tests.features.commerce.conftest import API

pytestmark = pytest.mark.needs_transactions


def test_the_bundled_catalogue_loads_once(client: TestClient) -> None:
    assert load_file() == 14  # 12 products, 2 users (each with its email claim)
    products = client.get(f"{API}/products").json()["items"]
    assert len(products) == 12
    assert {p["category"] for p in products} == {"kitchen", "pantry", "stationery"}
    assert [p["name"] for p in products] == sorted((p["name"] for p in products), key=str.casefold)
    users = client.get(f"{API}/users").json()["items"]
    assert [u["last_name"] for u in users] == ["Lovelace", "Turing"]
    assert client.get(f"{API}/products/mug").json()["price"] == "10.00"
    # Again: products are upserted, the users exist already; still 12 and 2.
    assert load_file() == 12
    assert len(client.get(f"{API}/products").json()["items"]) == 12
    assert len(client.get(f"{API}/users").json()["items"]) == 2


def test_a_file_with_bad_rows_writes_nothing(client: TestClient, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "kind,id,name,category,price,is_taxable,stock,description,first_name,last_name,email\n"
        "product,ok,Fine,misc,1.00,true,1,,,,\n"
        "product,cheap,Cheap,misc,0.001,true,1,,,,\n"
        "user,u,,,,,,,A,B,not-an-email\n"
        "robot,r,,,,,,,,,\n",
        encoding="utf-8",
    )
    with pytest.raises(CatalogueRejectedError) as refused:
        load_file(bad)
    problems = refused.value.extra["problems"]
    assert [line.split(":")[0] for line in problems] == ["line 3", "line 4", "line 5"]
    assert client.get(f"{API}/products").json()["items"] == []
