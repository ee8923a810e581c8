"""The OpenAPI document is true: every operation is described and lists its error statuses."""

from __future__ import annotations

from fastapi import FastAPI


def test_every_api_operation_has_a_docstring_and_its_problem_statuses(app: FastAPI) -> None:
    document = app.openapi()
    missing = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            name = f"{method.upper()} {path}"
            if not operation.get("description"):
                missing.append(f"{name}: no docstring")
            responses = operation.get("responses", {})
            if path.startswith("/api/v1") and "503" not in responses:
                missing.append(f"{name}: 503 not documented")
            if "{" in path and path.startswith("/api/v1") and "404" not in responses:
                missing.append(f"{name}: 404 not documented")
            if method in ("put", "patch", "delete") and "412" not in responses:
                missing.append(f"{name}: 412 not documented")
    assert missing == []
